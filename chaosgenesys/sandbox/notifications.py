"""The sandbox's notification service: channels, subscriptions and the ``/channels/{id}`` socket.

It behaves like Genesys Cloud's notifications API (``docs/genesys-cloud-api.md`` §5):

- ``POST /api/v2/notifications/channels`` creates a channel whose ``connectUri`` points at this
  server (``ws://<Host>/channels/<id>``); ``GET`` lists the caller's channels; ``HEAD
  /api/v2/notifications/channels/{id}`` answers 200, or 404 once the channel is gone.
- ``GET|POST|PUT|DELETE /api/v2/notifications/channels/{id}/subscriptions`` reads, adds,
  replaces or removes topics; each topic comes back ``Permitted`` or ``Rejected``.
- Limits: 20 channels per user and OAuth client (a client-credentials token has no user: its
  client's count together; the 21st evicts the oldest, unconnected ones first),
  1,000 topics per channel (over: 400), a channel lifetime (24 h by default, extended by every
  subscription change), one socket per channel (a new one displaces the old one).
- The socket needs no authentication; it carries events in the platform's envelope, a
  ``channel.metadata`` heartbeat every ``heartbeat_interval`` seconds, and answers the text
  message ``{"message":"ping"}`` with ``pong``.

Events come from the :class:`~chaosgenesys.sandbox.events.EventBus`. Publishing is synchronous
on the event loop, so delivery only queues: each socket has one writer task that sends its
queue (events, heartbeats, pongs, notices, the final close) in order. An event is serialized
once, whatever the number of sockets it goes to.

The hub also knows which users hold an agent **session** (a connected socket on a channel
subscribed to the user's ``conversations`` topic, or a bound streaming session of the user:
:meth:`NotificationHub.streaming_session`) and tells its ``session_listener`` when a user's
first session starts and last one ends (``sessions.py``: the platform's reaction). One count
serves both channels.

The fault-injection hooks (:meth:`NotificationHub.close_sessions`,
:meth:`NotificationHub.send_socket_closing`, the channel's end in ``_drop`` and
:meth:`NotificationHub.tokens_revoked`) are driven by the sandbox's admin surface and token
store; each reaches the streaming service's sessions too (:class:`StreamingSessions`, set by
``streaming.py`` as :attr:`NotificationHub.streaming`).

Why one module of about 600 lines: the routes, the sessions count and the fault hooks all read
and change the hub's channel state (``channels.py`` keeps the bookkeeping, ``channel_socket.py``
the sockets' writers); split further, each part would reach into the others' private state.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any, Protocol

import aiohttp
from aiohttp import web

from chaosgenesys.clock import REAL_CLOCK, Clock, Timer
from chaosgenesys.sandbox.channel_socket import (
    PONG_TEXT,
    ChannelSocket,
    dumps,
    system_message,
)
from chaosgenesys.sandbox.channels import (
    Channel,
    ChannelRegistry,
    TopicCheck,
    TopicLimitExceeded,
    check_topic,
    token_key,
)
from chaosgenesys.sandbox.closecodes import close_code_problem
from chaosgenesys.sandbox.errors import SandboxHTTPError, bad_request, not_found
from chaosgenesys.sandbox.events import EventBus
from chaosgenesys.sandbox.params import json_body
from chaosgenesys.sandbox.sessions import SessionListener, session_users
from chaosgenesys.sandbox.socket_writer import CLOSE_TIMEOUT

__all__ = ["MAX_BACKLOG", "NotificationHub", "StreamingSessions"]

logger = logging.getLogger("chaostoolkit")

#: Sockets (and streaming sessions) with more undelivered messages than this are closed as
#: too slow.
MAX_BACKLOG = 10_000

_CHANNELS = "/api/v2/notifications/channels"


class StreamingSessions(Protocol):
    """What the hub asks of the streaming service (``streaming.py``) when a fault or a
    channel's end applies to every channel kind."""

    async def close_sessions(
        self, code: int, user_ids: Sequence[str] | None, sessions_only: bool
    ) -> int:
        """Close the selected live sessions' WebSockets with ``code``; how many."""
        ...

    def send_connection_transfer(self, user_ids: Sequence[str] | None) -> int:
        """XEP-0051 connection transfer (``socket_closing``) to the selected sessions; how many."""
        ...

    def channel_gone(self, channel_id: str, topic: str, envelope: str) -> None:
        """End the channel's sessions with the pubsub event ``topic`` carrying ``envelope``."""
        ...


def token_of(request: web.Request) -> str:
    """The key of the bearer token a request was authenticated with (``channels.token_key``
    of ``Bearer <token>``, whatever the spelling of the header)."""
    return token_key(f"Bearer {request.get('token') or ''}")


class NotificationHub:
    """Channels, subscriptions and the ``/channels/{id}`` WebSocket of the sandbox.

    ``heartbeat_interval`` (seconds, float; 0 disables) is the gap between heartbeats on each
    socket; ``channel_lifetime`` (seconds) is how long a channel lives after its creation or its
    last subscription change. Both may be changed on a live hub; they apply to sockets and
    channels created (or extended) afterwards. Channel lifetimes run on ``clock``
    (:mod:`chaosgenesys.clock`); heartbeats on the event loop's own time.
    """

    def __init__(
        self,
        events: EventBus,
        *,
        heartbeat_interval: float = 30.0,
        channel_lifetime: float = 86400.0,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self.events = events
        self.heartbeat_interval = heartbeat_interval
        self.clock = clock
        self._registry = ChannelRegistry(channel_lifetime, clock)
        self._sockets: dict[str, ChannelSocket] = {}
        self._timers: dict[str, Timer] = {}
        self._closed = False
        self.events_delivered = 0
        #: Told when a user's first session socket connects and its last one goes away.
        self.session_listener: SessionListener | None = None
        self._channel_sessions: dict[str, frozenset[str]] = {}
        self._session_counts: dict[str, int] = {}
        #: The streaming service's sessions (``streaming.py`` sets it): faults reach them too.
        self.streaming: StreamingSessions | None = None
        self._streaming_channels: dict[str, str] = {}
        events.subscribe(self._on_event)

    @property
    def channel_lifetime(self) -> float:
        """Seconds a channel lives after creation or its last subscription change."""
        return self._registry.lifetime

    @channel_lifetime.setter
    def channel_lifetime(self, value: float) -> None:
        self._registry.lifetime = value

    # ------------------------------------------------------------------ routes

    def add_routes(self, app: web.Application) -> None:
        """Register ``/api/v2/notifications/...`` and the ``/channels/{id}`` WebSocket route."""
        router = app.router
        router.add_post(_CHANNELS, self._create_channel)
        router.add_get(_CHANNELS, self._list_channels, allow_head=False)
        router.add_route("HEAD", _CHANNELS + "/{channelId}", self._head_channel)
        subscriptions = _CHANNELS + "/{channelId}/subscriptions"
        router.add_get(subscriptions, self._get_subscriptions, allow_head=False)
        router.add_post(subscriptions, self._post_subscriptions)
        router.add_put(subscriptions, self._put_subscriptions)
        router.add_delete(subscriptions, self._delete_subscriptions)
        router.add_get("/channels/{channelId}", self._websocket, allow_head=False)

    @staticmethod
    def _client_id(request: web.Request) -> str:
        return str(request.get("client_id") or "")

    def _live(self, channel_id: str) -> Channel | None:
        """The channel if it exists and has not expired (an overdue one is expired now)."""
        channel = self._registry.get(channel_id)
        if channel is not None and channel.deadline <= self.clock.monotonic():
            self._drop(channel, "expired")
            return None
        return channel

    def _owned(self, request: web.Request) -> Channel | None:
        channel = self._live(request.match_info["channelId"])
        if channel is None or channel.client_id != self._client_id(request):
            return None
        return channel

    async def _create_channel(self, request: web.Request) -> web.Response:
        if self._closed:
            raise SandboxHTTPError(503, "The notification service is stopping")
        client_id = self._client_id(request)
        record = request.get("token_record")
        channel, evicted = self._registry.create(
            client_id, token_of(request), getattr(record, "user_id", None)
        )
        for old in evicted:
            logger.info(
                "sandbox notifications: channel %s of client %s evicted (channel limit)",
                old.id,
                client_id,
            )
            self._drop(old, "evicted", already_removed=True)
        self._schedule_expiry(channel)
        logger.debug("sandbox notifications: channel %s created", channel.id)
        return web.json_response(self._entity(request, channel), dumps=dumps)

    @staticmethod
    def _entity(request: web.Request, channel: Channel) -> dict[str, str]:
        return channel.as_entity(request.host, "wss" if request.secure else "ws")

    async def _list_channels(self, request: web.Request) -> web.Response:
        client_id = self._client_id(request)
        token = token_of(request)
        across_tokens = request.query.get("includechannels", "token").lower() == "oauthclient"
        entities: list[dict[str, str]] = []
        for channel in self._registry:
            if channel.client_id != client_id or self._live(channel.id) is None:
                continue
            if channel.token == token:
                entities.append(self._entity(request, channel))
            elif across_tokens:
                # other tokens' channels are shown to exist, without their ids
                entities.append({"expires": self._entity(request, channel)["expires"]})
        return web.json_response({"entities": entities}, dumps=dumps)

    async def _head_channel(self, request: web.Request) -> web.Response:
        return web.Response(status=200 if self._owned(request) is not None else 404)

    async def _get_subscriptions(self, request: web.Request) -> web.Response:
        channel = self._owned(request)
        if channel is None:
            raise not_found("Channel", request.match_info["channelId"])
        return self._subscriptions_response(channel, [])

    async def _post_subscriptions(self, request: web.Request) -> web.Response:
        return await self._change_subscriptions(request, replace=False)

    async def _put_subscriptions(self, request: web.Request) -> web.Response:
        return await self._change_subscriptions(request, replace=True)

    async def _delete_subscriptions(self, request: web.Request) -> web.Response:
        channel = self._owned(request)
        if channel is None:
            raise not_found("Channel", request.match_info["channelId"])
        self._registry.clear_subscriptions(channel)
        self._update_sessions(channel.id)
        return web.Response(status=204)

    async def _change_subscriptions(self, request: web.Request, *, replace: bool) -> web.Response:
        channel = self._owned(request)
        if channel is None:
            raise not_found("Channel", request.match_info["channelId"])
        body = await json_body(request)
        if not isinstance(body, list) or not all(
            isinstance(item, dict) and isinstance(item.get("id"), str) for item in body
        ):
            raise bad_request('The body must be a list of topics: [{"id": "<topic>"}]')
        checks = [check_topic(item["id"]) for item in body]
        try:
            self._registry.set_subscriptions(channel, checks, replace=replace)
        except TopicLimitExceeded as exc:
            raise bad_request(str(exc)) from None
        self._registry.extend(channel)
        self._schedule_expiry(channel)
        self._update_sessions(channel.id)
        rejected = [c for c in checks if not c.permitted]
        logger.debug(
            "sandbox notifications: channel %s has %d topics (%d rejected)",
            channel.id,
            channel.topic_count(),
            len(rejected),
        )
        return self._subscriptions_response(channel, rejected)

    @staticmethod
    def _subscriptions_response(channel: Channel, rejected: Sequence[Any]) -> web.Response:
        entities = [check.as_entity() for check in channel.subscriptions.values()]
        entities.extend(check.as_entity() for check in rejected)
        return web.json_response({"entities": entities}, dumps=dumps)

    # ------------------------------------------------------------------ socket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        channel_id = request.match_info["channelId"]
        channel = None if self._closed else self._live(channel_id)
        if channel is None:
            raise not_found("Channel", channel_id)
        ws = web.WebSocketResponse(timeout=CLOSE_TIMEOUT, max_msg_size=64 * 1024)
        if not ws.can_prepare(request).ok:
            raise bad_request("Expected a WebSocket upgrade request")
        await ws.prepare(request)
        if self._registry.get(channel_id) is not channel:  # gone while upgrading
            await ws.close(code=1000, message=b"channel is gone")
            return ws
        socket = ChannelSocket(ws, channel_id, self.heartbeat_interval)
        previous = self._sockets.get(channel_id)
        self._sockets[channel_id] = socket
        channel.connected = True
        self._update_sessions(channel_id)
        if previous is not None:
            logger.info("sandbox notifications: channel %s: new socket displaces old", channel_id)
            previous.close(1000, "Replaced by a new connection to this channel")
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._on_client_text(socket, message.data)
        finally:
            self._detach(socket)
            await socket.finish()
        return ws

    def _on_client_text(self, socket: ChannelSocket, data: str) -> None:
        try:
            message = json.loads(data)
        except (ValueError, RecursionError):  # not JSON, or nested too deeply to parse
            logger.debug("notification socket %s: ignored non-JSON text", socket.channel_id)
            return
        if isinstance(message, dict) and message.get("message") == "ping":
            socket.send(PONG_TEXT)
        else:
            logger.debug("notification socket %s: ignored client message", socket.channel_id)

    def _detach(self, socket: ChannelSocket) -> None:
        """Stop delivering to ``socket``; its channel counts as unconnected from now on."""
        if self._sockets.get(socket.channel_id) is socket:
            del self._sockets[socket.channel_id]
            self._mark_connected(socket.channel_id)
            self._update_sessions(socket.channel_id)

    def _update_sessions(self, channel_id: str) -> None:
        """Recount the sessions a channel holds (after a connect, detach or topic change)."""
        channel = self._registry.get(channel_id)
        if channel is not None and channel_id in self._sockets:
            new = frozenset(session_users(channel.single_topics()))
        else:
            new = frozenset()
        self._set_holder(channel_id, new)

    def streaming_session(self, key: str, channel_id: str, user_id: str | None) -> None:
        """A streaming session ``key`` on ``channel_id`` is bound as ``user_id`` (an agent
        desktop session of that user, whatever it subscribes to), or has ended (``None``).
        Counted with the JSON channel's sessions: the platform reaction sees one count per
        user. A channel with a bound session counts as connected (evicted last)."""
        if user_id:
            self._streaming_channels[key] = channel_id
        else:
            self._streaming_channels.pop(key, None)
        self._mark_connected(channel_id)
        self._set_holder(f"xmpp {key}", frozenset((user_id,)) if user_id else frozenset())

    def _mark_connected(self, channel_id: str) -> None:
        channel = self._registry.get(channel_id)
        if channel is not None:
            channel.connected = channel_id in self._sockets or (
                channel_id in self._streaming_channels.values()
            )

    def _set_holder(self, key: str, new: frozenset[str]) -> None:
        """Record the users whose session ``key`` (a JSON socket's channel id, or a streaming
        session) holds now, and tell the listener whose first session started or last ended."""
        old = self._channel_sessions.pop(key, frozenset())
        if new:
            self._channel_sessions[key] = new
        if new == old:
            return
        started: list[str] = []
        ended: list[str] = []
        for user_id in sorted(old - new):
            count = self._session_counts.get(user_id, 0) - 1
            if count > 0:
                self._session_counts[user_id] = count
            else:
                self._session_counts.pop(user_id, None)
                ended.append(user_id)
        for user_id in sorted(new - old):
            count = self._session_counts.get(user_id, 0) + 1
            self._session_counts[user_id] = count
            if count == 1:
                started.append(user_id)
        listener = self.session_listener
        if listener is None or self._closed:
            return
        for user_id in ended:
            logger.debug("sandbox notifications: %s has no session any more", user_id)
            listener.session_ended(user_id)
        for user_id in started:
            logger.debug("sandbox notifications: %s has a session", user_id)
            listener.session_started(user_id)

    def sessions(self) -> dict[str, int]:
        """Users holding a session, with the number of session sockets (JSON and streaming)
        each."""
        return dict(sorted(self._session_counts.items()))

    # ------------------------------------------------------------------ streaming service

    def channel_of(self, channel_id: str, client_id: str) -> Channel | None:
        """The live channel ``channel_id`` if ``client_id`` owns it (``streaming.py``)."""
        channel = self._live(channel_id)
        return channel if channel is not None and channel.client_id == client_id else None

    def subscribers(self, topic: str) -> frozenset[str]:
        """Ids of the channels subscribed to ``topic``, through REST or XMPP pubsub."""
        return frozenset(self._registry.subscribers(topic))

    def add_subscription(self, channel: Channel, topic: str) -> TopicCheck:
        """Subscribe ``channel`` to one more topic, as an XMPP pubsub subscribe does; the
        check says whether it was permitted (:class:`TopicLimitExceeded` past the limit)."""
        check = check_topic(topic)
        if check.permitted:
            self._registry.set_subscriptions(channel, [check], replace=False)
            self._registry.extend(channel)
            self._schedule_expiry(channel)
            self._update_sessions(channel.id)
        return check

    def remove_subscription(self, channel: Channel, topic: str) -> bool:
        """Unsubscribe ``channel`` from one topic (XMPP pubsub unsubscribe); ``True`` if it
        was subscribed."""
        if topic not in channel.subscriptions:
            return False
        remaining = [c for key, c in channel.subscriptions.items() if key != topic]
        self._registry.set_subscriptions(channel, remaining, replace=True)
        self._update_sessions(channel.id)
        return True

    # ------------------------------------------------------------------ lifecycle

    def _schedule_expiry(self, channel: Channel) -> None:
        timer = self._timers.pop(channel.id, None)
        if timer is not None:
            timer.cancel()
        delay = max(0.0, channel.deadline - self.clock.monotonic())
        channel_id = channel.id
        self._timers[channel_id] = self.clock.call_later(
            delay, lambda: self._on_expiry(channel_id)
        )

    def _on_expiry(self, channel_id: str) -> None:
        self._timers.pop(channel_id, None)
        channel = self._registry.get(channel_id)
        if channel is None:
            return
        if channel.deadline > self.clock.monotonic():  # extended since: wait again
            self._schedule_expiry(channel)
            return
        logger.info("sandbox notifications: channel %s expired", channel_id)
        self._drop(channel, "expired")

    def _drop(self, channel: Channel, reason: str, *, already_removed: bool = False) -> None:
        """Forget a channel; its socket gets ``no_longer_subscribed`` and is closed, and so is
        its streaming session (the same envelope as a pubsub event, then ``<close/>``)."""
        if not already_removed:
            self._registry.remove(channel.id)
        timer = self._timers.pop(channel.id, None)
        if timer is not None:
            timer.cancel()
        text = (
            "The channel reached its lifetime"
            if reason == "expired"
            else "The channel was replaced by a newer channel over the channel limit"
        )
        envelope = system_message(channel.id, "no_longer_subscribed", reason, text)
        if self.streaming is not None:
            self.streaming.channel_gone(
                channel.id, f"v2.system.no_longer_subscribed.{channel.id}", envelope
            )
        socket = self._sockets.get(channel.id)
        if socket is None:
            return
        self._detach(socket)
        socket.send(envelope)
        socket.close(1000, f"channel {reason}")

    # ------------------------------------------------------------------ events

    def _on_event(self, topic: str, body: dict[str, Any]) -> None:
        """EventBus listener: queue the event on every socket subscribed to ``topic``."""
        if self._closed:
            return
        channel_ids = self._registry.subscribers(topic)
        if not channel_ids:
            return
        text: str | None = None
        slow: list[ChannelSocket] = []
        for channel_id in channel_ids:
            socket = self._sockets.get(channel_id)
            if socket is None:
                continue
            if text is None:
                text = dumps(
                    {
                        "topicName": topic,
                        "version": "2",
                        "eventBody": body,
                        "metadata": {"CorrelationId": str(uuid.uuid4())},
                    }
                )
            if socket.send(text):
                self.events_delivered += 1
                if socket.backlog() > MAX_BACKLOG:
                    slow.append(socket)
        for socket in slow:
            logger.warning(
                "sandbox notifications: socket of channel %s has %d undelivered messages; "
                "closing it",
                socket.channel_id,
                socket.backlog(),
            )
            self._detach(socket)
            socket.close(1008, "Too many undelivered messages")

    # ------------------------------------------------------------------ faults

    def _select(
        self, user_ids: Sequence[str] | None, sessions_only: bool = False
    ) -> list[ChannelSocket]:
        if user_ids is None and not sessions_only:
            return list(self._sockets.values())
        wanted = set(user_ids) if user_ids is not None else None
        selected: list[ChannelSocket] = []
        for channel_id, socket in self._sockets.items():
            channel = self._registry.get(channel_id)
            if channel is None:
                continue
            users = (
                session_users(channel.single_topics()) if sessions_only else channel.user_ids()
            )
            if users and (wanted is None or users & wanted):
                selected.append(socket)
        return selected

    async def close_sockets(
        self,
        code: int = 1000,
        user_ids: Sequence[str] | None = None,
        sessions_only: bool = False,
    ) -> int:
        """:meth:`close_sessions`; returns how many sockets (JSON and streaming) were closed."""
        return (await self.close_sessions(code, user_ids, sessions_only))["closed"]

    async def close_sessions(
        self,
        code: int = 1000,
        user_ids: Sequence[str] | None = None,
        sessions_only: bool = False,
    ) -> dict[str, int]:
        """Close connected sockets (all, or those subscribed to these users) with ``code``,
        and the streaming service's live sessions (all, or those of these users).

        ``sessions_only``: only agent desktop sessions (channels subscribed to a user's
        conversations, ``sessions.py``), not observers watching presence or routing status; a
        streaming session always counts as a desktop session. A streaming session gets a bare
        WebSocket close with ``code`` (no stream error: the "socket dropped" fault). The
        channels stay: a client can reconnect to the same ``connectUri`` or channel id, as
        after a network drop. Returns ``{"closed": <all>, "streaming": <streaming ones>}``.
        """
        problem = close_code_problem(code)
        if problem is not None:
            raise ValueError(f"code {code!r}: {problem}")
        sockets = self._select(user_ids, sessions_only)
        for socket in sockets:
            self._detach(socket)
        waits = [socket.close(code, "Closed by the sandbox") for socket in sockets]
        streamed = 0
        if self.streaming is not None:  # its closes go out while the sockets' do
            streamed = await self.streaming.close_sessions(code, user_ids, sessions_only)
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_TIMEOUT)
        logger.info(
            "sandbox notifications: closed %d socket(s) and %d streaming session(s) with code %d",
            len(sockets), streamed, code,
        )
        return {"closed": len(sockets) + streamed, "streaming": streamed}

    async def send_socket_closing(self, user_ids: Sequence[str] | None = None) -> int:
        """Send ``v2.system.socket_closing`` to connected sockets, and the XEP-0051 connection
        transfer it maps to on streaming sessions; returns how many got it."""
        count = 0
        for socket in self._select(user_ids):
            text = system_message(
                socket.channel_id,
                "socket_closing",
                "maintenance",
                "This socket will close for maintenance; open a new connection within a minute",
            )
            count += socket.send(text)
        if self.streaming is not None:
            count += self.streaming.send_connection_transfer(user_ids)
        logger.info("sandbox notifications: socket_closing sent to %d socket(s)", count)
        return count

    def tokens_revoked(self, tokens: list[str]) -> int:
        """Token store listener: ``v2.system.token_revoked.<channelId>`` to the socket of each
        channel created with one of ``tokens``; returns how many got it.

        The socket stays open and the channel stays (an assumption: the platform's
        documentation names the message, not what follows it; ``docs/sandbox-notifications.md``).
        """
        keys = {token_key(f"Bearer {token}") for token in tokens}
        count = 0
        for channel_id, socket in list(self._sockets.items()):
            channel = self._registry.get(channel_id)
            if channel is None or channel.token not in keys:
                continue
            count += socket.send(
                system_message(
                    channel_id, "token_revoked", "revoked",
                    "The access token that created this channel was revoked",
                )
            )
        if count:
            logger.info("sandbox notifications: token_revoked sent to %d socket(s)", count)
        return count

    async def shutdown(self) -> None:
        """Close every socket (1001, going away), forget every channel, stop the timers."""
        self._closed = True
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        sockets = list(self._sockets.values())
        for socket in sockets:
            self._detach(socket)
        waits = [socket.close(1001, "Server shutting down") for socket in sockets]
        if waits:
            await asyncio.wait(waits, timeout=CLOSE_TIMEOUT)
        for channel in self._registry:
            self._registry.remove(channel.id)

    def summary(self) -> dict[str, Any]:
        """Channels, connected sockets and topic subscriptions, for the admin state view."""
        return {
            "channels": len(self._registry),
            "connected": len(self._sockets),
            "subscriptions": self._registry.subscription_count(),
            "sessions": len(self._session_counts),
            "eventsDelivered": self.events_delivered,
        }
