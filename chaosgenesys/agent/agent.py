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

The desktop's parts, one module each: ``core`` (its state and shared plumbing), ``presence``
(presence and routing status, the wanted presence retried until it lands), ``interactions``
(calls and wrap-ups), ``connection`` (the channel and socket, rotation, one reconnect try) and
``policies`` (how it reconnects and what it does after: resilient or naive). This module puts
them together as :class:`SyntheticAgent` and runs them: start, the periodic work
(the optional state sync, the subscription renewal), shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable

from chaosgenesys.agent.api import ApiError
from chaosgenesys.agent.channel import ChannelGone, ConnectFailed, subscribe, topics_for
from chaosgenesys.agent.connection import (
    RELOGIN,
    Connection,
    ReconnectPolicy,
    retry_after_of,
    status_of,
)
from chaosgenesys.agent.policies import NaivePolicy, ResilientPolicy
from chaosgenesys.agent.tokens import LoggedOut, TokenError
from chaosgenesys.presence_names import normalise_presence as normalise

__all__ = ["SyntheticAgent"]


class SyntheticAgent(Connection):
    """One agent desktop. :meth:`run` until :meth:`stop`."""

    @functools.cached_property
    def policy(self) -> ReconnectPolicy:
        """The resilient or the naive policy, from the mode, made once (the config is frozen)."""
        return ResilientPolicy(self) if self.config.resilient else NaivePolicy(self)

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
            if self.config.sync_interval > 0:
                self._spawn(self._sync_loop(), "sync")
            if self.config.resubscribe_interval > 0:
                self._spawn(self._renew_loop(), "renew")
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
                if status_of(error) in RELOGIN:
                    await self._relogin(error)
                if await self._sleep(self._next_delay(retry_after_of(error))):
                    return False
        return False

    # ------------------------------------------------------------------ periodic work
    async def _sync_loop(self) -> None:
        """Read presence and routing status every ``sync_interval`` while connected (off by
        default: the real desktop does not poll, it re-reads after every reconnect)."""
        await self._every(self.config.sync_interval, "sync", lambda: self._read_state("sync"))

    async def _renew_loop(self) -> None:
        """Subscribe again every ``resubscribe_interval``: a channel lives 24 h and each
        subscription extends it (the streaming client's resubscribe on expiry)."""
        await self._every(self.config.resubscribe_interval, "renew",
                          lambda: subscribe(self.api, self.channel_id, topics_for(self.user_id)))

    async def _every(self, seconds: float, what: str,
                     work: Callable[[], Awaitable[object]]) -> None:
        """``work`` every ``seconds`` while connected to a channel; a failure is logged and
        the next period tries again."""
        while not await self._sleep(seconds):
            if not (self.stats.connected and self.channel_id):
                continue
            try:
                await work()
            except ApiError as error:
                self._event("sync_failed", error=str(error)[:200])
            except ChannelGone:
                self._event("channel_gone", during=what)
            except TokenError as error:
                self._token_error(error)

