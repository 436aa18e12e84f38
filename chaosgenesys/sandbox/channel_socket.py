"""One connected ``/channels/{id}`` WebSocket of the sandbox's notification service: a queue
drained in order by a single writer task (events, heartbeats, pongs, notices, the final close),
and the texts it sends that are not events (heartbeat, pong, ``v2.system`` messages).
``notifications.py`` (the hub) decides what goes to which socket.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiohttp import web

__all__ = [
    "CLOSE_TIMEOUT",
    "HEARTBEAT_TEXT",
    "PONG_TEXT",
    "ChannelSocket",
    "dumps",
    "system_message",
]

logger = logging.getLogger("chaostoolkit")

#: How long a close waits for the writer to get the close frame out.
CLOSE_TIMEOUT = 5.0


def dumps(obj: Any) -> str:
    """Compact JSON, as the platform sends it."""
    return json.dumps(obj, separators=(",", ":"))


HEARTBEAT_TEXT = dumps(
    {"topicName": "channel.metadata", "eventBody": {"message": "WebSocket Heartbeat"}}
)
PONG_TEXT = dumps({"topicName": "channel.metadata", "eventBody": {"message": "pong"}})


def system_message(channel_id: str, topic_type: str, reason: str, message: str) -> str:
    """A ``v2.system.*`` message to a channel (no longer subscribed, socket closing)."""
    return dumps(
        {
            "topicName": (
                f"v2.system.{topic_type}.{channel_id}"
                if topic_type != "socket_closing"
                else "v2.system.socket_closing"
            ),
            "version": "2",
            "eventBody": {
                "channelId": channel_id,
                "systemTopicType": topic_type,
                "reason": reason,
                "message": message,
            },
            "metadata": {"CorrelationId": str(uuid.uuid4())},
        }
    )


@dataclass
class _Close:
    code: int
    message: bytes
    done: asyncio.Future[None]


class ChannelSocket:
    """One connected WebSocket: a queue drained in order by a single writer task."""

    def __init__(
        self, ws: web.WebSocketResponse, channel_id: str, heartbeat_interval: float
    ) -> None:
        self.ws = ws
        self.channel_id = channel_id
        self.connected_at = time.monotonic()
        self._interval = heartbeat_interval
        self._queue: asyncio.Queue[str | _Close] = asyncio.Queue()
        self._closing: _Close | None = None
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name=f"notification-socket-{channel_id}")

    @property
    def closing(self) -> bool:
        """True once a close was requested: nothing more is queued."""
        return self._closing is not None

    def backlog(self) -> int:
        """Messages queued and not yet written."""
        return self._queue.qsize()

    def send(self, text: str) -> bool:
        """Queue one text frame; False when the socket is closing."""
        if self._closing is not None:
            return False
        self._queue.put_nowait(text)
        return True

    def close(self, code: int, reason: str) -> asyncio.Future[None]:
        """Queue a close frame after what is already queued; the future resolves once sent."""
        if self._closing is None:
            self._closing = _Close(code, reason.encode()[:120], self._loop.create_future())
            self._queue.put_nowait(self._closing)
        return self._closing.done

    async def finish(self) -> None:
        """Called once the reader is done: let a pending close complete, then stop writing."""
        if self._closing is None:
            self._task.cancel()
        done, _ = await asyncio.wait({self._task}, timeout=CLOSE_TIMEOUT)
        if not done:
            self._task.cancel()
        self._resolve_close()

    def _resolve_close(self) -> None:
        if self._closing is not None and not self._closing.done.done():
            self._closing.done.set_result(None)

    async def _next(self, deadline: float | None) -> str | _Close | None:
        """The next queued item, or None when the heartbeat is due first."""
        if deadline is None:
            return await self._queue.get()
        delay = deadline - self._loop.time()
        if delay <= 0:
            return None
        try:
            async with asyncio.timeout(delay):
                return await self._queue.get()
        except TimeoutError:
            return None

    async def _run(self) -> None:
        interval = self._interval if self._interval > 0 else None
        beat = self._loop.time() + interval if interval is not None else None
        try:
            while True:
                item = await self._next(beat)
                if item is None:
                    assert interval is not None and beat is not None
                    text = HEARTBEAT_TEXT
                    beat += interval
                    if beat <= self._loop.time():  # fell behind: no burst of heartbeats
                        beat = self._loop.time() + interval
                elif isinstance(item, _Close):
                    if not self.ws.closed:
                        await self.ws.close(code=item.code, message=item.message)
                    return
                else:
                    text = item
                if self.ws.closed:
                    return
                await self.ws.send_str(text)
        except (ConnectionError, aiohttp.ClientError) as exc:
            logger.debug("notification socket %s: write failed: %s", self.channel_id, exc)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("notification socket %s: writer failed", self.channel_id)
        finally:
            self._resolve_close()
