"""The desktop's notification channel: open it, read it, watch it, and get it back.

:class:`Connection` creates the channel and its socket, reads events off it (presence, routing,
conversations: handed to the presence and interaction parts), pings it and watches for silence
(a zombie socket), rotates it on ``socket_closing`` (resilient) and, when it is lost, asks the
desktop's :class:`ReconnectPolicy` (``policies``: resilient or naive) for a new one and for what
to do once it is back. One reconnect try (:meth:`Connection._attempt`) is shared by both.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Protocol

from chaosgenesys.agent.api import ApiError
from chaosgenesys.agent.channel import (
    ChannelGone,
    ConnectFailed,
    NotificationSocket,
    channel_exists,
    create_channel,
    subscribe,
    topics_for,
)
from chaosgenesys.agent.interactions import Interactions
from chaosgenesys.agent.presence import Presence
from chaosgenesys.agent.tokens import TokenError

__all__ = ["RELOGIN", "Connection", "ReconnectPolicy", "retry_after_of", "status_of"]

#: Statuses after which the streaming client does not retry: the app must log in again.
RELOGIN = {401, 403}


class ReconnectPolicy(Protocol):
    """How a desktop gets its socket back, and what it does once it has (``policies``)."""

    #: The name of the task that runs :meth:`after_reconnect` (``task_failed`` events show it).
    after_task: str

    async def reconnect(self, started: float) -> NotificationSocket | None:
        """A new socket, subscribed; None when stopping or giving up (``started``: when the
        socket was lost, on the monotonic clock)."""
        ...

    async def after_reconnect(self) -> None:
        """Bring the desktop's local state and the server's together again."""
        ...


class Connection(Interactions, Presence):
    """The channel and socket of one desktop, from the first connect to the last reconnect."""

    @property
    def policy(self) -> ReconnectPolicy:
        """How this desktop reconnects: the desktop (``SyntheticAgent``) picks it from its mode."""
        raise NotImplementedError

    # ------------------------------------------------------------------ channel and socket
    async def _relogin(self, error: BaseException) -> None:
        """After a 401/403 the streaming client does not retry: log in again (a new token)."""
        self._event("relogin", status=status_of(error))
        try:
            await self.tokens.refresh("relogin")
        except TokenError as failure:
            self.stats.token_errors += 1
            self.stats.last_error = str(failure)[:300]
            self._event("token_error", error=str(failure)[:200])

    async def _new_channel(self) -> None:
        self.channel_id, self.connect_uri = await create_channel(self.api)
        self._event("channel", channel=self.channel_id)

    async def _open_socket(self) -> NotificationSocket:
        socket = await NotificationSocket.connect(
            self._session, self.connect_uri, timeout=self.endpoint.timeout,
            request_kwargs=self._kwargs,
        )
        self._event("connect", channel=self.channel_id)
        return socket

    # ------------------------------------------------------------------ the connection
    async def _connection_loop(self) -> None:
        while not self._stopping.is_set():
            socket = self.socket
            assert socket is not None
            self._set_connected(True)
            if not self.stats.ready:
                self.stats.ready = True
                self.ready.set()
            reason, code = await self._socket_session(socket)
            if self._stopping.is_set():
                return
            started = time.monotonic()
            if reason == "socket_closing" and self.config.resilient:
                new = await self._rotate_socket(started)
                if new is not None:
                    self.socket = new
                    await socket.close()
                    continue
            # the socket is lost
            self._set_connected(False)
            self.stats.zombie_end()
            self.stats.disconnects += 1
            self.stats.last_disconnect_reason = reason
            self._event("disconnect", reason=reason, code=code, channel=self.channel_id)
            self._spawn(socket.close(), "close-old")
            self.socket = None
            if reason == "channel_gone":
                self.channel_id = ""
            new = await self.policy.reconnect(started)
            if new is None:
                return
            self.socket = new
            self._set_connected(True)
            self._spawn(self.policy.after_reconnect(), self.policy.after_task)

    async def _socket_session(self, socket: NotificationSocket) -> tuple[str, int | None]:
        """Read the socket until it is lost; returns (reason, close code)."""
        self._lost_reason = ""
        reader = asyncio.get_running_loop().create_task(self._read(socket))
        watchdog = asyncio.get_running_loop().create_task(self._watchdog(socket))
        stopping = asyncio.get_running_loop().create_task(self._stopping.wait())
        try:
            await asyncio.wait({reader, watchdog, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (reader, watchdog, stopping):
                task.cancel()
            await asyncio.gather(reader, watchdog, stopping, return_exceptions=True)
        if self._lost_reason:
            return self._lost_reason, socket.close_code
        if self._stopping.is_set():
            return "stopped", None
        code = socket.close_code
        return (f"closed by server ({code})" if code else "connection lost"), code

    async def _read(self, socket: NotificationSocket) -> None:
        while True:
            message = await socket.receive()
            if message is None:
                return
            self.stats.zombie_end()
            if self._handle(message):
                return

    async def _watchdog(self, socket: NotificationSocket) -> None:
        """Ping, account zombie time, and (resilient) declare a silent socket dead.

        It wakes when something is due (the next ping, the silence that makes a zombie, the
        silence that declares the socket dead), not on a fixed tick: an idle agent wakes about
        once per ping interval. While the socket is a zombie it ticks, so that zombie time
        grows in the summary as it happens."""
        config = self.config
        tick = max(0.05, min(config.ping_interval, config.zombie_after) / 4)
        while True:
            now = time.monotonic()
            silent = now - socket.last_inbound
            wait = tick if silent > config.zombie_after else config.zombie_after - silent
            if config.resilient:
                wait = min(wait, socket.last_ping + config.ping_interval - now,
                           config.silence_limit - silent)
            # a little past the moment, so that what is due is due when it wakes
            await asyncio.sleep(max(0.05, wait + 0.001))
            now = time.monotonic()
            silent = now - socket.last_inbound
            self.stats.zombie_tick(silent, config.zombie_after, now)
            if not config.resilient:
                continue
            if silent > config.silence_limit:
                self.stats.zombies_detected += 1
                self._event("zombie", silence_s=round(silent, 3), channel=self.channel_id)
                self._lost_reason = "zombie (no heartbeat or pong)"
                return
            if now - socket.last_ping >= config.ping_interval:
                await socket.ping()

    def _handle(self, message: dict[str, Any]) -> bool:
        """Handle one message; True when the socket must be left (rotation, channel gone)."""
        topic = str(message.get("topicName", ""))
        body = message.get("eventBody")
        body = body if isinstance(body, dict) else {}
        if topic == "channel.metadata":
            return False
        if topic == "v2.system.socket_closing":
            self.stats.socket_closing_notices += 1
            self._event("socket_closing", channel=self.channel_id)
            if self.config.resilient:
                self._lost_reason = "socket_closing"
                return True
            return False
        if topic.startswith("v2.system.no_longer_subscribed"):
            self._event("no_longer_subscribed", reason=body.get("reason"),
                        channel=self.channel_id)
            self._lost_reason = "channel_gone"
            return True
        prefix = f"v2.users.{self.user_id}."
        if not topic.startswith(prefix):
            return False
        kind = topic[len(prefix):]
        if kind == "presence":
            definition = body.get("presenceDefinition") or {}
            self._adopt_presence(str(definition.get("systemPresence", "")),
                                 str(definition.get("id", "")),
                                 str(body.get("modifiedDate", "")), "event")
        elif kind == "routingStatus":
            routing = body.get("routingStatus") or {}
            self._adopt_routing(str(routing.get("status", "")), "event")
        elif kind == "conversations":
            self._on_conversation(body, "event")
        return False

    # ------------------------------------------------------------------ reconnects
    async def _attempt(self, hard: bool) -> NotificationSocket | None:
        """One reconnect try: (new channel) + socket + re-subscribe."""
        if hard or not self.channel_id:
            await self._new_channel()
        try:
            socket = await self._open_socket()
        except ChannelGone:
            self.channel_id = ""
            raise
        except ConnectFailed as error:
            if (
                error.status
                and self.config.resilient
                and not await channel_exists(self.api, self.channel_id)
            ):
                self.channel_id = ""
                raise ChannelGone(self.connect_uri) from None
            raise
        try:
            await subscribe(self.api, self.channel_id, topics_for(self.user_id))
        except BaseException:
            await socket.close()
            raise
        return socket

    def _reconnected(self, started: float, attempts: int, kind: str) -> None:
        latency = (time.monotonic() - started) * 1000
        self.stats.reconnected(latency)
        self._event("reconnect", latency_ms=round(latency, 1), attempts=attempts, kind=kind,
                    channel=self.channel_id)

    async def _rotate_socket(self, started: float) -> NotificationSocket | None:
        """``socket_closing``: open the new socket before the old one goes."""
        try:
            socket = await self._attempt(False)
        except (ApiError, TokenError, ConnectFailed, ChannelGone) as error:
            self._event("rotate_failed", error=str(error)[:200])
            return None
        self._reconnected(started, 1, "socket_closing")
        # only a resilient desktop rotates: its policy re-reads ("reread")
        self._spawn(self.policy.after_reconnect(), self.policy.after_task)
        return socket


def status_of(error: BaseException) -> int:
    """The HTTP status a failure carries (0: none)."""
    status = getattr(error, "status", 0)
    return status if isinstance(status, int) else 0


def retry_after_of(error: BaseException) -> float:
    """The ``Retry-After`` (seconds) a failure carries (0: none)."""
    value = getattr(error, "retry_after", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0
