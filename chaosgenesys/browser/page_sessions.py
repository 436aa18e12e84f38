"""The browser observer's CDP sessions: the page's own, with the recorder's handlers on and the
WebSocket guard resident in each new document, and a browser-level one that follows the page's
out-of-process iframes and workers (paused until their domains are on); opening or reloading
the page.
"""

from __future__ import annotations

import contextlib
import json
import time
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import devtools, ws_guard
from chaosgenesys.browser.page_recorder import PageRecorder
from chaosgenesys.browser.redaction import first_line, redact

if TYPE_CHECKING:  # pragma: no cover
    from playwright.sync_api import Browser, CDPSession, Page

__all__ = ["Observer"]


class Observer(PageRecorder):
    """A browser observer: the page's CDP sessions, and what it records and writes from them."""

    def follow(self, target: Page) -> CDPSession:
        """A CDP session on the page with every handler on and the Network, Runtime and Log
        domains enabled."""
        assert self.page is not None
        session = self.page.context.new_cdp_session(target)
        for event, name in self.HANDLERS.items():
            session.on(event, getattr(self, name))
        session.send("Network.enable")
        session.send("Runtime.enable")
        session.send("Log.enable")
        # every document the page loads from now on starts with the WebSocket guard resident,
        # before its own scripts: block_websocket_handshakes then reaches libraries that copy
        # the constructor when they load (chaosgenesys.browser.ws_guard)
        session.send("Page.enable")  # (Chromium runs a session's new-document scripts only then)
        session.send("Page.addScriptToEvaluateOnNewDocument", {"source": ws_guard.RESIDENT})
        self.sessions.append(session)
        return session

    def reload(self, timeout: float) -> None:
        """Reload the page, so that its scripts load with the WebSocket guard resident."""
        assert self.page is not None
        try:
            self.page.reload(wait_until="domcontentloaded", timeout=timeout * 1000)
        except Exception as error:
            raise ActivityFailed(
                f"reload_page: {devtools.shown_url(self.page.url)} did not load again: "
                f"{redact(first_line(error), 200)}"
            ) from None

    def open(self, url: str, pattern: str, timeout: float) -> None:
        """Open ``url`` in the (followed) page of a browser the observer launched."""
        assert self.page is not None
        shown = devtools.shown_url(url)
        self.page_url = shown
        try:
            self.page.goto(url, wait_until="domcontentloaded", timeout=15_000)
        except Exception as error:
            raise ActivityFailed(
                f"open_url {shown!r} did not load: {redact(first_line(error), 200)}"
            ) from None
        compiled = devtools.page_pattern(pattern)
        deadline = time.monotonic() + timeout
        while not compiled.search(self.page.url):  # a login may redirect it there and back
            if time.monotonic() >= deadline:
                raise ActivityFailed(
                    f"page_url_pattern {pattern!r} does not match the page open_url opened "
                    f"({devtools.shown_url(self.page.url)}) after {timeout:g} s"
                )
            self.page.wait_for_timeout(100)
        self.page_url = devtools.shown_url(self.page.url)

    def follow_children(self, browser: Browser, page_session: CDPSession) -> None:
        """Follow the page's out-of-process iframes and its workers: a browser-level session
        attached to the page's target (non-flat, so its children's messages come to us and not
        to Playwright) auto-attaches to each child, paused until our domains are on.
        Same-process iframes are in the page's own session already."""
        target = page_session.send("Target.getTargetInfo")["targetInfo"]["targetId"]
        session = browser.new_browser_cdp_session()
        self.sessions.append(session)
        session.on("Target.receivedMessageFromTarget", self.on_page_target_message)
        page_sid = session.send("Target.attachToTarget", {"targetId": target, "flatten": False})
        self.page_target = (session, str(page_sid["sessionId"]))
        self.to_page_target(
            "Target.setAutoAttach",
            {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": False},
        )

    def to_page_target(self, method: str, params: dict[str, Any], worker: str = "") -> int:
        """Send a command to the page's target, or to one of its children through it; the
        command's id (its answer comes back in a message from the target)."""
        if self.page_target is None:
            return 0
        session, page_sid = self.page_target
        self.command_id += 1
        sent = self.command_id
        message = json.dumps({"id": sent, "method": method, "params": params})
        if worker:
            self.command_id += 1
            message = json.dumps(
                {
                    "id": self.command_id,
                    "method": "Target.sendMessageToTarget",
                    "params": {"sessionId": worker, "message": message},
                }
            )
        session.send("Target.sendMessageToTarget", {"sessionId": page_sid, "message": message})
        return sent

    def on_page_target_message(self, params: dict[str, Any]) -> None:
        if self.page_target is None or params.get("sessionId") != self.page_target[1]:
            return
        try:
            message = json.loads(str(params.get("message")))
        except ValueError:
            return
        method, inner = message.get("method"), message.get("params") or {}
        if method == "Target.attachedToTarget":
            info = inner.get("targetInfo") or {}
            child, kind = str(inner.get("sessionId")), str(info.get("type"))
            self.workers[child] = f"t{len(self.workers) + 1}:"
            url = devtools.shown_url(str(info.get("url")))
            if kind == "iframe":  # out of process: its console is not in the page's Log
                self.frames_followed.add(child)
                self.write("frame_followed", url=url)
                commands = [
                    ("Network.enable", {}),
                    ("Runtime.enable", {}),
                    ("Log.enable", {}),
                    ("Page.enable", {}),
                    ("Page.addScriptToEvaluateOnNewDocument", {"source": ws_guard.RESIDENT}),
                ]
            else:  # a worker's console already comes through the page's Log domain
                self.write("worker", kind=kind, url=url)
                commands = [("Network.enable", {})]
            # The child stays paused until every command has answered: a worker's Network
            # domain lives in the browser process and would miss its first requests otherwise,
            # and a frame's document must not run its scripts before the guard is resident.
            waiting: set[int] = set()
            self.resume_when_answered[child] = waiting
            for method, params in commands:
                with contextlib.suppress(Exception):
                    waiting.add(self.to_page_target(method, params, child))
            self.resume_if_answered(child)  # (Playwright may have resumed a worker already)
        elif method == "Target.receivedMessageFromTarget":
            prefix = self.workers.get(str(inner.get("sessionId")))
            try:
                event = json.loads(str(inner.get("message")))
            except ValueError:
                return
            unanswered = self.resume_when_answered.get(str(inner.get("sessionId")))
            if unanswered is not None and event.get("id") in unanswered:
                unanswered.discard(event["id"])
                self.resume_if_answered(str(inner.get("sessionId")))
                return
            handler = self.HANDLERS.get(str(event.get("method")))
            if prefix is None or handler is None:
                return
            data = dict(event.get("params") or {})
            if "requestId" in data:  # request ids are per target: keep the child's apart
                data["requestId"] = prefix + str(data["requestId"])
            getattr(self, handler)(data)

    def resume_if_answered(self, child: str) -> None:
        """Let a paused child run once the domains it waits for are on."""
        if not self.resume_when_answered.get(child, {0}):
            del self.resume_when_answered[child]
            with contextlib.suppress(Exception):
                self.to_page_target("Runtime.runIfWaitingForDebugger", {}, child)
