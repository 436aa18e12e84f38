"""Closing a page's open WebSockets from inside the page, for ``close_browser_websockets`` and
for ``block_websocket_handshakes(close_code=...)`` (whose holder closes them once the refusals
are in force).

The sockets are found with ``Runtime.queryObjects`` on ``WebSocket.prototype`` in the page and
each of its out-of-process frames, and closed with ``close(code, reason)``; the work runs in a
thread of its own (Playwright's sync API refuses a thread that already runs an event loop).
"""

from __future__ import annotations

import contextlib
import inspect
import re
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.devtools import shown_url

__all__ = ["close_in_page", "close_in_page_async", "close_in_sessions", "in_thread"]

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

    with connected(devtools) as browser:
        page = find_page(browser, page_pattern_text)
        closed = _at_once(close_in_page_async(page, pattern, code, reason))
        where = shown_url(page.url)
    return {"closed": closed, "code": code, "page": where}


async def close_in_page_async(
    page: Any, pattern: re.Pattern[str], code: int, reason: str
) -> list[str]:
    """The open WebSockets ``pattern`` searches in ``page`` and its out-of-process frames
    closed; their URLs without query.

    ``page`` is of Playwright's sync API (:func:`close_in_page` runs this at once: with the
    sync API nothing here waits) or of its async API."""
    closed: list[str] = []
    targets: list[Any] = [page]
    targets += [frame for frame in page.frames if frame != page.main_frame]
    for target in targets:
        try:
            session = await _answer(page.context.new_cdp_session(target))
        except Exception:  # an in-process frame: its sockets are in the page's heap
            continue
        try:
            closed += await _close_in(session, pattern, code, reason)
        finally:
            with contextlib.suppress(Exception):
                await _answer(session.detach())
    return closed


async def close_in_sessions(
    sessions: list[Any], pattern: re.Pattern[str], code: int, reason: str
) -> list[str]:
    """The open WebSockets ``pattern`` searches closed in the targets of ``sessions`` (CDP
    sessions whose ``send`` answers a command's result: the fault holder's, a page's and its
    out-of-process frames'); their URLs without query."""
    closed: list[str] = []
    for session in sessions:
        closed += await _close_in(session, pattern, code, reason)
    return closed


async def _close_in(session: Any, pattern: re.Pattern[str], code: int, reason: str) -> list[str]:
    async def send(method: str, params: dict[str, Any]) -> Any:
        return await _answer(session.send(method, params))

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


async def _answer(value: Any) -> Any:
    """What a Playwright call answered: its async API answers with an awaitable, its sync API
    with the result itself."""
    return await value if inspect.isawaitable(value) else value


def _at_once[T](coroutine: Coroutine[Any, Any, T]) -> T:
    """The result of a coroutine that never waits (all it awaits is answered already, as with
    Playwright's sync API), run without an event loop."""
    try:
        coroutine.send(None)
    except StopIteration as done:
        result: T = done.value
        return result
    coroutine.close()
    raise RuntimeError("the close waited for an event loop: not a page of Playwright's sync API")
