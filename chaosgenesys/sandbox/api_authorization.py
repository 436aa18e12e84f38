"""What an OAuth client may do: ``GET /api/v2/oauth/clients/{clientId}`` and
``GET /api/v2/authorization/roles/{roleId}``.

The preflight reads the tooling token's client (``OAuthClient``: ``scope``, ``roleDivisions``),
then each of its roles (``DomainOrganizationRole``: ``permissionPolicies``). Clients and their
grants live in the token store (``tokens.py``), roles in its :class:`~chaosgenesys.sandbox.tokens
.RoleBook`; an unknown id is a 404 ``not.found`` ErrorBody. Every token may read them: the
sandbox does not enforce permissions (``docs/sandbox.md``, Limits).
"""

from __future__ import annotations

from aiohttp import web

from chaosgenesys.sandbox import views
from chaosgenesys.sandbox.errors import not_found
from chaosgenesys.sandbox.state import SandboxState
from chaosgenesys.sandbox.tokens import RoleBook

__all__ = ["add_routes"]


def add_routes(app: web.Application, state: SandboxState, roles: RoleBook) -> None:
    """Register the OAuth client and authorization role routes."""

    async def get_client(request: web.Request) -> web.Response:
        client_id = request.match_info["clientId"]
        client = state.tokens.clients.get(client_id)
        if client is None:
            raise not_found("OAuth client", client_id)
        return web.json_response(views.oauth_client(client))

    async def get_role(request: web.Request) -> web.Response:
        role_id = request.match_info["roleId"]
        role = roles.get(role_id)
        if role is None:
            raise not_found("Role", role_id)
        return web.json_response(views.role(role))

    app.router.add_get("/api/v2/oauth/clients/{clientId}", get_client)
    app.router.add_get("/api/v2/authorization/roles/{roleId}", get_role)
