"""The detached process that holds one browser fault's DevTools session for its duration.

``python -m chaosgenesys.browser.fault_holder`` reads its configuration (JSON) on stdin, attaches
to the browser over CDP (:mod:`chaosgenesys.browser.cdp`: one WebSocket, no Playwright driver to
start first), finds the page, puts the fault in force there and in the page's out-of-process
frames, writes ``{"ok": true, ...}`` to its ready file and holds the sessions until its
deadline, SIGTERM or SIGINT, or the browser going away. It then undoes what it did
(``Fetch.disable``, network conditions back to none, the WebSocket guard removed) and
disconnects. A DevTools setting lives only as long as its session: if this process is
SIGKILLed, Chromium drops the Fetch interception and the network emulation with the session,
and the page's WebSocket guard lapses on its own within
:data:`chaosgenesys.browser.ws_guard.LEASE_MS` (it refuses only while this process keeps
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

from chaosgenesys.browser.cdp import CdpError, Connection, Session, evaluated
from chaosgenesys.browser.cdp_pages import attach_page, follow_frames, follow_shared_workers
from chaosgenesys.browser.redaction import first_line, shown_url
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
#: How often the holder renews the guard, writes its counts and checks its deadline (s).
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
    """One fault on one page (and its out-of-process frames), held until ``stopping`` is set,
    its deadline passes or the browser goes away."""

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
        self.page: Session | None = None
        self.page_url = ""
        #: The page's session and its out-of-process frames' sessions the fault is in force on.
        self.sessions: list[Session] = []
        #: Per session: frame id -> the id of the frame's main-world JavaScript context.
        self.contexts: dict[str, dict[str, int]] = {}
        #: The dedicated workers' sessions (``block``: their ``WebSocket`` is their own).
        self.workers: list[Session] = []
        self.tasks: set[asyncio.Task[None]] = set()

    # -- the faults ------------------------------------------------------------------------

    async def on_paused(self, session: Session, event: dict[str, Any]) -> None:
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
                {"name": "Access-Control-Allow-Origin", "value": origin or _origin(self.page_url)},
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

    def _spawn(self, session: Session, event: dict[str, Any]) -> None:
        task = asyncio.ensure_future(self.on_paused(session, event))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    def guard_expression(self) -> str:
        """The WebSocket guard with this fault's rule, as an expression to run in a frame."""
        source, flags = js_regex(self.pattern.pattern)
        arguments = json.dumps([source, flags, LEASE_MS, REFUSED_PATH, False])
        return f"({GUARD})(...{arguments})"

    async def guard(self, strict: bool = False) -> int:
        """Install or renew the guard in every frame; ``strict``: the main frame must take it
        (the pattern must be a JavaScript regular expression too)."""
        return await self.in_every_frame(self.guard_expression(), strict)

    async def unguard(self) -> int:
        source, flags = js_regex(self.pattern.pattern)
        return await self.in_every_frame(f"({UNGUARD})(...{json.dumps([source, flags])})")

    async def in_every_frame(self, expression: str, strict: bool = False) -> int:
        """The sum of what ``expression`` answers in the main world of every frame and in every
        dedicated worker (one navigating away or ended meanwhile is skipped); ``strict``: the
        page's main frame must answer."""
        assert self.page is not None
        main_frame = str(self.page.target.get("targetId"))  # Chromium: a page's main frame id
        total = 0
        main_answered = False
        for session in list(self.sessions):
            for frame, context in list(self.contexts.get(session.id, {}).items()):
                main = session is self.page and frame == main_frame
                try:
                    total += await _evaluate(session, expression, context)
                    main_answered = main_answered or main
                except Exception:
                    if strict and main:
                        raise
        if strict and not main_answered:  # no context seen for it (yet): its default one
            total += await _evaluate(self.page, expression)
        for worker in list(self.workers):
            try:
                total += await _evaluate(worker, expression)
            except CdpError:  # ended: its session with it
                self.workers.remove(worker)
            except Exception:
                pass
        return total

    async def apply(self) -> None:
        """Put the fault in force on the page, then on its out-of-process frames."""
        if self.kind not in ("delay", "fail", "block", "emulate"):
            raise RuntimeError(f"unknown browser fault {self.kind!r}")
        assert self.page is not None
        await self.attach(self.page)
        # the frames and workers there now are attached before this returns; those to come, as
        # they come (held until the fault is on them)
        await follow_frames(self.page, self.attach, self.attach_worker)
        if self.kind in ("block", "emulate"):
            # a shared worker's globals and requests are its own too; its Fetch domain does
            # not pause its requests (tried on Chromium 156), so delay and fail do not reach it
            await follow_shared_workers(
                self.page.connection, _origin(self.page_url), self.attach_worker
            )
        if self.kind == "block":
            try:
                await self.guard(strict=True)
            except Exception as error:
                text = first_line(error)
                if "regular expression" in text:
                    raise RuntimeError(
                        f"url_pattern {self.pattern.pattern!r} is not a JavaScript regular "
                        f"expression too (the guard runs in the page): {text}"
                    ) from None
                raise
            # resident: the observer put the guard in before the page's scripts loaded
            self.ready["reaches_libraries"] = bool(await _evaluate(self.page, IS_RESIDENT))
            self.ready["workers"] = len(self.workers)
            if self.params.get("close_code"):
                # closed now the refusals are in force: every reconnect try meets them
                from chaosgenesys.browser.page_sockets import close_in_sessions

                self.ready["closed"] = await close_in_sessions(
                    self.sessions + self.workers, self.pattern, int(self.params["close_code"]),
                    str(self.params.get("close_reason") or ""),
                )

    async def attach(self, session: Session) -> None:
        """Put the fault in force on one target's session."""
        if self.kind == "block":
            self.sessions.append(session)
            await self.follow_contexts(session)
            # documents loaded during the window start guarded (the script goes with the
            # session; Chromium runs a session's new-document scripts only with Page enabled)
            await session.send("Page.enable")
            await session.send(
                "Page.addScriptToEvaluateOnNewDocument", {"source": self.guard_expression()}
            )
            return
        for answer in self.fault_requests(session):
            await answer

    def fault_requests(self, session: Session) -> list[asyncio.Future[dict[str, Any]]]:
        """``delay``, ``fail`` or ``emulate`` on a target's requests: its commands sent at once
        (:meth:`Session.send_now`), their answers to be awaited by whoever can."""
        self.sessions.append(session)
        if self.kind in ("delay", "fail"):
            session.on("Fetch.requestPaused", lambda event: self._spawn(session, event))
            # only XHR and fetch pause: documents, scripts, images and preflights never wait
            return [session.send_now("Fetch.enable", {"patterns": FETCH_PATTERNS})]
        return [
            session.send_now("Network.enable"),
            session.send_now("Network.emulateNetworkConditions", self.params["conditions"]),
        ]

    async def attach_worker(self, session: Session) -> None:
        """Put the fault in force in a dedicated, service or shared worker (one held at its
        start has it before its own script runs). Only sent: a held worker answers once it runs.

        ``block``: the guard in the worker's global scope (its ``WebSocket`` is its own),
        renewed with the frames' (the renewals read what it answers). ``delay``, ``fail`` and
        ``emulate`` in a service or shared worker: its requests are its own too (those a service
        worker makes for the page it answers among them), which the page's ``Fetch`` and
        emulation do not reach; a dedicated worker's requests are the page's already."""
        if self.kind == "block":
            session.send_now(
                "Runtime.evaluate", {"expression": self.guard_expression(), "returnByValue": True}
            )
            self.workers.append(session)
        elif session.target.get("type") in ("service_worker", "shared_worker"):
            self.fault_requests(session)

    async def follow_contexts(self, session: Session) -> None:
        """Keep, for each frame of ``session``, the id of its main-world JavaScript context
        (where the page's ``WebSocket`` lives): the guard is renewed there."""
        frames = self.contexts.setdefault(session.id, {})

        def created(event: dict[str, Any]) -> None:
            context = event.get("context") or {}
            data = context.get("auxData") or {}
            if data.get("isDefault") and data.get("frameId"):
                frames[str(data["frameId"])] = int(context["id"])

        def destroyed(event: dict[str, Any]) -> None:
            gone = event.get("executionContextId")
            for frame, context in list(frames.items()):
                if context == gone:
                    del frames[frame]

        session.on("Runtime.executionContextCreated", created)
        session.on("Runtime.executionContextDestroyed", destroyed)
        session.on("Runtime.executionContextsCleared", lambda _event: frames.clear())
        await session.send("Runtime.enable")  # (the contexts there already come first)

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

    # -- holding ---------------------------------------------------------------------------

    def write_counts(self) -> None:
        """Write what the fault hit so far (``matched``, ``passed``) when it changed."""
        if not self.counts_file or self.counts == self._written:
            return
        with contextlib.suppress(OSError):
            _write(self.counts_file, self.counts)
            self._written = dict(self.counts)

    async def hold(self, browser: Connection) -> str:
        while not self.stopping.is_set():
            self.write_counts()
            if self.deadline is not None and time.time() >= float(self.deadline):
                return "deadline"
            if browser.closed.is_set():
                return "browser gone"
            if self.kind == "block":
                with contextlib.suppress(Exception):
                    self.counts["matched"] = await self.guard()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), TICK)
        return "stopped"


async def _evaluate(session: Session, expression: str, context: int | None = None) -> int:
    """What ``expression`` answers (a number, or a truth as 0/1) in a frame's main world
    (``context``; default: the target's main frame); its exception raised."""
    params: dict[str, Any] = {"expression": expression, "returnByValue": True}
    if context is not None:
        params["contextId"] = context
    return int(evaluated(await session.send("Runtime.evaluate", params)) or 0)


def _write(path: str, data: Any) -> None:
    temporary = Path(path + ".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


async def run(config: dict[str, Any]) -> int:
    holder = Holder(config)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, holder.stopping.set)
    ready = str(config["ready_file"])
    try:
        browser = await Connection.open(str(config["ws_url"]), timeout=15)
    except Exception as error:
        _write(ready, {"ok": False, "error": f"could not attach over DevTools: "
                                             f"{first_line(error)}"})
        return 1
    async with browser:
        try:
            holder.page = await attach_page(
                browser, re.compile(str(config["page_url_pattern"])), PAGE_TIMEOUT,
                stopping=holder.stopping,
            )
            holder.page_url = str(holder.page.target.get("url") or "")
            await holder.apply()
        except Exception as error:
            _write(ready, {"ok": False, "error": first_line(error)})
            return 1
        if config.get("duration"):
            # the window runs from now, when the fault is in force, not from when it was
            # recorded: starting takes a while on a busy machine
            holder.deadline = time.time() + float(config["duration"])
        holder.write_counts()
        _write(ready, {"ok": True, "pid": os.getpid(), "page": shown_url(holder.page_url),
                       "deadline": holder.deadline, **holder.ready})
        reason = await holder.hold(browser)
        await holder.undo()
        holder.write_counts()
        for task in list(holder.tasks):
            task.cancel()
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
