"""Argument types shared by the ``chaosgenesys`` sub-commands."""

from __future__ import annotations

import argparse
import math

__all__ = ["non_negative_float", "non_negative_int", "port", "positive_float"]


def port(value: str) -> int:
    port = non_negative_int(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return port


def non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {value}")
    return number


def non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {value}")
    return number


def positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return number
