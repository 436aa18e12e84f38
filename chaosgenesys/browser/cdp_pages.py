"""The desktop's page and its out-of-process frames, reached over :mod:`chaosgenesys.browser.cdp`
(the fault holders' and ``close_browser_websockets``' way in, and the observer's through
:mod:`chaosgenesys.browser.devtools`)::

    async with await Connection.open(ws_url) as browser:
        page = await attach_page(browser, re.compile(r"/desktop/"), timeout=5)
        await follow_frames(page, put_the_fault_on)  # the frames there, then those to come
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import Awaitable, Callable

from chaosgenesys.browser.cdp import CdpError, Connection, Session

__all__ = ["WORKER_TYPES", "attach_page", "follow_frames", "follow_shared_workers", "origin_of"]

#: The targets a page's session is told of that run scripts of the page's origin with globals
#: of their own: its dedicated workers, and the service workers whose scope holds it (Chromium
#: auto-attaches those to the page's session too; shared workers only to the browser's).
WORKER_TYPES = ("worker", "service_worker")


async def attach_page(
    browser: Connection,
    pattern: re.Pattern[str],
    timeout: float,
    argument: str = "page_url_pattern",
    stopping: asyncio.Event | None = None,
) -> Session:
    """A session on the first page whose URL ``pattern`` searches, looked for up to ``timeout``
    seconds (or until ``stopping`` is set); its ``target`` is the page's ``TargetInfo``. A
    :class:`CdpError` naming ``argument`` and the pages there are when none matches."""
    deadline = time.monotonic() + timeout
    while True:
        if stopping is not None and stopping.is_set():
            raise CdpError("stopped before the page was found")
        targets = (await browser.send("Target.getTargets"))["targetInfos"]
        pages = [target for target in targets if target.get("type") == "page"]
        for page in pages:
            if pattern.search(str(page.get("url"))):
                return await browser.attach(page)
        if time.monotonic() >= deadline:
            from chaosgenesys.browser.devtools import no_page

            urls = [str(p.get("url")) for p in pages]
            raise CdpError(no_page(argument, pattern.pattern, timeout, urls))
        await asyncio.sleep(0.1)


async def follow_frames(
    session: Session,
    on_frame: Callable[[Session], Awaitable[None]],
    on_worker: Callable[[Session], Awaitable[None]] | None = None,
) -> None:
    """``await on_frame(frame)`` for every out-of-process frame of ``session``'s target (a
    cross-site iframe has its own DevTools target: its page's session does not see its requests
    nor its heap), and of their frames in turn; ``await on_worker(worker)`` for every dedicated
    worker of those and every service worker the browser ties to them (a worker's globals, its
    ``WebSocket`` among them, are its own; ``worker.target["type"]`` says which); returns
    once those there already are done, and goes on with those that appear later, for as long as
    the connection lasts. A frame or worker gone meanwhile is skipped.

    A frame or worker that appears later is held before it runs anything until ``on_frame`` or
    ``on_worker`` is done (``waitForDebuggerOnStart``, then ``Runtime.runIfWaitingForDebugger``):
    Chromium attaches a frame before its document commits, and a ``Fetch.enable`` sent to it
    while it runs on does not reach the requests of the document it then loads (tried on
    Chromium 156). A held service worker answers no command until it is let go, but carries out
    those sent before then ahead of its own script (tried on Chromium 156: ``Network.enable``
    was answered only once it was let go, and a global set by a ``Runtime.evaluate`` sent before
    was there in its first statement), so ``on_worker`` sends with :meth:`Session.send_now` and
    returns without waiting for the answers. Other targets the browser holds for us (workers,
    without ``on_worker``) are
    let go at once. A target held this way is let go by Chromium too if this connection closes
    first; one that other DevTools clients hold as well runs once they have all let it go."""
    pending: set[asyncio.Task[None]] = set()

    async def frame(child: Session) -> None:
        try:
            await on_frame(child)
            await follow_frames(child, on_frame, on_worker)
        except CdpError:  # navigated or closed meanwhile
            pass
        finally:
            await _let_go(child)

    async def worker(child: Session) -> None:
        try:
            if on_worker is not None:
                await on_worker(child)
        except CdpError:  # ended meanwhile
            pass
        finally:
            await _let_go(child)

    def attached(event: dict[str, object]) -> None:
        info = event.get("targetInfo")
        if not isinstance(info, dict):
            return
        child = session.connection.adopt(str(event.get("sessionId")), dict(info))
        if info.get("type") == "iframe":
            task = asyncio.ensure_future(frame(child))
        elif info.get("type") in WORKER_TYPES:
            task = asyncio.ensure_future(worker(child))
        else:  # (other kinds of target: not reached)
            task = asyncio.ensure_future(_let_go(child))
        pending.add(task)
        task.add_done_callback(pending.discard)

    session.on("Target.attachedToTarget", attached)
    # the frames there already are announced before this answers; the others as they come
    await session.send(
        "Target.setAutoAttach",
        {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True},
    )
    while pending:
        await asyncio.wait(list(pending))


async def follow_shared_workers(
    browser: Connection, origin: str, on_worker: Callable[[Session], Awaitable[None]]
) -> None:
    """``await on_worker(worker)`` for every shared worker of ``origin`` (``scheme://host:port``)
    in the browser: a shared worker is a browser-level target, no page's session is told of it
    (tried on Chromium 156). Returns once those there already are done and goes on with those
    that appear later, for as long as the connection lasts; each new one is held until
    ``on_worker`` is done (which sends with :meth:`Session.send_now`, as for a held service
    worker). Shared workers of other origins are let go and left."""
    pending: set[asyncio.Task[None]] = set()

    async def worker(child: Session) -> None:
        ours = origin_of(str(child.target.get("url") or "")) == origin
        try:
            if ours:
                await on_worker(child)
        except CdpError:  # ended meanwhile
            pass
        finally:
            await _let_go(child)
            if not ours:
                with contextlib.suppress(CdpError):
                    await browser.send("Target.detachFromTarget", {"sessionId": child.id})

    def attached(event: dict[str, object]) -> None:
        info = event.get("targetInfo")
        if not isinstance(info, dict) or info.get("type") != "shared_worker":
            return
        task = asyncio.ensure_future(
            worker(browser.adopt(str(event.get("sessionId")), dict(info)))
        )
        pending.add(task)
        task.add_done_callback(pending.discard)

    browser.on("Target.attachedToTarget", attached)
    await browser.send(
        "Target.setAutoAttach",
        {"autoAttach": True, "waitForDebuggerOnStart": True, "flatten": True,
         "filter": [{"type": "shared_worker"}]},
    )
    while pending:
        await asyncio.wait(list(pending))


def origin_of(url: str) -> str:
    """``scheme://host:port`` of ``url``."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


async def _let_go(target: Session) -> None:
    """Let a target the browser held for us run (nothing when it was not held)."""
    with contextlib.suppress(CdpError):
        await target.send("Runtime.runIfWaitingForDebugger")
