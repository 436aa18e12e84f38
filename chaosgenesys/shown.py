"""How an error message shows a value it refuses, written once: ``repr``, cut when long.

Only the standard library: the import-light modules (the rule model of the proxy, the network
arguments, the verdict control's argument check) use it as the activities do.
"""

from __future__ import annotations

from typing import Any

__all__ = ["show"]


def show(value: Any, limit: int = 120) -> str:
    """The value as an error message shows it: ``repr``, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
