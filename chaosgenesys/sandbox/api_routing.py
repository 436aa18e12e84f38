"""Routing routes: queues, queue members and wrap-up codes.

``/api/v2/routing/queues``, ``/api/v2/routing/queues/{id}``, ``/api/v2/routing/queues/{id}/members``
(pageSize <= 100; filters ``routingStatus``, ``presence``, ``joined``, ``name``) and
``/api/v2/routing/wrapupcodes``. ``/api/v2/routing/queues/me`` (the caller's queues) needs a user
context a client-credentials token does not have: 400, as the platform.
"""

from __future__ import annotations

import fnmatch

from aiohttp import web

from chaosgenesys.sandbox import views
from chaosgenesys.sandbox.errors import bad_request, not_found, user_context_required
from chaosgenesys.sandbox.model import ROUTING_STATUSES
from chaosgenesys.sandbox.params import page_params, query_bool, query_list
from chaosgenesys.sandbox.presence import find_presence
from chaosgenesys.sandbox.state import SandboxState

__all__ = ["add_routes"]


def add_routes(app: web.Application, state: SandboxState) -> None:
    """Register the routing routes."""

    async def list_queues(request: web.Request) -> web.Response:
        size, number = page_params(request, default_size=25, max_size=500)
        name = request.query.get("name")
        ids = set(query_list(request, "id"))
        queues = [
            queue for queue in state.queues.values()
            if (not name or _name_matches(queue.name, name)) and (not ids or queue.id in ids)
        ]
        entities = [views.queue(state, queue) for queue in queues]
        return web.json_response(
            views.listing(entities, size, number, "/api/v2/routing/queues", dict(request.query))
        )

    async def get_queue(request: web.Request) -> web.Response:
        queue = state.queue(request.match_info["queueId"])
        return web.json_response(views.queue(state, queue))

    async def members(request: web.Request) -> web.Response:
        queue = state.queue(request.match_info["queueId"])
        size, number = page_params(request, default_size=25, max_size=100)
        statuses = {status.upper() for status in query_list(request, "routingStatus")}
        unknown = statuses - set(ROUTING_STATUSES)
        if unknown:
            raise bad_request(f"routingStatus {sorted(unknown)[0]!r} is not a routing status")
        presences: set[str] = set()
        for presence_name in query_list(request, "presence"):
            definition = find_presence(presence_name)
            if definition is None:
                raise bad_request(f"presence {presence_name!r} is not a system presence")
            presences.add(definition.id)
        joined = query_bool(request, "joined")
        name = request.query.get("name")
        selected = []
        for member in queue.members.values():
            user = state.users.get(member.user_id)
            if user is None:
                continue
            if statuses and user.routing_status not in statuses:
                continue
            if presences and user.presence.id not in presences:
                continue
            if joined is not None and member.joined != joined:
                continue
            if name and not _name_matches(user.name, name):
                continue
            selected.append(views.queue_member(state, queue, member))
        if request.query.get("sortOrder", "asc").lower() == "desc":
            selected.reverse()
        page = views.listing(selected, size, number,
                             f"/api/v2/routing/queues/{queue.id}/members", dict(request.query))
        # QueueMemberEntityListing has no total, pageCount or lastUri.
        for key in ("total", "pageCount", "lastUri"):
            page.pop(key, None)
        return web.json_response(page)

    async def wrapup_codes(request: web.Request) -> web.Response:
        size, number = page_params(request, default_size=25, max_size=500)
        entities = [views.wrapup_code(i, n) for i, n in state.wrapup_codes.items()]
        return web.json_response(
            views.listing(entities, size, number, "/api/v2/routing/wrapupcodes",
                          dict(request.query))
        )

    async def wrapup_code(request: web.Request) -> web.Response:
        code_id = request.match_info["codeId"]
        name = state.wrapup_codes.get(code_id)
        if name is None:
            raise not_found("Wrap-up code", code_id)
        return web.json_response(views.wrapup_code(code_id, name))

    async def queues_me(request: web.Request) -> web.Response:
        raise user_context_required()

    router = app.router
    router.add_get("/api/v2/routing/queues", list_queues)
    router.add_get("/api/v2/routing/queues/me", queues_me)  # before {queueId}: "me" is no id
    router.add_get("/api/v2/routing/queues/{queueId}", get_queue)
    router.add_get("/api/v2/routing/queues/{queueId}/members", members)
    router.add_get("/api/v2/routing/wrapupcodes", wrapup_codes)
    router.add_get("/api/v2/routing/wrapupcodes/{codeId}", wrapup_code)


def _name_matches(value: str, pattern: str) -> bool:
    """The platform's name filters: case-insensitive, ``*`` as a wildcard, else substring."""
    value, pattern = value.lower(), pattern.lower()
    if "*" not in pattern:
        return pattern in value
    return fnmatch.fnmatchcase(value, pattern)
