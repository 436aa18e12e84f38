"""A DevTools connection for synchronous code: :mod:`chaosgenesys.browser.cdp` run on a thread
of its own, its events handed to the thread that asks for them.

The browser observer is synchronous (it polls the page, writes files, reads a token's body from
inside an event handler); the connection's reader must keep going meanwhile, answering commands
and holding events in order. So the connection lives on an event loop in a daemon thread, and
the observer's thread runs the handlers when it calls :meth:`Link.pump`::

    link = Link.open(ws_url)
    try:
        page = link.run(attach_page(link.browser, re.compile(r"/desktop/"), 5))
        link.on(page, "Network.requestWillBeSent", on_request)   # runs in this thread
        link.send("Network.enable", session=page)
        while watching:
            link.pump(0.25)                                      # handlers run here
    finally:
        link.close()

A handler may send commands (they are answered on the loop's thread while this one waits). An
event whose session has no handler for it is dropped on the loop's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from chaosgenesys.browser.cdp import CdpError, Connection, Session

__all__ = ["Link"]

Result = TypeVar("Result")

#: How long a command may take before it counts as unanswered.
COMMAND_TIMEOUT_S = 30.0


def _nothing() -> None:
    """What :meth:`Link.wake` queues."""


class Link:
    """One :class:`~chaosgenesys.browser.cdp.Connection` on its own event-loop thread."""

    def __init__(self, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self.loop = loop
        self.thread = thread
        self.browser: Connection | None = None
        self.events: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]]] = (
            queue.SimpleQueue()
        )

    @classmethod
    def open(cls, ws_url: str, timeout: float = 15.0) -> Link:
        """Connect to the browser's DevTools WebSocket; :class:`CdpError` when it cannot."""
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=loop.run_forever, name="cdp-link", daemon=True)
        thread.start()
        link = cls(loop, thread)
        try:
            link.browser = link.run(Connection.open(ws_url, timeout), timeout + 1)
        except BaseException:
            link.close()
            raise
        return link

    # -- from the caller's thread ------------------------------------------------------------

    def run(
        self, coroutine: Coroutine[Any, Any, Result], timeout: float = COMMAND_TIMEOUT_S
    ) -> Result:
        """Run ``coroutine`` on the connection's loop; its result (or its exception)."""
        future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        try:
            return future.result(timeout)
        except TimeoutError:
            future.cancel()
            raise CdpError(f"no answer from the browser within {timeout:g} s") from None

    def send(
        self, method: str, params: dict[str, Any] | None = None, session: Session | None = None
    ) -> dict[str, Any]:
        """Send a command (to ``session``, or to the browser); its result, or :class:`CdpError`."""
        target = session or self.browser
        if target is None:
            raise CdpError(f"{method}: not connected")
        return self.run(target.send(method, params))

    def on(self, session: Session, method: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Run ``handler(params)`` in the thread that pumps, for every ``method`` event of
        ``session``, in the order the browser sent them."""
        session.on(method, lambda params: self.events.put((handler, (params,))))

    def post(self, call: Callable[..., None], *args: Any) -> None:
        """Have ``call(*args)`` run in the thread that pumps (from the loop's thread)."""
        self.events.put((call, args))

    def pump(self, seconds: float, until: Callable[[], bool] | None = None) -> None:
        """Run the handlers of the events that arrive in the next ``seconds`` (and of those
        waiting already), or until ``until()`` says enough after one of them (:meth:`wake`
        makes it look at once); a handler that raises is printed, the others still run."""
        deadline = time.monotonic() + seconds
        while until is None or not until():
            left = deadline - time.monotonic()
            try:
                call, args = self.events.get(timeout=left) if left > 0 else self.events.get_nowait()
            except queue.Empty:
                return
            try:
                call(*args)
            except Exception:  # one handler's slip must not end the caller's watch
                import traceback

                traceback.print_exc()

    def wake(self) -> None:
        """Have :meth:`pump` look at its ``until`` now (safe from a signal handler)."""
        self.events.put((_nothing, ()))

    @property
    def closed(self) -> bool:
        """Whether the browser is gone (or the link closed)."""
        return self.browser is None or self.browser.closed.is_set()

    def close(self) -> None:
        """Close the connection and stop its thread (the browser keeps running)."""
        if self.loop.is_closed():
            return
        if self.browser is not None and self.thread.is_alive():
            with contextlib.suppress(Exception):
                self.run(self.browser.close(), 5)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        if not self.thread.is_alive():
            self.loop.close()
