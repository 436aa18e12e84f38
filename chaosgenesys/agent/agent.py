"""One synthetic agent: the state machine of an agent desktop on the wire.

Life of a resilient agent::

    token -> read presence/routing -> PATCH presence On Queue -> channel -> subscribe -> socket
      -> [events, heartbeats, pings; calls answered, wrap-ups submitted]
      -> socket lost (close frame, error, or silence past ``silence_limit``: a zombie)
      -> reconnect: today's streaming client's backoff (2 s, doubling, 90 s at most, no
         jitter, Retry-After honoured; the delay reached is remembered and decays with time,
         across a restart too), 10 tries on the same channel, then hard reconnects on a new
         one; a 404 (HEAD or upgrade) means the channel is gone: a new one at once; a 401/403
         means a new login (token) before the next try, on a new channel
      -> re-subscribe (reconnect latency ends here) -> re-read presence, routing status and
         every open interaction (the re-read retried until it works); "last known good
         state": a local change decided before the server changed is discarded; back On Queue
         if the platform took the agent off queue, retried with backoff until it lands or a
         newer wanted presence supersedes it (each failure logged, ``last_error`` set)
      -> ...

A naive agent reconnects at once (every ``naive_retry_gap`` s, at most ``naive_max_tries``),
never notices a silent socket, after a reconnect pushes its stale local presence and pending
changes without reading (a consistency violation when the server was newer), never refreshes
its token ahead of expiry and is logged out by the first 401.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

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
from chaosgenesys.agent.presence import REJOIN_FROM, Presence
from chaosgenesys.agent.store import (
    Interaction,
    agent_participant,
    participant_view,
    server_is_newer,
)
from chaosgenesys.agent.tokens import LoggedOut, TokenError
from chaosgenesys.presence_names import normalise_presence as normalise

__all__ = ["SyntheticAgent"]

#: Statuses after which the streaming client does not retry: the app must log in again.
_RELOGIN = {401, 403}


class SyntheticAgent(Interactions, Presence):
    """One agent desktop. :meth:`run` until :meth:`stop`."""

    # ------------------------------------------------------------------ lifecycle
    async def _revoke_token(self) -> None:
        """The run is over: the desktop's token must not outlive it (docs/agent.md)."""
        with contextlib.suppress(Exception):
            await self.tokens.close()
        try:
            done = await self.tokens.revoke()
        except Exception as error:  # never in the way of stopping
            self.stats.token_revocation = f"revocation failed: {type(error).__name__}"
            return
        if done is None:
            return
        self.stats.token_revoked = done.revoked
        self.stats.token_still_works = done.still_works
        self.stats.token_revocation = done.detail or "revoked, checked dead"
        self._event("token_revoked", revoked=done.revoked, still_works=done.still_works,
                    detail=done.detail)

    def stop(self) -> None:
        """Ask :meth:`run` to finish."""
        self._stopping.set()

    async def run(self) -> None:
        """Log in, go On Queue, keep the channel up until stopped (or logged out)."""
        self._event("start", mode=self.config.mode, api=self.endpoint.api_url,
                    proxy=bool(self.endpoint.proxy))
        try:
            if not await self._start():
                return
            self.tokens.start()
            self._spawn(self._sync_loop(), "sync")
            await self._connection_loop()
        except LoggedOut as error:
            self._logout(str(error))
        finally:
            await self._shutdown()

    async def _shutdown(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.socket is not None:
            await self.socket.close()
        if self.config.revoke_token_on_stop:
            await self._revoke_token()
        self.stats.connected = False
        self.stats.queue_stop()
        self.stats.zombie_end()
        await self.tokens.close()
        self._event("stop", logged_out=self.stats.logged_out)

    async def _start(self) -> bool:
        """Token, presence definitions, state, On Queue, channel: retried until it works."""
        while not self._stopping.is_set():
            try:
                await self.tokens.token()
                await self._resolve_on_queue()
                await self._read_state("start")
                if self.config.stay_on_queue and normalise(self.presence) != "onqueue":
                    await self._go_on_queue("start")
                await self._new_channel()
                self.socket = await self._open_socket()
                await subscribe(self.api, self.channel_id, topics_for(self.user_id))
                return True
            except (ApiError, TokenError, ConnectFailed, ChannelGone) as error:
                self.stats.last_error = str(error)[:300]
                self._event("start_failed", error=str(error)[:300])
                self.channel_id = ""
                if self.socket is not None:
                    await self.socket.close()
                    self.socket = None
                if _status(error) in _RELOGIN:
                    await self._relogin(error)
                if await self._sleep(self._next_delay(_retry_after(error))):
                    return False
        return False

    async def _relogin(self, error: BaseException) -> None:
        """After a 401/403 the streaming client does not retry: log in again (a new token)."""
        self._event("relogin", status=_status(error))
        try:
            await self.tokens.refresh("relogin")
        except TokenError as failure:
            self.stats.token_errors += 1
            self.stats.last_error = str(failure)[:300]
            self._event("token_error", error=str(failure)[:200])

    # ------------------------------------------------------------------ channel and socket
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
            if self.config.resilient:
                new = await self._reconnect_resilient(started)
            else:
                new = await self._reconnect_naive(started)
            if new is None:
                return
            self.socket = new
            self._set_connected(True)
            if self.config.resilient:
                self._spawn(self._after_reconnect_resilient(), "reread")
            else:
                self._spawn(self._after_reconnect_naive(), "push-stale")

    async def _socket_session(self, socket: NotificationSocket) -> tuple[str, int | None]:
        """Read the socket until it is lost; returns (reason, close code)."""
        self._rotate = False
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

    async def _reconnect_resilient(self, started: float) -> NotificationSocket | None:
        """Today's streaming client: backoff without jitter until connected (never gives up)."""
        self._epoch += 1
        backoff = self.backoff
        backoff.reset()
        attempts = 0
        hard = False
        retry_after = 0.0
        while True:
            if backoff.exhausted:  # tries on this channel used up: new channels from now on
                hard = True
            if await self._sleep(self._next_delay(retry_after)):
                return None
            retry_after = 0.0
            attempts += 1
            try:
                try:
                    socket = await self._attempt(hard)
                except ChannelGone:
                    self._event("channel_gone", attempt=attempts)
                    socket = await self._attempt(True)  # a new channel at once
            except (ApiError, TokenError, ConnectFailed, ChannelGone) as error:
                self._event("reconnect_failed", attempt=attempts, error=str(error)[:200],
                            status=_status(error) or None)
                retry_after = _retry_after(error)
                if _status(error) in _RELOGIN:
                    await self._relogin(error)
                    hard = True
                continue
            if hard:
                self.stats.hard_reconnects += 1
            self._reconnected(started, attempts, "hard" if hard else "soft")
            return socket

    async def _reconnect_naive(self, started: float) -> NotificationSocket | None:
        for attempt in range(1, self.config.naive_max_tries + 1):
            if await self._sleep(self.config.naive_retry_gap):
                return None
            try:
                socket = await self._attempt(False)
            except ChannelGone:
                continue  # channel_id was cleared: the next try makes a new one
            except (ApiError, TokenError, ConnectFailed):
                continue
            self._reconnected(started, attempt, "naive")
            return socket
        self._logout(f"gave up reconnecting after {self.config.naive_max_tries} tries")
        return None

    async def _rotate_socket(self, started: float) -> NotificationSocket | None:
        """``socket_closing``: open the new socket before the old one goes."""
        try:
            socket = await self._attempt(False)
        except (ApiError, TokenError, ConnectFailed, ChannelGone) as error:
            self._event("rotate_failed", error=str(error)[:200])
            return None
        self._reconnected(started, 1, "socket_closing")
        self._spawn(self._after_reconnect_resilient(), "reread")
        return socket

    # ------------------------------------------------------------------ after a reconnect
    async def _after_reconnect_resilient(self) -> None:
        """Re-read the truth and apply "last known good state"."""
        epoch = self._epoch
        local = (self.presence, self.presence_modified)
        retry = self._change_backoff()
        while True:
            try:
                name, ident, modified, routing = await self._fetch_user()
                break
            except ApiError as error:  # retried: without it the agent could stay off queue
                delay = retry.delay(error.retry_after)
                self.stats.last_error = str(error)[:300]
                self._event("reread_failed", error=str(error)[:200], retry_in_s=round(delay, 3))
            if await self._sleep(delay) or epoch != self._epoch:
                return  # stopping, or a newer reconnect re-reads for itself
        if modified > local[1] and normalise(name) != normalise(local[0]):
            self.stats.local_changes_discarded += 1
            self._event("local_discarded", what="presence", local=local[0], server=name,
                        server_modified=modified)
        self._adopt_presence(name, ident, modified, "reread")
        self._adopt_routing(routing, "reread")
        self._event("state_reread", presence=name, routing=routing)
        await self._reread_interactions()
        if self.config.stay_on_queue:
            key = normalise(name)
            if key in REJOIN_FROM:
                self._want_on_queue("rejoin")
            elif key == "onqueue" and routing == "NOT_RESPONDING":
                self._spawn(self._routing_idle(), "routing:rejoin")

    async def _after_reconnect_naive(self) -> None:
        """Push the local state as it was before the drop, without reading first."""
        if self.presence_id:
            try:  # measurement only: the naive agent ignores what it reads here
                name, _ident, modified, _routing = await self._fetch_user()
                if modified > self.presence_modified and normalise(name) != normalise(
                    self.presence
                ):
                    self._violation("presence", self.presence, name)
            except ApiError:
                pass
            with contextlib.suppress(ApiError):
                await self.api.request(
                    "PATCH",
                    f"/api/v2/users/{self.user_id}/presences/purecloud",
                    {"presenceDefinition": {"id": self.presence_id}},
                )
                self._event("presence", **{"from": "", "to": self.presence,
                                           "source": "local:stale"})
        for item in list(self.store.open()):
            if item.pending is not None:
                await self._measure_conflict(item)
                await self._apply_pending(item)

    async def _measure_conflict(self, item: Interaction) -> None:
        """Naive agent: read the server's version only to count the violation it is about to
        commit (its local store is not updated from this read)."""
        change = item.pending
        if change is None or server_is_newer(item.server_marker, change):
            return  # _apply_pending counts it from the local store
        try:
            body = await self.api.request("GET", f"/api/v2/conversations/{item.conversation_id}")
        except ApiError:
            return
        participant = agent_participant(body, self.user_id) if isinstance(body, dict) else None
        if participant is None:
            return
        view = participant_view(participant)
        if server_is_newer(view["marker"], change) or (
            change.kind == "wrapup" and view["wrapup_code"]
        ):
            self._violation(change.kind, change.base_marker, view["marker"])

    # ------------------------------------------------------------------ periodic sync
    async def _sync_loop(self) -> None:
        interval = self.config.sync_interval
        renew = self.config.resubscribe_interval
        last_renew = time.monotonic()
        if interval <= 0:
            return
        while not await self._sleep(interval):
            if not self.stats.connected:
                continue
            try:
                await self._read_state("sync")
                await self._retry_deferred()
                if renew > 0 and time.monotonic() - last_renew >= renew and self.channel_id:
                    await subscribe(self.api, self.channel_id, topics_for(self.user_id))
                    last_renew = time.monotonic()
            except ApiError as error:
                self._event("sync_failed", error=str(error)[:200])
            except ChannelGone:
                self._event("channel_gone", during="renew")
            except TokenError as error:
                self.stats.token_errors += 1
                self._event("token_error", error=str(error)[:200])


def _status(error: BaseException) -> int:
    """The HTTP status a failure carries (0: none)."""
    status = getattr(error, "status", 0)
    return status if isinstance(status, int) else 0


def _retry_after(error: BaseException) -> float:
    """The ``Retry-After`` (seconds) a failure carries (0: none)."""
    value = getattr(error, "retry_after", 0.0)
    return float(value) if isinstance(value, int | float) else 0.0
