"""The sandbox's streaming service: XMPP over WebSocket (RFC 7395) at ``/stream/channels/{id}``.

This is the channel the Genesys Cloud agent desktop signals over, through the official
``genesys-cloud-streaming-client`` (``docs/sandbox-streaming.md`` lists what is served and the
client source each behaviour comes from). A session goes:

1. the client creates a channel with ``POST /api/v2/notifications/channels?connectionType=
   streaming`` (the notification hub's channel: the same registry, limits and REST
   subscriptions) and reads its JID from ``GET /api/v2/users/me`` (``chat.jabberId``);
2. WebSocket upgrade with the ``xmpp`` subprotocol; ``<open/>`` → ``<open/>`` + features;
3. SASL ``PLAIN`` with the bare JID as user name and ``authKey:<user access token>`` as
   password; a bad token, a token of another user or of a client that does not own the channel
   → ``<failure><not-authorized/></failure>`` (the client's non-retryable ``invalid_token``);
4. stream restart, resource bind, (optional) session;
5. IQs: XEP-0199 ping answered, XEP-0215 external services (no TURN/STUN: an empty list),
   XEP-0060 pubsub subscribe/unsubscribe on ``notifications.<apiHost>``: a topic is added to the
   channel (as a REST subscription is), ``enable.server.side.pings`` turns on server pings
   every ``ping_interval`` seconds (the client drops a socket after 35 s of silence);
6. every event of the sandbox's :class:`~chaosgenesys.sandbox.events.EventBus` on a topic the
   channel is subscribed to goes out as a pubsub event message whose ``<json
   xmlns="urn:xmpp:json:0">`` item holds the same envelope the JSON channel sends.

Faults reach these sessions through the notification hub (this service is its
:class:`~chaosgenesys.sandbox.notifications.StreamingSessions`):

- ``close_notification_sockets`` closes a session's WebSocket with its code, bare (no stream
  error, no ``<close/>``): the socket dropped; the channel stays for the client's reconnect;
- ``send_socket_closing`` sends the XEP-0051 connection transfer the client listens for
  (``connection-transfer.ts``); a session still open :data:`SOCKET_CLOSING_GRACE` seconds
  later is closed by the server;
- a channel that expires or is evicted sends the pubsub event
  ``v2.system.no_longer_subscribed.<channelId>`` (the JSON channel's envelope), then
  ``<close/>``; the client then reconnects hard (``client.ts`` ``handleNoLongerSubscribed``);
- revoking the token a session authenticated with ends it with the stream error
  ``not-authorized``; expiry ends nothing (the next SASL with that token fails);
- a bound session is an agent desktop session of its user for the platform reaction
  (:meth:`~chaosgenesys.sandbox.notifications.NotificationHub.streaming_session`).

Frames are parsed by ``xmpp.py`` (no DTDs, no entities, size and depth bounded). Malformed XML,
forbidden XML, oversize frames and unknown top-level elements get a stream error and the
session's socket is closed; no other session is touched. Unknown IQ payloads get the stanza
error ``service-unavailable``, as RFC 6120 asks.

Why one module of about 570 lines: it is the protocol of a session from ``<open/>`` to its end,
and every handler (open, SASL, bind, IQ, pubsub, the hub's faults, the bus's events) reads and
changes the same session and its channel; a session's own state is ``stream_session.py``
(its writer ``socket_writer.py``), the frames' parsing and building ``xmpp.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import itertools
import json
import logging
import uuid
from collections.abc import Sequence
from typing import Any

import aiohttp
from aiohttp import web

from chaosgenesys.sandbox.channels import Channel, TopicLimitExceeded
from chaosgenesys.sandbox.errors import bad_request, not_found
from chaosgenesys.sandbox.events import EventBus
from chaosgenesys.sandbox.notifications import MAX_BACKLOG, NotificationHub
from chaosgenesys.sandbox.socket_writer import CLOSE_TIMEOUT
from chaosgenesys.sandbox.state import SandboxState
from chaosgenesys.sandbox.stream_session import StreamSession, stream_error
from chaosgenesys.sandbox.tokens import TokenRecord
from chaosgenesys.sandbox.xmpp import (
    NS_BIND,
    NS_CLIENT,
    NS_EXTDISCO,
    NS_FRAMING,
    NS_JSON,
    NS_PING,
    NS_PUBSUB,
    NS_PUBSUB_EVENT,
    NS_SASL,
    NS_SESSION,
    NS_STANZAS,
    NS_STREAM,
    Element,
    XMLRefused,
    element,
    parse_frame,
)

__all__ = [
    "CONNECTION_TRANSFER_NS",
    "JID_DOMAIN",
    "SERVER_PINGS_NODE",
    "SOCKET_CLOSING_GRACE",
    "StreamingService",
]

logger = logging.getLogger("chaostoolkit")

#: The domain of the users' JIDs (``chat.jabberId`` of ``views.user``: ``<userId>@<domain>``).
JID_DOMAIN = "sandbox.invalid"
#: The pubsub node the client subscribes to for server-side pings (client.ts).
SERVER_PINGS_NODE = "enable.server.side.pings"
#: XEP-0051 connection transfer, what the client maps ``socket_closing`` to
#: (``stanza-definitions/xep0051.ts``).
CONNECTION_TRANSFER_NS = "urn:xmpp:cxfr"
#: Seconds a session told ``socket_closing`` may stay before the server closes it (the
#: platform's "up to a minute"; read when the transfer is sent).
SOCKET_CLOSING_GRACE = 60.0
#: The WebSocket layer's own hard limit; frames above ``xmpp.MAX_FRAME_BYTES`` but below this
#: get a ``policy-violation`` stream error, frames above it a 1009 close from aiohttp.
_WS_MAX_MESSAGE = 1024 * 1024

class StreamingService:
    """The ``/stream/channels/{channelId}`` XMPP endpoint over the notification hub's channels.

    ``ping_interval`` (seconds, > 0) is the gap between server pings on sessions that asked for
    them (``enable.server.side.pings``); it must stay under the client's 35 s stanza timeout.
    ``None`` (the default) follows the hub's ``heartbeat_interval`` (30 s unless the sandbox was
    started with another one), so one setting paces the liveness signal of both channels.
    """

    def __init__(
        self,
        state: SandboxState,
        hub: NotificationHub,
        events: EventBus,
        *,
        ping_interval: float | None = None,
    ) -> None:
        if ping_interval is not None and ping_interval <= 0:
            raise ValueError(f"ping_interval must be > 0, not {ping_interval}")
        self.state = state
        self.hub = hub
        self.ping_interval = ping_interval
        self._sessions: dict[str, StreamSession] = {}
        self._all: set[StreamSession] = set()
        self._closed = False
        self.events_delivered = 0
        events.subscribe(self._on_event)
        hub.streaming = self
        state.tokens.add_revocation_listener(self._tokens_revoked)

    def add_routes(self, app: web.Application) -> None:
        """Register the WebSocket route and the shutdown hook."""
        app.router.add_get("/stream/channels/{channelId}", self._websocket, allow_head=False)
        app.on_shutdown.append(self._shutdown)

    # ------------------------------------------------------------------ socket

    async def _websocket(self, request: web.Request) -> web.StreamResponse:
        channel_id = request.match_info["channelId"]
        if self._closed or not self._owner(channel_id):
            raise not_found("Channel", channel_id)
        ws = web.WebSocketResponse(
            protocols=("xmpp",), timeout=CLOSE_TIMEOUT, max_msg_size=_WS_MAX_MESSAGE
        )
        if not ws.can_prepare(request).ok:
            raise bad_request("Expected a WebSocket upgrade request")
        await ws.prepare(request)
        session = StreamSession(ws, channel_id, f"notifications.{request.host}")
        self._all.add(session)
        pinger = asyncio.get_running_loop().create_task(self._ping_loop(session))
        try:
            async for message in ws:
                if message.type is aiohttp.WSMsgType.TEXT:
                    self._on_frame(session, message.data)
                elif message.type is aiohttp.WSMsgType.BINARY:
                    session.end(stream_error("unsupported-encoding", "text frames only"))
                if session.closing:
                    break
        finally:
            pinger.cancel()
            if session.transfer_timer is not None:
                session.transfer_timer.cancel()
            self._detach(session)
            await session.finish()
        return ws

    def _owner(self, channel_id: str) -> str:
        """The OAuth client that owns a channel ('' if unknown): the upgrade itself carries no
        token; SASL checks the token against this owner."""
        for client_id in self.state.tokens.clients:
            if self.hub.channel_of(channel_id, client_id) is not None:
                return client_id
        return ""

    def _detach(self, session: StreamSession) -> None:
        """Stop delivering to ``session``; it is no agent session any more."""
        self._all.discard(session)
        if self._sessions.get(session.channel_id) is session:
            del self._sessions[session.channel_id]
        if session.bound:
            self.hub.streaming_session(session.stream_id, session.channel_id, None)

    async def _ping_loop(self, session: StreamSession) -> None:
        while not session.closing:
            interval = self.ping_interval or self.hub.heartbeat_interval
            await asyncio.sleep(interval if interval > 0 else 30.0)
            if session.server_pings and session.full_jid is not None:
                session.send(
                    element(
                        "iq",
                        {"xmlns": NS_CLIENT, "type": "get", "id": f"ping-{uuid.uuid4().hex[:12]}",
                         "from": JID_DOMAIN, "to": session.full_jid},
                        element("ping", {"xmlns": NS_PING}),
                    )
                )

    # ------------------------------------------------------------------ protocol

    def _on_frame(self, session: StreamSession, frame: str) -> None:
        try:
            stanza = parse_frame(frame)
        except XMLRefused as exc:
            logger.info(
                "streaming session %s: %s (%s)", session.channel_id, exc.condition, exc.text
            )
            session.end(stream_error(exc.condition, exc.text))
            return
        if stanza.ns == NS_FRAMING and stanza.name == "open":
            self._on_open(session, stanza)
        elif stanza.ns == NS_FRAMING and stanza.name == "close":
            session.end()
        elif not session.opened:
            session.end(stream_error("not-authorized", "no <open/> yet"))
        elif stanza.ns == NS_SASL and stanza.name == "auth":
            self._on_auth(session, stanza)
        elif stanza.ns == NS_CLIENT and stanza.name in ("iq", "message", "presence"):
            if not session.authenticated:
                session.end(stream_error("not-authorized", "authenticate first"))
            elif stanza.name == "iq":
                self._on_iq(session, stanza)
            # messages and presence from the client are accepted and dropped
        else:
            session.end(
                stream_error(
                    "unsupported-stanza-type", f"unsupported element {stanza.name!r}"
                )
            )

    def _on_open(self, session: StreamSession, stanza: Element) -> None:
        if stanza.get("to") not in ("", JID_DOMAIN):
            session.end(
                stream_error("host-unknown", f"this service serves {JID_DOMAIN}, not the "
                              f"domain in the stream header")
            )
            return
        session.opened = True
        session.send(
            element(
                "open",
                {"xmlns": NS_FRAMING, "from": JID_DOMAIN, "id": session.stream_id,
                 "version": "1.0", "xml:lang": "en"},
            )
        )
        if not session.authenticated:
            features = element(
                "mechanisms", {"xmlns": NS_SASL}, element("mechanism", text="PLAIN")
            )
        else:
            features = element("bind", {"xmlns": NS_BIND}) + element(
                "session", {"xmlns": NS_SESSION}, element("optional")
            )
        session.send(element("stream:features", {"xmlns:stream": NS_STREAM}, features))

    def _on_auth(self, session: StreamSession, stanza: Element) -> None:
        def failure(condition: str) -> None:
            session.send(
                element("failure", {"xmlns": NS_SASL}, element(condition))
            )

        if session.authenticated:
            session.end(stream_error("policy-violation", "already authenticated"))
            return
        if stanza.get("mechanism") != "PLAIN":
            failure("invalid-mechanism")
            return
        try:
            decoded = base64.b64decode(stanza.text.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            failure("incorrect-encoding")
            return
        parts = decoded.split("\x00")
        if len(parts) != 3:
            failure("malformed-request")
            return
        _authzid, username, password = parts
        identity = self._authenticate(session.channel_id, username, password)
        if identity is None:
            logger.info("streaming session %s: SASL not-authorized", session.channel_id)
            failure("not-authorized")
            return
        session.token = identity
        user_id, session.client_id = identity.user_id or "", identity.client_id
        session.authenticated = True
        session.opened = False  # the client restarts the stream
        session.user_id = user_id
        session.bare_jid = f"{user_id}@{JID_DOMAIN}"
        session.send(element("success", {"xmlns": NS_SASL}))

    def _authenticate(self, channel_id: str, username: str, password: str) -> TokenRecord | None:
        """The token's record if ``password`` is ``authKey:<valid user token>`` of the user
        named by the JID ``username`` and the token's OAuth client owns the channel."""
        prefix = "authKey:"
        if not password.startswith(prefix):
            return None
        record = self.state.tokens.validate(password[len(prefix):])
        if record is None or record.user_id is None:
            return None
        if username != f"{record.user_id}@{JID_DOMAIN}" or record.user_id not in self.state.users:
            return None
        if self.hub.channel_of(channel_id, record.client_id) is None:
            return None
        return record

    def _on_iq(self, session: StreamSession, iq: Element) -> None:
        kind = iq.get("type")
        if kind in ("result", "error"):
            return  # answers to our pings
        iq_id = iq.get("id")
        payload = iq.children[0] if len(iq.children) == 1 else None

        def reply(*children: str) -> None:
            attrs = {"xmlns": NS_CLIENT, "type": "result", "id": iq_id}
            if iq.get("to"):
                attrs["from"] = iq.get("to")
            if session.full_jid:
                attrs["to"] = session.full_jid
            session.send(element("iq", attrs, *children))

        def error(condition: str, error_type: str = "cancel") -> None:
            attrs = {"xmlns": NS_CLIENT, "type": "error", "id": iq_id}
            if iq.get("to"):
                attrs["from"] = iq.get("to")
            session.send(
                element(
                    "iq", attrs,
                    element("error", {"type": error_type},
                            element(condition, {"xmlns": NS_STANZAS})),
                )
            )

        if kind not in ("get", "set") or not iq_id or payload is None:
            error("bad-request", "modify")
            return
        if payload.ns == NS_BIND and payload.name == "bind" and kind == "set":
            if session.bound:
                error("not-allowed")
                return
            resource_el = payload.child("resource", NS_BIND)
            resource = resource_el.text.strip() if resource_el is not None else ""
            resource = resource or uuid.uuid4().hex
            session.full_jid = f"{session.bare_jid}/{resource}"
            session.bound = True
            self._attach(session)
            reply(element("bind", {"xmlns": NS_BIND}, element("jid", text=session.full_jid)))
        elif not session.bound:
            error("not-authorized", "auth")
        elif (payload.ns, payload.name) in ((NS_SESSION, "session"), (NS_PING, "ping")):
            reply()
        elif payload.ns == NS_EXTDISCO and payload.name == "services":
            attrs = {"xmlns": NS_EXTDISCO}
            if payload.get("type"):
                attrs["type"] = payload.get("type")
            reply(element("services", attrs))
        elif payload.ns == NS_PUBSUB and payload.name == "pubsub" and kind == "set":
            self._on_pubsub(session, payload, reply, error)
        else:
            error("service-unavailable")

    def _on_pubsub(self, session: StreamSession, pubsub: Element, reply: Any, error: Any) -> None:
        channel = self._channel(session)
        if channel is None:
            error("item-not-found")
            return
        subscribe = pubsub.child("subscribe", NS_PUBSUB)
        unsubscribe = pubsub.child("unsubscribe", NS_PUBSUB)
        if subscribe is not None:
            node = subscribe.get("node")
            if node == SERVER_PINGS_NODE:
                session.server_pings = True
            else:
                try:
                    check = self.hub.add_subscription(channel, node)
                except TopicLimitExceeded:
                    error("policy-violation", "wait")
                    return
                if not check.permitted:
                    error("item-not-found")
                    return
            reply(
                element(
                    "pubsub", {"xmlns": NS_PUBSUB},
                    element("subscription", {"node": node, "jid": subscribe.get("jid"),
                                             "subscription": "subscribed"}),
                )
            )
        elif unsubscribe is not None:
            node = unsubscribe.get("node")
            if node == SERVER_PINGS_NODE:
                session.server_pings = False
            else:
                self.hub.remove_subscription(channel, node)
            reply()
        else:
            error("feature-not-implemented")

    def _channel(self, session: StreamSession) -> Channel | None:
        if session.client_id is None:
            return None
        return self.hub.channel_of(session.channel_id, session.client_id)

    def _attach(self, session: StreamSession) -> None:
        previous = self._sessions.get(session.channel_id)
        self._sessions[session.channel_id] = session
        self.hub.streaming_session(session.stream_id, session.channel_id, session.user_id)
        if previous is not None and previous is not session:
            logger.info("streaming: channel %s: new session displaces old", session.channel_id)
            self._detach(previous)
            previous.end(stream_error("conflict", "Replaced by a new connection"))

    # ------------------------------------------------------------------ faults

    def _select(
        self, user_ids: Sequence[str] | None, sessions_only: bool = False
    ) -> list[StreamSession]:
        """Live sessions: all, or (with ``user_ids`` or ``sessions_only``) the authenticated
        ones of those users (any user with ``sessions_only`` alone)."""
        live = [s for s in self._all if not s.closing]
        if user_ids is None and not sessions_only:
            return live
        wanted = set(user_ids) if user_ids is not None else None
        return [
            s for s in live
            if s.user_id is not None and (wanted is None or s.user_id in wanted)
        ]

    async def close_sessions(
        self, code: int, user_ids: Sequence[str] | None, sessions_only: bool
    ) -> int:
        """Close the selected sessions' WebSockets with ``code``, bare: no stream error, no
        ``<close/>`` (a streaming session is always a desktop session for
        ``sessions_only``); the channels stay. Returns how many."""
        sessions = self._select(user_ids, sessions_only)
        for session in sessions:
            self._detach(session)
            session.close(code, "Closed by the sandbox")  # bare: no <close/>
        if sessions:
            await asyncio.gather(*(s.written() for s in sessions))
        return len(sessions)

    def send_connection_transfer(self, user_ids: Sequence[str] | None) -> int:
        """``socket_closing`` as the XEP-0051 connection transfer the client listens for, to
        the selected bound sessions; each is closed if still open ``SOCKET_CLOSING_GRACE``
        seconds later (on the sandbox's clock). Returns how many got it."""
        clock = self.state.clock
        grace = SOCKET_CLOSING_GRACE
        count = 0
        for session in self._select(user_ids):
            if session.full_jid is None:
                continue
            sent = session.send(
                element(
                    "iq",
                    {"xmlns": NS_CLIENT, "type": "set", "id": f"cxfr-{uuid.uuid4().hex[:12]}",
                     "to": session.full_jid, "from": JID_DOMAIN},
                    element("query", {"xmlns": CONNECTION_TRANSFER_NS}),
                )
            )
            if not sent:
                continue
            count += 1
            if session.transfer_timer is None:
                session.transfer_timer = clock.call_later(
                    grace, functools.partial(self._transfer_overdue, session)
                )
        return count

    def _transfer_overdue(self, session: StreamSession) -> None:
        session.transfer_timer = None
        if session.closing or session not in self._all:
            return
        logger.info(
            "streaming: channel %s: still connected %.0f s after socket_closing; closing it",
            session.channel_id, SOCKET_CLOSING_GRACE,
        )
        self._detach(session)
        session.end()

    def channel_gone(self, channel_id: str, topic: str, envelope: str) -> None:
        """The channel expired or was evicted: its sessions get the pubsub event ``topic``
        (``v2.system.no_longer_subscribed.<channelId>``) carrying ``envelope``, then
        ``<close/>`` and the WebSocket close."""
        for session in [s for s in self._all if s.channel_id == channel_id]:
            self._detach(session)
            if session.full_jid is None:
                session.end()
                continue
            session.end(self._pubsub_message(session, topic, self._json_payload(envelope)))

    def _tokens_revoked(self, tokens: list[str]) -> None:
        """Token store listener: every session that authenticated with a token revoked now
        ends with the stream error ``not-authorized``; its reconnect with the same token then
        meets the SASL failure ``not-authorized`` (the client's ``invalid_token``)."""
        for session in list(self._all):
            if session.token is not None and session.token.revoked and not session.closing:
                logger.info("streaming: channel %s: token revoked; ending the session",
                            session.channel_id)
                self._detach(session)
                session.end(stream_error("not-authorized", "The access token was revoked"))

    @staticmethod
    def _json_payload(envelope: str) -> str:
        return element("json", {"xmlns": NS_JSON}, text=envelope)

    @staticmethod
    def _pubsub_event(topic: str, payload: str) -> str:
        """The ``<event>`` of one pubsub item: the same for every session it goes to."""
        return element(
            "event", {"xmlns": NS_PUBSUB_EVENT},
            element("items", {"node": topic},
                    element("item", {"id": uuid.uuid4().hex}, payload)),
        )

    @classmethod
    def _pubsub_message(cls, session: StreamSession, topic: str, payload: str) -> str:
        return session.message(uuid.uuid4().hex, cls._pubsub_event(topic, payload))

    # ------------------------------------------------------------------ events

    def _on_event(self, topic: str, body: dict[str, Any]) -> None:
        """EventBus listener: a pubsub event message to every session subscribed to ``topic``.

        The event (its JSON envelope, item and escaping) is made once; each session gets it
        in its own ``<message>``, whose id is the event's id and a count."""
        if self._closed or not self._sessions:
            return
        event: str | None = None
        event_id = ""
        count = itertools.count(1)
        slow: list[StreamSession] = []
        for channel_id in self.hub.subscribers(topic):
            session = self._sessions.get(channel_id)
            if session is None or session.full_jid is None:
                continue
            if event is None:
                event_id = uuid.uuid4().hex
                event = self._pubsub_event(
                    topic,
                    self._json_payload(
                        json.dumps(
                            {"topicName": topic, "version": "2", "eventBody": body,
                             "metadata": {"CorrelationId": str(uuid.uuid4())}},
                            separators=(",", ":"),
                        )
                    ),
                )
            if session.send(session.message(f"{event_id}-{next(count)}", event)):
                self.events_delivered += 1
                if session.backlog() > MAX_BACKLOG:
                    slow.append(session)
        for session in slow:
            self._detach(session)
            session.end(stream_error("policy-violation", "too many undelivered stanzas"))

    # ------------------------------------------------------------------ lifecycle

    async def _shutdown(self, _app: web.Application) -> None:
        self._closed = True
        sessions = list(self._all)
        for session in sessions:
            session.end(stream_error("system-shutdown", "Server shutting down"))
        if sessions:
            await asyncio.gather(*(s.finish() for s in sessions), return_exceptions=True)

    def summary(self) -> dict[str, Any]:
        """Sessions and deliveries, for the admin state view."""
        return {"sessions": len(self._sessions), "eventsDelivered": self.events_delivered}
