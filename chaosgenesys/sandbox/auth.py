"""OAuth and token routes: ``POST /oauth/token`` and ``/api/v2/tokens/me``.

``/oauth/token`` takes the client credentials grant with HTTP Basic client authentication (or
``client_id``/``client_secret`` form fields) and answers in OAuth's format. Bearer checks for the
API are done by the auth middleware in ``server.py``, which stores the token record on the
request (``request["token"]``, ``request["token_record"]``, ``request["client_id"]``).
"""

from __future__ import annotations

import base64
import binascii
import logging
from collections.abc import Mapping

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from chaosgenesys.sandbox import browser_login, views
from chaosgenesys.sandbox.clock import iso
from chaosgenesys.sandbox.errors import SandboxHTTPError, oauth_error
from chaosgenesys.sandbox.state import SandboxState

__all__ = ["add_routes", "invalid_client"]

logger = logging.getLogger("chaostoolkit")


def invalid_client() -> SandboxHTTPError:
    """401 ``invalid_client`` in OAuth's format."""
    return SandboxHTTPError(
        401,
        "authentication failed",
        code="invalid_client",
        headers={"WWW-Authenticate": 'Basic realm="oauth"'},
        body={
            "error": "invalid_client",
            "description": "authentication failed",
            "error_description": "authentication failed",
        },
    )


async def _token_form(request: web.Request) -> Mapping[str, object]:
    """The token request's form fields; a body that cannot be read as a form is the client's
    fault: 400 ``invalid_request`` in OAuth's error format (RFC 6749 section 5.2), never 500."""
    try:
        return await request.post()
    except (ValueError, LookupError, RuntimeError, HttpProcessingError) as exc:
        # ValueError (and UnicodeDecodeError): bytes that are not in the declared charset, a
        # multipart body without its boundary or a part's name; LookupError: an unknown
        # charset; RuntimeError: an unknown transfer encoding; HttpProcessingError: a malformed
        # part header.
        raise oauth_error(
            400, "invalid_request", f"the request body is not a readable form: {exc}"
        ) from None


def _basic_credentials(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, sep, secret = decoded.partition(":")
    if not sep:
        return None
    return client_id, secret


def add_routes(app: web.Application, state: SandboxState) -> None:
    """Register ``/oauth/token`` and ``/api/v2/tokens/me``."""

    async def token(request: web.Request) -> web.Response:
        form = await _token_form(request)
        header = request.headers.get("Authorization", "")
        if form.get("grant_type") in browser_login.USER_GRANTS:  # browser logins' grants
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            basic = _basic_credentials(header) if header else None
            return web.json_response(
                request.app[browser_login.LOGINS_KEY].token(fields, basic),
                headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
            )
        credentials = _basic_credentials(header) if header else None
        if credentials is None:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            if not isinstance(client_id, str) or not isinstance(secret, str):
                raise invalid_client()
            credentials = (client_id, secret)
        grant_type = form.get("grant_type")
        if grant_type != "client_credentials":
            raise oauth_error(
                400,
                "unsupported_grant_type",
                f"grant type {grant_type!r} is not supported; use client_credentials",
            )
        client = state.tokens.authenticate(*credentials)
        if client is None:
            logger.info("sandbox: token request with bad client credentials")
            raise invalid_client()
        access_token, _record = state.tokens.issue(client)
        return web.json_response(
            {
                "access_token": access_token,
                "token_type": "bearer",
                "expires_in": client.token_lifetime,
            },
            headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
        )

    async def tokens_me(request: web.Request) -> web.Response:
        client_id: str = request["client_id"]
        if request.method == "HEAD":
            return web.Response(status=200)
        if request.method == "DELETE":
            state.tokens.revoke_token(request["token"])
            return web.Response(status=204)
        client = state.tokens.clients.get(client_id)
        return web.json_response(
            {
                "organization": views.organization(),
                "homeOrganization": views.organization(),
                # The client's scopes. For a client-credentials token the platform's answer is
                # unconfirmed (scopes "only apply to clients not using the client_credential
                # grant", SDK model OAuthClient): docs/permissions.md.
                "authorizedScope": list(client.scopes) if client else [],
                "OAuthClient": {
                    "id": client_id,
                    "name": client_id,
                    "dateCreated": iso(client.date_created) if client else None,
                    "authorizedGrantType": request["token_record"].grant,
                    "state": "active",
                    "organization": views.organization(),
                },
            }
        )

    app.router.add_post("/oauth/token", token)
    app.router.add_route("GET", "/api/v2/tokens/me", tokens_me)
    app.router.add_route("HEAD", "/api/v2/tokens/me", tokens_me)
    app.router.add_route("DELETE", "/api/v2/tokens/me", tokens_me)
