"""The detached process that holds one browser fault's DevTools session for its duration.

``python -m chaosgenesys.browser.fault_holder`` reads its configuration (JSON) on stdin, attaches
to the browser over CDP (Playwright, async API), finds the page, puts the fault in force, writes
``{"ok": true, ...}`` to its ready file and holds the session until its deadline, SIGTERM or
SIGINT, or the browser going away. It then undoes what it did (``Fetch.disable``, network
conditions back to none, the WebSocket guard removed) and detaches. A DevTools setting lives
only as long as its session: if this process is SIGKILLed, Chromium drops the Fetch interception
and the network emulation with the session, and the page's WebSocket guard lapses on its own
within :data:`chaosgenesys.browser.ws_guard.LEASE_MS` (it refuses only while this process keeps
renewing its rule).

Started and recorded by :mod:`chaosgenesys.browser.faults` (kind ``browser-fault``); never run by
hand. Faults (``config["fault"]``):

- ``delay``: matching XHR/fetch requests are held ``delay_ms`` then continued (``Fetch``);
- ``fail``: matching XHR/fetch requests are answered ``status`` with a Genesys Cloud error body;
- ``block``: new WebSockets to matching URLs have their handshake refused by the server
  (see :mod:`chaosgenesys.browser.ws_guard`); sockets already open are untouched, or, with
  ``params["close_code"]``, closed once the refusals are in force;
- ``emulate``: ``Network.emulateNetworkConditions``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import os
import re
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaosgenesys.browser.ws_guard import (
    GUARD,
    IS_RESIDENT,
    LEASE_MS,
    REFUSED_PATH,
    UNGUARD,
    js_regex,
)

#: How long the holder looks for the page before it gives up (s).
PAGE_TIMEOUT = 5.0
#: How often the holder renews the guard, looks for new frames and checks its deadline (s).
TICK = 0.25

#: What the ``Fetch`` domain pauses: the REST calls a desktop makes, nothing else.
FETCH_PATTERNS = [
    {"urlPattern": "*", "resourceType": "XHR"},
    {"urlPattern": "*", "resourceType": "Fetch"},
]

def _error_body(status: int) -> bytes:
    from chaosgenesys.proxy.rules import error_body

    return json.dumps(error_body(status)).encode()


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else "*"


class Holder:
    """One fault on one page, held until :meth:`stop`."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self.kind = str(config["fault"])
        self.params: dict[str, Any] = dict(config.get("params") or {})
        self.pattern = re.compile(str(config.get("url_pattern") or ".*"))
        self.deadline = config.get("deadline")
        self.stopping = asyncio.Event()
        self.counts = {"matched": 0, "passed": 0}
        #: Where what the fault hit so far is written (``browser_faults`` reads it).
        self.counts_file = str(config.get("counts_file") or "")
        self._written: dict[str, int] | None = None
        self.ready: dict[str, Any] = {}  # what the ready file adds about the fault in force
        self.sessions: list[Any] = []
        self.tried: set[Any] = set()
        self.page: Any = None
        self.tasks: set[asyncio.Task[None]] = set()

    # -- attaching -------------------------------------------------------------------------

    async def find_page(self, browser: Any) -> Any:
        compiled = re.compile(str(self.config["page_url_pattern"]))
        deadline = time.monotonic() + PAGE_TIMEOUT
        while True:
            if self.stopping.is_set():
                raise RuntimeError("stopped before the page was found")
            pages = [page for context in browser.contexts for page in context.pages]
            for page in pages:
                if compiled.search(page.url):
                    return page
            if time.monotonic() >= deadline:
                from chaosgenesys.browser.devtools import shown_url

                seen = ", ".join(sorted({shown_url(p.url) for p in pages})) or "none"
                raise RuntimeError(
                    f"page_url_pattern {self.config['page_url_pattern']!r} matches no page of "
                    f"the browser after {PAGE_TIMEOUT:g} s (pages: {seen})"
                )
            await asyncio.sleep(0.1)

    # -- the faults ------------------------------------------------------------------------

    async def on_paused(self, session: Any, event: dict[str, Any]) -> None:
        request = event.get("request") or {}
        url = str(request.get("url") or "")
        kind = event.get("resourceType")
        request_id = event["requestId"]
        hit = (
            kind in ("XHR", "Fetch")
            and request.get("method") != "OPTIONS"
            and self.pattern.search(url) is not None
        )
        try:
            if not hit:
                self.counts["passed"] += 1
                await session.send("Fetch.continueRequest", {"requestId": request_id})
                return
            self.counts["matched"] += 1
            if self.kind == "delay":
                await asyncio.sleep(float(self.params["delay_ms"]) / 1000)
                await session.send("Fetch.continueRequest", {"requestId": request_id})
                return
            status = int(self.params["status"])
            headers = request.get("headers") or {}
            origin = next((v for k, v in headers.items() if k.lower() == "origin"), "")
            answer = [
                {"name": "Content-Type", "value": "application/json"},
                {"name": "Access-Control-Allow-Origin", "value": origin or _origin(self.page.url)},
                {"name": "Access-Control-Allow-Credentials", "value": "true"},
                {"name": "Access-Control-Expose-Headers",
                 "value": "ININ-Correlation-Id, Retry-After"},
                {"name": "ININ-Correlation-Id", "value": str(uuid.uuid4())},
            ]
            if status in (429, 503, 504):
                answer.append({"name": "Retry-After", "value": "1"})
            await session.send(
                "Fetch.fulfillRequest",
                {
                    "requestId": request_id,
                    "responseCode": status,
                    "responseHeaders": answer,
                    "body": base64.b64encode(_error_body(status)).decode("ascii"),
                },
            )
        except Exception:  # the request or the page went away meanwhile: nothing to answer
            return

    def _spawn(self, session: Any, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self.on_paused(session, event))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def guard(self, strict: bool = False) -> int:
        """Install or renew the guard in every frame; ``strict``: the main frame must take it
        (the pattern must be a JavaScript regular expression too)."""
        source, flags = js_regex(self.pattern.pattern)
        refused = 0
        for frame in self.page.frames:
            try:
                refused += int(
                    await frame.evaluate(
                        f"([s, f, l, p]) => ({GUARD})(s, f, l, p, false)",
                        [source, flags, LEASE_MS, REFUSED_PATH],
                    )
                )
            except Exception as error:  # a frame navigating away; the page itself must take it
                if strict and frame == self.page.main_frame:
                    text = str(error).splitlines()[0]
                    if "regular expression" in text:
                        raise RuntimeError(
                            f"url_pattern {self.pattern.pattern!r} is not a JavaScript regular "
                            f"expression too (the guard runs in the page): {text}"
                        ) from None
                    raise
        return refused

    async def unguard(self) -> int:
        source, flags = js_regex(self.pattern.pattern)
        refused = 0
        for frame in self.page.frames:
            with contextlib.suppress(Exception):
                refused += int(
                    await frame.evaluate(f"([s, f]) => ({UNGUARD})(s, f)", [source, flags])
                )
        return refused

    async def apply(self) -> None:
        """Put the fault in force on the page, then on its out-of-process frames."""
        if self.kind not in ("delay", "fail", "block", "emulate"):
            raise RuntimeError(f"unknown browser fault {self.kind!r}")
        await self.attach(self.page)
        await self.attach_frames()
        if self.kind == "block":
            await self.guard(strict=True)
            # resident: the observer put the guard in before the page's scripts loaded
            self.ready["reaches_libraries"] = bool(await self.page.evaluate(IS_RESIDENT))
            if self.params.get("close_code"):
                # closed now the refusals are in force: every reconnect try meets them
                from chaosgenesys.browser.page_sockets import close_in_page_async

                self.ready["closed"] = await close_in_page_async(
                    self.page, self.pattern, int(self.params["close_code"]),
                    str(self.params.get("close_reason") or ""),
                )

    async def attach_frames(self) -> None:
        """Attach to the page's out-of-process frames not attached yet (a cross-site iframe has
        its own DevTools target: the page's session does not see its requests)."""
        for frame in self.page.frames:
            if frame == self.page.main_frame or frame in self.tried:
                continue
            self.tried.add(frame)
            with contextlib.suppress(Exception):  # an in-process frame: the page's session has it
                await self.attach(frame)

    async def attach(self, target: Any) -> None:
        session = await self.page.context.new_cdp_session(target)
        self.sessions.append(session)
        if self.kind in ("delay", "fail"):
            session.on("Fetch.requestPaused", lambda event: self._spawn(session, event))
            # only XHR and fetch pause: documents, scripts, images and preflights never wait
            await session.send("Fetch.enable", {"patterns": FETCH_PATTERNS})
        elif self.kind == "block":
            source, flags = js_regex(self.pattern.pattern)
            arguments = json.dumps([source, flags, LEASE_MS, REFUSED_PATH, False])
            # documents loaded during the window start guarded (the script goes with the
            # session; Chromium runs a session's new-document scripts only with Page enabled)
            await session.send("Page.enable")
            await session.send(
                "Page.addScriptToEvaluateOnNewDocument",
                {"source": f"({GUARD})(...{arguments})"},
            )
        else:
            await session.send("Network.enable")
            await session.send("Network.emulateNetworkConditions", self.params["conditions"])

    async def undo(self) -> None:
        if self.kind == "block":
            with contextlib.suppress(Exception):
                self.counts["matched"] = await self.unguard()
        for session in self.sessions:
            with contextlib.suppress(Exception):
                if self.kind in ("delay", "fail"):
                    await session.send("Fetch.disable")
                elif self.kind == "emulate":
                    await session.send(
                        "Network.emulateNetworkConditions",
                        {"offline": False, "latency": 0, "downloadThroughput": -1,
                         "uploadThroughput": -1},
                    )
            with contextlib.suppress(Exception):
                await session.detach()

    # -- holding ---------------------------------------------------------------------------

    def write_counts(self) -> None:
        """Write what the fault hit so far (``matched``, ``passed``) when it changed."""
        if not self.counts_file or self.counts == self._written:
            return
        with contextlib.suppress(OSError):
            _write(self.counts_file, self.counts)
            self._written = dict(self.counts)

    async def hold(self, browser: Any) -> str:
        while not self.stopping.is_set():
            self.write_counts()
            if self.deadline is not None and time.time() >= float(self.deadline):
                return "deadline"
            if not browser.is_connected():
                return "browser gone"
            with contextlib.suppress(Exception):
                await self.attach_frames()
            if self.kind == "block":
                with contextlib.suppress(Exception):
                    self.counts["matched"] = await self.guard()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), TICK)
        return "stopped"


def _write(path: str, data: Any) -> None:
    temporary = Path(path + ".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


async def run(config: dict[str, Any]) -> int:
    from playwright.async_api import async_playwright

    from chaosgenesys.browser.devtools import shown_url

    holder = Holder(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, holder.stopping.set)
    ready = str(config["ready_file"])
    reason = "stopped"
    async with async_playwright() as playwright:
        try:
            browser = await playwright.chromium.connect_over_cdp(
                str(config["ws_url"]), timeout=15_000
            )
        except Exception as error:
            _write(ready, {"ok": False, "error": f"could not attach over DevTools: "
                                                 f"{str(error).splitlines()[0]}"})
            return 1
        try:
            try:
                holder.page = await holder.find_page(browser)
                await holder.apply()
            except Exception as error:
                _write(ready, {"ok": False, "error": str(error).splitlines()[0]})
                return 1
            if config.get("duration"):
                # the window runs from now, when the fault is in force, not from when it was
                # recorded: attaching takes a second or more on a busy machine
                holder.deadline = time.time() + float(config["duration"])
            holder.write_counts()
            _write(ready, {"ok": True, "pid": os.getpid(), "page": shown_url(holder.page.url),
                           "deadline": holder.deadline, **holder.ready})
            reason = await holder.hold(browser)
            await holder.undo()
            holder.write_counts()
            for task in list(holder.tasks):
                task.cancel()
        finally:
            with contextlib.suppress(Exception):
                await browser.close()
    print(json.dumps({"ended": reason, **holder.counts}), flush=True)
    # the record itself is the registry's: its guardian removes it at the deadline (calling
    # the reverter, which finds this process gone); forgetting it from here could wait on the
    # registry lock that the guardian holds while it waits for this process to end
    return 0


def main() -> int:
    config = json.loads(sys.stdin.read())
    return asyncio.run(run(config))


if __name__ == "__main__":
    sys.exit(main())
