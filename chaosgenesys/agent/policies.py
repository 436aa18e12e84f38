"""The two reconnect policies of a desktop: how it gets its socket back, and what it does then.

:class:`ResilientPolicy` is today's streaming client: the backoff (2 s, doubling, 90 s at most,
no jitter, Retry-After honoured, remembered), 10 tries on the same channel then hard
reconnects on new ones, a new login after a 401/403; once back it re-reads the truth
(presence, routing status, every open interaction) and applies "last known good state", then
goes back On Queue (or routing back to IDLE) if the platform took it off.

:class:`NaivePolicy` retries at once every ``naive_retry_gap`` s, at most ``naive_max_tries``
times, and once back pushes its stale local presence and pending changes without reading (it
reads only to count the consistency violations it commits).

A policy is one of the desktop's parts (it uses the desktop's own members); the desktop picks
one from its mode (``agent.SyntheticAgent``) and its connection calls it (``connection``).
"""

from __future__ import annotations

import contextlib

from chaosgenesys.agent.api import ApiError
from chaosgenesys.agent.channel import ChannelGone, ConnectFailed, NotificationSocket
from chaosgenesys.agent.connection import RELOGIN, Connection, retry_after_of, status_of
from chaosgenesys.agent.presence import REJOIN_FROM
from chaosgenesys.agent.store import (
    Interaction,
    agent_participant,
    participant_view,
    server_is_newer,
)
from chaosgenesys.agent.tokens import TokenError
from chaosgenesys.presence_names import normalise_presence as normalise

__all__ = ["NaivePolicy", "ResilientPolicy"]


class ResilientPolicy:
    """Today's streaming client: back off and reconnect until connected, then re-read."""

    #: The task that runs :meth:`after_reconnect`.
    after_task = "reread"

    def __init__(self, agent: Connection) -> None:
        self.agent = agent

    async def reconnect(self, started: float) -> NotificationSocket | None:
        """Today's streaming client: backoff without jitter until connected (never gives up)."""
        agent = self.agent
        agent._epoch += 1
        backoff = agent.backoff
        backoff.reset()
        attempts = 0
        hard = False
        retry_after = 0.0
        while True:
            if backoff.exhausted:  # tries on this channel used up: new channels from now on
                hard = True
            if await agent._sleep(agent._next_delay(retry_after)):
                return None
            retry_after = 0.0
            attempts += 1
            try:
                try:
                    socket = await agent._attempt(hard)
                except ChannelGone:
                    agent._event("channel_gone", attempt=attempts)
                    socket = await agent._attempt(True)  # a new channel at once
            except (ApiError, TokenError, ConnectFailed, ChannelGone) as error:
                agent._event("reconnect_failed", attempt=attempts, error=str(error)[:200],
                             status=status_of(error) or None)
                retry_after = retry_after_of(error)
                if status_of(error) in RELOGIN:
                    await agent._relogin(error)
                    hard = True
                continue
            if hard:
                agent.stats.hard_reconnects += 1
            agent._reconnected(started, attempts, "hard" if hard else "soft")
            return socket

    async def after_reconnect(self) -> None:
        """Re-read the truth and apply "last known good state"."""
        agent = self.agent
        epoch = agent._epoch
        local = (agent.presence, agent.presence_modified)
        retry = agent._change_backoff()
        while True:
            try:
                name, ident, modified, routing = await agent._fetch_user()
                break
            except ApiError as error:  # retried: without it the agent could stay off queue
                delay = retry.delay(error.retry_after)
                agent.stats.last_error = str(error)[:300]
                agent._event("reread_failed", error=str(error)[:200], retry_in_s=round(delay, 3))
            if await agent._sleep(delay) or epoch != agent._epoch:
                return  # stopping, or a newer reconnect re-reads for itself
        if modified > local[1] and normalise(name) != normalise(local[0]):
            agent.stats.local_changes_discarded += 1
            agent._event("local_discarded", what="presence", local=local[0], server=name,
                         server_modified=modified)
        agent._adopt_presence(name, ident, modified, "reread")
        agent._adopt_routing(routing, "reread")
        agent._event("state_reread", presence=name, routing=routing)
        await agent._reread_interactions()
        if agent.config.stay_on_queue:
            key = normalise(name)
            if key in REJOIN_FROM:
                agent._want_on_queue("rejoin")
            elif key == "onqueue" and routing == "NOT_RESPONDING":
                agent._spawn(agent._routing_idle(), "routing:rejoin")


class NaivePolicy:
    """A bad desktop: reconnect at once, give up soon, push stale state without reading."""

    #: The task that runs :meth:`after_reconnect`.
    after_task = "push-stale"

    def __init__(self, agent: Connection) -> None:
        self.agent = agent

    async def reconnect(self, started: float) -> NotificationSocket | None:
        """Every ``naive_retry_gap`` s on the same channel (a new one only when it is gone), at
        most ``naive_max_tries`` times, then give up: logged out."""
        agent = self.agent
        for attempt in range(1, agent.config.naive_max_tries + 1):
            if await agent._sleep(agent.config.naive_retry_gap):
                return None
            try:
                socket = await agent._attempt(False)
            except ChannelGone:
                continue  # channel_id was cleared: the next try makes a new one
            except (ApiError, TokenError, ConnectFailed):
                continue
            agent._reconnected(started, attempt, "naive")
            return socket
        agent._logout(f"gave up reconnecting after {agent.config.naive_max_tries} tries")
        return None

    async def after_reconnect(self) -> None:
        """Push the local state as it was before the drop, without reading first."""
        agent = self.agent
        if agent.presence_id:
            try:  # measurement only: the naive agent ignores what it reads here
                name, _ident, modified, _routing = await agent._fetch_user()
                if modified > agent.presence_modified and normalise(name) != normalise(
                    agent.presence
                ):
                    agent._violation("presence", agent.presence, name)
            except ApiError:
                pass
            with contextlib.suppress(ApiError):
                await agent.api.request(
                    "PATCH",
                    f"/api/v2/users/{agent.user_id}/presences/purecloud",
                    {"presenceDefinition": {"id": agent.presence_id}},
                )
                agent._event("presence", **{"from": "", "to": agent.presence,
                                            "source": "local:stale"})
        for item in list(agent.store.open()):
            if item.pending is not None:
                await self._measure_conflict(item)
                await agent._apply_pending(item)

    async def _measure_conflict(self, item: Interaction) -> None:
        """Naive agent: read the server's version only to count the violation it is about to
        commit (its local store is not updated from this read)."""
        agent = self.agent
        change = item.pending
        if change is None or server_is_newer(item.server_marker, change):
            return  # _apply_pending counts it from the local store
        try:
            body = await agent.api.request("GET", f"/api/v2/conversations/{item.conversation_id}")
        except ApiError:
            return
        participant = agent_participant(body, agent.user_id) if isinstance(body, dict) else None
        if participant is None:
            return
        view = participant_view(participant)
        if server_is_newer(view["marker"], change) or (
            change.kind == "wrapup" and view["wrapup_code"]
        ):
            agent._violation(change.kind, change.base_marker, view["marker"])
