"""The notification channel: REST calls that manage it and the WebSocket that carries it.

- :func:`create_channel` (``POST /api/v2/notifications/channels``), :func:`subscribe` (``PUT
  .../subscriptions``: replaces the topics and extends the channel's life), :func:`channel_exists`
  (``HEAD``: 404 once the channel is gone).
- :class:`NotificationSocket`: one connection to a channel's ``connectUri``. It remembers when
  the last frame of any kind arrived (events, heartbeats, pongs), so the agent can tell a live
  socket from a silent one, and sends the platform's health check ``{"message":"ping"}``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from typing import Any

import aiohttp

from chaosgenesys.agent.api import ApiClient, ApiError

__all__ = [
    "ChannelGone",
    "ConnectFailed",
    "NotificationSocket",
    "channel_exists",
    "create_channel",
    "subscribe",
    "topics_for",
]

_CHANNELS = "/api/v2/notifications/channels"
PING_TEXT = json.dumps({"message": "ping"})


class ChannelGone(Exception):
    """The channel no longer exists (404): a new one is needed. Its message says so and names
    the channel (id or connect URI)."""

    def __init__(self, channel: str) -> None:
        super().__init__(f"channel gone (404): {channel}")
        self.channel = channel


class ConnectFailed(Exception):
    """The WebSocket could not be opened (network, timeout, refused upgrade)."""

    def __init__(self, detail: str, status: int = 0, retry_after: float = 0.0) -> None:
        self.status = status
        #: The refusal's ``Retry-After`` (seconds; 0 when it had none).
        self.retry_after = retry_after
        super().__init__(detail)


def topics_for(user_id: str) -> list[str]:
    """The agent's own topics: presence, routing status and conversations."""
    return [
        f"v2.users.{user_id}.presence",
        f"v2.users.{user_id}.routingStatus",
        f"v2.users.{user_id}.conversations",
    ]


async def create_channel(api: ApiClient) -> tuple[str, str]:
    """A new channel: ``(id, connectUri)``."""
    body = await api.request("POST", _CHANNELS)
    if not isinstance(body, dict) or not body.get("id") or not body.get("connectUri"):
        raise ApiError("POST", _CHANNELS, 200, "answer without id/connectUri")
    return str(body["id"]), str(body["connectUri"])


async def subscribe(api: ApiClient, channel_id: str, topics: list[str]) -> None:
    """Replace the channel's topics; raises :class:`ChannelGone` on 404, ``ApiError`` when a
    topic is rejected."""
    path = f"{_CHANNELS}/{channel_id}/subscriptions"
    try:
        body = await api.request("PUT", path, [{"id": topic} for topic in topics])
    except ApiError as error:
        if error.status == 404:
            raise ChannelGone(channel_id) from None
        raise
    entities = body.get("entities", []) if isinstance(body, dict) else []
    permitted = {
        e.get("id") for e in entities if isinstance(e, dict) and e.get("state") != "Rejected"
    }
    missing = [topic for topic in topics if topic not in permitted]
    if missing:
        raise ApiError("PUT", path, 200, f"topics not permitted: {', '.join(missing)}")


async def channel_exists(api: ApiClient, channel_id: str) -> bool:
    """``HEAD`` the channel: False on 404 (other failures raise ``ApiError``)."""
    try:
        await api.request("HEAD", f"{_CHANNELS}/{channel_id}")
    except ApiError as error:
        if error.status == 404:
            return False
        raise
    return True


class NotificationSocket:
    """One open WebSocket to a channel."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.opened_at = time.monotonic()
        self.last_inbound = self.opened_at
        self.last_ping = self.opened_at
        self.close_code: int | None = None
        self.close_reason = ""

    @classmethod
    async def connect(
        cls,
        session: aiohttp.ClientSession,
        connect_uri: str,
        *,
        timeout: float,
        request_kwargs: dict[str, Any] | None = None,
    ) -> NotificationSocket:
        """Open the socket; :class:`ChannelGone` on 404, :class:`ConnectFailed` otherwise."""
        try:
            async with asyncio.timeout(timeout):
                ws = await session.ws_connect(
                    connect_uri,
                    autoping=True,
                    heartbeat=None,
                    max_msg_size=4 * 1024 * 1024,
                    timeout=aiohttp.ClientWSTimeout(ws_receive=None, ws_close=1.0),
                    **(request_kwargs or {}),
                )
        except aiohttp.WSServerHandshakeError as error:
            if error.status == 404:
                raise ChannelGone(connect_uri) from None
            raise ConnectFailed(f"upgrade refused: {error.status}", error.status,
                                _retry_after(error.headers)) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ConnectFailed(type(error).__name__) from None
        return cls(ws)

    async def receive(self) -> dict[str, Any] | None:
        """The next JSON message, or ``None`` once the socket is closed."""
        while True:
            message = await self.ws.receive()
            if message.type is aiohttp.WSMsgType.TEXT:
                self.last_inbound = time.monotonic()
                try:
                    data = json.loads(message.data)
                except ValueError:
                    continue
                if isinstance(data, dict):
                    return data
                continue
            if message.type in (aiohttp.WSMsgType.PING, aiohttp.WSMsgType.PONG):
                self.last_inbound = time.monotonic()
                continue
            if message.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                self.close_code = self.ws.close_code
                if message.type is aiohttp.WSMsgType.CLOSE:
                    self.close_code = int(message.data) if message.data else self.close_code
                    self.close_reason = str(message.extra or "")
                elif message.type is aiohttp.WSMsgType.ERROR:
                    self.close_reason = type(message.data).__name__
                return None

    async def ping(self) -> None:
        """Send the platform's health check (a text message, not an RFC 6455 ping)."""
        self.last_ping = time.monotonic()
        with contextlib.suppress(ConnectionError, aiohttp.ClientError, RuntimeError):
            await self.ws.send_str(PING_TEXT)

    def silence(self) -> float:
        """Seconds since the last frame arrived."""
        return time.monotonic() - self.last_inbound

    async def close(self, code: int = 1000) -> None:
        """Close without waiting long for the peer (it may be dead)."""
        if self.ws.closed:
            return
        try:
            async with asyncio.timeout(1.5):
                await self.ws.close(code=code)
        except (TimeoutError, ConnectionError, aiohttp.ClientError, RuntimeError):
            pass



def _retry_after(headers: Any) -> float:
    """Seconds of a ``Retry-After`` header (0 when absent or not a number)."""
    try:
        value = headers.get("Retry-After") if headers is not None else None
        return max(0.0, float(value)) if value else 0.0
    except (TypeError, ValueError):
        return 0.0
