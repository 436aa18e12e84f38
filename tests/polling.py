"""Waiting in tests for something to happen, written once (real time: the suite drives real
processes, sockets and timers; see docs/testing.md).

- :func:`wait_for`: until ``condition()`` is truthy; the seconds waited; AssertionError after
  ``timeout`` (a test that must see it happen).
- :func:`wait_until`: the same, answering True or False (a test that asserts on the answer,
  or on something happening *not*).
- :func:`wait_for_value`: the first truthy value ``condition()`` returned; AssertionError after
  ``timeout``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_for", "wait_for_value", "wait_until"]

STEP = 0.02


def _poll(condition: Callable[[], Any], timeout: float, step: float) -> tuple[Any, float]:
    """``(value, seconds waited)``: the first truthy value, or the last one (checked once more
    at the deadline) when none came within ``timeout``."""
    start = time.monotonic()
    deadline = start + timeout
    while True:
        value = condition()
        if value or time.monotonic() >= deadline:
            return value, time.monotonic() - start
        time.sleep(min(step, max(0.0, deadline - time.monotonic())))


def wait_for(condition: Callable[[], object], timeout: float, step: float = STEP) -> float:
    """Poll until ``condition()`` is true; the seconds waited; fails after ``timeout``."""
    value, waited = _poll(condition, timeout, step)
    if not value:
        raise AssertionError(f"condition not met within {timeout} s")
    return waited


def wait_until(condition: Callable[[], object], timeout: float = 5.0, step: float = STEP) -> bool:
    """Poll until ``condition()`` is true or ``timeout`` seconds pass; whether it became true."""
    return bool(_poll(condition, timeout, step)[0])


def wait_for_value(condition: Callable[[], Any], timeout: float, step: float = STEP) -> Any:
    """Poll until ``condition()`` returns something truthy, and return it; fails after
    ``timeout``."""
    value, _ = _poll(condition, timeout, step)
    if not value:
        raise AssertionError(f"condition not met within {timeout} s")
    return value
