"""An external observer of users' presence and routing status over the notifications WebSocket.

:class:`EventObserver` is what ``chaosgenesys.notifications.probes.watch_events`` runs. It is
an observer with **its own** notification channel, independent of the agent desktop it watches
(the guide's "external validator": a hung desktop cannot report itself healthy):

1. it creates a channel through the platform client (``POST /api/v2/notifications/channels``),
   subscribes it to the users' topics (``PUT .../subscriptions``) and connects to its
   ``connectUri`` with ``websocket-client``;
2. it reads each user's presence and routing status (``GET /api/v2/users/{id}?expand=...``) as
   the starting point, then follows the events; events older than what it already knows (by
   their ``modifiedDate`` / ``startTime``) are not counted as transitions;
3. when its socket drops (a close frame, a reset, or silence: no heartbeat and no pong), it
   reconnects with exponential backoff and jitter (250 ms to 5 s, factor 2, jitter 0.2: the
   streaming client's older figures, sooner than today's desktop so the observer misses
   little), to the same channel while it exists, else to a new one, and
   reads the users again (changes missed meanwhile become ``resync`` transitions);
4. it stops at the deadline, whatever it is doing: the REST work of a reconnect happens on a
   helper thread, so a slow API cannot stretch the observation;
5. the first connection goes through that same helper: a transient failure (a transport
   error, 408, 429, 5xx, a socket refused by a fault) is retried with the same backoff within
   the duration, and the time until it succeeds is a blind window; a permanent refusal fails.

The figures: transitions with timestamps, seconds not On Queue per user and each stretch not
On Queue, the observer's own disconnects (code, reason, time to reconnect) and blind windows,
heartbeats received and missed (the interval is given, or learnt as the median gap between
heartbeats), and event counts per topic. A ``timeline`` callable, when given, receives the
figures every second and at the end (``chaosgenesys.notifications.timeline`` writes them).

This module is the observation itself: the main loop, the connector and reader threads, what
each message changes. The channel's REST calls and socket are in ``observer_channel``, what
the observer records in ``observer_records``, and the figures it returns in
``observer_figures`` (a mixin of :class:`EventObserver`).
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import websocket
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.agent.backoff import Backoff
from chaosgenesys.notifications.observer_channel import (
    ChannelGone,
    Refusal,
    close_details,
    open_socket,
    permanent,
    read_users,
    shutdown_socket,
    subscribe,
)
from chaosgenesys.notifications.observer_figures import ObserverFigures
from chaosgenesys.notifications.observer_records import (
    Connection,
    Disconnect,
    Tracked,
    WatchedUser,
    is_on_queue,
    parse_time,
    presence_of,
)

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = ["DEFAULT_TOPICS", "EventObserver", "topic_names"]

logger = logging.getLogger("chaostoolkit")

#: What ``watch_events`` subscribes to per user unless told otherwise.
DEFAULT_TOPICS: tuple[str, ...] = ("presence", "routingStatus")

#: The observer's reconnect backoff (the shared :class:`Backoff`, with an observer's figures:
#: it reconnects sooner than a desktop so that it misses as little as possible).
BACKOFF_INITIAL = 0.25
BACKOFF_MAX = 5.0
BACKOFF_FACTOR = 2.0
BACKOFF_JITTER = 0.2
#: Without a known heartbeat interval, the socket is declared dead after this much silence.
DEFAULT_SILENCE_LIMIT = 75.0
#: Silence limit = this many heartbeat intervals (a ping is sent at half of it).
SILENCE_INTERVALS = 2.5
#: How long a single WebSocket handshake may take.
CONNECT_TIMEOUT = 10.0
#: Granularity of the main loop.
TICK = 0.1
#: How often the timeline (if any) is rewritten while observing.
TIMELINE_INTERVAL = 1.0

_PING = json.dumps({"message": "ping"})


def topic_names(user_ids: Sequence[str], topics: Sequence[str]) -> list[str]:
    """The single topic names for ``user_ids``: a suffix (``presence``) is made
    ``v2.users.{id}.presence``; a full name (``v2.routing.queues.Q.conversations``) is kept."""
    names: list[str] = []
    for topic in topics:
        if topic.startswith("v2."):
            names.append(topic)
        else:
            names.extend(f"v2.users.{user_id}.{topic}" for user_id in user_ids)
    return list(dict.fromkeys(names))


class EventObserver(ObserverFigures):
    """Watches ``user_ids`` for ``duration`` seconds; :meth:`run` returns the figures."""

    def __init__(
        self,
        client: GenesysClient,
        user_ids: Sequence[str],
        topics: Sequence[str] = DEFAULT_TOPICS,
        *,
        heartbeat_interval: float | None = None,
        timeline: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client = client
        self.user_ids = list(user_ids)
        self.topics = topic_names(self.user_ids, topics)
        self.given_interval = heartbeat_interval if heartbeat_interval else None
        self._clock = clock
        self._items: queue.Queue[tuple[Any, ...]] = queue.Queue()
        self._stop = threading.Event()
        self._serial = 0
        self._connection: Connection | None = None
        self._connections: list[Connection] = []
        self._connector: threading.Thread | None = None
        self._channel: dict[str, str] | None = None
        self._channels_used = 0
        self._users = {user_id: WatchedUser() for user_id in self.user_ids}
        self._disconnects: list[Disconnect] = []
        self._event_counts: Counter[str] = Counter()
        self._system: list[dict[str, Any]] = []
        self._errors: list[str] = []
        self._rejected: list[dict[str, Any]] = []
        self._pongs = 0
        self._resyncs = 0
        self._connect_failures = 0
        self._first_error = ""
        self._start = 0.0
        self._wall_start = 0.0
        self._first_connected: float | None = None
        #: Called with the figures so far (``complete`` False) every second, and at the end.
        self._timeline = timeline
        self._timeline_written = 0.0

    # ------------------------------------------------------------------ time
    def _now(self) -> float:
        return self._clock()

    # ------------------------------------------------------------------ run
    def run(self, duration: float) -> dict[str, Any]:
        """Observe for ``duration`` seconds (counted from this call) and return the figures.

        The first connection (channel, subscriptions, socket, first reads) is retried like a
        reconnect while its failures are transient (a transport error, 408, 429, 5xx, a socket
        refused by a fault), within ``duration``; the time until it succeeds is a blind window
        of the result. A permanent failure (unknown user, every topic rejected, another 4xx)
        raises ``ActivityFailed`` at once, and so does never connecting within ``duration``.
        After that, failures are recorded and the observer carries on.
        """
        self._start = self._now()
        self._wall_start = time.time()
        deadline = self._start + duration
        try:
            self._write_timeline(self._start, complete=False)  # the observation has begun
            self._start_connector(first=True)
            self._loop(deadline)
        finally:
            end = min(self._now(), deadline)
            self._shutdown(end)
            self._write_timeline(end, complete=True)
        if not self._connections:
            last = self._errors[-1] if self._errors else "no answer yet"
            raise ActivityFailed(
                f"watch_events could not connect to the notification service in {duration:g} s "
                f"({self._connect_failures} failed attempt(s)); last: {last}"
            )
        return self._result(end)

    def _loop(self, deadline: float) -> None:
        from chaosgenesys.progress import Progress

        progress = Progress("external observer", total=max(0.0, deadline - self._now()))

        def so_far() -> str:
            state = "connected" if self._connections else "not connected yet"
            return (f"{state}, {len(self._disconnects)} socket drop(s), "
                    f"{self._resyncs} resync(s)")

        while True:
            now = self._now()
            if now >= deadline:
                return
            progress.tick(so_far)
            try:
                item = self._items.get(timeout=min(TICK, deadline - now))
            except queue.Empty:
                item = None
            if item is not None:
                self._handle(item)
            self._watchdog()
            if self._now() - self._timeline_written >= TIMELINE_INTERVAL:
                self._write_timeline(self._now(), complete=False)

    def _write_timeline(self, at: float, *, complete: bool) -> None:
        if self._timeline is None:
            return
        self._timeline_written = at
        figures = self._result(at)
        figures["complete"] = complete
        figures["connected"] = bool(self._connections)
        try:
            self._timeline(figures)
        except Exception as error:  # the observation goes on; the reader will say it is missing
            message = f"timeline: {error}"
            if message not in self._errors:
                self._errors.append(message)

    # ------------------------------------------------------------------ REST
    def _new_channel(self) -> dict[str, str]:
        channel, self._rejected = subscribe(self.client, self.topics)
        if self._rejected and len(self._rejected) >= len(self.topics):
            raise Refusal(
                "every topic was rejected by the platform: "
                + "; ".join(f"{r['id']}: {r['reason']}" for r in self._rejected)
            )
        self._channel = channel
        self._channels_used += 1
        logger.debug("watch_events: channel %s with %d topics", channel["id"], len(self.topics))
        return self._channel

    # ------------------------------------------------------------------ sockets
    def _open(self, uri: str, timeout: float) -> websocket.WebSocket:
        """The channel's socket (:func:`open_socket`) with the platform client's TLS settings."""
        return open_socket(uri, timeout, self.client.settings.verify_tls)

    def _attach(self, ws: websocket.WebSocket, channel: dict[str, str], opened: float) -> None:
        self._serial += 1
        connection = Connection(self._serial, ws, channel["id"], opened, opened)
        self._connection = connection
        self._connections.append(connection)
        reader = threading.Thread(
            target=self._read,
            args=(connection.serial, ws),
            name=f"watch-events-reader-{connection.serial}",
            daemon=True,
        )
        reader.start()

    def _read(self, serial: int, ws: websocket.WebSocket) -> None:
        """Reader thread: every frame goes to the main loop's queue with its arrival time."""
        try:
            while True:
                opcode, frame = ws.recv_data_frame(True)
                now = self._now()
                if opcode == websocket.ABNF.OPCODE_TEXT:
                    data = frame.data.decode("utf-8", "replace")
                    self._items.put(("text", serial, now, data))
                elif opcode == websocket.ABNF.OPCODE_CLOSE:
                    code, reason = close_details(frame.data)
                    self._items.put(("closed", serial, now, code, reason))
                    return
        except (websocket.WebSocketException, OSError, ValueError) as error:
            self._items.put(("closed", serial, self._now(), None, f"socket error: {error}"))

    # ------------------------------------------------------------------ main loop items
    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "text":
            _, serial, at, data = item
            if self._connection is not None and serial == self._connection.serial:
                self._connection.last_message = at
                self._connection.pinged = False
                self._on_text(at, data)
        elif kind == "closed":
            _, serial, at, code, reason = item
            if self._connection is not None and serial == self._connection.serial:
                self._lost(at, code, reason)
        elif kind == "connected":
            _, ws, channel, opened, states, new_channel = item
            if self._stop.is_set():
                shutdown_socket(ws)
                return
            self._connector = None
            first = not self._connections
            self._attach(ws, channel, opened)
            if first:
                self._first_connected = opened
                self._apply_states(states, self._now(), source="initial")
                return
            for disconnect in self._disconnects:
                if disconnect.reconnected_at is None:
                    disconnect.reconnected_at = opened
                    disconnect.new_channel = new_channel
            self._resyncs += 1
            self._apply_states(states, self._now(), source="resync")
        elif kind == "error":
            _, message = item
            if not self._connections:
                self._connect_failures += 1
                self._first_error = self._first_error or message
            self._errors.append(message)
            del self._errors[: max(0, len(self._errors) - 50)]
        elif kind == "fatal":
            raise item[1]

    def _on_text(self, at: float, data: str) -> None:
        try:
            message = json.loads(data)
        except ValueError:
            self._event_counts["(not JSON)"] += 1
            return
        if not isinstance(message, dict):
            return
        topic = str(message.get("topicName") or "")
        body = message.get("eventBody")
        body = body if isinstance(body, dict) else {}
        if topic == "channel.metadata":
            text = body.get("message")
            if text == "WebSocket Heartbeat":
                assert self._connection is not None
                self._connection.heartbeats.append(at)
            elif text == "pong":
                self._pongs += 1
            return
        self._event_counts[topic] += 1
        if topic.startswith("v2.system."):
            self._system.append(
                {"at": self._wall(at), "t": self._offset(at), "topic": topic,
                 "reason": body.get("reason")}
            )
            if "no_longer_subscribed" in topic:
                self._channel = None  # reconnect to a new channel when the socket closes
            return
        if not topic.startswith("v2.users."):
            return
        user_id, _, suffix = topic[len("v2.users.") :].partition(".")
        user = self._users.get(user_id)
        if user is None:
            return
        user.events += 1
        if suffix == "presence":
            definition = body.get("presenceDefinition") or {}
            self._change(user_id, "presence", presence_of(definition.get("systemPresence")),
                         parse_time(body.get("modifiedDate")), at, "event")
        elif suffix == "routingStatus":
            routing = body.get("routingStatus") or {}
            self._change(user_id, "routing", routing.get("status"),
                         parse_time(routing.get("startTime")), at, "event")
        elif suffix == "activity":
            presence = body.get("presence") or {}
            definition = presence.get("presenceDefinition") or {}
            self._change(user_id, "presence", presence_of(definition.get("systemPresence")),
                         parse_time(presence.get("modifiedDate")), at, "event")
            routing = body.get("routingStatus") or {}
            self._change(user_id, "routing", routing.get("status"),
                         parse_time(routing.get("startTime")), at, "event")

    # ------------------------------------------------------------------ state
    def _apply_states(
        self, states: dict[str, tuple[Tracked, Tracked]], at: float, *, source: str
    ) -> None:
        for user_id, (presence, routing) in states.items():
            self._change(user_id, "presence", presence.value, presence.stamp, at, source)
            self._change(user_id, "routing", routing.value, routing.stamp, at, source)

    def _change(
        self,
        user_id: str,
        kind: str,
        value: str | None,
        stamp: datetime | None,
        at: float,
        source: str,
    ) -> None:
        if value is None:
            return
        user = self._users[user_id]
        tracked = user.presence if kind == "presence" else user.routing
        if stamp is not None and tracked.stamp is not None and stamp < tracked.stamp:
            return  # older than what is known: already reflected (or superseded)
        if stamp is not None:
            tracked.stamp = stamp
        if tracked.value == value:
            return
        previous, tracked.value = tracked.value, value
        if source != "initial":
            user.transitions.append(
                {
                    "at": self._wall(at),
                    "t": self._offset(at),
                    "kind": kind,
                    "from": previous,
                    "to": value,
                    "source": source,
                }
            )
        if kind == "presence":
            on_queue = is_on_queue(value)
            if not on_queue and user.not_on_queue_since is None:
                user.not_on_queue_since = self._start if source == "initial" else at
                user.not_on_queue_presence = value
            elif on_queue and user.not_on_queue_since is not None:
                user.seconds_not_on_queue += at - user.not_on_queue_since
                user.not_on_queue_periods.append(
                    (user.not_on_queue_since, at, user.not_on_queue_presence)
                )
                user.not_on_queue_since = None

    # ------------------------------------------------------------------ drops and reconnects
    def _watchdog(self) -> None:
        connection = self._connection
        if connection is None:
            return
        interval = self.given_interval or self._learnt_interval()
        limit = SILENCE_INTERVALS * interval if interval else DEFAULT_SILENCE_LIMIT
        silence = self._now() - connection.last_message
        if silence > limit:
            shutdown_socket(connection.ws)
            self._lost(self._now(), None, f"silent for {silence:.1f} s (no heartbeat or pong)")
        elif silence > limit / 2 and not connection.pinged:
            connection.pinged = True
            # a broken socket is reported by its reader
            with contextlib.suppress(websocket.WebSocketException, OSError):
                connection.ws.send(_PING)

    def _lost(self, at: float, code: int | None, reason: str) -> None:
        connection = self._connection
        if connection is None:
            return
        connection.closed_at = at
        self._connection = None
        shutdown_socket(connection.ws)
        self._disconnects.append(Disconnect(at, self._wall(at), code, reason))
        logger.info("watch_events: socket lost (%s %s); reconnecting", code, reason)
        self._start_connector()

    def _start_connector(self, first: bool = False) -> None:
        if self._connector is not None and self._connector.is_alive():
            return
        self._connector = threading.Thread(
            target=self._reconnect, args=(first,), name="watch-events-connector", daemon=True
        )
        self._connector.start()

    def _reconnect(self, first: bool = False) -> None:
        """Connector thread: back off, reconnect (same channel or a new one), read the users.

        ``first``: the first connection, tried at once, then retried like any reconnect while
        the failures are transient (a transport error, 408, 429, 5xx, a channel gone); a
        permanent one (an unknown user, every topic rejected, another 4xx) fails the probe.
        """
        backoff = Backoff(BACKOFF_INITIAL, BACKOFF_MAX, BACKOFF_FACTOR, BACKOFF_JITTER, decay=0.0)
        wait = not first
        while not self._stop.is_set():
            if wait and self._stop.wait(backoff.delay()):
                return
            wait = True
            new_channel = False
            try:
                channel = self._channel
                ws: websocket.WebSocket | None = None
                if channel is not None:
                    try:
                        ws = self._open(channel["connectUri"], CONNECT_TIMEOUT)
                    except ChannelGone:
                        channel = None
                if ws is None or channel is None:
                    channel = self._new_channel()
                    new_channel = True
                    ws = self._open(channel["connectUri"], CONNECT_TIMEOUT)
                opened = self._now()
                try:
                    states = read_users(self.client, self.user_ids)
                except BaseException:
                    shutdown_socket(ws)
                    raise
            except ChannelGone as gone:
                self._channel = None
                self._items.put(("error", f"{_what(first)}: channel gone ({gone.status})"))
                continue
            except Exception as error:  # recorded; the observer keeps trying
                if first and permanent(error):
                    self._items.put(("fatal", error))
                    return
                self._items.put(("error", f"{_what(first)}: {error}"))
                continue
            self._items.put(("connected", ws, channel, opened, states, new_channel))
            return

    def _shutdown(self, end: float) -> None:
        self._stop.set()
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.closed_at = end
            with contextlib.suppress(websocket.WebSocketException, OSError):
                connection.ws.send_close(websocket.STATUS_NORMAL, b"observation over")
            shutdown_socket(connection.ws)
        # a connection the connector made after the deadline is closed when it is handled
        while True:
            try:
                item = self._items.get_nowait()
            except queue.Empty:
                break
            if item[0] == "connected":
                shutdown_socket(item[1])


def _what(first: bool) -> str:
    return "connect" if first else "reconnect"
