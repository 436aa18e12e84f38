"""Notification channels and their WebSocket (placeholder: being written)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aiohttp import web

from chaosgenesys.sandbox.events import EventBus

__all__ = ["NotificationHub"]


class NotificationHub:
    """Channels, subscriptions and the ``/channels/{id}`` WebSocket of the sandbox."""

    def __init__(
        self,
        events: EventBus,
        *,
        heartbeat_interval: float = 30.0,
        channel_lifetime: float = 86400.0,
    ) -> None:
        self.events = events
        self.heartbeat_interval = heartbeat_interval
        self.channel_lifetime = channel_lifetime

    def add_routes(self, app: web.Application) -> None:
        """Register ``/api/v2/notifications/...`` and the ``/channels/{id}`` WebSocket route."""

    async def close_sockets(self, code: int = 1000, user_ids: Sequence[str] | None = None) -> int:
        """Close connected sockets (all, or those subscribed to these users) with ``code``."""
        return 0

    async def send_socket_closing(self, user_ids: Sequence[str] | None = None) -> int:
        """Send ``v2.system.socket_closing`` to connected sockets; returns how many got it."""
        return 0

    async def shutdown(self) -> None:
        """Close every socket and stop background tasks."""

    def summary(self) -> dict[str, Any]:
        """Channels and connected sockets, for the admin state view."""
        return {"channels": 0, "connected": 0}
