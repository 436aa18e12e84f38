"""A protocol-faithful load client for the sandbox's streaming service (XMPP over WebSocket).

Not a benchmark itself: ``streaming_fanout.py`` and ``streaming_reconnect.py`` run hundreds of
these on one asyncio loop, where hundreds of Node processes of the official client would not fit
on a 2-core machine. Each :class:`StreamingLoadClient` does on the wire what the official
``genesys-cloud-streaming-client`` 19.4.1 (``node_modules/genesys-cloud-streaming-client/dist/
cjs/``) and its XMPP library ``stanza`` 12 do, in the same order, with the same reconnect
decisions and the same backoff. The frames below were checked against a capture of the official
client talking to the sandbox (``ws`` send/receive hooked in Node).

Login (``browser_login``): the implicit grant, as the desktop's browser app does it: ``GET
/oauth/authorize?response_type=token&client_id&redirect_uri&state&login_hint`` answered by a 302
whose fragment carries ``access_token`` (``docs/sandbox-streaming.md``); every client logs in as
its own user, so per-token limits apply per user.

A connection attempt (``client.js`` ``makeConnectionAttempt``, ``prepareForConnect``):

1. hard reconnect only (the first connect, a retryable SASL failure, every 10th channel reuse):
   ``GET /api/v2/users/me`` for ``chat.jabberId`` (only while the JID is not known yet: the
   client keeps it in ``config.jid``), then ``POST /api/v2/notifications/channels?
   connectionType=streaming`` for the channel id (``users/me`` first, then the channel: both
   are awaited one after the other in ``prepareForConnect``);
2. WebSocket ``{host}/stream/channels/{channelId}``, subprotocol ``xmpp`` (``connection-
   manager.js`` ``getStandardOptions``, ``stanza/transports/websocket.js``);
3. ``<open xmlns="urn:ietf:params:xml:ns:xmpp-framing" xml:lang="en" to="<domain>"
   version="1.0"/>``; SASL ``PLAIN`` with ``\\0<bare JID>\\0authKey:<token>``; ``<success/>``;
   the stream restart (a second ``<open/>``); resource bind (the resource is a UUID chosen once
   and kept: ``jidResource``); no ``<session/>`` IQ (the server offers it ``<optional/>``);
4. XEP-0215 ``services`` ``turn`` and ``stun`` (the webrtc extension's
   ``configureNewStanzaInstance``, awaited), then pubsub ``subscribe`` to
   ``enable.server.side.pings`` on ``notifications.<apiHost host>`` (``setupConnectionMonitoring``,
   awaited): the client is **connected** when that answers; then ``turn``/``stun`` once more
   (not awaited), as the capture shows;
5. topics: the load client subscribes through XMPP pubsub (``notifications.subscribe(topic,
   handler, immediate=true)``) once, after its first connect; a reconnect to the same channel
   does not resubscribe (the channel keeps its topics); a hard reconnect to a new channel
   resubscribes through REST: ``PUT .../channels/{id}/subscriptions`` with every topic
   (``notifications.js`` ``handleStanzaInstanceChange`` → ``resubscribe``, debounced 100 ms).

Server pings (``<iq type="get"><ping xmlns="urn:xmpp:ping"/></iq>``) are answered with an empty
result, as stanza does. A WebSocket close (after ``<close/>``, a stream error or a reset) is the
client's ``disconnected``; it then calls ``connect({keepTryingOnFailure: true})``.

The backoff (:class:`Backoff`), from ``client.js`` (``connect``, ``getStartingDelay``,
``increaseBackoff``, ``decreaseBackoff``, ``backoffConnectRetryHandler``; constants
``INITIAL_DELAY = 2000``, ``BACKOFF_DECREASE_DELAY_MULTIPLIER = 5``, ``MAX_CHANNEL_REUSES = 10``,
``maxDelayBetweenConnectionAttempts`` default 90000) and ``exponential-backoff`` 3.1.3
(``dist/backoff.js``, ``dist/delay/delay.base.js``, ``skip-first/skip-first.delay.js``;
options ``jitter: 'none'``, ``timeMultiple`` 2):

- ``startingDelay = min(max(currentDelayMs, 2000), 90000)`` (2000 once the remembered data's
  ``timeOfTotalReset`` has passed); ``currentDelayMs`` lives in ``sessionStorage``
  (``sc_connectionData_<appName>``), 0 until a failure raised it;
- ``delayFirstAttempt`` is false for the very first ``connect()`` of a client and true for every
  later one (``hasMadeInitialAttempt``); attempt ``n`` (0-based) waits
  ``min(startingDelay * 2**k, 90000)`` ms before it starts, ``k = n`` when the first attempt is
  delayed, else ``k = n - 1`` and attempt 0 does not wait: after a drop, **2 s, 4 s, 8 s, 16 s,
  32 s, 64 s, 90 s, 90 s…**, no jitter;
- after a failed attempt: HTTP 401/403 → give up (``invalid_token``); a SASL failure other than
  ``encryption-required``, ``incorrect-encoding``, ``invalid-mechanism``, ``malformed-request``,
  ``mechanism-too-weak`` → give up (``invalid_token``), a retryable one forces a hard reconnect;
  an HTTP answer with ``Retry-After`` → wait that many seconds, then retry (on top of the next
  exponential delay, and ``currentDelayMs`` is not raised); anything else →
  ``increaseBackoff``: ``currentDelayMs = max(currentDelayMs * 2, 4000)``, with a reduction
  (halving) due ``5 * currentDelayMs`` later and a total reset one hour later;
- after a successful attempt, if the remembered data has a reduction time, the reduction timer
  is set (``decreaseBackoff``: halve, below 2000 → reset to 0).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp

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
    NS_STREAM,
    Element,
    XMLRefused,
    element,
    parse_frame,
)

__all__ = [
    "INITIAL_DELAY_MS",
    "MAX_DELAY_MS",
    "Backoff",
    "GaveUp",
    "HttpFailure",
    "SaslFailure",
    "StreamingLoadClient",
    "browser_login",
    "expected_delays_ms",
]

#: client.js constants.
INITIAL_DELAY_MS = 2000
MAX_DELAY_MS = 90_000
BACKOFF_DECREASE_DELAY_MULTIPLIER = 5
MAX_CHANNEL_REUSES = 10
TOTAL_RESET_MS = 60 * 60 * 1000
#: client.js ``saslErrorIsRetryable``.
RETRYABLE_SASL = frozenset(
    {"encryption-required", "incorrect-encoding", "invalid-mechanism", "malformed-request",
     "mechanism-too-weak"}
)
#: A step of the handshake that takes longer than this fails the attempt (as a stanza timeout).
STEP_TIMEOUT_S = 30.0

EventHandler = Callable[[str, float, dict[str, Any]], None]
#: ``on_raw(frame text, arrival perf_counter)``: True when the frame is taken (not parsed here).
RawHandler = Callable[[str, float], bool]


class HttpFailure(Exception):
    """A REST call (or the WebSocket upgrade) answered ``status``; ``retry_after`` in seconds."""

    def __init__(self, what: str, status: int, retry_after: str | None) -> None:
        super().__init__(f"{what} answered {status}")
        self.status = status
        self.retry_after = retry_after


class SaslFailure(Exception):
    """``<failure><condition/></failure>`` to our ``<auth/>``."""

    def __init__(self, condition: str) -> None:
        super().__init__(f"SASL failure {condition}")
        self.condition = condition


class GaveUp(Exception):
    """The client stopped reconnecting, as the official one does (its ``invalid_token``)."""


def expected_delays_ms(attempts: int, current_delay_ms: int = 0) -> list[int]:
    """The waits before each of ``attempts`` reconnect attempts after a drop (no Retry-After)."""
    starting = min(max(current_delay_ms, INITIAL_DELAY_MS), MAX_DELAY_MS)
    return [min(starting * 2**n, MAX_DELAY_MS) for n in range(attempts)]


@dataclass
class Backoff:
    """client.js's backoff state (its ``sessionStorage`` entry) and exponential-backoff's delays.

    Times are milliseconds of ``clock()`` (wall-clock milliseconds in the client: ``new
    Date().getTime()``).
    """

    clock: Callable[[], float] = field(default=lambda: time.time() * 1000)
    data: dict[str, float] = field(default_factory=lambda: {"currentDelayMs": 0})
    has_made_initial_attempt: bool = False

    def starting_delay(self) -> float:
        """``getStartingDelay``."""
        minimum = max(self.data.get("currentDelayMs", 0), INITIAL_DELAY_MS)
        reset = self.data.get("timeOfTotalReset")
        if reset and reset < self.clock():
            return INITIAL_DELAY_MS
        return min(minimum, MAX_DELAY_MS)

    def attempt_delay(self, attempt: int, starting: float, delay_first: bool) -> float:
        """exponential-backoff: the wait before attempt ``attempt`` (0-based), ``jitter: none``."""
        if not delay_first:
            if attempt == 0:
                return 0.0
            attempt -= 1
        return float(min(starting * 2**attempt, MAX_DELAY_MS))

    def increase(self) -> None:
        """``increaseBackoff`` (after a failed attempt without Retry-After)."""
        current = max(self.data.get("currentDelayMs", 0) * 2, INITIAL_DELAY_MS * 2)
        now = self.clock()
        self.data = {
            "currentDelayMs": current,
            "delayMsAfterNextReduction": current / 2,
            "nextDelayReductionTime": now + current * BACKOFF_DECREASE_DELAY_MULTIPLIER,
            "timeOfTotalReset": now + TOTAL_RESET_MS,
        }

    def decrease(self, new_amount: float) -> float | None:
        """``decreaseBackoff``; the ms until the next reduction, or None once reset."""
        reset = self.data.get("timeOfTotalReset")
        if (reset and reset < self.clock()) or new_amount < INITIAL_DELAY_MS:
            self.data = {"currentDelayMs": 0}
            return None
        until = new_amount * BACKOFF_DECREASE_DELAY_MULTIPLIER
        self.data = {
            "currentDelayMs": new_amount,
            "delayMsAfterNextReduction": new_amount / 2,
            "nextDelayReductionTime": self.clock() + until,
            "timeOfTotalReset": reset or 0,
        }
        return until


async def browser_login(
    http: aiohttp.ClientSession,
    url: str,
    client_id: str,
    redirect_uri: str,
    login_hint: str,
    statuses: Counter[int] | None = None,
) -> str:
    """A user access token through the implicit grant with ``login_hint`` (no form)."""
    state = uuid.uuid4().hex
    params = {"response_type": "token", "client_id": client_id, "redirect_uri": redirect_uri,
              "login_hint": login_hint, "state": state}
    async with http.get(f"{url}/oauth/authorize", params=params, allow_redirects=False) as r:
        if statuses is not None:
            statuses[r.status] += 1
        if r.status != 302:
            raise HttpFailure("GET /oauth/authorize", r.status, r.headers.get("Retry-After"))
        location = r.headers["Location"]
    fragment = parse_qs(urlsplit(location).fragment)
    if fragment.get("state") != [state] or not fragment.get("access_token"):
        raise RuntimeError("the authorize redirect carries no access_token or the wrong state")
    return fragment["access_token"][0]


class _Stream:
    """One XMPP session on one WebSocket: frames in, IQ answers by id, events to a handler."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse, owner: StreamingLoadClient) -> None:
        self.ws = ws
        self.owner = owner
        self.frames: asyncio.Queue[Element | None] = asyncio.Queue()
        self.pending: dict[str, asyncio.Future[Element]] = {}
        self.full_jid = ""
        self.closed = asyncio.Event()
        self.reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.ws:
                if message.type is not aiohttp.WSMsgType.TEXT:
                    continue
                arrived = time.perf_counter()
                on_raw = self.owner.on_raw
                if on_raw is not None and on_raw(message.data, arrived):
                    continue
                try:
                    stanza = parse_frame(message.data)
                except XMLRefused:
                    break
                self._dispatch(stanza, arrived)
        except (aiohttp.ClientError, ConnectionError):
            pass
        finally:
            self.closed.set()
            self.frames.put_nowait(None)
            for future in self.pending.values():
                if not future.done():
                    future.set_exception(ConnectionError("the stream closed"))

    def _dispatch(self, stanza: Element, arrived: float) -> None:
        if stanza.ns == NS_CLIENT and stanza.name == "message":
            event = stanza.child("event", NS_PUBSUB_EVENT)
            items = event.child("items", NS_PUBSUB_EVENT) if event is not None else None
            if items is not None:
                for item in items.children:
                    payload = item.child("json", NS_JSON)
                    if payload is not None:
                        self.owner._event(items.get("node"), arrived, payload.text)
            return
        if stanza.ns == NS_CLIENT and stanza.name == "iq":
            kind, iq_id = stanza.get("type"), stanza.get("id")
            if kind in ("result", "error") and iq_id in self.pending:
                future = self.pending.pop(iq_id)
                if not future.done():
                    future.set_result(stanza)
            elif kind == "get" and stanza.children and stanza.children[0].ns == NS_PING:
                attrs = {"xmlns": NS_CLIENT, "type": "result", "id": iq_id}
                if stanza.get("from"):
                    attrs["to"] = stanza.get("from")
                self.owner.server_pings += 1
                self.send(element("iq", attrs))
            return
        if stanza.ns == NS_FRAMING and stanza.name == "close":
            # stanza: stream:end → disconnect(): <close/> back, then the socket closes
            self.send(element("close", {"xmlns": NS_FRAMING}))
            return
        self.frames.put_nowait(stanza)

    def send(self, frame: str) -> None:
        if not self.ws.closed:
            task = asyncio.get_running_loop().create_task(self.ws.send_str(frame))
            task.add_done_callback(_ignore_result)

    async def next_frame(self) -> Element:
        frame = await asyncio.wait_for(self.frames.get(), STEP_TIMEOUT_S)
        if frame is None:
            raise ConnectionError("the stream closed during the handshake")
        return frame

    def iq(self, kind: str, payload: str, to: str | None = None) -> asyncio.Future[Element]:
        iq_id = str(uuid.uuid4())
        attrs = {"xmlns": NS_CLIENT, "id": iq_id}
        if to:
            attrs["to"] = to
        attrs["type"] = kind
        future: asyncio.Future[Element] = asyncio.get_running_loop().create_future()
        self.pending[iq_id] = future
        self.send(element("iq", attrs, payload))
        return future


def _ignore_result(task: asyncio.Task[Any]) -> None:
    if not task.cancelled():
        task.exception()


class StreamingLoadClient:
    """One desktop's streaming connection, as the official client makes and keeps it.

    ``url`` is the sandbox (``http://127.0.0.1:PORT``: ``apiHost``; ``host`` is the same with
    ``ws``). ``topics`` are subscribed through XMPP pubsub after the first connect;
    ``on_event(topic, arrival perf_counter, envelope)`` gets every pubsub event. ``on_raw``, a
    measuring hook, sees every text frame first with its arrival time and may take it (return
    True): a benchmark that runs hundreds of clients on one loop keeps its per-frame cost to a
    substring test and parses what it took later, as each desktop parses only its own frames.

    What it records for the benchmarks: ``statuses`` (every HTTP answer it got, the WebSocket
    upgrade included), ``disconnects`` and ``connects`` (``time.perf_counter()`` of its own
    ``disconnected`` / ``connected``), ``attempts`` (start of every connection attempt),
    ``hard_reconnects``, ``gave_up`` (the error it stopped on).
    """

    def __init__(
        self,
        http: aiohttp.ClientSession,
        url: str,
        token: str,
        *,
        topics: list[str] | None = None,
        on_event: EventHandler | None = None,
        on_raw: RawHandler | None = None,
        domain: str = "sandbox.invalid",
    ) -> None:
        self.http = http
        self.api_host = url.rstrip("/")
        self.ws_host = "ws" + self.api_host.removeprefix("http")
        self.pubsub_host = "notifications." + urlsplit(self.api_host).netloc
        self.domain = domain
        self.token = token
        self.topics = list(topics or [])
        self.on_event = on_event
        self.on_raw = on_raw
        self.backoff = Backoff()
        self.jid: str | None = None
        self.resource: str | None = None
        self.channel_id: str | None = None
        self.hard_reconnect_required = True
        self.channel_reuses = 0
        self.auto_reconnect = True
        self.subscribed = False
        self.connected = asyncio.Event()
        self.statuses: Counter[int] = Counter()
        self.disconnects: list[float] = []
        self.connects: list[float] = []
        self.attempts: list[float] = []
        self.hard_reconnects = 0
        self.server_pings = 0
        self.events = 0
        self.gave_up: BaseException | None = None
        self._stream: _Stream | None = None
        self._task: asyncio.Task[None] | None = None
        self._reduction: asyncio.TimerHandle | None = None

    # -- lifecycle ------------------------------------------------------------------------

    def start(self) -> None:
        """Connect (``keepTryingOnFailure: true``) and keep reconnecting in the background."""
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """``disconnect()``: no more reconnects; ``<close/>`` and the socket closed."""
        self.auto_reconnect = False
        if self._reduction is not None:
            self._reduction.cancel()
        stream = self._stream
        if stream is not None and not stream.ws.closed:
            stream.send(element("close", {"xmlns": NS_FRAMING}))
            with contextlib.suppress(TimeoutError, ConnectionError, aiohttp.ClientError):
                await asyncio.wait_for(stream.closed.wait(), 1.0)
            await stream.ws.close()
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, ConnectionError, aiohttp.ClientError):
                await self._task

    async def _run(self) -> None:
        try:
            while self.auto_reconnect:
                await self._connect()
                stream = self._stream
                assert stream is not None
                await stream.closed.wait()
                await stream.ws.close()
                self.connected.clear()
                self.disconnects.append(time.perf_counter())
        except GaveUp as error:
            self.gave_up = error

    # -- connect (client.js connect + exponential-backoff) -----------------------------

    async def _connect(self) -> None:
        if self._reduction is not None:
            self._reduction.cancel()
        starting = self.backoff.starting_delay()
        delay_first = self.backoff.has_made_initial_attempt
        self.backoff.has_made_initial_attempt = True
        attempt = 0
        while True:
            wait = self.backoff.attempt_delay(attempt, starting, delay_first)
            if wait:
                await asyncio.sleep(wait / 1000)
            data = dict(self.backoff.data)
            try:
                await self._attempt()
            except (HttpFailure, SaslFailure, ConnectionError, TimeoutError,
                    aiohttp.ClientError) as error:
                attempt += 1
                await self._retry(error)
                continue
            reduction_at = data.get("nextDelayReductionTime")
            if reduction_at:
                self._schedule_reduction(reduction_at - self.backoff.clock(),
                                         data.get("delayMsAfterNextReduction", 0))
            return

    async def _retry(self, error: BaseException) -> None:
        """``backoffConnectRetryHandler``: give up, wait Retry-After, or raise the backoff."""
        if isinstance(error, HttpFailure):
            if error.status in (401, 403):
                raise GaveUp(f"invalid_token: {error}") from error
            if error.retry_after:
                await asyncio.sleep(int(error.retry_after))
                return
        if isinstance(error, SaslFailure):
            if error.condition not in RETRYABLE_SASL:
                raise GaveUp(f"invalid_token: {error}") from error
            self.hard_reconnect_required = True
        self.backoff.increase()

    def _schedule_reduction(self, in_ms: float, amount: float) -> None:
        def reduce() -> None:
            until = self.backoff.decrease(amount)
            if until is not None:
                self._schedule_reduction(until, self.backoff.data["delayMsAfterNextReduction"])

        self._reduction = asyncio.get_running_loop().call_later(max(in_ms, 0) / 1000, reduce)

    # -- one attempt (makeConnectionAttempt) ------------------------------------------

    async def _request(self, method: str, path: str, body: Any = None) -> Any:
        headers = {"content-type": "application/json", "Authorization": f"Bearer {self.token}"}
        async with self.http.request(
            method, f"{self.api_host}/api/v2/{path}", headers=headers,
            data=None if body is None else _json(body),
        ) as response:
            self.statuses[response.status] += 1
            if response.status >= 400:
                raise HttpFailure(f"{method} {path}", response.status,
                                  response.headers.get("Retry-After"))
            return await response.json()

    async def _prepare(self) -> bool:
        """``prepareForConnect``; True when this attempt is a hard reconnect (new channel)."""
        if not self.hard_reconnect_required:
            self.channel_reuses += 1
            if self.channel_reuses >= MAX_CHANNEL_REUSES:
                self.channel_reuses = 0
                self.hard_reconnect_required = True
        if not self.hard_reconnect_required:
            return False
        if self.jid is None:
            me = await self._request("GET", "users/me")
            self.jid = str(me["chat"]["jabberId"])
        self.resource = self.resource or str(uuid.uuid4())
        channel = await self._request("POST", "notifications/channels?connectionType=streaming")
        self.channel_id = str(channel["id"])
        self.hard_reconnect_required = False
        return True

    async def _attempt(self) -> None:
        self.attempts.append(time.perf_counter())
        previous_channel = self.channel_id
        hard = await self._prepare()
        try:
            ws = await self.http.ws_connect(
                f"{self.ws_host}/stream/channels/{self.channel_id}", protocols=("xmpp",),
                autoping=True, heartbeat=None, max_msg_size=0,
            )
        except aiohttp.WSServerHandshakeError as error:
            self.statuses[error.status] += 1
            retry_after = error.headers.get("Retry-After") if error.headers else None
            raise HttpFailure("WebSocket upgrade", error.status, retry_after) from error
        self.statuses[101] += 1
        stream = _Stream(ws, self)
        try:
            await self._handshake(stream)
        except BaseException:
            await ws.close()
            raise
        self._stream = stream
        if hard:
            self.hard_reconnects += previous_channel is not None
        self.connects.append(time.perf_counter())
        self.connected.set()
        # after `connected` the client asks for the ICE servers once more (capture)
        stream.iq("get", element("services", {"xmlns": NS_EXTDISCO, "type": "turn"}), self.domain)
        stream.iq("get", element("services", {"xmlns": NS_EXTDISCO, "type": "stun"}), self.domain)
        if not self.subscribed and self.topics:
            answers = await asyncio.gather(*(
                stream.iq("set", element(
                    "pubsub", {"xmlns": NS_PUBSUB},
                    element("subscribe", {"node": topic, "jid": self.jid or ""})),
                    self.pubsub_host)
                for topic in self.topics
            ))
            refused = [t for t, a in zip(self.topics, answers, strict=True)
                       if a.get("type") != "result"]
            if refused:
                raise GaveUp(f"pubsub subscribe refused: {refused}")
            self.subscribed = True
        elif hard and previous_channel is not None and self.topics:
            await asyncio.sleep(0.1)  # debounce-promise, 100 ms
            await self._request("PUT", f"notifications/channels/{self.channel_id}/subscriptions",
                                [{"id": topic} for topic in self.topics])

    async def _handshake(self, stream: _Stream) -> None:
        assert self.jid is not None
        opening = element("open", {"xmlns": NS_FRAMING, "xml:lang": "en", "to": self.domain,
                                   "version": "1.0"})
        stream.send(opening)
        await self._expect(stream, NS_FRAMING, "open")
        await self._expect(stream, NS_STREAM, "features")
        plain = base64.b64encode(f"\0{self.jid}\0authKey:{self.token}".encode()).decode()
        stream.send(element("auth", {"xmlns": NS_SASL, "mechanism": "PLAIN"}, text=plain))
        answer = await stream.next_frame()
        if answer.ns == NS_SASL and answer.name == "failure":
            condition = answer.children[0].name if answer.children else "not-authorized"
            raise SaslFailure(condition)
        if not (answer.ns == NS_SASL and answer.name == "success"):
            raise ConnectionError(f"expected SASL success, got {answer.name}")
        stream.send(opening)
        await self._expect(stream, NS_FRAMING, "open")
        await self._expect(stream, NS_STREAM, "features")
        bound = await asyncio.wait_for(stream.iq("set", element(
            "bind", {"xmlns": NS_BIND}, element("resource", text=self.resource or ""))),
            STEP_TIMEOUT_S)
        if bound.get("type") != "result":
            raise ConnectionError("resource bind refused")
        ice = [stream.iq("get", element("services", {"xmlns": NS_EXTDISCO, "type": kind}),
                         self.domain) for kind in ("turn", "stun")]
        await asyncio.wait_for(asyncio.gather(*ice), STEP_TIMEOUT_S)
        pings = await asyncio.wait_for(stream.iq("set", element(
            "pubsub", {"xmlns": NS_PUBSUB},
            element("subscribe", {"node": "enable.server.side.pings", "jid": self.jid})),
            self.pubsub_host), STEP_TIMEOUT_S)
        if pings.get("type") != "result":
            raise ConnectionError("server-side pings refused")

    async def _expect(self, stream: _Stream, ns: str, name: str) -> Element:
        frame = await stream.next_frame()
        if frame.ns == NS_STREAM and frame.name == "error":
            condition = frame.children[0].name if frame.children else "undefined-condition"
            raise ConnectionError(f"stream error {condition}")
        if frame.ns != ns or frame.name != name:
            raise ConnectionError(f"expected {name}, got {frame.name}")
        return frame

    def _event(self, topic: str, arrived: float, payload: str) -> None:
        self.events += 1
        if self.on_event is not None:
            import json

            self.on_event(topic, arrived, json.loads(payload))


def _json(body: Any) -> str:
    import json

    return json.dumps(body)


def child_cpu_seconds(word: str) -> tuple[int, float] | None:
    """``(pid, user+system CPU seconds)`` of this process's child whose command line contains
    ``word`` (the sandbox subprocess), from ``/proc``; None if there is none."""
    import os

    ticks = os.sysconf("SC_CLK_TCK")
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as handle:
            children = [int(x) for x in handle.read().split()]
    except OSError:
        return None
    for child in children:
        try:
            with open(f"/proc/{child}/cmdline", "rb") as handle:
                if word.encode() not in handle.read():
                    continue
            with open(f"/proc/{child}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        return child, (int(fields[11]) + int(fields[12])) / ticks
    return None


def listen_overflows() -> int:
    """The kernel's ``TcpExt ListenOverflows`` counter (``/proc/net/netstat``, this network
    namespace): connections dropped because a listening socket's accept queue was full."""
    try:
        with open("/proc/net/netstat") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return -1
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            return int(table.get("ListenOverflows", -1))
    return -1
