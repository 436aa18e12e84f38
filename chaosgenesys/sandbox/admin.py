"""The admin surface: drive and inspect the sandbox, under ``/sandbox/v1`` (no auth, JSON).

:class:`SandboxAdmin` holds the operations; the HTTP routes and the thread-safe methods of
:class:`~chaosgenesys.sandbox.runner.Sandbox` both call it (on the event loop thread). Bad input
raises :class:`AdminError` (a ``ValueError``) naming the field and the value; over HTTP that is a
400 ErrorBody.

=======  ======================================  ============================================
method   path                                    body / answer
=======  ======================================  ============================================
GET      /sandbox/v1/state                       users, queues, conversations, faults, ...
GET      /sandbox/v1/faults                      ``{"faults": [...]}``
POST     /sandbox/v1/faults                      ``{path_pattern, delay_ms, status, method,
                                                 count, duration, retry_after}`` -> ``{id}``
DELETE   /sandbox/v1/faults[/{id}]               clear all (or one)
POST     /sandbox/v1/tokens/expire|revoke        ``{client_id?}`` -> ``{count}``
PATCH    /sandbox/v1/clients/{id}                ``{token_lifetime?, scopes?, roles?}`` (roles:
                                                 ids or names)
PATCH    /sandbox/v1/roles/{id or name}          ``{permissions}`` (``domain:entity:action``)
POST     /sandbox/v1/notifications/close         ``{code?, user_ids?, sessions_only?}`` ->
                                                 ``{closed, streaming}``
POST     /sandbox/v1/notifications/socket-closing ``{user_ids?}`` -> ``{sent}``
POST     /sandbox/v1/calls                       ``{queue_id, user_id?, answer?,
                                                 conversation_id?}`` -> ``{id}``
POST     /sandbox/v1/conversations/{id}/disconnect  the customer hangs up
PATCH    /sandbox/v1/users/{id}                  ``{presence}`` (any spelling)
GET      /sandbox/v1/platform                    reaction settings, sessions, reactions
PATCH    /sandbox/v1/platform                    ``{session_grace_seconds?,
                                                 presence_renew_seconds?, renew_on_queue?}``
GET      /sandbox/v1/requests                    ``?path=regex&method=GET`` -> ``{total, requests}``
DELETE   /sandbox/v1/requests                    reset the counters
POST     /sandbox/v1/seed                        a seed (JSON) replaces the state
POST     /sandbox/v1/clock                       ``{advance}`` (seconds) -> ``{ran, elapsed}``:
                                                 only a sandbox on a ``ManualClock``
=======  ======================================  ============================================

Why one module of about 570 lines: one concern, the admin surface; each operation is a few
lines of checking and a call into the state, the notification hub or the platform's reaction,
and the table above is its index.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

from aiohttp import web

from chaosgenesys.clock import ManualClock
from chaosgenesys.sandbox.accounting import RequestLog
from chaosgenesys.sandbox.closecodes import close_code_problem
from chaosgenesys.sandbox.errors import SandboxHTTPError, not_found
from chaosgenesys.sandbox.faults import Fault, FaultError, FaultStore
from chaosgenesys.sandbox.notifications import NotificationHub
from chaosgenesys.sandbox.params import json_object
from chaosgenesys.sandbox.ratelimit import RateLimiter
from chaosgenesys.sandbox.seed import (
    SeedError,
    SeedSource,
    load_seed,
    parse_permissions,
    parse_scopes,
)
from chaosgenesys.sandbox.sessions import PlatformReaction
from chaosgenesys.sandbox.state import SandboxState
from chaosgenesys.sandbox.tokens import RoleBook

__all__ = ["AdminError", "SandboxAdmin"]

logger = logging.getLogger("chaostoolkit")

PREFIX = "/sandbox/v1"
_PLATFORM_KEYS = ("session_grace_seconds", "presence_renew_seconds", "renew_on_queue")
_FAULT_KEYS = ("path_pattern", "delay_ms", "status", "method", "count", "duration", "retry_after")


class AdminError(ValueError):
    """Bad input to an admin operation; the message names the field and the value."""


def _check_lifetime(seconds: Any) -> None:
    if isinstance(seconds, bool) or not isinstance(seconds, int) or seconds < 1:
        raise AdminError(f"token_lifetime must be a whole number of seconds >= 1, "
                         f"not {seconds!r}")


def _check_keys(body: Mapping[str, Any], allowed: Sequence[str]) -> None:
    for key in body:
        if key not in allowed:
            raise AdminError(f"unknown field {key!r} (allowed: {', '.join(allowed)})")


def _optional_str(body: Mapping[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and (not isinstance(value, str) or not value):
        raise AdminError(f"{key} must be a non-empty string, not {value!r}")
    return value


def _user_ids(value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AdminError(f"user_ids must be a list of user ids, not {value!r}")
    return value


class SandboxAdmin:
    """Operations on a running sandbox (call them on its event loop thread)."""

    def __init__(
        self,
        state: SandboxState,
        hub: NotificationHub,
        faults: FaultStore,
        request_log: RequestLog,
        limiter: RateLimiter,
        reaction: PlatformReaction | None = None,
        *,
        roles: RoleBook | None = None,
    ) -> None:
        self.state = state
        self.roles = roles if roles is not None else RoleBook(lambda: state.seed)
        self.hub = hub
        self.faults = faults
        self.request_log = request_log
        self.limiter = limiter
        self.reaction = reaction if reaction is not None else PlatformReaction(state)
        # revocation tells the JSON channel's sockets (v2.system.token_revoked)
        state.tokens.add_revocation_listener(hub.tokens_revoked)

    # ------------------------------------------------------------------ operations
    def route_call(
        self,
        queue_id: str,
        user_id: str | None = None,
        answer: bool = False,
        conversation_id: str | None = None,
    ) -> str:
        """A customer calls ``queue_id``; returns the conversation id (``conversation_id`` when
        given: experiments name the call up front to probe it later)."""
        if not isinstance(queue_id, str) or not queue_id:
            raise AdminError(f"queue_id must be a queue id, not {queue_id!r}")
        if queue_id not in self.state.queues:
            raise AdminError(f"queue_id {queue_id!r} is not a queue of the sandbox")
        if user_id is not None and user_id not in self.state.users:
            raise AdminError(f"user_id {user_id!r} is not a user of the sandbox")
        if not isinstance(answer, bool):
            raise AdminError(f"answer must be true or false, not {answer!r}")
        if conversation_id is not None:
            if (
                not isinstance(conversation_id, str)
                or not conversation_id
                or "/" in conversation_id
            ):
                raise AdminError(
                    f"conversation_id must be a non-empty string without '/', not "
                    f"{conversation_id!r}"
                )
            if conversation_id in self.state.conversations:
                raise AdminError(f"conversation_id {conversation_id!r} already exists")
        try:
            return self.state.route_call(queue_id, user_id, answer, conversation_id).id
        except SandboxHTTPError as exc:
            raise AdminError(exc.message) from None

    def disconnect_call(self, conversation_id: str) -> None:
        """The customer hangs up."""
        if conversation_id not in self.state.conversations:
            raise AdminError(f"conversation {conversation_id!r} does not exist")
        self.state.customer_disconnect(conversation_id)

    def set_presence(self, user_id: str, presence: str) -> None:
        """Set a user's presence by system presence name (any spelling)."""
        if user_id not in self.state.users:
            raise AdminError(f"user_id {user_id!r} is not a user of the sandbox")
        if not isinstance(presence, str):
            raise AdminError(f"presence must be a system presence name, not {presence!r}")
        try:
            self.state.set_presence_by_name(user_id, presence)
        except SandboxHTTPError as exc:
            raise AdminError(exc.message) from None

    def inject_fault(
        self,
        path_pattern: str,
        *,
        delay_ms: float = 0,
        status: int | None = None,
        method: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        retry_after: int | None = None,
    ) -> Fault:
        """Add a server-side fault."""
        try:
            fault = self.faults.add(
                path_pattern,
                delay_ms=delay_ms,
                status=status,
                method=method,
                count=count,
                duration=duration,
                retry_after=retry_after,
            )
        except FaultError as exc:
            raise AdminError(str(exc)) from None
        logger.info(
            "sandbox: fault %s on %r (method=%s delay_ms=%s status=%s count=%s duration=%s)",
            fault.id, path_pattern, method, delay_ms, status, count, duration,
        )
        return fault

    def remove_fault(self, fault_id: str) -> bool:
        """Remove one fault."""
        return self.faults.remove(fault_id)

    def clear_faults(self) -> int:
        """Remove every fault."""
        cleared = self.faults.clear()
        if cleared:
            logger.info("sandbox: cleared %d fault(s)", cleared)
        return cleared

    def _client(self, client_id: str | None) -> str | None:
        if client_id is not None and client_id not in self.state.tokens.clients:
            raise AdminError(f"client_id {client_id!r} is not an OAuth client of the sandbox")
        return client_id

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Expire every valid token (of one client)."""
        count = self.state.tokens.expire(self._client(client_id))
        logger.info("sandbox: expired %d token(s)", count)
        return count

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Revoke every valid token (of one client): the JSON sockets of channels created with
        one get ``v2.system.token_revoked``, the streaming sessions that authenticated with one
        end with the stream error ``not-authorized``."""
        count = self.state.tokens.revoke(self._client(client_id))
        logger.info("sandbox: revoked %d token(s)", count)
        return count

    def set_token_lifetime(self, client_id: str, seconds: int) -> None:
        """Lifetime of tokens issued to ``client_id`` from now on."""
        if client_id not in self.state.tokens.clients:
            raise AdminError(f"client_id {client_id!r} is not an OAuth client of the sandbox")
        _check_lifetime(seconds)
        self.state.tokens.set_token_lifetime(client_id, seconds)

    def set_client_grants(
        self,
        client_id: str,
        scopes: Sequence[str] | None = None,
        roles: Sequence[str] | None = None,
    ) -> dict[str, Any]:
        """Replace a client's scopes (``/api/v2/tokens/me`` answers them at once, for tokens
        issued before too) and/or its roles (ids or names); returns both."""
        client = self.state.tokens.clients.get(client_id)
        if client is None:
            raise AdminError(f"client_id {client_id!r} is not an OAuth client of the sandbox")
        try:
            new_scopes = None if scopes is None else parse_scopes(scopes, "scopes")
        except SeedError as exc:
            raise AdminError(str(exc).removeprefix("seed: ")) from None
        new_roles: tuple[str, ...] | None = None
        if roles is not None:
            if not isinstance(roles, list):
                raise AdminError(f"roles must be a list of role ids or names, not {roles!r}")
            found = []
            for position, ref in enumerate(roles):
                role = self.roles.find(ref) if isinstance(ref, str) else None
                if role is None:
                    raise AdminError(f"roles[{position}]: unknown role {ref!r}")
                found.append(role.id)
            new_roles = tuple(dict.fromkeys(found))
        if new_scopes is not None:
            client.scopes = new_scopes
        if new_roles is not None:
            client.role_ids = new_roles
        logger.info("sandbox: client %s grants changed", client_id)
        return {"scopes": list(client.scopes), "roles": list(client.role_ids)}

    def set_role_permissions(self, ref: str, permissions: Sequence[str]) -> dict[str, Any]:
        """Replace a role's permissions (role id or name); returns the role."""
        role = self.roles.find(ref)
        if role is None:
            raise AdminError(f"role {ref!r} is not a role of the sandbox")
        try:
            role.permissions = parse_permissions(permissions, "permissions")
        except SeedError as exc:
            raise AdminError(str(exc).removeprefix("seed: ")) from None
        logger.info("sandbox: role %s permissions changed", role.name)
        return {"id": role.id, "name": role.name, "permissions": list(role.permissions)}

    async def close_notification_sockets(
        self,
        code: int = 1000,
        user_ids: Sequence[str] | None = None,
        sessions_only: bool = False,
    ) -> int:
        """Close notification WebSockets and streaming sessions (all, or those of these users;
        only agent desktop sessions with ``sessions_only``); returns how many."""
        return (await self.close_sessions(code, user_ids, sessions_only))["closed"]

    async def close_sessions(
        self,
        code: int = 1000,
        user_ids: Sequence[str] | None = None,
        sessions_only: bool = False,
    ) -> dict[str, int]:
        """:meth:`close_notification_sockets`, answering ``{"closed": <all>, "streaming":
        <how many of them were streaming sessions>}``."""
        problem = close_code_problem(code)
        if problem is not None:
            raise AdminError(f"code {code!r}: {problem}")
        if not isinstance(sessions_only, bool):
            raise AdminError(f"sessions_only must be true or false, not {sessions_only!r}")
        closed = await self.hub.close_sessions(
            code, list(user_ids) if user_ids else None, sessions_only
        )
        logger.info(
            "sandbox: closed %d notification socket(s) (%d streaming) with %d",
            closed["closed"], closed["streaming"], code,
        )
        return closed

    async def send_socket_closing(self, user_ids: Sequence[str] | None = None) -> int:
        """Send ``v2.system.socket_closing`` to connected sockets (the XEP-0051 connection
        transfer to streaming sessions)."""
        return await self.hub.send_socket_closing(list(user_ids) if user_ids else None)

    def requests(self, path_regex: str | None = None, method: str | None = None) -> int:
        """How many requests matched (admin requests are not counted)."""
        self._check_regex(path_regex)
        return self.request_log.count(path_regex, method)

    @staticmethod
    def _check_regex(path_regex: str | None) -> None:
        if path_regex is None:
            return
        try:
            re.compile(path_regex)
        except re.error as exc:
            raise AdminError(f"path {path_regex!r} is not a valid regex: {exc}") from None

    def load_seed(self, seed: SeedSource | None) -> None:
        """Replace the state with a new seed."""
        try:
            loaded = load_seed(seed)
        except SeedError as exc:
            raise AdminError(str(exc)) from None
        self.state.load(loaded)
        self.reaction.reset(loaded.platform)
        logger.info("sandbox: state replaced by a new seed")

    def configure_platform(
        self,
        session_grace_seconds: float | None = None,
        presence_renew_seconds: float | None = None,
        renew_on_queue: bool | None = None,
    ) -> dict[str, Any]:
        """Change the reaction to lost agent sessions; returns :meth:`platform`."""
        for name, value in (
            ("session_grace_seconds", session_grace_seconds),
            ("presence_renew_seconds", presence_renew_seconds),
        ):
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int | float) or value < 0
            ):
                raise AdminError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if renew_on_queue is not None and not isinstance(renew_on_queue, bool):
            raise AdminError(f"renew_on_queue must be true or false, not {renew_on_queue!r}")
        try:
            settings = self.reaction.configure(
                session_grace_seconds=session_grace_seconds,
                presence_renew_seconds=presence_renew_seconds,
                renew_on_queue=renew_on_queue,
            )
        except ValueError as exc:
            raise AdminError(str(exc)) from None
        logger.info("sandbox: platform reaction settings %s", settings.to_json())
        return self.platform()

    def advance_clock(self, seconds: float) -> dict[str, Any]:
        """Move the sandbox's :class:`~chaosgenesys.clock.ManualClock` ``seconds`` forward and
        run the timers that fall due (token lifetimes, session grace, alerting and wrap-up
        timeouts, channel expiry); returns ``{ran, elapsed}``. A sandbox on the real clock
        refuses (:class:`AdminError`)."""
        clock = self.state.clock
        if not isinstance(clock, ManualClock):
            raise AdminError(
                "the sandbox runs on the real clock: start it with clock=ManualClock() to "
                "advance time"
            )
        if (
            isinstance(seconds, bool)
            or not isinstance(seconds, int | float)
            or not 0 <= seconds < float("inf")
        ):
            raise AdminError(f"advance must be a number of seconds >= 0, not {seconds!r}")
        ran = clock.advance(float(seconds))
        return {"ran": ran, "elapsed": clock.elapsed}

    def platform(self) -> dict[str, Any]:
        """Reaction settings, users with a session, pending and past reactions."""
        return {**self.reaction.to_json(), "sessions": self.hub.sessions()}

    def snapshot(self) -> dict[str, Any]:
        """Everything the sandbox holds, as JSON."""
        return {
            **self.state.snapshot(),
            "faults": self.faults.to_json(),
            "notifications": self.hub.summary(),
            "platform": self.platform(),
            "rateLimitPerMinute": self.limiter.limit,
            "requests": self.request_log.count(),
            "roles": [
                {"id": role.id, "name": role.name, "permissions": list(role.permissions)}
                for role in self.roles.roles().values()
            ],
        }

    # ------------------------------------------------------------------ HTTP
    def add_routes(self, app: web.Application) -> None:
        """Register the ``/sandbox/v1`` routes."""

        async def get_state(request: web.Request) -> web.Response:
            return web.json_response(self.snapshot())

        async def list_faults(request: web.Request) -> web.Response:
            return web.json_response({"faults": self.faults.to_json()})

        async def post_fault(request: web.Request) -> web.Response:
            body = await json_object(request)
            _check_keys(body, _FAULT_KEYS)
            if "path_pattern" not in body:
                raise AdminError("path_pattern is required")
            fault = self.inject_fault(
                body["path_pattern"],
                delay_ms=body.get("delay_ms") or 0,
                status=body.get("status"),
                method=body.get("method"),
                count=body.get("count"),
                duration=body.get("duration"),
                retry_after=body.get("retry_after"),
            )
            return web.json_response(
                {"id": fault.id, "fault": fault.to_json(self.faults.clock.monotonic())}, status=201
            )

        async def delete_faults(request: web.Request) -> web.Response:
            return web.json_response({"cleared": self.clear_faults()})

        async def delete_fault(request: web.Request) -> web.Response:
            fault_id = request.match_info["faultId"]
            if not self.remove_fault(fault_id):
                raise not_found("Fault", fault_id)
            return web.json_response({"cleared": 1})

        async def expire(request: web.Request) -> web.Response:
            body = await json_object(request, required=False)
            _check_keys(body, ("client_id",))
            return web.json_response(
                {"count": self.expire_tokens(_optional_str(body, "client_id"))}
            )

        async def revoke(request: web.Request) -> web.Response:
            body = await json_object(request, required=False)
            _check_keys(body, ("client_id",))
            return web.json_response(
                {"count": self.revoke_tokens(_optional_str(body, "client_id"))}
            )

        async def patch_client(request: web.Request) -> web.Response:
            client_id = request.match_info["clientId"]
            if client_id not in self.state.tokens.clients:
                raise not_found("OAuth client", client_id)
            body = await json_object(request)
            _check_keys(body, ("token_lifetime", "scopes", "roles"))
            if not body:
                raise AdminError("one of token_lifetime, scopes, roles is required")
            if "token_lifetime" in body:  # checked first: a bad body changes nothing
                _check_lifetime(body["token_lifetime"])
            grants = self.set_client_grants(client_id, body.get("scopes"), body.get("roles"))
            if "token_lifetime" in body:
                self.set_token_lifetime(client_id, body["token_lifetime"])
            client = self.state.tokens.clients[client_id]
            return web.json_response(
                {"client_id": client_id, "token_lifetime": client.token_lifetime, **grants}
            )

        async def patch_role(request: web.Request) -> web.Response:
            ref = request.match_info["roleId"]
            if self.roles.find(ref) is None:
                raise not_found("Role", ref)
            body = await json_object(request)
            _check_keys(body, ("permissions",))
            if "permissions" not in body:
                raise AdminError("permissions is required")
            return web.json_response(self.set_role_permissions(ref, body["permissions"]))

        async def close_sockets(request: web.Request) -> web.Response:
            body = await json_object(request, required=False)
            _check_keys(body, ("code", "user_ids", "sessions_only"))
            closed = await self.close_sessions(
                body.get("code", 1000),
                _user_ids(body.get("user_ids")),
                body.get("sessions_only", False),
            )
            return web.json_response(closed)

        async def socket_closing(request: web.Request) -> web.Response:
            body = await json_object(request, required=False)
            _check_keys(body, ("user_ids",))
            sent = await self.send_socket_closing(_user_ids(body.get("user_ids")))
            return web.json_response({"sent": sent})

        async def post_call(request: web.Request) -> web.Response:
            body = await json_object(request)
            _check_keys(body, ("queue_id", "user_id", "answer", "conversation_id"))
            if "queue_id" not in body:
                raise AdminError("queue_id is required")
            conversation_id = self.route_call(
                body["queue_id"],
                _optional_str(body, "user_id"),
                body.get("answer", False),
                _optional_str(body, "conversation_id"),
            )
            return web.json_response(
                {"id": conversation_id, "conversation_id": conversation_id}, status=201
            )

        async def disconnect(request: web.Request) -> web.Response:
            conversation_id = request.match_info["conversationId"]
            if conversation_id not in self.state.conversations:
                raise not_found("Conversation", conversation_id)
            self.disconnect_call(conversation_id)
            return web.json_response({"id": conversation_id, "disconnected": True})

        async def patch_user(request: web.Request) -> web.Response:
            user_id = request.match_info["userId"]
            if user_id not in self.state.users:
                raise not_found("User", user_id)
            body = await json_object(request)
            _check_keys(body, ("presence",))
            if "presence" not in body:
                raise AdminError("presence is required")
            self.set_presence(user_id, body["presence"])
            user = self.state.users[user_id]
            return web.json_response(
                {"id": user_id, "presence": user.presence.name,
                 "routingStatus": user.routing_status}
            )

        async def get_platform(request: web.Request) -> web.Response:
            return web.json_response(self.platform())

        async def patch_platform(request: web.Request) -> web.Response:
            body = await json_object(request)
            _check_keys(body, _PLATFORM_KEYS)
            return web.json_response(self.configure_platform(**body))

        async def get_requests(request: web.Request) -> web.Response:
            path = request.query.get("path") or None
            method = request.query.get("method") or None
            total = self.requests(path, method)
            return web.json_response(
                {"total": total, "requests": self.request_log.entries(path, method)}
            )

        async def reset_requests(request: web.Request) -> web.Response:
            self.request_log.reset()
            return web.json_response({"total": 0})

        async def post_seed(request: web.Request) -> web.Response:
            body = await json_object(request)
            self.load_seed(body)
            return web.json_response(self.snapshot())

        async def post_clock(request: web.Request) -> web.Response:
            body = await json_object(request)
            _check_keys(body, ("advance",))
            return web.json_response(self.advance_clock(body.get("advance", 0)))

        router = app.router
        router.add_get(f"{PREFIX}/state", get_state)
        router.add_get(f"{PREFIX}/faults", list_faults)
        router.add_post(f"{PREFIX}/faults", post_fault)
        router.add_delete(f"{PREFIX}/faults", delete_faults)
        router.add_delete(f"{PREFIX}/faults/{{faultId}}", delete_fault)
        router.add_post(f"{PREFIX}/tokens/expire", expire)
        router.add_post(f"{PREFIX}/tokens/revoke", revoke)
        router.add_patch(f"{PREFIX}/clients/{{clientId}}", patch_client)
        router.add_patch(f"{PREFIX}/roles/{{roleId}}", patch_role)
        router.add_post(f"{PREFIX}/notifications/close", close_sockets)
        router.add_post(f"{PREFIX}/notifications/socket-closing", socket_closing)
        router.add_post(f"{PREFIX}/calls", post_call)
        router.add_post(f"{PREFIX}/conversations/{{conversationId}}/disconnect", disconnect)
        router.add_patch(f"{PREFIX}/users/{{userId}}", patch_user)
        router.add_get(f"{PREFIX}/platform", get_platform)
        router.add_patch(f"{PREFIX}/platform", patch_platform)
        router.add_get(f"{PREFIX}/requests", get_requests)
        router.add_delete(f"{PREFIX}/requests", reset_requests)
        router.add_post(f"{PREFIX}/seed", post_seed)
        router.add_post(f"{PREFIX}/clock", post_clock)
