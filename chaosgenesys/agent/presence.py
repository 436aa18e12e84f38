"""The desktop's presence and routing status: read from the server and adopted, and the wanted
presence (On Queue) sent until it lands.

Going On Queue at start is one request (with the REST client's own retries). After a
reconnect, going back On Queue (and routing back to IDLE) is retried with its own backoff
(``change_retry_initial`` .. ``change_retry_max``), each failure logged (``change_failed``,
``last_error`` set), until it lands, the server shows it landed some other way, someone's own
choice (Break, Meal, ...) supersedes it, or a newer wish or reconnect takes over.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from chaosgenesys.agent.api import ApiError
from chaosgenesys.agent.core import TRANSIENT, AgentCore
from chaosgenesys.presence_names import normalise_presence as normalise

__all__ = ["REJOIN_FROM", "Presence"]

#: Presences the platform (or a lost session) leaves an agent in; a resilient agent on shift
#: goes back On Queue from these. Busy, Break, Meal, Training and Meeting are someone's
#: decision and are respected.
REJOIN_FROM = {"available", "offline", "idle", "away"}


class Presence(AgentCore):
    """Presence and routing status of one desktop: read, adopt, send, retry until landed."""

    # ------------------------------------------------------------------ read and adopt
    async def _resolve_on_queue(self) -> None:
        cached = self._shared.get("on_queue_id")
        if isinstance(cached, str) and cached:
            self._on_queue_id = cached
            return
        body = await self.api.request("GET", "/api/v2/presence/definitions")
        for entity in body.get("entities", []) if isinstance(body, dict) else []:
            if (
                isinstance(entity, dict)
                and normalise(str(entity.get("systemPresence", ""))) == "onqueue"
                and entity.get("type", "System") == "System"
            ):
                self._on_queue_id = str(entity["id"])
                self._shared["on_queue_id"] = self._on_queue_id
                return
        raise ApiError("GET", "/api/v2/presence/definitions", 200, "no On Queue definition")

    async def _fetch_user(self) -> tuple[str, str, str, str]:
        """(presence name, definition id, modifiedDate, routing status) from the server."""
        body = await self.api.request(
            "GET", f"/api/v2/users/{self.user_id}?expand=presence,routingStatus"
        )
        presence = body.get("presence") or {} if isinstance(body, dict) else {}
        definition = presence.get("presenceDefinition") or {}
        routing = body.get("routingStatus") or {} if isinstance(body, dict) else {}
        return (
            str(definition.get("systemPresence", "")),
            str(definition.get("id", "")),
            str(presence.get("modifiedDate", "")),
            str(routing.get("status", "")),
        )

    def _adopt_presence(self, name: str, ident: str, modified: str, source: str) -> None:
        if normalise(name) != normalise(self.presence):
            self._event("presence", **{"from": self.presence, "to": name, "source": source})
        self.presence, self.presence_id = name, ident
        if modified:
            self.presence_modified = max(self.presence_modified, modified)
        self.stats.presence = name
        self._queue_check()

    def _adopt_routing(self, status: str, source: str) -> None:
        if status and status != self.routing_status:
            self._event("routing", **{"from": self.routing_status, "to": status,
                                      "source": source})
            self.routing_status = status
            self.stats.routing_status = status

    async def _read_state(self, source: str) -> None:
        name, ident, modified, routing = await self._fetch_user()
        self._adopt_presence(name, ident, modified, source)
        self._adopt_routing(routing, source)

    async def _go_on_queue(self, why: str, retry: bool = True) -> None:
        body = await self.api.request(
            "PATCH",
            f"/api/v2/users/{self.user_id}/presences/purecloud",
            {"presenceDefinition": {"id": self._on_queue_id}},
            retry=retry,
        )
        definition = body.get("presenceDefinition", {}) if isinstance(body, dict) else {}
        self._adopt_presence(
            str(definition.get("systemPresence") or "On Queue"),
            self._on_queue_id,
            str(body.get("modifiedDate", "")) if isinstance(body, dict) else "",
            f"local:{why}",
        )

    # ------------------------------------------------------------------ wanted presence
    def _want_on_queue(self, why: str) -> None:
        """Resilient: go On Queue, retried until it lands or is superseded (a newer wish)."""
        self._wish += 1
        self._spawn(self._keep_on_queue(self._wish, why), f"presence:{why}")

    async def _keep_on_queue(self, wish: int, why: str) -> None:
        """Send the wanted presence until it lands. Before each retry the server's presence is
        read again: already On Queue (landed some other way), or set by someone (Break,
        Meal, ...: a newer wanted presence) ends it; so does a newer wish of the agent."""
        retry = self._change_backoff()
        failures = 0
        while wish == self._wish and not self._stopping.is_set():
            if failures:
                try:
                    name, ident, modified, routing = await self._fetch_user()
                except ApiError as error:  # a failed read is not a failed change
                    delay = retry.delay(error.retry_after)
                    self.stats.last_error = str(error)[:300]
                    self._event("reread_failed", what="presence", error=str(error)[:200],
                                retry_in_s=round(delay, 3))
                    if await self._sleep(delay):
                        return
                    continue
                self._adopt_presence(name, ident, modified, "reread")
                self._adopt_routing(routing, "reread")
                key = normalise(name)
                if wish != self._wish:
                    return
                if key == "onqueue":
                    self._event("change_landed", what="presence", to=name, tries=failures,
                                by="server")
                    return
                if key not in REJOIN_FROM:
                    self._event("change_superseded", what="presence", wanted="On Queue",
                                server=name)
                    return
            try:
                await self._go_on_queue(why, retry=False)
            except ApiError as error:
                failures += 1
                delay = retry.delay(error.retry_after)
                if not self._change_failed("presence", error, failures, delay):
                    return
                if await self._sleep(delay):
                    return
                continue
            if failures:
                self.stats.changes_retried += 1
                self._event("change_landed", what="presence", to="On Queue",
                            tries=failures + 1)
            return

    def _change_failed(self, what: str, error: ApiError, attempt: int,
                       delay: float | None = None) -> bool:
        """Log one failed change (an event, ``last_error``); True when it is worth retrying."""
        self.stats.changes_failed += 1
        self.stats.last_error = str(error)[:300]
        transient = error.status in TRANSIENT
        self._event("change_failed", what=what, status=error.status, attempt=attempt,
                    error=str(error)[:200],
                    retry_in_s=round(delay, 3) if transient and delay is not None else None)
        return transient

    async def _change(self, what: str, send: Callable[[], Awaitable[Any]]) -> bool:
        """A one-off change after a reconnect, retried like a presence change until it lands
        (True) or a newer reconnect takes over (False)."""
        retry = self._change_backoff()
        epoch = self._epoch
        attempt = 0
        while not self._stopping.is_set() and epoch == self._epoch:
            try:
                await send()
            except ApiError as error:
                attempt += 1
                delay = retry.delay(error.retry_after)
                if not self._change_failed(what, error, attempt, delay):
                    return False
                if await self._sleep(delay):
                    return False
                continue
            if attempt:
                self.stats.changes_retried += 1
                self._event("change_landed", what=what, tries=attempt + 1)
            return True
        return False

    async def _routing_idle(self) -> None:
        """Back to IDLE from NOT_RESPONDING, retried like a presence change."""
        landed = await self._change("routing", lambda: self.api.request(
            "PUT", f"/api/v2/users/{self.user_id}/routingstatus", {"status": "IDLE"},
            retry=False))
        if landed:
            self._adopt_routing("IDLE", "local:rejoin")
