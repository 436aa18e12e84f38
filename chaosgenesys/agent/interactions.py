"""The desktop's interactions: calls alerting, answered, hung up and wrapped up.

Every conversation event (or re-read) updates the local :class:`InteractionStore`; a change the
desktop decides (answer, hang up, wrap-up) is kept as the interaction's pending change and
sent with optimistic locking: in resilient mode a change decided before the server's newer
version is discarded (``local_discarded``), in naive mode it is sent anyway and counted as a
consistency violation. A change the server did not take for a passing reason (no answer,
408, 429, 5xx) is kept and tried again on the change backoff until it lands, and after every
reconnect.
"""

from __future__ import annotations

import time
from typing import Any

from chaosgenesys.agent.api import ApiError
from chaosgenesys.agent.core import TRANSIENT, AgentCore
from chaosgenesys.agent.store import (
    Interaction,
    agent_participant,
    participant_view,
    server_is_newer,
)
from chaosgenesys.agent.tokens import TokenError

__all__ = ["Interactions"]

_ENDED = ("disconnected", "terminated")


class Interactions(AgentCore):
    """Calls and wrap-ups of one desktop, from the conversation events to the REST changes."""

    # ------------------------------------------------------------------ conversation events
    def _on_conversation(self, body: dict[str, Any], source: str) -> None:
        conversation_id = body.get("id")
        participant = agent_participant(body, self.user_id)
        if not isinstance(conversation_id, str) or participant is None:
            return
        view = participant_view(participant)
        item = self.store.upsert(conversation_id)
        if item.participant_id and view["participant_id"] != item.participant_id:
            # a new offer of the same conversation (re-routed back to us): a fresh interaction
            item.state, item.answered, item.pending = "", False, None
        previous = item.state
        item.participant_id = view["participant_id"]
        item.communication_id = view["communication_id"] or item.communication_id
        item.server_marker = max(item.server_marker, view["marker"])
        item.state = view["state"]
        item.acw_state = view["acw_state"]
        item.server_wrapup_code = view["wrapup_code"]
        state = view["state"]
        if state == "alerting" and previous != "alerting" and not item.answered:
            self.stats.calls_alerting += 1
            self._event("call_alerting", conversation=conversation_id, source=source)
            self._spawn(self._answer(item), f"answer:{conversation_id}")
        elif state == "connected" and previous != "connected":
            item.answered = True
            if item.pending is not None and item.pending.kind == "answer":
                item.pending = None
            if self.config.talk_time > 0:
                self._spawn(self._hang_up(item), f"hangup:{conversation_id}")
        elif state in _ENDED and previous not in _ENDED:
            self._event("call_ended", conversation=conversation_id,
                        disconnect=view["disconnect_type"], source=source)
            if not item.answered and view["disconnect_type"] != "client":
                self.stats.interactions_lost += 1
                self._event("interaction_lost", conversation=conversation_id,
                            disconnect=view["disconnect_type"])
            if item.pending is not None and item.pending.kind in ("answer", "hangup"):
                item.pending = None if self.config.resilient else item.pending
        if view["wrapup_code"]:
            item.wrapped_up = True
        if state in _ENDED:
            if view["acw_state"] == "pending" and not item.wrapped_up:
                if item.acw_started_at is None:
                    self._spawn(self._wrap_up(item), f"wrapup:{conversation_id}")
            elif item.pending is None or item.pending.kind != "wrapup":
                item.done = True
        self.store.prune()

    # ------------------------------------------------------------------ the desktop's changes
    async def _answer(self, item: Interaction) -> None:
        if await self._sleep(self.config.answer_delay):
            return
        item.change("answer")
        await self._apply_pending(item)

    async def _hang_up(self, item: Interaction) -> None:
        if await self._sleep(self.config.talk_time):
            return
        if item.state != "connected":
            return
        item.change("hangup")
        await self._apply_pending(item)

    async def _wrap_up(self, item: Interaction) -> None:
        item.acw_started_at = time.monotonic()
        code = await self._wrapup_code_id()
        item.change("wrapup", {"code": code})
        self._event("wrapup_started", conversation=item.conversation_id, code=code)
        if await self._sleep(self.config.wrapup_time):
            return
        await self._apply_pending(item)

    async def _wrapup_code_id(self) -> str:
        if self._wrapup_code:
            return self._wrapup_code
        cached = self._shared.get("wrapup_code")
        if isinstance(cached, str) and cached:
            self._wrapup_code = cached
            return cached
        body = await self.api.request("GET", "/api/v2/routing/wrapupcodes")
        for entity in body.get("entities", []) if isinstance(body, dict) else []:
            if isinstance(entity, dict) and entity.get("id"):
                self._wrapup_code = self._shared["wrapup_code"] = str(entity["id"])
                return self._wrapup_code
        raise ApiError("GET", "/api/v2/routing/wrapupcodes", 200, "no wrap-up code")

    async def _apply_pending(self, item: Interaction) -> None:
        """Send the pending local change, with optimistic locking in resilient mode."""
        change = item.pending
        if change is None or change.sending:
            return
        if server_is_newer(item.server_marker, change) or (
            change.kind == "wrapup" and item.wrapped_up
        ):
            if self.config.resilient:
                self.stats.local_changes_discarded += 1
                self._event("local_discarded", what=change.kind,
                            conversation=item.conversation_id,
                            server_marker=item.server_marker, base_marker=change.base_marker)
                item.pending = None
                if change.kind == "wrapup":
                    item.done = True
                return
            self._violation(change.kind, change.base_marker, item.server_marker)
        cid, pid = item.conversation_id, item.participant_id
        change.sending = True
        try:
            if change.kind == "answer":
                await self.api.request("PATCH", f"/api/v2/conversations/calls/{cid}/participants/"
                                       f"{pid}", {"state": "connected"}, retry=False)
                item.answered = True
                self.stats.calls_answered += 1
                self._event("call_answered", conversation=cid)
            elif change.kind == "hangup":
                await self.api.request("PATCH", f"/api/v2/conversations/calls/{cid}/participants/"
                                       f"{pid}", {"state": "disconnected"}, retry=False)
                self._event("call_hung_up", conversation=cid)
            else:
                started = item.acw_started_at or change.created_at
                body = dict(change.body)
                body["durationSeconds"] = round(time.monotonic() - started)
                await self.api.request(
                    "POST",
                    f"/api/v2/conversations/calls/{cid}/participants/{pid}/communications/"
                    f"{item.communication_id}/wrapup",
                    body,
                    retry=False,
                )
                item.wrapped_up = True
                item.done = True
                self.stats.wrapups_submitted += 1
                self._event("wrapup_submitted", conversation=cid, code=body.get("code"),
                            duration_s=body["durationSeconds"])
            if item.pending is change:
                item.pending = None
        except ApiError as error:
            if error.status in TRANSIENT:  # no answer or a passing failure: keep it
                self._event("change_deferred", what=change.kind, conversation=cid,
                            error=str(error)[:200])
                self._retry_later()
                return
            self._event("change_failed", what=change.kind, conversation=cid,
                        status=error.status, error=str(error)[:200])
            if item.pending is change:
                item.pending = None
        except TokenError:  # no token for now: kept, and tried again with a new one
            self._retry_later()
            raise
        finally:
            change.sending = False

    def _violation(self, what: str, local: Any, server: Any) -> None:
        self.stats.consistency_violations += 1
        self._event("consistency_violation", what=what, local=local, server=server)

    # ------------------------------------------------------------------ read again, try again
    def _retry_later(self) -> None:
        """A change was deferred: try the deferred changes again on the change backoff
        (``change_retry_initial``, doubling up to ``change_retry_max``) until none is left.
        One retrier at a time, and none while nothing waits: an idle desktop runs no timer
        for it (the real desktop does not poll either)."""
        if self._retrier is None or self._retrier.done():
            self._retrier = self._spawn(self._retry_until_sent(), "deferred")

    def _deferred(self) -> bool:
        return any(item.pending is not None for item in self.store.open())

    async def _retry_until_sent(self) -> None:
        retry = self._change_backoff()
        while self._deferred() and not await self._sleep(retry.delay()):
            if not self.stats.connected:
                continue  # the reconnect re-reads and sends what is pending
            try:
                await self._retry_deferred()
            except ApiError as error:  # the re-read failed: the change waits for the next try
                self._event("reread_failed", what="deferred change", error=str(error)[:200])
            except TokenError as error:  # no token for now: the next try asks for one again
                self._token_error(error)

    async def _retry_deferred(self) -> None:
        """Pending changes that could not be sent: re-read (resilient) and try again."""
        for item in list(self.store.open()):
            change = item.pending
            if change is None or time.monotonic() - change.created_at < 1.0:
                continue
            if change.kind == "wrapup" and item.acw_started_at is not None and (
                time.monotonic() - item.acw_started_at < self.config.wrapup_time + 1.0
            ):
                continue  # still wrapping up
            if self.config.resilient:
                body = await self.api.request(
                    "GET", f"/api/v2/conversations/{item.conversation_id}"
                )
                if isinstance(body, dict):
                    self._on_conversation(body, "reread")
            await self._apply_pending(item)

    async def _reread_interactions(self) -> None:
        """After a reconnect: re-read every interaction known here or to the server, and send
        what is still pending."""
        known = {item.conversation_id for item in self.store.open()}
        try:
            status = await self.api.request("GET",
                                            f"/api/v2/analytics/agents/{self.user_id}/status")
            sessions = status.get("sessions", []) if isinstance(status, dict) else []
            known |= {str(s["conversationId"]) for s in sessions
                      if isinstance(s, dict) and s.get("conversationId")}
        except ApiError as error:
            self._event("reread_failed", what="agent status", error=str(error)[:200])
        for conversation_id in known:
            try:
                body = await self.api.request("GET", f"/api/v2/conversations/{conversation_id}")
            except ApiError as error:
                self._event("reread_failed", conversation=conversation_id,
                            error=str(error)[:200])
                continue
            if isinstance(body, dict):
                self._on_conversation(body, "reread")
            item = self.store.get(conversation_id)
            if item is not None and item.pending is not None:
                await self._apply_pending(item)
