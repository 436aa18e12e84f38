"""Closing a page's open WebSockets from inside the page, for ``close_browser_websockets`` and
for ``block_websocket_handshakes(close_code=...)`` (whose holder closes them once the refusals
are in force).

The sockets are found with ``Runtime.queryObjects`` on ``WebSocket.prototype`` in the page and
each of its out-of-process frames, and closed with ``close(code, reason)``; the work runs in a
thread of its own (Playwright's sync API refuses a thread that already runs an event loop).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable, Generator
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.devtools import shown_url

__all__ = ["close_in_page", "close_in_page_async", "in_thread"]

_LIST = """function() { return this.map(s => [s.url, s.readyState]); }"""
_CLOSE = """function(indexes, code, reason) {
  for (const i of indexes) this[i].close(code, reason);
  return indexes.length;
}"""


def in_thread(work: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """``work()`` in a thread of its own: Playwright's sync API refuses a thread that already
    runs an event loop (a caller's own Playwright, an async control)."""
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
    devtools: str, page_pattern_text: str, pattern: re.Pattern[str], code: int, reason: str
) -> dict[str, Any]:
    """Close the open WebSockets ``pattern`` searches in the page ``page_pattern_text`` finds
    and its frames; ``{"closed": [URLs without query], "code", "page"}``."""
    from chaosgenesys.browser.devtools import connected, find_page

    closed: list[str] = []
    with connected(devtools) as browser:
        page = find_page(browser, page_pattern_text)
        targets: list[Any] = [page]
        targets += [frame for frame in page.frames if frame != page.main_frame]
        for target in targets:
            try:
                session = page.context.new_cdp_session(target)
            except Exception:  # an in-process frame: its sockets are in the page's heap
                continue
            try:
                closed += _close_in(session, pattern, code, reason)
            finally:
                with contextlib.suppress(Exception):
                    session.detach()
        where = shown_url(page.url)
    return {"closed": closed, "code": code, "page": where}


#: One DevTools call the close sequence needs: ``(method, params)``; it is sent with the
#: session's ``send`` (sync or async) and its result handed back into the sequence.
_Call = tuple[str, dict[str, Any]]


def _close_steps(
    pattern: re.Pattern[str], code: int, reason: str
) -> Generator[_Call, dict[str, Any], list[str]]:
    """The close in one target, as the DevTools calls it makes (one result back for each):
    the page's ``WebSocket`` objects listed, those ``pattern`` searches and still connecting
    or open closed; returns their URLs without query. The same sequence serves the activity
    (Playwright's sync API) and the fault holder (its async API)."""
    group = {"objectGroup": "chaosgenesys-close"}
    prototype = yield ("Runtime.evaluate", {"expression": "WebSocket.prototype", **group})
    object_id = prototype["result"]["objectId"]
    found = yield ("Runtime.queryObjects", {"prototypeObjectId": object_id, **group})
    sockets = found["objects"]["objectId"]
    listed = (
        yield (
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
        answer = yield (
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
    yield ("Runtime.releaseObjectGroup", group)
    return [shown_url(str(listed[index][0])) for index in chosen]


def _close_in(session: Any, pattern: re.Pattern[str], code: int, reason: str) -> list[str]:
    steps = _close_steps(pattern, code, reason)
    call = next(steps)
    try:
        while True:
            try:
                result = session.send(*call)
            except Exception:
                if call[0] != "Runtime.releaseObjectGroup":
                    raise
                result = {}
            call = steps.send(result)
    except StopIteration as done:
        closed: list[str] = done.value
        return closed


async def _close_in_async(
    session: Any, pattern: re.Pattern[str], code: int, reason: str
) -> list[str]:
    steps = _close_steps(pattern, code, reason)
    call = next(steps)
    try:
        while True:
            try:
                result = await session.send(*call)
            except Exception:
                if call[0] != "Runtime.releaseObjectGroup":
                    raise
                result = {}
            call = steps.send(result)
    except StopIteration as done:
        closed: list[str] = done.value
        return closed


async def close_in_page_async(
    page: Any, pattern: re.Pattern[str], code: int, reason: str
) -> list[str]:
    """:func:`close_in_page` for a page of Playwright's async API (the fault holder's): the
    open WebSockets ``pattern`` searches in ``page`` and its out-of-process frames closed;
    their URLs without query."""
    closed: list[str] = []
    targets: list[Any] = [page]
    targets += [frame for frame in page.frames if frame != page.main_frame]
    for target in targets:
        try:
            session = await page.context.new_cdp_session(target)
        except Exception:  # an in-process frame: its sockets are in the page's heap
            continue
        try:
            closed += await _close_in_async(session, pattern, code, reason)
        finally:
            with contextlib.suppress(Exception):
                await session.detach()
    return closed
