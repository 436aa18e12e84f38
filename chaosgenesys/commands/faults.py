"""``chaosgenesys faults`` sub-commands (being written)."""

from __future__ import annotations

from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add this module's sub-commands to the ``chaosgenesys`` parser."""
