"""One client's XMPP session on one WebSocket, on the sandbox's streaming service: what the
session knows (its JID, its token, whether it is bound) and its one writer, a queue of frames
drained by one task so that frames never interleave and a close goes out after what was queued::

    session = StreamSession(ws, channel_id, pubsub_host)
    session.send(frame)               # False once it is closing
    session.end(stream_error("not-authorized", "token revoked"))
    await session.finish()            # once the reader is done

``streaming.py`` speaks the protocol over these sessions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from xml.sax.saxutils import quoteattr

import aiohttp
from aiohttp import web

from chaosgenesys.clock import Timer
from chaosgenesys.sandbox.channel_socket import CLOSE_TIMEOUT
from chaosgenesys.sandbox.tokens import TokenRecord
from chaosgenesys.sandbox.xmpp import NS_CLIENT, NS_FRAMING, NS_STREAM, NS_STREAMS, element

__all__ = ["CLOSE_FRAME", "Drop", "StreamSession", "stream_error"]

logger = logging.getLogger("chaostoolkit")

#: RFC 7395's ``<close/>``: the end of a stream.
CLOSE_FRAME = element("close", {"xmlns": NS_FRAMING})


def stream_error(condition: str, text: str) -> str:
    """A ``<stream:error>`` with its RFC 6120 ``condition`` and ``text``."""
    return element(
        "stream:error",
        {"xmlns:stream": NS_STREAM},
        element(condition, {"xmlns": NS_STREAMS}),
        element("text", {"xmlns": NS_STREAMS}, text=text),
    )


class Drop:
    """The writer's last item: the WebSocket close with ``code``."""

    def __init__(self, code: int, message: bytes) -> None:
        self.code = code
        self.message = message


class StreamSession:
    """One XMPP session on one WebSocket: a queue of frames drained by one writer task."""

    def __init__(self, ws: web.WebSocketResponse, channel_id: str, pubsub_host: str) -> None:
        self.ws = ws
        self.channel_id = channel_id
        self.pubsub_host = pubsub_host
        self.stream_id = uuid.uuid4().hex
        self.user_id: str | None = None
        self.client_id: str | None = None
        self.bare_jid: str | None = None
        self.full_jid: str | None = None
        self.authenticated = False
        self.bound = False
        self.opened = False
        self.server_pings = False
        self.token: TokenRecord | None = None
        self.transfer_timer: Timer | None = None
        self._message_head: str | None = None
        self._queue: asyncio.Queue[str | Drop] = asyncio.Queue()
        self._closing = False
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"streaming-session-{channel_id}"
        )

    @property
    def closing(self) -> bool:
        """True once the session was told to end: nothing more is queued."""
        return self._closing

    def message(self, message_id: str, body: str) -> str:
        """A ``<message>`` from the pubsub service to this (bound) session around ``body``
        (already XML); its quoted head is made once per session, as events go to many."""
        if self._message_head is None:
            assert self.full_jid is not None
            self._message_head = (
                f"<message xmlns={quoteattr(NS_CLIENT)} from={quoteattr(self.pubsub_host)} "
                f"to={quoteattr(self.full_jid)}"
            )
        return f"{self._message_head} id={quoteattr(message_id)}>{body}</message>"

    def backlog(self) -> int:
        """Frames queued and not yet written."""
        return self._queue.qsize()

    def send(self, frame: str) -> bool:
        """Queue one frame; False when the session is closing."""
        if self._closing:
            return False
        self._queue.put_nowait(frame)
        return True

    def end(self, *frames: str) -> None:
        """Queue ``frames``, then ``<close/>`` and the WebSocket close; nothing after that."""
        if self._closing:
            return
        for frame in frames:
            self._queue.put_nowait(frame)
        self._queue.put_nowait(CLOSE_FRAME)
        self.drop(1000, "stream closed")

    def drop(self, code: int, reason: str) -> None:
        """Queue the WebSocket close with ``code`` (no ``<close/>``); nothing after that."""
        if self._closing:
            return
        self._closing = True
        self._queue.put_nowait(Drop(code, reason.encode()[:120]))

    async def written(self) -> None:
        """Wait until the writer is done (the close went out, or the socket failed)."""
        await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)

    async def finish(self) -> None:
        """Called once the reader is done: let a pending close go out, then stop."""
        if not self._closing:
            self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._task.cancel()

    async def _run(self) -> None:
        try:
            while True:
                frame = await self._queue.get()
                if isinstance(frame, Drop):
                    if not self.ws.closed:
                        await self.ws.close(code=frame.code, message=frame.message)
                    return
                if self.ws.closed:
                    return
                await self.ws.send_str(frame)
        except (ConnectionError, aiohttp.ClientError) as exc:
            logger.debug("streaming session %s: write failed: %s", self.channel_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("streaming session %s: writer failed", self.channel_id)
