"""``ActivityFailed``, made only when something fails: chaoslib is imported then, not before.

The processes the activities start (the browser observer) share modules with the activities,
whose failures must be chaoslib's ``ActivityFailed``; importing chaoslib takes about a tenth of a
second here, a quarter of an observer's start. Those modules raise through these instead::

    from chaosgenesys.failure import activity_failed

    raise activity_failed(f"page_url_pattern must be a regular expression, got {pattern!r}")
"""

from __future__ import annotations

import sys

__all__ = ["activity_failed", "is_activity_failed"]


def activity_failed(message: str) -> Exception:
    """A chaoslib ``ActivityFailed`` with ``message``, to raise."""
    from chaoslib.exceptions import ActivityFailed

    error: Exception = ActivityFailed(message)
    return error


def is_activity_failed(error: BaseException) -> bool:
    """Whether ``error`` is an ``ActivityFailed`` (none can be unless chaoslib was imported)."""
    exceptions = sys.modules.get("chaoslib.exceptions")
    return exceptions is not None and isinstance(error, exceptions.ActivityFailed)
