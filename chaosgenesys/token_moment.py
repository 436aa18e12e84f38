"""Sleep until a desktop's access token is a given time from its expiry: the moment the guide's
edge case 3 lines a fault up with. Shared by the synthetic desktop's
(``chaosgenesys.agent.actions.wait_until_agent_token_expiry``) and the browser's
(``chaosgenesys.browser.actions.wait_until_browser_token_expiry``) actions; each finds the
expiry its own way."""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable
from typing import Any

__all__ = ["wait_until_token_moment"]


def wait_until_token_moment(
    expires_at: float,
    seconds_before: float,
    max_wait: float,
    *,
    whose: str,
    latest_expiry: Callable[[], Any],
) -> dict[str, Any]:
    """Sleep until ``expires_at - seconds_before`` (epoch seconds; at once when already
    past); ``ActivityFailed`` before sleeping when that is more than ``max_wait`` seconds away.
    ``whose``: the token's owner, for messages (``the desktop's access token of user_id
    '...'``); ``latest_expiry()``: the expiry of the newest token afterwards, to tell whether
    it was refreshed meanwhile. Returns ``{"waited", "seconds_left", "expires_at" (ISO),
    "refreshed"}``."""
    from chaoslib.exceptions import ActivityFailed

    wait = float(expires_at) - seconds_before - time.time()
    if wait > max_wait:
        raise ActivityFailed(
            f"{whose} expires in {expires_at - time.time():.0f} s: waiting until "
            f"seconds_before={seconds_before:g} s before expiry would take {wait:.0f} s, more "
            f"than max_wait={max_wait:g}; shorten the token lifetime or raise max_wait"
        )
    from chaosgenesys.progress import Progress

    started = time.monotonic()
    if wait > 0:
        logging.getLogger("chaostoolkit").info(
            "waiting %.1f s until %s is %.0f s from expiry", wait, whose, seconds_before
        )
        Progress(f"waiting for {whose}", total=wait).sleep(wait)
    try:
        latest = latest_expiry()
    except Exception:  # the owner went away meanwhile: nothing newer seen
        latest = None
    moment = dt.datetime.fromtimestamp(float(expires_at), tz=dt.UTC)
    return {
        "waited": round(time.monotonic() - started, 3),
        "seconds_left": round(max(0.0, float(expires_at) - time.time()), 3),
        "expires_at": moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "refreshed": isinstance(latest, int | float) and latest > float(expires_at),
    }
