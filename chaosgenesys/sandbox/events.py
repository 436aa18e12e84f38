"""The sandbox's in-process event bus: state changes go in, notification deliveries come out.

The domain model (``state.py``) publishes one event per change on the topic the real platform
uses (``v2.users.{id}.presence``, ``v2.users.{id}.routingStatus``, ``v2.users.{id}.activity``,
``v2.users.{id}.conversations``, ``v2.routing.queues.{id}.conversations``); the notification hub
subscribes and forwards each event to the WebSocket channels subscribed to that topic.
Everything runs on the sandbox's event loop thread, so publishing is a plain call.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

__all__ = ["EventBus", "EventListener"]

logger = logging.getLogger("chaostoolkit")

#: ``listener(topic_name, event_body)``
EventListener = Callable[[str, dict[str, Any]], None]


class EventBus:
    """Fan-out of ``(topic, body)`` events to listeners, in subscription order."""

    def __init__(self) -> None:
        self._listeners: list[EventListener] = []

    def subscribe(self, listener: EventListener) -> None:
        """Call ``listener(topic, body)`` for every event published from now on."""
        self._listeners.append(listener)

    def publish(self, topic: str, body: dict[str, Any]) -> None:
        """Deliver one event; a failing listener is logged and does not stop the others."""
        for listener in list(self._listeners):
            try:
                listener(topic, body)
            except Exception:
                logger.exception("sandbox event listener failed on %s", topic)
