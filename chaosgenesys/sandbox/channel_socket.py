"""One connected ``/channels/{id}`` WebSocket of the sandbox's notification service: its single
writer (``socket_writer.py``: events, pongs, notices, the final close, in order) with its
heartbeats, and the texts it sends that are not events (heartbeat, pong, ``v2.system``
messages).
``notifications.py`` (the hub) decides what goes to which socket.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from typing import Any

from aiohttp import web

from chaosgenesys.sandbox.socket_writer import CloseItem, SocketWriter

__all__ = [
    "HEARTBEAT_TEXT",
    "PONG_TEXT",
    "ChannelSocket",
    "dumps",
    "system_message",
]



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


class ChannelSocket(SocketWriter):
    """One connected WebSocket: its single writer (:class:`SocketWriter`), which also sends a
    heartbeat every ``heartbeat_interval`` seconds (none when it is 0)."""

    def __init__(
        self, ws: web.WebSocketResponse, channel_id: str, heartbeat_interval: float
    ) -> None:
        self.connected_at = time.monotonic()
        self._interval = heartbeat_interval
        now = asyncio.get_running_loop().time()
        self._beat = now + heartbeat_interval if heartbeat_interval > 0 else None
        super().__init__(
            ws, channel_id, what="notification socket", task_prefix="notification-socket"
        )

    async def _next(self) -> str | CloseItem:
        """The next queued item, or the heartbeat when it is due first."""
        if self._beat is None:
            return await self._queue.get()
        delay = self._beat - self._loop.time()
        if delay > 0:
            try:
                async with asyncio.timeout(delay):
                    return await self._queue.get()
            except TimeoutError:
                pass
        self._beat += self._interval
        if self._beat <= self._loop.time():  # fell behind: no burst of heartbeats
            self._beat = self._loop.time() + self._interval
        return HEARTBEAT_TEXT
