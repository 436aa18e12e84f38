"""Closing a page's open WebSockets from inside the page, for ``close_browser_websockets`` and
for ``block_websocket_handshakes(close_code=...)`` (whose holder closes them once the refusals
are in force).

The sockets are found with ``Runtime.queryObjects`` on ``WebSocket.prototype`` in the page and
each of its out-of-process frames, and closed with ``close(code, reason)``, over the DevTools
client of :mod:`chaosgenesys.browser.cdp` (no Playwright: its driver alone would take a second or
more to start). ``close_in_page`` runs its event loop in a thread of its own, so that it can be
called from a thread that runs one already (an async control's).
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.redaction import shown_url

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.browser.cdp import Session

__all__ = ["close_in_page", "close_in_sessions", "in_thread"]

#: How long ``close_in_page`` looks for the page (s), as the activities that find it do.
PAGE_TIMEOUT = 10.0

_LIST = """function() { return this.map(s => [s.url, s.readyState]); }"""
_CLOSE = """function(indexes, code, reason) {
  for (const i of indexes) this[i].close(code, reason);
  return indexes.length;
}"""


def in_thread(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``work()`` in a thread of its own: ``asyncio.run`` refuses a thread that already runs an
    event loop (an async control's, a caller's own)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = work()
        except BaseException as error:  # handed back to the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="chaosgenesys-browser-close", daemon=True)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    result: dict[str, Any] = outcome["value"]
    return result


def close_in_page(
    ws_url: str, page_pattern_text: str, pattern: re.Pattern[str], code: int, reason: str,
    devtools: str = "",
) -> dict[str, Any]:
    """Close the open WebSockets ``pattern`` searches in the page ``page_pattern_text`` finds
    (over the browser's DevTools WebSocket ``ws_url``, named ``devtools`` in errors), in its
    out-of-process frames and in its dedicated workers; ``{"closed": [URLs without query],
    "code", "page"}``."""
    return in_thread(
        lambda: asyncio.run(
            _close_in_page(ws_url, page_pattern_text, pattern, code, reason, devtools or ws_url)
        )
    )


async def _close_in_page(
    ws_url: str, page_pattern_text: str, pattern: re.Pattern[str], code: int, reason: str,
    devtools: str,
) -> dict[str, Any]:
    from chaosgenesys.browser.cdp import CdpError, Connection
    from chaosgenesys.browser.cdp_pages import (
        attach_page,
        follow_frames,
        follow_shared_workers,
        origin_of,
    )
    from chaosgenesys.browser.devtools import not_attached, page_pattern

    try:
        browser = await Connection.open(ws_url, timeout=15)
    except Exception as error:  # refused, timed out, or not a WebSocket that answers
        raise not_attached("devtools_url", devtools, error) from None
    async with browser:
        try:
            page = await attach_page(browser, page_pattern(page_pattern_text), PAGE_TIMEOUT)
        except CdpError as error:
            raise ActivityFailed(str(error)) from None
        sessions = [page]

        async def frame(session: Session) -> None:
            sessions.append(session)

        with contextlib.suppress(CdpError):
            await follow_frames(page, frame, frame)  # a worker's sockets are its own too
            await follow_shared_workers(browser, origin_of(str(page.target.get("url"))), frame)
        closed = await close_in_sessions(sessions, pattern, code, reason)
    return {"closed": closed, "code": code, "page": shown_url(str(page.target.get("url")))}


async def close_in_sessions(
    sessions: list[Session], pattern: re.Pattern[str], code: int, reason: str
) -> list[str]:
    """The open WebSockets ``pattern`` searches closed in the targets of ``sessions`` (CDP
    sessions whose ``send`` answers a command's result: a page's first, then its out-of-process
    frames' and its dedicated workers'; one of those gone meanwhile is skipped); their URLs
    without query."""
    from chaosgenesys.browser.cdp import CdpError

    closed: list[str] = []
    for index, session in enumerate(sessions):
        try:
            closed += await _close_in(session, pattern, code, reason)
        except CdpError:
            if index == 0:
                raise
    return closed


async def _close_in(
    session: Session, pattern: re.Pattern[str], code: int, reason: str
) -> list[str]:
    send = session.send
    group = {"objectGroup": "chaosgenesys-close"}
    prototype = await send("Runtime.evaluate", {"expression": "WebSocket.prototype", **group})
    object_id = prototype["result"]["objectId"]
    found = await send("Runtime.queryObjects", {"prototypeObjectId": object_id, **group})
    sockets = found["objects"]["objectId"]
    listed = (
        await send(
            "Runtime.callFunctionOn",
            {"objectId": sockets, "functionDeclaration": _LIST, "returnByValue": True},
        )
    )["result"]["value"]
    chosen = [
        index
        for index, (url, state) in enumerate(listed)
        if state in (0, 1) and pattern.search(str(url))
    ]
    if chosen:
        answer = await send(
            "Runtime.callFunctionOn",
            {
                "objectId": sockets,
                "functionDeclaration": _CLOSE,
                "arguments": [{"value": chosen}, {"value": code}, {"value": reason}],
                "returnByValue": True,
            },
        )
        if "exceptionDetails" in answer:
            raise ActivityFailed(
                f"the page refused close({code}): {answer['exceptionDetails'].get('text', '')}"
            )
    with contextlib.suppress(Exception):
        await send("Runtime.releaseObjectGroup", group)
    return [shown_url(str(listed[index][0])) for index in chosen]
