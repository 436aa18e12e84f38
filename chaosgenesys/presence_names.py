"""Presence names compared as the platform's spellings vary (``On Queue``, ``ON_QUEUE``,
``OnQueue``, ``on-queue``), written once for the activities, the synthetic agents and the
sandbox. Only the standard library.
"""

from __future__ import annotations

import re

__all__ = ["normalise_presence"]

_SEPARATORS = re.compile(r"[\s_\-]+")


def normalise_presence(value: str) -> str:
    """Lower-case without whitespace, underscores or hyphens: ``"ON_QUEUE"`` -> ``"onqueue"``."""
    return _SEPARATORS.sub("", value).lower()
