"""Conversation routes: read calls, answer, hang up, hold, mute and wrap up.

``GET /api/v2/conversations`` and ``.../calls`` (the calling user's active ones, alerting,
connected or in after-call work: a desktop reads them after it subscribes, so a call routed
before its subscription is not missed; empty under client credentials, which name no user),
``GET /api/v2/conversations/{id}`` (state in ``participants[].calls[]``),
``GET /api/v2/conversations/calls/{id}`` (state on each participant),
``PATCH /api/v2/conversations/calls/{id}/participants/{pid}`` (``state``, ``held``, ``muted``),
``GET .../participants/{pid}/wrapup`` and ``.../wrapupcodes``, and
``POST /api/v2/conversations/calls/{id}/participants/{pid}/communications/{commId}/wrapup``.
"""

from __future__ import annotations

from aiohttp import web

from chaosgenesys.sandbox import views
from chaosgenesys.sandbox.errors import bad_request
from chaosgenesys.sandbox.params import json_object, page_params
from chaosgenesys.sandbox.state import SandboxState

__all__ = ["add_routes"]


def add_routes(app: web.Application, state: SandboxState) -> None:
    """Register the conversation routes."""

    async def my_conversations(request: web.Request) -> web.Response:
        size, number = page_params(request, default_size=25, max_size=100)
        user_id = request["token_record"].user_id
        mine = {} if user_id is None else {
            conversation.id: conversation
            for conversation, participant in state.agent_participants(user_id)
            if participant.active or participant.in_acw
        }
        view = views.call_conversation if request.path.endswith("/calls") else views.conversation
        entities = [view(conversation) for conversation in mine.values()]
        return web.json_response(views.listing(entities, size, number, request.path))

    async def get_conversation(request: web.Request) -> web.Response:
        conversation = state.conversation(request.match_info["conversationId"])
        return web.json_response(views.conversation(conversation))

    async def get_call(request: web.Request) -> web.Response:
        conversation = state.conversation(request.match_info["conversationId"])
        return web.json_response(views.call_conversation(conversation))

    async def patch_participant(request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversationId"]
        participant_id = request.match_info["participantId"]
        state.participant(conversation_id, participant_id)  # 404 before parsing the body
        body = await json_object(request)
        new_state = body.get("state")
        if new_state is not None and not isinstance(new_state, str):
            raise bad_request(f"state must be a string, not {new_state!r}")
        flags: dict[str, bool | None] = {}
        for key in ("held", "muted"):
            value = body.get(key)
            if value is not None and not isinstance(value, bool):
                raise bad_request(f"{key} must be true or false, not {value!r}")
            flags[key] = value
        state.update_participant(
            conversation_id,
            participant_id,
            state=new_state,
            held=flags["held"],
            muted=flags["muted"],
        )
        return web.Response(status=202)

    async def get_wrapup(request: web.Request) -> web.Response:
        _conversation, participant = state.participant(
            request.match_info["conversationId"], request.match_info["participantId"]
        )
        if participant.wrapup is None:
            return web.json_response({})
        wrapup = {key: value for key, value in participant.wrapup.items() if key != "name"}
        return web.json_response(wrapup)

    async def participant_wrapup_codes(request: web.Request) -> web.Response:
        state.participant(request.match_info["conversationId"],
                          request.match_info["participantId"])
        return web.json_response(
            [views.wrapup_code(i, n) for i, n in state.wrapup_codes.items()]
        )

    async def post_wrapup(request: web.Request) -> web.Response:
        conversation_id = request.match_info["conversationId"]
        participant_id = request.match_info["participantId"]
        state.participant(conversation_id, participant_id)
        body = await json_object(request)
        code = body.get("code")
        if not isinstance(code, str) or not code:
            raise bad_request("code is required: a wrap-up code id")
        notes = body.get("notes")
        if notes is not None and not isinstance(notes, str):
            raise bad_request(f"notes must be a string, not {notes!r}")
        tags = body.get("tags")
        if tags is not None and (
            not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)
        ):
            raise bad_request("tags must be a list of strings")
        duration = body.get("durationSeconds")
        if duration is not None and (isinstance(duration, bool) or not isinstance(duration, int)):
            raise bad_request(f"durationSeconds must be an integer, not {duration!r}")
        state.submit_wrapup(
            conversation_id,
            participant_id,
            request.match_info["communicationId"],
            code=code,
            notes=notes,
            tags=tags,
            duration_seconds=duration,
        )
        return web.Response(status=202)

    router = app.router
    router.add_get("/api/v2/conversations", my_conversations)
    router.add_get("/api/v2/conversations/calls", my_conversations)
    router.add_get("/api/v2/conversations/calls/{conversationId}", get_call)
    router.add_get("/api/v2/conversations/{conversationId}", get_conversation)
    for prefix in ("/api/v2/conversations/calls", "/api/v2/conversations"):
        participant_path = prefix + "/{conversationId}/participants/{participantId}"
        router.add_patch(participant_path, patch_participant)
        router.add_get(participant_path + "/wrapup", get_wrapup)
        router.add_get(participant_path + "/wrapupcodes", participant_wrapup_codes)
    router.add_post(
        "/api/v2/conversations/calls/{conversationId}/participants/{participantId}"
        "/communications/{communicationId}/wrapup",
        post_wrapup,
    )
