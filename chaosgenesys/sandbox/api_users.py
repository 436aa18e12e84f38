"""Users, presence and routing status routes.

``/api/v2/users``, ``/api/v2/users/{id}`` (expand ``presence,routingStatus,conversationSummary``),
``/api/v2/users/{id}/presences/purecloud``, ``/api/v2/users/presences/purecloud/bulk``,
``/api/v2/users/{id}/routingstatus``, ``/api/v2/users/{id}/queues``,
``/api/v2/presence/definitions``, the older ``/api/v2/presencedefinitions`` and
``/api/v2/systempresences``. ``/api/v2/users/me`` needs a user context: the user of a
browser-login token (``browser_login.py``); a client-credentials token has none: 400, as the
platform.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from chaosgenesys.sandbox import views
from chaosgenesys.sandbox.errors import bad_request, not_found, user_context_required
from chaosgenesys.sandbox.model import OFF_QUEUE
from chaosgenesys.sandbox.params import json_body, json_object, page_params, query_bool, query_list
from chaosgenesys.sandbox.presence import SYSTEM_PRESENCES, PresenceDefinition
from chaosgenesys.sandbox.state import SandboxState

__all__ = ["add_routes"]

_MAX_BULK_PRESENCE = 50
_EXPANDS = {"presence", "routingStatus", "conversationSummary"}


def _definition(definition_id: str) -> PresenceDefinition:
    for definition in SYSTEM_PRESENCES:
        if definition.id == definition_id:
            return definition
    raise not_found("Presence definition", definition_id)


def add_routes(app: web.Application, state: SandboxState) -> None:
    """Register the users, presence and routing status routes."""

    def expand(request: web.Request) -> set[str]:
        return set(query_list(request, "expand")) & _EXPANDS

    async def list_users(request: web.Request) -> web.Response:
        size, number = page_params(request, default_size=25, max_size=500)
        ids = query_list(request, "id")
        if ids:
            if len(ids) > 100:
                raise bad_request(f"at most 100 ids can be fetched at once, not {len(ids)}")
            users = [state.users[uid] for uid in dict.fromkeys(ids) if uid in state.users]
        else:
            users = list(state.users.values())
        wanted = expand(request)
        entities = [views.user(state, user, wanted) for user in users]
        return web.json_response(
            views.listing(entities, size, number, "/api/v2/users", dict(request.query))
        )

    async def get_user(request: web.Request) -> web.Response:
        user = state.user(request.match_info["userId"])
        return web.json_response(views.user(state, user, expand(request)))

    async def users_me(request: web.Request) -> web.Response:
        # A user token (browser login) names its user; client credentials have none.
        user_id = request["token_record"].user_id
        if user_id is None:
            raise user_context_required()
        return web.json_response(views.user(state, state.user(user_id), expand(request)))

    def check_source(request: web.Request) -> None:
        source = request.match_info["source"]
        if source.lower() != "purecloud":
            raise not_found("Presence source", source)

    async def get_presence(request: web.Request) -> web.Response:
        check_source(request)
        user = state.user(request.match_info["userId"])
        return web.json_response(views.user_presence(user))

    async def patch_presence(request: web.Request) -> web.Response:
        check_source(request)
        user = state.user(request.match_info["userId"])
        body = await json_object(request)
        definition = body.get("presenceDefinition")
        if not isinstance(definition, dict) or not isinstance(definition.get("id"), str):
            raise bad_request("presenceDefinition.id is required")
        message = body.get("message")
        if message is not None and not isinstance(message, str):
            raise bad_request(f"message must be a string, not {message!r}")
        state.set_presence(user.id, definition["id"], message)
        return web.json_response(views.user_presence(user))

    async def bulk_presence(request: web.Request) -> web.Response:
        ids = query_list(request, "id")
        if not ids:
            raise bad_request("id is required: a comma-separated list of user ids")
        if len(ids) > _MAX_BULK_PRESENCE:
            raise bad_request(
                f"at most {_MAX_BULK_PRESENCE} user ids are allowed, not {len(ids)}"
            )
        users = [state.users[uid] for uid in dict.fromkeys(ids) if uid in state.users]
        return web.json_response([views.bulk_presence(user) for user in users])

    async def get_routing_status(request: web.Request) -> web.Response:
        user_id = request.match_info["userId"]
        user = state.users.get(user_id)
        if user is None:  # the platform's quirk: unknown users are OFF_QUEUE
            return web.json_response({"userId": user_id, "status": OFF_QUEUE})
        return web.json_response(views.routing_status(user))

    async def put_routing_status(request: web.Request) -> web.Response:
        user_id = request.match_info["userId"]
        body = await json_object(request)
        status = body.get("status")
        if not isinstance(status, str):
            raise bad_request("status is required")
        user = state.put_routing_status(user_id, status)
        return web.json_response(views.routing_status(user))

    async def user_queues(request: web.Request) -> web.Response:
        user = state.user(request.match_info["userId"])
        size, number = page_params(request, default_size=25, max_size=500)
        joined = query_bool(request, "joined")
        entities = [
            views.user_queue(state, queue, member)
            for queue, member in state.user_queues(user.id)
            if joined is None or member.joined == joined
        ]
        return web.json_response(
            views.listing(entities, size, number, f"/api/v2/users/{user.id}/queues",
                          dict(request.query))
        )

    async def patch_user_queues(request: web.Request) -> web.Response:
        user = state.user(request.match_info["userId"])
        body = await json_body(request)
        if not isinstance(body, list):
            raise bad_request("the body must be a list of {id, joined}")
        updated: list[dict[str, Any]] = []
        for index, item in enumerate(body):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise bad_request(f"[{index}].id is required")
            joined = item.get("joined")
            if not isinstance(joined, bool):
                raise bad_request(f"[{index}].joined must be true or false, not {joined!r}")
            member = state.set_joined(user.id, item["id"], joined)
            updated.append(views.user_queue(state, state.queues[item["id"]], member))
        return web.json_response(
            views.listing(updated, max(len(updated), 1), 1, f"/api/v2/users/{user.id}/queues")
        )

    def definitions_filtered(request: web.Request) -> list[PresenceDefinition]:
        deactivated = query_bool(request, "deactivated")
        kind = request.query.get("type")
        if deactivated or (kind is not None and kind.lower() == "user"):
            return []
        return list(SYSTEM_PRESENCES)

    async def definitions(request: web.Request) -> web.Response:
        entities = [views.presence_definition(d) for d in definitions_filtered(request)]
        return web.json_response(
            {"total": len(entities), "entities": entities,
             "selfUri": "/api/v2/presence/definitions"}
        )

    async def definition(request: web.Request) -> web.Response:
        return web.json_response(
            views.presence_definition(_definition(request.match_info["definitionId"]))
        )

    async def legacy_definitions(request: web.Request) -> web.Response:
        size, number = page_params(request, default_size=25, max_size=100)
        created = state.seed_time
        entities = [views.organization_presence(d, created) for d in SYSTEM_PRESENCES]
        return web.json_response(
            views.listing(entities, size, number, "/api/v2/presencedefinitions",
                          dict(request.query))
        )

    async def legacy_definition(request: web.Request) -> web.Response:
        found = _definition(request.match_info["definitionId"])
        return web.json_response(views.organization_presence(found, state.seed_time))

    async def system_presences(request: web.Request) -> web.Response:
        return web.json_response([views.system_presence(d) for d in SYSTEM_PRESENCES])

    router = app.router
    router.add_get("/api/v2/users", list_users)
    router.add_get("/api/v2/users/me", users_me)  # before {userId}: "me" is not an id
    router.add_get("/api/v2/users/presences/purecloud/bulk", bulk_presence)
    router.add_get("/api/v2/users/{userId}", get_user)
    router.add_get("/api/v2/users/{userId}/presences/{source}", get_presence)
    router.add_patch("/api/v2/users/{userId}/presences/{source}", patch_presence)
    router.add_get("/api/v2/users/{userId}/routingstatus", get_routing_status)
    router.add_put("/api/v2/users/{userId}/routingstatus", put_routing_status)
    router.add_get("/api/v2/users/{userId}/queues", user_queues)
    router.add_patch("/api/v2/users/{userId}/queues", patch_user_queues)
    router.add_get("/api/v2/presence/definitions", definitions)
    router.add_get("/api/v2/presence/definitions/{definitionId}", definition)
    router.add_get("/api/v2/presencedefinitions", legacy_definitions)
    router.add_get("/api/v2/presencedefinitions/{definitionId}", legacy_definition)
    router.add_get("/api/v2/systempresences", system_presences)
