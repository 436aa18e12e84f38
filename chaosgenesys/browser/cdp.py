"""A small DevTools Protocol client: one WebSocket to the browser, flattened sessions on it.

The fault holder speaks CDP through this rather than through Playwright: Playwright starts a
Node driver first, which takes about 0.65 s on an idle machine and several seconds on a loaded
one, and a fault lined up against a token renewal must be in force sooner than that. Over one
WebSocket (asyncio streams and ``wsproto``'s sans-IO protocol, which imports in a fraction of the
time ``aiohttp``'s client takes) the holder attaches and puts its fault in force in milliseconds::

    async with await Connection.open(ws_url) as browser:
        targets = (await browser.send("Target.getTargets"))["targetInfos"]
        page = await browser.attach(targets[0])
        page.on("Fetch.requestPaused", on_paused)
        await page.send("Fetch.enable", {"patterns": [{"urlPattern": "*"}]})

A command answers its ``result``, or raises :class:`CdpError` with the browser's message. An
event goes to the handlers registered for its method on the session it came from; a handler
runs in the reader task, so it must not wait (start a task for anything that does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import traceback
from collections.abc import Callable
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CdpError", "Connection", "Session", "evaluated"]

Handler = Callable[[dict[str, Any]], None]

#: How much is read from the socket at a time.
_CHUNK = 1 << 16


class CdpError(Exception):
    """The browser answered a command with an error, or the connection is gone."""


def evaluated(answer: dict[str, Any]) -> Any:
    """The value a ``Runtime.evaluate`` sent with ``returnByValue`` answered; the exception the
    script threw, raised as a ``RuntimeError`` with its description."""
    details = answer.get("exceptionDetails")
    if details:
        exception = details.get("exception") or {}
        raise RuntimeError(str(exception.get("description") or details.get("text") or details))
    return (answer.get("result") or {}).get("value")


def _read_quietly(answer: asyncio.Future[Any]) -> None:
    """Mark a failure as read: nobody may wait for it (an ended worker's answer)."""
    if not answer.cancelled():
        answer.exception()


class Session:
    """One target's flattened session (or the browser's own, with ``id`` empty)."""

    def __init__(self, connection: Connection, session_id: str, target: dict[str, Any]) -> None:
        self.connection = connection
        self.id = session_id
        #: The target's ``TargetInfo`` (``targetId``, ``type``, ``url``) when attached.
        self.target = target
        self.handlers: dict[str, list[Handler]] = {}

    def on(self, method: str, handler: Handler) -> None:
        """Call ``handler(params)`` for every ``method`` event of this session."""
        self.handlers.setdefault(method, []).append(handler)

    async def send(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        """Send a command on this session; its result."""
        return await self.connection.command(method, params or {}, self.id)

    def send_now(
        self, method: str, params: dict[str, Any] | None = None
    ) -> asyncio.Future[dict[str, Any]]:
        """Write a command on this session at once, ahead of anything sent after this call
        returns; the future of its result (awaiting it raises its failure; one nobody awaits
        is dropped quietly).

        A service worker the browser holds answers nothing until it is let go, yet carries out
        what it was sent before then ahead of its own script: its commands go this way, then
        the one that lets it go, then their answers are awaited."""
        answer = self.connection.submit(method, params or {}, self.id)
        answer.add_done_callback(_read_quietly)
        return answer

    def __repr__(self) -> str:
        return f"Session({self.id!r}, {self.target.get('type', 'browser')!r})"


class Connection(Session):
    """The browser's WebSocket: its own session, the ones attached through it, and the reader
    that hands answers and events out."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        protocol: Any,
        early: list[Any],
    ) -> None:
        super().__init__(self, "", {})
        self._stream = reader
        self._writer = writer
        self._protocol = protocol
        self._text: list[str] = []
        self._next_id = 0
        self._waiting: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self.sessions: dict[str, Session] = {"": self}
        self.closed = asyncio.Event()
        self._reader = asyncio.ensure_future(self._read(early))

    @classmethod
    async def open(cls, ws_url: str, timeout: float = 15.0) -> Connection:
        """Connect to the browser's DevTools WebSocket (``ws://…/devtools/browser/<id>``)."""
        return await asyncio.wait_for(cls._open(ws_url), timeout)

    @classmethod
    async def _open(cls, ws_url: str) -> Connection:
        from wsproto import ConnectionType, WSConnection
        from wsproto.events import AcceptConnection, RejectConnection, Request

        parts = urlsplit(ws_url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise CdpError(f"not a DevTools WebSocket URL: {ws_url!r}")
        context: Any = None
        if parts.scheme == "wss":
            import ssl

            context = ssl.create_default_context()
        port = parts.port or (443 if context else 80)
        reader, writer = await asyncio.open_connection(parts.hostname, port, ssl=context)
        protocol = WSConnection(ConnectionType.CLIENT)
        target = parts.path + (f"?{parts.query}" if parts.query else "")
        try:
            writer.write(protocol.send(Request(host=parts.netloc, target=target or "/")))
            while True:
                data = await reader.read(_CHUNK)
                if not data:
                    raise CdpError("the browser closed the connection during the handshake")
                protocol.receive_data(data)
                events = list(protocol.events())
                for index, event in enumerate(events):
                    if isinstance(event, AcceptConnection):
                        return cls(reader, writer, protocol, events[index + 1 :])
                    if isinstance(event, RejectConnection):
                        raise CdpError(
                            f"the browser refused the WebSocket handshake ({event.status_code})"
                        )
        except BaseException:
            writer.close()
            raise

    async def __aenter__(self) -> Connection:
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the WebSocket (the browser drops every session on it, and what they set)."""
        from wsproto.connection import ConnectionState
        from wsproto.events import CloseConnection

        with contextlib.suppress(Exception):
            if self._protocol.state is ConnectionState.OPEN:
                self._writer.write(self._protocol.send(CloseConnection(code=1000)))
        with contextlib.suppress(Exception):
            self._writer.close()
            await asyncio.wait_for(self._writer.wait_closed(), 2)
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader
        self._gone("the DevTools connection was closed")

    async def attach(self, target: dict[str, Any]) -> Session:
        """A flattened session on a target (a page), given its ``TargetInfo`` (what
        ``Target.getTargets`` lists), which the session keeps as its ``target``."""
        answer = await self.command(
            "Target.attachToTarget", {"targetId": str(target["targetId"]), "flatten": True}, ""
        )
        return self.adopt(str(answer["sessionId"]), dict(target))

    def adopt(self, session_id: str, target: dict[str, Any]) -> Session:
        """The :class:`Session` for ``session_id`` (one the browser attached, e.g. an auto-attached
        frame's), made once."""
        session = self.sessions.get(session_id)
        if session is None:
            session = self.sessions[session_id] = Session(self, session_id, target)
        return session

    async def command(self, method: str, params: dict[str, Any], session_id: str) -> dict[str, Any]:
        answer = self.submit(method, params, session_id)
        try:
            await self._writer.drain()
            return await answer
        finally:
            answer.cancel()  # (nothing once answered) not waited for any more: forgotten

    def submit(
        self, method: str, params: dict[str, Any], session_id: str
    ) -> asyncio.Future[dict[str, Any]]:
        """Write a command now; the future of its answer (forgotten once done or cancelled)."""
        if self.closed.is_set():
            raise CdpError(f"{method}: the browser is gone")
        self._next_id += 1
        sent = self._next_id
        message: dict[str, Any] = {"id": sent, "method": method, "params": params}
        if session_id:
            message["sessionId"] = session_id
        answer: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiting[sent] = answer
        answer.add_done_callback(lambda _done: self._waiting.pop(sent, None))
        try:
            self._send(json.dumps(message))
        except CdpError:
            self._waiting.pop(sent, None)
            raise
        return answer

    def _send(self, text: str) -> None:
        from wsproto.events import TextMessage

        try:
            self._writer.write(self._protocol.send(TextMessage(data=text)))
        except Exception as error:  # the connection is closing or closed
            raise CdpError(f"the browser is gone ({error})") from None

    async def _read(self, early: list[Any]) -> None:
        from wsproto.utilities import ProtocolError

        try:
            for event in early:
                if not self._take(event):
                    return
            while data := await self._stream.read(_CHUNK):
                self._protocol.receive_data(data)
                for event in self._protocol.events():
                    if not self._take(event):
                        return
        except (OSError, ProtocolError):
            pass
        finally:
            self._gone("the browser is gone")

    def _take(self, event: Any) -> bool:
        """Handle one WebSocket event; False once the browser closes the connection."""
        from wsproto.events import CloseConnection, Ping, TextMessage

        if isinstance(event, TextMessage):
            self._text.append(event.data)
            if event.message_finished:
                text = "".join(self._text)
                self._text.clear()
                with contextlib.suppress(ValueError):
                    self._dispatch(json.loads(text))
        elif isinstance(event, Ping):
            self._writer.write(self._protocol.send(event.response()))
        elif isinstance(event, CloseConnection):
            with contextlib.suppress(Exception):
                self._writer.write(self._protocol.send(event.response()))
            return False
        return True

    def _dispatch(self, message: dict[str, Any]) -> None:
        if "id" in message:
            waiting = self._waiting.get(message["id"])
            if waiting is None or waiting.done():
                return
            if "error" in message:
                error = message["error"]
                waiting.set_exception(CdpError(str(error.get("message") or error)))
            else:
                waiting.set_result(message.get("result") or {})
            return
        session = self.sessions.get(str(message.get("sessionId") or ""))
        if session is None:
            return
        params = message.get("params") or {}
        if message.get("method") == "Target.detachedFromTarget":
            self.sessions.pop(str(params.get("sessionId")), None)
        for handler in session.handlers.get(str(message.get("method")), ()):
            try:
                handler(params)
            except Exception:  # one handler's slip must not take the connection down with it
                traceback.print_exc()

    def _gone(self, why: str) -> None:
        self.closed.set()
        for waiting in self._waiting.values():
            if not waiting.done():
                waiting.set_exception(CdpError(why))
