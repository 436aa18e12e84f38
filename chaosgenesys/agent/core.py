"""One desktop's state and the plumbing every part of it shares.

:class:`AgentCore` holds a synthetic agent's identity, configuration and figures (``stats``),
its token keeper and REST client, its local view of presence and routing (as last known), its
event log and background tasks, and the small helpers every part uses: log an event, spawn a
task, sleep unless stopping, log out, account connected and On Queue time, the reconnect
backoff. The parts of the desktop add behaviour to it as mixins (``presence``,
``interactions``, ``connection``); ``agent.SyntheticAgent`` puts them together.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections.abc import Coroutine
from typing import Any

import aiohttp

from chaosgenesys.agent.api import ApiClient, ApiError
from chaosgenesys.agent.backoff import Backoff
from chaosgenesys.agent.channel import NotificationSocket
from chaosgenesys.agent.config import AgentConfig, Endpoint
from chaosgenesys.agent.eventlog import EventLog
from chaosgenesys.agent.store import InteractionStore
from chaosgenesys.agent.summary import AgentStats
from chaosgenesys.agent.tokens import LoggedOut, TokenError, TokenKeeper, UserLogin
from chaosgenesys.platform.metrics import MetricsRecorder
from chaosgenesys.presence_names import normalise_presence as normalise

__all__ = ["TRANSIENT", "AgentCore"]

logger = logging.getLogger("chaostoolkit")

#: Statuses after which a local change is kept for later (no answer, throttled, unavailable).
TRANSIENT = {0, 408, 429, 500, 502, 503, 504}


class AgentCore:
    """The state of one agent desktop and its shared helpers (no behaviour of its own)."""

    def __init__(
        self,
        user_id: str,
        endpoint: Endpoint,
        config: AgentConfig,
        session: aiohttp.ClientSession,
        login_session: aiohttp.ClientSession,
        log: EventLog,
        *,
        request_kwargs: dict[str, Any] | None = None,
        shared: dict[str, Any] | None = None,
        calls: MetricsRecorder | None = None,
    ) -> None:
        self.user_id = user_id
        self.endpoint = endpoint
        self.config = config
        self.log = log
        self.stats = AgentStats(user_id=user_id, mode=config.mode, login=config.login)
        self.store = InteractionStore()
        self._session = session
        self._kwargs = request_kwargs or {}
        self._shared = shared if shared is not None else {}
        self._calls = calls
        self.tokens = TokenKeeper(
            endpoint,
            login_session,
            proactive=config.resilient,
            margin=config.token_refresh_margin,
            on_refresh=self._on_token,
            request_kwargs=self._kwargs,
            on_call=self._on_call,
            user_login=(
                UserLogin(user_id, config.redirect_uri) if config.login == "user" else None
            ),
        )
        self.api = ApiClient(
            endpoint,
            session,
            self.tokens,
            resilient=config.resilient,
            request_kwargs=self._kwargs,
            on_status=self._on_status,
            on_call=self._on_call,
        )
        self.channel_id = ""
        self.connect_uri = ""
        self.socket: NotificationSocket | None = None
        # local state, as last known
        self.presence = ""
        self.presence_id = ""
        self.presence_modified = ""
        self.routing_status = ""
        self._on_queue_id = ""
        self._wrapup_code = config.wrapup_code
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._lost_reason = ""
        #: The task retrying deferred interaction changes, while some wait (interactions).
        self._retrier: asyncio.Task[Any] | None = None
        self.ready = asyncio.Event()
        #: One reconnect backoff for the agent's life (its delay is remembered between drops).
        self.backoff = self._backoff()
        #: Bumped by every new wanted presence and every reconnect: an older retry loop stops.
        self._wish = 0
        self._epoch = 0

    def _event(self, event: str, **fields: Any) -> None:
        self.log.write(self.user_id, event, **fields)

    def _spawn(self, coroutine: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coroutine, name=f"{self.user_id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, LoggedOut):
            self._logout(str(error))
        elif isinstance(error, ApiError | TokenError):
            # a REST piece of a task gave up: never silently
            self.stats.last_error = str(error)[:300]
            self._event("task_failed", task=task.get_name().split(":", 1)[-1],
                        error=str(error)[:200])
        elif error is not None:
            logger.error("agent %s: task %s failed: %r", self.user_id, task.get_name(), error)
            self.stats.last_error = repr(error)[:300]

    def _on_token(self, why: str, elapsed_ms: float, lifetime: float) -> None:
        self.stats.token_refreshes += 1
        # the token's life began when it was asked for (as TokenKeeper counts it)
        self.stats.token_expires_at = time.time() - elapsed_ms / 1000 + lifetime
        self._event("token", refresh=why, ms=round(elapsed_ms, 1), expires_in=lifetime)

    def _on_status(self, status: int) -> None:
        if status == 401:
            self.stats.unauthorized += 1
        elif status >= 400:
            self.stats.http_errors += 1
            if status == 429:
                self.stats.throttled += 1

    def _on_call(
        self, method: str, path: str, status: int | None, latency_ms: float, retries: int
    ) -> None:
        self.stats.api_call(status, latency_ms)
        if self._calls is not None:
            self._calls.record(method, path, status, latency_ms, retries=retries)

    def _logout(self, reason: str) -> None:
        if self.stats.logged_out:
            return
        self.stats.logged_out = True
        self.stats.logged_out_reason = reason
        self._set_connected(False)
        self._event("logged_out", reason=reason)
        self._stopping.set()

    def _set_connected(self, connected: bool) -> None:
        self.stats.connected = connected
        self._queue_check()

    def _queue_check(self) -> None:
        """Account On Queue time in the desktop's own view: On Queue and connected."""
        self.stats.queue_state(self.stats.connected and normalise(self.presence) == "onqueue")

    def restore_backoff(self, state: Any) -> None:
        """Take back the reconnect backoff remembered by an earlier run (resilient only)."""
        if self.config.resilient:
            self.backoff.restore(state)
            self.stats.reconnect_backoff = self.backoff.state()

    def _next_delay(self, retry_after: float = 0.0) -> float:
        delay = self.backoff.delay(retry_after)
        self.stats.reconnect_backoff = self.backoff.state()
        return delay

    async def _sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True when it is time to stop."""
        if seconds <= 0:
            return self._stopping.is_set()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._stopping.wait()
        return self._stopping.is_set()

    def _backoff(self) -> Backoff:
        c = self.config
        rng = self._shared.get("rng")
        return Backoff(c.backoff_initial, c.backoff_max, c.backoff_factor, c.backoff_jitter,
                       c.backoff_tries, rng=rng if isinstance(rng, random.Random) else None)

    def _token_error(self, error: TokenError) -> None:
        """A REST call found no token (the keeper could not get one): counted and logged; the
        caller tries again later."""
        self.stats.token_errors += 1
        self._event("token_error", error=str(error)[:200])

    def _change_backoff(self) -> Backoff:
        """The backoff of a change the server did not take (presence, call, wrap-up)."""
        c = self.config
        return Backoff(c.change_retry_initial, c.change_retry_max, c.backoff_factor,
                       decay=0.0)
