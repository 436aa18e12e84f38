"""The sandbox's aiohttp application: one port for login, API, streaming and admin paths.

Middlewares, outermost first:

1. correlation and errors: every response gets an ``ININ-Correlation-Id``; errors become an
   ErrorBody; every request but the admin surface is counted;
2. faults: server-side faults (``faults.py``) on ``/oauth``, ``/api/v2`` and ``/channels``;
3. auth: ``/api/v2`` needs a valid bearer token (``request["client_id"]`` is set from it);
   ``/oauth/``, ``/channels/`` and ``/sandbox/`` are not checked;
4. rate limit: per token, ``inin-ratelimit-*`` headers, 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable

from aiohttp import web

from chaosgenesys.error_bodies import code_for
from chaosgenesys.sandbox import admin as admin_routes
from chaosgenesys.sandbox import (
    api_analytics,
    api_authorization,
    api_conversations,
    api_routing,
    api_users,
    auth,
    browser_login,
    desktop,
)
from chaosgenesys.sandbox.accounting import RequestLog
from chaosgenesys.sandbox.errors import (
    SandboxHTTPError,
    error_response,
    rate_limit_message,
)
from chaosgenesys.sandbox.faults import FaultStore
from chaosgenesys.sandbox.notifications import NotificationHub
from chaosgenesys.sandbox.ratelimit import RateLimiter
from chaosgenesys.sandbox.sessions import PlatformReaction, PlatformSettings
from chaosgenesys.sandbox.state import SandboxState
from chaosgenesys.sandbox.streaming import StreamingService
from chaosgenesys.sandbox.tokens import RoleBook

__all__ = ["ADMIN_KEY", "create_app"]

logger = logging.getLogger("chaostoolkit")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

#: The :class:`~chaosgenesys.sandbox.admin.SandboxAdmin` of an application.
ADMIN_KEY = web.AppKey("chaosgenesys_admin", admin_routes.SandboxAdmin)

_UNCHECKED_PREFIXES = ("/oauth/", "/channels/", "/stream/", "/sandbox/")

#: Request storage keys. They are plain strings because the notification hub's binding is
#: ``request["client_id"]``; aiohttp >= 3.13 warns once per string key, so they are marked seen.
_REQUEST_KEYS = ("correlation_id", "token", "token_record", "client_id", "extra_headers")


def _quiet_string_keys() -> None:
    seen = getattr(web.BaseRequest, "_seen_str_keys", None)
    if isinstance(seen, set):
        seen.update(_REQUEST_KEYS)


def _is_admin(path: str) -> bool:
    return path.startswith("/sandbox/")


def create_app(
    state: SandboxState,
    hub: NotificationHub | None = None,
    *,
    heartbeat_interval: float = 30.0,
    channel_lifetime: float = 86400.0,
    rate_limit_per_minute: int = 300,
    faults: FaultStore | None = None,
    request_log: RequestLog | None = None,
    platform: PlatformSettings | None = None,
) -> web.Application:
    """The sandbox application over ``state``.

    Without ``hub``, a :class:`NotificationHub` is made on ``state.events`` with
    ``heartbeat_interval``, ``channel_lifetime`` and ``state.clock``. ``app[ADMIN_KEY]`` is the
    admin object.
    ``platform`` sets the reaction to lost agent sessions (default: the seed's ``platform``
    section, else :class:`PlatformSettings`' defaults).
    """
    if hub is None:
        hub = NotificationHub(
            state.events,
            heartbeat_interval=heartbeat_interval,
            channel_lifetime=channel_lifetime,
            clock=state.clock,
        )
    _quiet_string_keys()
    faults = faults if faults is not None else FaultStore(state.clock)
    request_log = request_log if request_log is not None else RequestLog()
    limiter = RateLimiter(rate_limit_per_minute, state.clock)
    reaction = PlatformReaction(state, platform or state.seed.platform or PlatformSettings())
    hub.session_listener = reaction

    @web.middleware
    async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request["correlation_id"] = str(uuid.uuid4())
        if not _is_admin(request.path):
            request_log.record(request.method, request.path)
        try:
            return await handler(request)
        except SandboxHTTPError as exc:
            return exc.response(request["correlation_id"])
        except admin_routes.AdminError as exc:
            return error_response(400, "bad.request", str(exc),
                                  context_id=request["correlation_id"])
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            if exc.status == 404:
                message = f"The requested resource was not found: {request.method} {request.path}"
            elif exc.status == 405:
                message = f"The method {request.method} is not allowed on {request.path}"
            else:
                message = exc.reason
            headers = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
            return error_response(
                exc.status,
                code_for(exc.status),
                message,
                context_id=request["correlation_id"],
                headers=headers,
            )
        except ConnectionResetError:
            # the client went away mid-request (a desktop stopped while it waited): nothing
            # failed here, and nobody reads the answer
            logger.debug("sandbox: %s %s: the client went away", request.method, request.path)
            return error_response(500, context_id=request["correlation_id"])
        except Exception:
            logger.exception("sandbox: %s %s failed", request.method, request.path)
            return error_response(500, context_id=request["correlation_id"])

    @web.middleware
    async def faults_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if _is_admin(request.path):
            return await handler(request)
        for fault in faults.take(request.method, request.path):
            if fault.delay_ms:
                await asyncio.sleep(fault.delay_ms / 1000.0)
            error = fault.error()
            if error is not None:
                raise error
        return await handler(request)

    @web.middleware
    async def auth_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        path = request.path
        if path.startswith(_UNCHECKED_PREFIXES) or not path.startswith("/api/"):
            return await handler(request)
        header = request.headers.get("Authorization", "")
        if not header.strip():
            raise SandboxHTTPError(
                401,
                "No authentication bearer token specified in authorization header.",
                code="authentication.required",
            )
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise SandboxHTTPError(401, "Invalid login credentials.", code="bad.credentials")
        record = state.tokens.validate(token)
        if record is None:
            raise SandboxHTTPError(401, "Invalid login credentials.", code="bad.credentials")
        request["token"] = token
        request["token_record"] = record
        request["client_id"] = record.client_id
        return await handler(request)

    @web.middleware
    async def rate_limit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        token = request.get("token")
        if token is None or not limiter.enabled:
            return await handler(request)
        decision = limiter.hit(token)
        request["extra_headers"] = decision.headers()
        if not decision.allowed:
            retry = decision.reset_seconds
            raise SandboxHTTPError(
                429,
                rate_limit_message(retry),
                code="too.many.requests.retry.after",
                headers={"Retry-After": str(retry)},
                message_params={"retryAfter": str(retry)},
            )
        return await handler(request)

    async def add_headers(request: web.BaseRequest, response: web.StreamResponse) -> None:
        correlation_id = request.get("correlation_id")
        if correlation_id:
            response.headers["ININ-Correlation-Id"] = correlation_id
        for name, value in request.get("extra_headers", {}).items():
            response.headers[name] = value

    app = web.Application(
        middlewares=[errors_middleware, faults_middleware, auth_middleware, rate_limit_middleware]
    )
    app.on_response_prepare.append(add_headers)

    roles = RoleBook(lambda: state.seed)
    admin = admin_routes.SandboxAdmin(
        state, hub, faults, request_log, limiter, reaction, roles=roles
    )
    app[ADMIN_KEY] = admin
    auth.add_routes(app, state)
    api_users.add_routes(app, state)
    api_routing.add_routes(app, state)
    api_conversations.add_routes(app, state)
    api_analytics.add_routes(app, state)
    api_authorization.add_routes(app, state, roles)
    admin.add_routes(app)
    hub.add_routes(app)
    browser_login.add_routes(app, state)
    desktop.add_routes(app)
    StreamingService(state, hub, state.events).add_routes(app)

    hub_closed = False

    async def close_hub(_app: web.Application) -> None:
        # On shutdown already, so open WebSockets do not hold the server's graceful shutdown.
        nonlocal hub_closed
        if not hub_closed:
            hub_closed = True
            await hub.shutdown()

    async def cleanup(_app: web.Application) -> None:
        await close_hub(_app)
        reaction.close()
        state.close()

    app.on_shutdown.append(close_hub)
    app.on_cleanup.append(cleanup)
    return app
