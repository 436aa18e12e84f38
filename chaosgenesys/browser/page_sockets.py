"""Closing a page's open WebSockets from inside the page, for ``close_browser_websockets``.

The sockets are found with ``Runtime.queryObjects`` on ``WebSocket.prototype`` in the page and
each of its out-of-process frames, and closed with ``close(code, reason)``; the work runs in a
thread of its own (Playwright's sync API refuses a thread that already runs an event loop).
"""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Callable
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser.devtools import shown_url

__all__ = ["close_in_page", "in_thread"]

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


def _close_in(session: Any, pattern: re.Pattern[str], code: int, reason: str) -> list[str]:
    group = {"objectGroup": "chaosgenesys-close"}
    prototype = session.send("Runtime.evaluate", {"expression": "WebSocket.prototype", **group})
    object_id = prototype["result"]["objectId"]
    found = session.send("Runtime.queryObjects", {"prototypeObjectId": object_id, **group})
    sockets = found["objects"]["objectId"]
    listed = session.send(
        "Runtime.callFunctionOn",
        {"objectId": sockets, "functionDeclaration": _LIST, "returnByValue": True},
    )["result"]["value"]
    chosen = [
        index
        for index, (url, state) in enumerate(listed)
        if state in (0, 1) and pattern.search(str(url))
    ]
    if chosen:
        answer = session.send(
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
                f"close_browser_websockets: the page refused close({code}): "
                f"{answer['exceptionDetails'].get('text', '')}"
            )
    with contextlib.suppress(Exception):
        session.send("Runtime.releaseObjectGroup", group)
    return [shown_url(str(listed[index][0])) for index in chosen]
