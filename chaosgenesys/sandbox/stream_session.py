"""One client's XMPP session on one WebSocket, on the sandbox's streaming service: what the
session knows (its JID, its token, whether it is bound) and how it ends, over its single
writer (``socket_writer.py``: frames never interleave, a close goes out after what was queued)::

    session = StreamSession(ws, channel_id, pubsub_host)
    session.send(frame)               # False once it is closing
    session.end(stream_error("not-authorized", "token revoked"))
    await session.finish()            # once the reader is done

``streaming.py`` speaks the protocol over these sessions.
"""

from __future__ import annotations

import logging
import uuid
from xml.sax.saxutils import quoteattr

from aiohttp import web

from chaosgenesys.clock import Timer
from chaosgenesys.sandbox.socket_writer import SocketWriter
from chaosgenesys.sandbox.tokens import TokenRecord
from chaosgenesys.sandbox.xmpp import NS_CLIENT, NS_FRAMING, NS_STREAM, NS_STREAMS, element

__all__ = ["CLOSE_FRAME", "StreamSession", "stream_error"]

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


class StreamSession(SocketWriter):
    """One XMPP session on one WebSocket, written by its single writer (:class:`SocketWriter`)."""

    def __init__(self, ws: web.WebSocketResponse, channel_id: str, pubsub_host: str) -> None:
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
        super().__init__(ws, channel_id, what="streaming session", task_prefix="streaming-session")

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

    def end(self, *frames: str) -> None:
        """Queue ``frames``, then ``<close/>`` and the WebSocket close; nothing after that."""
        if self.closing:
            return
        for frame in frames:
            self._queue.put_nowait(frame)
        self._queue.put_nowait(CLOSE_FRAME)
        self.close(1000, "stream closed")
