"""Browser logins: ``/oauth/authorize`` (implicit grant, authorization code + PKCE) and the
``authorization_code`` / ``refresh_token`` grants of ``POST /oauth/token``.

The platform's browser clients (the agent desktop, ``purecloud-platform-client-v2``'s
``loginImplicitGrant`` / ``loginPKCEGrant``) log a *user* in; the token they get carries the
user, which ``GET /api/v2/users/me`` and the streaming service (``streaming.py``) need.
See ``docs/genesys-cloud-api.md`` §9 and ``docs/sandbox-streaming.md``.

- ``GET /oauth/authorize?response_type=token|code&client_id&redirect_uri[&state&login_hint
  &code_challenge&code_challenge_method=S256]``. The client must be seeded with
  ``redirect_uris`` and ``redirect_uri`` must be one of them (else 400: the sandbox never
  redirects to an unregistered URI). With ``login_hint`` naming a seeded user (id or email) it
  answers at once with the 302: ``#access_token=…&expires_in=…&token_type=bearer&state=…``
  (implicit) or ``?code=…&state=…`` (code). Without it, a plain HTML form asks for the user
  (id or email; the sandbox has no passwords) and posts to ``POST /oauth/authorize``.
  An unknown ``login_hint`` → 400 naming it.
- The built-in public client ``chaosgenesys-desktop`` (``tokens.py``) of the reference web
  desktop has no ``redirect_uris``: its one redirect URI is the sandbox's own
  ``<origin>/desktop/``, the origin being the authorize request's (scheme and ``Host``), or, as
  RFC 8252 §7.3 allows for loopback redirects, ``http://127.0.0.1|localhost|[::1]:<any port>
  /desktop/`` (the desktop served through a reverse proxy on this machine). It must use
  ``response_type=code`` with an S256 ``code_challenge``: no implicit grant, no secret.
- ``POST /oauth/token`` with ``grant_type=authorization_code&code&redirect_uri&client_id
  [&code_verifier]``: a code is single use and lives 60 s; ``redirect_uri`` and ``client_id``
  must be those of the authorize request; with a PKCE challenge the ``code_verifier`` must hash
  (S256) to it, without one the client must authenticate with its secret. Answers
  ``{access_token, token_type, expires_in, refresh_token}``.
- ``grant_type=refresh_token&refresh_token&client_id``: a new access token and a new refresh
  token (the old one is spent).

Errors are OAuth's: 400 ``invalid_request`` / ``invalid_grant`` / ``unauthorized_client``,
401 ``invalid_client``. No token, code or verifier is ever logged.
"""

from __future__ import annotations

import hmac
import html
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError

from chaosgenesys.platform.pkce import s256_challenge
from chaosgenesys.sandbox.errors import oauth_error
from chaosgenesys.sandbox.model import User
from chaosgenesys.sandbox.state import SandboxState
from chaosgenesys.sandbox.tokens import OAuthClient

__all__ = ["CODE_LIFETIME", "LOGINS_KEY", "USER_GRANTS", "BrowserLogins", "add_routes"]

logger = logging.getLogger("chaostoolkit")

#: Seconds an authorization code stays redeemable.
CODE_LIFETIME = 60.0
#: The ``grant_type`` values ``POST /oauth/token`` hands to :meth:`BrowserLogins.token`.
USER_GRANTS = frozenset({"authorization_code", "refresh_token"})
_MAX_PENDING = 10_000
_VERIFIER = re.compile(r"^[A-Za-z0-9._~-]{43,128}$")
_CHALLENGE = re.compile(r"^[A-Za-z0-9_-]{43}$")


@dataclass
class _Code:
    client_id: str
    user_id: str
    redirect_uri: str
    challenge: str | None
    expires_at: float


@dataclass
class _Refresh:
    client_id: str
    user_id: str


class BrowserLogins:
    """Pending authorization codes and refresh tokens (in memory, never logged)."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self._codes: dict[str, _Code] = {}
        self._refresh: dict[str, _Refresh] = {}

    # ------------------------------------------------------------------ authorize

    def find_user(self, hint: str) -> User | None:
        """The seeded user whose id or email (any case) is ``hint``."""
        user = self.state.users.get(hint)
        if user is not None:
            return user
        wanted = hint.casefold()
        for candidate in self.state.users.values():
            if candidate.email and candidate.email.casefold() == wanted:
                return candidate
        return None

    def check_client(
        self, params: Mapping[str, str], origin: str = ""
    ) -> tuple[OAuthClient, str]:
        """The client and its redirect URI, or 400 (nothing is redirected before this holds).
        ``origin`` (``scheme://host[:port]``) is the sandbox's as the request reached it: the
        built-in desktop client's redirect URI is ``<origin>/desktop/``."""
        client_id = params.get("client_id", "")
        client = self.state.tokens.clients.get(client_id)
        if client is None:
            raise oauth_error(400, "invalid_client", f"client_id {client_id!r} is not a client")
        redirect_uri = params.get("redirect_uri", "")
        if client.public:
            _check_public(client, params, redirect_uri, origin)
            return client, redirect_uri
        if not client.redirect_uris:
            raise oauth_error(
                400, "unauthorized_client",
                f"client {client_id!r} has no redirect_uris: it cannot log users in",
            )
        if redirect_uri not in client.redirect_uris:
            raise oauth_error(
                400, "invalid_request",
                f"redirect_uri {redirect_uri!r} is not registered for client {client_id!r}",
            )
        return client, redirect_uri

    def authorize(self, params: Mapping[str, str], user: User, origin: str = "") -> str:
        """The ``Location`` of the 302 that completes a login of ``user``."""
        client, redirect_uri = self.check_client(params, origin)
        response_type = params.get("response_type", "")
        state = params.get("state")
        if response_type == "token":
            token, _record = self.state.tokens.issue(client, user.id, grant="TOKEN")
            fragment = {"access_token": token, "expires_in": str(client.token_lifetime),
                        "token_type": "bearer"}
            if state is not None:
                fragment["state"] = state
            return f"{redirect_uri}#{urlencode(fragment)}"
        if response_type != "code":
            raise oauth_error(
                400, "unsupported_response_type",
                f"response_type {response_type!r} is not supported; use token or code",
            )
        challenge = params.get("code_challenge")
        if challenge is not None:
            method = params.get("code_challenge_method", "")
            if method != "S256":
                raise oauth_error(
                    400, "invalid_request",
                    f"code_challenge_method {method!r} is not supported; use S256",
                )
            if not _CHALLENGE.match(challenge):
                raise oauth_error(
                    400, "invalid_request",
                    "code_challenge must be the base64url SHA-256 of the verifier (43 chars)",
                )
        self._prune()
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Code(client.client_id, user.id, redirect_uri, challenge,
                                  self.state.clock.monotonic() + CODE_LIFETIME)
        query = {"code": code}
        if state is not None:
            query["state"] = state
        separator = "&" if urlsplit(redirect_uri).query else "?"
        return f"{redirect_uri}{separator}{urlencode(query)}"

    # ------------------------------------------------------------------ token

    def token(
        self, form: Mapping[str, str], basic: tuple[str, str] | None
    ) -> dict[str, object]:
        """The ``/oauth/token`` answer for a user grant (``form["grant_type"]`` in
        :data:`USER_GRANTS`); ``basic`` is the HTTP Basic client authentication, if any."""
        client_id = basic[0] if basic is not None else form.get("client_id", "")
        client = self.state.tokens.clients.get(client_id)
        if client is None or (basic is not None and form.get("client_id", client_id) != client_id):
            raise oauth_error(401, "invalid_client", "authentication failed")
        if basic is not None and self.state.tokens.authenticate(*basic) is None:
            raise oauth_error(401, "invalid_client", "authentication failed")
        if form.get("grant_type") == "refresh_token":
            refresh = self._refresh.pop(form.get("refresh_token", ""), None)
            if refresh is None or refresh.client_id != client.client_id:
                raise oauth_error(400, "invalid_grant", "refresh_token is not valid")
            return self._issue(client, refresh.user_id)
        code = self._codes.pop(form.get("code", ""), None)
        if code is None or code.expires_at <= self.state.clock.monotonic():
            raise oauth_error(400, "invalid_grant", "code is not valid (unknown, used or expired)")
        if code.client_id != client.client_id:
            raise oauth_error(400, "invalid_grant", "code was issued to another client")
        if form.get("redirect_uri", "") != code.redirect_uri:
            raise oauth_error(
                400, "invalid_grant", "redirect_uri differs from the authorize request's"
            )
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            if not _VERIFIER.match(verifier):
                raise oauth_error(
                    400, "invalid_request",
                    "code_verifier must be 43 to 128 characters of [A-Za-z0-9._~-]",
                )
            if not hmac.compare_digest(s256_challenge(verifier), code.challenge):
                raise oauth_error(400, "invalid_grant", "code_verifier does not match")
        elif basic is None:
            raise oauth_error(
                401, "invalid_client",
                "a code without a PKCE challenge needs the client's secret (HTTP Basic)",
            )
        return self._issue(client, code.user_id)

    def _issue(self, client: OAuthClient, user_id: str) -> dict[str, object]:
        if user_id not in self.state.users:
            raise oauth_error(400, "invalid_grant", "the user no longer exists")
        token, _record = self.state.tokens.issue(client, user_id, grant="CODE")
        self._prune()
        refresh = secrets.token_urlsafe(32)
        self._refresh[refresh] = _Refresh(client.client_id, user_id)
        return {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": client.token_lifetime,
            "refresh_token": refresh,
        }

    def _prune(self) -> None:
        now = self.state.clock.monotonic()
        if len(self._codes) >= _MAX_PENDING:
            for code in [c for c, v in self._codes.items() if v.expires_at <= now]:
                del self._codes[code]
            while len(self._codes) >= _MAX_PENDING:
                del self._codes[next(iter(self._codes))]
        while len(self._refresh) >= _MAX_PENDING:
            del self._refresh[next(iter(self._refresh))]


_LOOPBACK_DESKTOP = re.compile(r"^http://(127\.0\.0\.1|localhost|\[::1\])(:\d{1,5})?/desktop/$")


def _check_public(
    client: OAuthClient, params: Mapping[str, str], redirect_uri: str, origin: str
) -> None:
    """The rules of a public client (the built-in desktop client): its redirect URI is the
    sandbox's own ``/desktop/`` page, and it logs in with authorization code + PKCE only."""
    own = f"{origin}/desktop/" if origin else None
    if redirect_uri != own and not _LOOPBACK_DESKTOP.match(redirect_uri):
        raise oauth_error(
            400, "invalid_request",
            f"redirect_uri {redirect_uri!r} is not the sandbox's desktop page "
            f"({own or '<origin>/desktop/'}) for client {client.client_id!r}",
        )
    if params.get("response_type") != "code" or not params.get("code_challenge"):
        raise oauth_error(
            400, "unauthorized_client",
            f"client {client.client_id!r} is public: it logs in with response_type=code and a "
            "PKCE code_challenge (S256) only",
        )


#: The :class:`BrowserLogins` of an application (``auth.py`` hands user grants to it).
LOGINS_KEY = web.AppKey("chaosgenesys_browser_logins", BrowserLogins)

_FORM = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sandbox login</title></head>
<body><h1>Log in to the chaosgenesys sandbox</h1>
<form method="post" action="/oauth/authorize">
{hidden}<label>User id or email <input name="login_hint" autofocus></label>
<button type="submit">Log in</button></form></body></html>
"""


def _origin(request: web.Request) -> str:
    """The sandbox's origin as this request reached it (``scheme://Host``)."""
    return f"{request.scheme}://{request.host}"


def add_routes(app: web.Application, state: SandboxState) -> None:
    """Register ``GET`` and ``POST /oauth/authorize``; set ``app[LOGINS_KEY]``."""
    logins = BrowserLogins(state)
    app[LOGINS_KEY] = logins

    def complete(params: Mapping[str, str], origin: str) -> web.StreamResponse:
        logins.check_client(params, origin)
        hint = params.get("login_hint")
        if hint is None or not hint.strip():
            hidden = "".join(
                f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}">\n'
                for k, v in params.items()
                if k != "login_hint"
            )
            return web.Response(text=_FORM.format(hidden=hidden), content_type="text/html")
        user = logins.find_user(hint.strip())
        if user is None:
            raise oauth_error(
                400, "invalid_request", f"login_hint {hint!r} is not a user of the sandbox"
            )
        location = logins.authorize(params, user, origin)
        return web.Response(
            status=302, headers={"Location": location, "Cache-Control": "no-store"}
        )

    async def authorize_get(request: web.Request) -> web.StreamResponse:
        return complete({k: v for k, v in request.query.items()}, _origin(request))

    async def authorize_post(request: web.Request) -> web.StreamResponse:
        try:
            form = await request.post()
        except (ValueError, LookupError, RuntimeError, HttpProcessingError) as exc:
            raise oauth_error(
                400, "invalid_request", f"the request body is not a readable form: {exc}"
            ) from None
        return complete(
            {k: v for k, v in form.items() if isinstance(v, str)}, _origin(request)
        )

    app.router.add_get("/oauth/authorize", authorize_get)
    app.router.add_post("/oauth/authorize", authorize_post)
