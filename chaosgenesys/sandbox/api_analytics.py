"""Analytics routes: queue observations and an agent's live status.

``POST /api/v2/analytics/queues/observations/query`` with metrics ``oWaiting``, ``oInteracting``,
``oAlerting``, ``oOnQueueUsers`` (one entry per routing status qualifier), ``oOffQueueUsers``,
``oMemberUsers``, ``oActiveUsers``, ``oUserRoutingStatuses`` (per routing status) and
``oUserPresences`` (per presence definition id), and ``GET /api/v2/analytics/agents/{id}/status``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from aiohttp import web

from chaosgenesys.sandbox import views
from chaosgenesys.sandbox.errors import bad_request
from chaosgenesys.sandbox.model import (
    COMMUNICATING,
    IDLE,
    INTERACTING,
    NOT_RESPONDING,
    ROUTING_STATUSES,
)
from chaosgenesys.sandbox.params import json_object
from chaosgenesys.sandbox.presence import OFFLINE, ON_QUEUE
from chaosgenesys.sandbox.state import SandboxState

__all__ = ["METRICS", "add_routes", "queue_observations"]

METRICS = (
    "oActiveUsers",
    "oAlerting",
    "oInteracting",
    "oMemberUsers",
    "oOffQueueUsers",
    "oOnQueueUsers",
    "oUserPresences",
    "oUserRoutingStatuses",
    "oWaiting",
)
_ON_QUEUE_QUALIFIERS = (IDLE, INTERACTING, NOT_RESPONDING, COMMUNICATING)


def _queue_ids(node: Any, path: str, found: list[str]) -> None:
    if not isinstance(node, dict):
        raise bad_request(f"{path} must be an object")
    kind = node.get("type")
    if kind is not None and kind not in ("and", "or", "dimension", "property", "metric"):
        raise bad_request(f"{path}.type {kind!r} is not and/or/dimension")
    predicates = node.get("predicates") or []
    clauses = node.get("clauses") or []
    if not isinstance(predicates, list) or not isinstance(clauses, list):
        raise bad_request(f"{path}.predicates and {path}.clauses must be lists")
    for index, predicate in enumerate(predicates):
        if not isinstance(predicate, dict):
            raise bad_request(f"{path}.predicates[{index}] must be an object")
        if predicate.get("dimension") == "queueId":
            value = predicate.get("value")
            if not isinstance(value, str) or not value:
                raise bad_request(f"{path}.predicates[{index}].value must be a queue id")
            found.append(value)
    for index, clause in enumerate(clauses):
        _queue_ids(clause, f"{path}.clauses[{index}]", found)


def queue_observations(state: SandboxState, queue_id: str, metrics: list[str]) -> dict[str, Any]:
    """One observation result (``{group, data}``) for ``queue_id``."""
    queue = state.queues.get(queue_id)
    members = list(queue.members.values()) if queue else []
    joined = [state.users[m.user_id] for m in members if m.joined and m.user_id in state.users]
    conversations = [c for c in state.conversations.values() if c.queue_id == queue_id]
    agents = [c.current_agent() for c in conversations]
    data: list[dict[str, Any]] = []

    def count(metric: str, value: int, qualifier: str | None = None) -> None:
        entry: dict[str, Any] = {"metric": metric}
        if qualifier is not None:
            entry["qualifier"] = qualifier
        entry["stats"] = {"count": value}
        data.append(entry)

    for metric in metrics:
        if metric == "oWaiting":
            count(metric, sum(1 for c in conversations if c.waiting))
        elif metric == "oInteracting":
            count(metric, sum(1 for a in agents if a is not None and a.state == "connected"))
        elif metric == "oAlerting":
            count(metric, sum(1 for a in agents if a is not None and a.state == "alerting"))
        elif metric == "oOnQueueUsers":
            statuses = Counter(u.routing_status for u in joined if u.presence == ON_QUEUE)
            for qualifier in _ON_QUEUE_QUALIFIERS:
                count(metric, statuses[qualifier], qualifier)
        elif metric == "oOffQueueUsers":
            count(metric, sum(1 for u in joined if u.presence not in (ON_QUEUE, OFFLINE)))
        elif metric == "oMemberUsers":
            count(metric, len(members))
        elif metric == "oActiveUsers":
            count(metric, sum(1 for u in joined if u.presence != OFFLINE))
        elif metric == "oUserRoutingStatuses":
            statuses = Counter(u.routing_status for u in joined)
            for qualifier in ROUTING_STATUSES:
                count(metric, statuses[qualifier], qualifier)
        elif metric == "oUserPresences":
            presences = Counter(u.presence.id for u in joined)
            for qualifier, value in presences.items():
                count(metric, value, qualifier)
    return {"group": {"queueId": queue_id, "mediaType": "voice"}, "data": data}


def add_routes(app: web.Application, state: SandboxState) -> None:
    """Register the analytics routes."""

    async def observations(request: web.Request) -> web.Response:
        body = await json_object(request)
        metrics = body.get("metrics")
        if not isinstance(metrics, list) or not metrics:
            raise bad_request("metrics is required: a list of observation metrics")
        for metric in metrics:
            if metric not in METRICS:
                raise bad_request(
                    f"metrics: {metric!r} is not supported (supported: {', '.join(METRICS)})"
                )
        if "filter" not in body:
            raise bad_request("filter is required")
        queue_ids: list[str] = []
        _queue_ids(body["filter"], "filter", queue_ids)
        if not queue_ids:
            raise bad_request("filter must have a queueId dimension predicate")
        results = [queue_observations(state, qid, metrics) for qid in dict.fromkeys(queue_ids)]
        return web.json_response({"results": results})

    async def agent_status(request: web.Request) -> web.Response:
        user = state.user(request.match_info["userId"])
        return web.json_response(views.agent_status(state, user))

    app.router.add_post("/api/v2/analytics/queues/observations/query", observations)
    app.router.add_get("/api/v2/analytics/agents/{userId}/status", agent_status)
