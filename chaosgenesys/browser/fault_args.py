"""The browser faults' arguments checked, and the page they act on found.

Every check fails with :class:`~chaoslib.exceptions.ActivityFailed` naming the argument, before
anything is recorded or started. :func:`find_target` takes ``devtools_url`` and
``page_url_pattern`` from the arguments or, left empty, from this run's browser observer.
"""

from __future__ import annotations

import math
import re
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.devtools import page_pattern, websocket_url

__all__ = [
    "MAX_DELAY_MS",
    "MAX_DURATION",
    "OBSERVER_KIND",
    "check_duration",
    "check_number",
    "check_pattern",
    "find_target",
]

OBSERVER_KIND = "browser-observer"
#: Longest fault, in seconds (a day): a fault is always bounded.
MAX_DURATION = 86_400.0
MAX_DELAY_MS = 600_000


def check_pattern(url_pattern: Any) -> str:
    if not isinstance(url_pattern, str) or not url_pattern:
        raise ActivityFailed(
            f"url_pattern must be a regular expression searched in request URLs, "
            f"got {url_pattern!r}"
        )
    try:
        re.compile(url_pattern)
    except re.error as error:
        raise ActivityFailed(
            f"url_pattern {url_pattern!r} is not a regular expression: {error}"
        ) from None
    return url_pattern


def check_number(name: str, value: Any, low: float, high: float, *, whole: bool = False) -> float:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    if ok and whole and isinstance(value, float) and not value.is_integer():
        ok = False
    if not ok or not math.isfinite(float(value)) or not low <= float(value) <= high:
        kind = "an integer" if whole else "a number"
        raise ActivityFailed(f"{name} must be {kind} from {low:g} to {high:g}, got {value!r}")
    return float(value)


def check_duration(duration: Any) -> float:
    """Seconds above 0 and at most :data:`MAX_DURATION`: one message, whichever bound fails."""
    ok = isinstance(duration, (int, float)) and not isinstance(duration, bool)
    if not ok or not math.isfinite(float(duration)) or not 0 < float(duration) <= MAX_DURATION:
        raise ActivityFailed(
            f"duration must be a number of seconds above 0 and at most {MAX_DURATION:g}, "
            f"got {duration!r}"
        )
    return float(duration)


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ActivityFailed(f"{name} must be a string, got {value!r}")
    return value.strip()


def find_target(devtools_url: Any, page_url_pattern: Any) -> tuple[str, str, str]:
    """(devtools_url, page_url_pattern, DevTools WebSocket URL): the arguments, or this run's
    browser observer's when they are empty."""
    devtools = _text("devtools_url", devtools_url)
    pattern = _text("page_url_pattern", page_url_pattern)
    if not devtools or not pattern:
        from chaosgenesys.faults import registry

        observers = registry.mine(kind=OBSERVER_KIND)
        if not observers:
            missing = " and ".join(
                name
                for name, value in (("devtools_url", devtools), ("page_url_pattern", pattern))
                if not value
            )
            raise ActivityFailed(
                f"{missing} not given and this run has no browser observer: pass "
                f"{missing} or run chaosgenesys.browser.actions.start_observer first"
            )
        spec = observers[-1].spec
        devtools = devtools or str(spec.get("devtools_url") or "")
        pattern = pattern or str(spec.get("page_url_pattern") or "")
    page_pattern(pattern)
    return devtools, pattern, websocket_url(devtools)
