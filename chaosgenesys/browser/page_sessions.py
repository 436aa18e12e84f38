"""The browser observer's CDP sessions: the page's own, with the recorder's handlers on and the
WebSocket guard resident in each new document, and those of its out-of-process iframes and
workers (held by the browser until their domains are on); opening or reloading the page.

Everything goes over one :class:`~chaosgenesys.browser.cdp_link.Link`: the handlers run in the
observer's thread when it pumps; what must not wait for it (a new frame or worker held until its
domains are on) runs on the link's loop.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from chaosgenesys.browser import devtools, ws_guard
from chaosgenesys.browser.cdp import Session
from chaosgenesys.browser.cdp_pages import follow_frames
from chaosgenesys.browser.page_recorder import PageRecorder
from chaosgenesys.browser.redaction import first_line, redact
from chaosgenesys.failure import activity_failed

__all__ = ["Observer"]

#: What a page, or an out-of-process frame, is asked to report. Every document it loads from
#: then on starts with the WebSocket guard resident, before its own scripts:
#: block_websocket_handshakes then reaches libraries that copy the constructor when they load
#: (chaosgenesys.browser.ws_guard). Chromium runs a session's new-document scripts only once
#: its Page domain is on.
PAGE_COMMANDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Network.enable", {}),
    ("Runtime.enable", {}),
    ("Log.enable", {}),
    ("Page.enable", {}),
    ("Page.addScriptToEvaluateOnNewDocument", {"source": ws_guard.RESIDENT}),
)
#: A dedicated worker's: its console already comes through its page's Log domain; the guard is
#: resident in its global scope before its script runs (its ``WebSocket`` is its own).
WORKER_COMMANDS: tuple[tuple[str, dict[str, Any]], ...] = (
    ("Network.enable", {}),
    ("Runtime.evaluate", {"expression": ws_guard.RESIDENT}),
)


class Observer(PageRecorder):
    """A browser observer: the page's CDP sessions, and what it records and writes from them."""

    def follow(self, page: Session) -> None:
        """Watch ``page``: every handler on, its domains enabled, the guard resident; and
        note when it closes or navigates."""
        link = self.require_link()
        self.page = page
        for event, name in self.HANDLERS.items():
            link.on(page, event, getattr(self, name))
        link.on(page, "Page.frameNavigated", self.on_frame_navigated)
        link.on(page, "Page.domContentEventFired", self.on_dom_content)
        assert link.browser is not None
        link.on(link.browser, "Target.detachedFromTarget", self.on_detached)
        for method, params in PAGE_COMMANDS:
            link.send(method, params, page)

    def follow_children(self) -> None:
        """Follow the page's out-of-process iframes (and theirs) and its dedicated workers: each
        is attached by the browser and held until its domains are on (those there now before
        this returns, those to come as they come). Same-process iframes are in the page's own
        session already."""
        link = self.require_link()
        assert self.page is not None
        link.run(follow_frames(self.page, self._follow_frame, self._follow_worker))

    # -- children, on the link's loop ----------------------------------------------------------

    async def _follow_frame(self, child: Session) -> None:
        """An out-of-process frame: its console is not in the page's Log, and its documents
        must not run their scripts before the guard is resident."""
        link = self.require_link()
        self._record_child(child)
        link.post(self.note_frame, child.id, devtools.shown_url(str(child.target.get("url"))))
        for method, params in PAGE_COMMANDS:
            await child.send(method, params)

    async def _follow_worker(self, child: Session) -> None:
        """A dedicated or service worker: its Network domain lives in the browser process and
        would miss its first requests if the worker ran before it is on. A service worker's
        HTTP requests are not recorded, its WebSockets are: the page's requests it answers are
        in the page's session already (its own fetch of them would count them twice)."""
        link = self.require_link()
        kind = str(child.target.get("type") or "worker")
        self._record_child(child, websockets_only=kind == "service_worker")
        url = devtools.shown_url(str(child.target.get("url")))
        link.post(functools.partial(self.write, "worker", kind=kind, url=url))
        for method, params in WORKER_COMMANDS:  # only sent: a held service worker answers late
            child.send_now(method, params)

    def _record_child(self, child: Session, websockets_only: bool = False) -> None:
        """The recorder's handlers on a child's session (``websockets_only``: those of its
        WebSockets), its request ids kept apart from the page's (they are per target)."""
        self.child_count += 1
        prefix = f"t{self.child_count}:"
        for event, name in self.HANDLERS.items():
            if websockets_only and not event.startswith("Network.webSocket"):
                continue
            child.on(event, functools.partial(self._post_child_event, name, prefix))

    def _post_child_event(self, name: str, prefix: str, params: dict[str, Any]) -> None:
        self.require_link().post(self.on_child_event, name, prefix, params)

    # -- in the observer's thread ----------------------------------------------------------------

    def note_frame(self, session_id: str, url: str) -> None:
        self.frames_followed.add(session_id)
        self.write("frame_followed", url=url)

    def on_child_event(self, name: str, prefix: str, params: dict[str, Any]) -> None:
        data = dict(params)
        if "requestId" in data:
            data["requestId"] = prefix + str(data["requestId"])
        getattr(self, name)(data)

    def on_frame_navigated(self, params: dict[str, Any]) -> None:
        frame = params.get("frame") or {}
        if not frame.get("parentId"):  # the main frame: a new document
            self.navigations += 1
            self.loaded = False

    def on_dom_content(self, params: dict[str, Any]) -> None:
        self.loaded = True

    def on_detached(self, params: dict[str, Any]) -> None:
        if self.page is not None and params.get("sessionId") == self.page.id:
            self.page_gone = True

    def current_url(self) -> str:
        """The page's URL now, as the browser has it."""
        assert self.page is not None
        answer = self.require_link().send(
            "Target.getTargetInfo", {"targetId": str(self.page.target.get("targetId"))}
        )
        return str((answer.get("targetInfo") or {}).get("url") or "")

    def _load(self, method: str, params: dict[str, Any], timeout: float) -> None:
        """Send ``method`` (a navigation) to the page and wait until its new document's DOM is
        loaded; an error (with the browser's reason) when it did not within ``timeout``."""
        link = self.require_link()
        link.pump(0)  # what happened before the command is not its answer
        before = self.navigations
        answer = link.send(method, params, self.page)
        if answer.get("errorText"):
            raise RuntimeError(str(answer["errorText"]))
        if method == "Page.navigate" and not answer.get("loaderId"):
            return  # the same document (a fragment): nothing to load
        deadline = time.monotonic() + timeout
        while not (self.navigations > before and self.loaded):
            left = deadline - time.monotonic()
            if left <= 0:
                raise RuntimeError(f"no new document within {timeout:g} s")
            if self.page_gone or link.closed:
                raise RuntimeError("the page closed")
            link.pump(min(left, 0.05))

    def reload(self, timeout: float) -> None:
        """Reload the page, so that its scripts load with the WebSocket guard resident."""
        try:
            self._load("Page.reload", {}, timeout)
        except Exception as error:
            raise activity_failed(
                f"reload_page: {self.page_url} did not load again: {redact(first_line(error), 200)}"
            ) from None

    def open(self, url: str, pattern: str, timeout: float) -> None:
        """Open ``url`` in the (followed) page of a browser the observer launched."""
        shown = devtools.shown_url(url)
        self.page_url = shown
        try:
            self._load("Page.navigate", {"url": url}, 15.0)
        except Exception as error:
            raise activity_failed(
                f"open_url {shown!r} did not load: {redact(first_line(error), 200)}"
            ) from None
        compiled = devtools.page_pattern(pattern)
        deadline = time.monotonic() + timeout
        link = self.require_link()
        while not compiled.search(current := self.current_url()):  # a login may redirect
            if time.monotonic() >= deadline:
                raise activity_failed(
                    f"page_url_pattern {pattern!r} does not match the page open_url opened "
                    f"({devtools.shown_url(current)}) after {timeout:g} s"
                )
            link.pump(0.1)
        self.page_url = devtools.shown_url(current)
