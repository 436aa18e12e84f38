"""One agent's access token, kept fresh.

Two logins (the agent option ``login``):

- ``client_credentials``: ``POST {login}/oauth/token`` with Basic auth,
  ``grant_type=client_credentials`` (there is no refresh token: refreshing means asking again).
  The token carries no user, so every agent of the OAuth client shares the platform's
  per-user limits (20 notification channels per user and client).
- ``user``: as a real desktop, the agent logs in as its own user: ``GET {login}/oauth/authorize``
  (authorization code + PKCE, ``login_hint`` = the user id, the client's registered
  ``redirect_uri``; the answer must be the 302 to that URI, an org that shows a login page
  needs a person), then ``grant_type=authorization_code`` with the verifier, and renewals with
  ``grant_type=refresh_token`` (a refresh token the platform no longer takes means a new login).
  The client authenticates with its secret (HTTP Basic) when it has one.

The resilient keeper refreshes ahead of expiry
(``margin`` seconds before, at most half the token's lifetime), one refresh in flight at a time,
and **refresh has priority over application requests** (the guide's edge case 3): the refresh
goes out on its own connection pool, never queued behind API calls, and callers asking for a
token while a refresh is due or in flight wait for the new token instead of sending the old
one. The naive keeper fetches once and never refreshes.

A token's expiry runs on the keeper's ``clock`` (:mod:`chaosgenesys.clock`, the real one unless
a test passes a ``ManualClock``); request latencies are always real time.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import aiohttp

from chaosgenesys.agent.config import Endpoint
from chaosgenesys.clock import REAL_CLOCK, Clock
from chaosgenesys.platform import pkce
from chaosgenesys.revocation import REVOKE_PATH, Revocation, outcome

__all__ = ["CallListener", "LoggedOut", "TokenError", "TokenKeeper", "UserLogin"]

#: ``on_call(method, path, final status or None, latency_ms, retries)``: how the token keeper and
#: the API client report each call they made (``api.py`` re-exports it).
CallListener = Callable[[str, str, int | None, float, int], None]


class TokenError(Exception):
    """The token endpoint failed (status or network); the message holds no secret."""


class LoggedOut(Exception):
    """The agent has no usable session any more (naive agent after a 401)."""


@dataclass(frozen=True)
class UserLogin:
    """Who logs in with the ``user`` login, and where the platform sends the code."""

    user_id: str
    redirect_uri: str


class TokenKeeper:
    """One agent's access token (``user_login`` None: client credentials)."""

    def __init__(
        self,
        endpoint: Endpoint,
        session: aiohttp.ClientSession,
        *,
        proactive: bool,
        margin: float,
        on_refresh: Callable[[str, float, float], None] | None = None,
        request_kwargs: dict[str, Any] | None = None,
        on_call: CallListener | None = None,
        user_login: UserLogin | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        self._clock = clock
        self._endpoint = endpoint
        self._user_login = user_login
        self._refresh_token: str | None = None  # the user login's; never logged
        self._session = session
        self._proactive = proactive
        self._margin = margin
        self._on_refresh = on_refresh
        self._on_call = on_call
        self._kwargs = request_kwargs or {}
        self._token: str | None = None
        self._expires_at = 0.0  # on the clock's monotonic reading
        self._lifetime = 0.0
        self._refreshing: asyncio.Task[str] | None = None
        self._timer: asyncio.Task[None] | None = None

    @property
    def expires_in(self) -> float:
        """Seconds the current token has left (0 when there is none)."""
        return max(0.0, self._expires_at - self._clock.monotonic()) if self._token else 0.0

    def _due(self) -> bool:
        if self._token is None:
            return True
        if not self._proactive:
            return False
        margin = min(self._margin, self._lifetime / 2)
        return self._clock.monotonic() >= self._expires_at - margin

    async def token(self) -> str:
        """A token to send: waits for a refresh that is due or in flight (priority)."""
        if self._refreshing is not None and not self._refreshing.done():
            return await asyncio.shield(self._refreshing)
        if self._due():
            return await self.refresh("first" if self._token is None else "proactive")
        assert self._token is not None
        return self._token

    async def refresh(self, why: str) -> str:
        """Fetch a new token now (single flight: concurrent callers share one request)."""
        if self._refreshing is None or self._refreshing.done():
            self._refreshing = asyncio.get_running_loop().create_task(self._fetch(why))
        return await asyncio.shield(self._refreshing)

    async def invalidate_and_refresh(self, rejected: str) -> str:
        """After a 401 with ``rejected``: a new token, unless one came meanwhile."""
        if self._token is not None and self._token != rejected:
            return self._token
        return await self.refresh("401")

    async def _fetch(self, why: str) -> str:
        issued = self._clock.monotonic()
        started = time.monotonic()
        status, body = await self._post()  # each request reported to on_call as it ends
        if status != 200:
            raise TokenError(f"POST /oauth/token answered {status}")
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise TokenError("POST /oauth/token answered without an access_token")
        lifetime = float(body.get("expires_in") or 86400)
        self._token = token
        self._lifetime = lifetime
        self._expires_at = issued + lifetime
        elapsed_ms = (time.monotonic() - started) * 1000
        if self._on_refresh is not None:
            self._on_refresh(why, elapsed_ms, lifetime)
        return token

    async def _post(self) -> tuple[int, Any]:
        """A new token: ``(status, JSON body of a 200)`` of the last token request;
        TokenError without an answer (or a user login that cannot complete)."""
        if self._user_login is None:
            return await self._token_request({"grant_type": "client_credentials"})
        if self._refresh_token is not None:
            status, body = await self._token_request(
                {"grant_type": "refresh_token", "refresh_token": self._refresh_token,
                 "client_id": self._endpoint.client_id}
            )
            if status == 200:
                self._keep_refresh_token(body)
                return status, body
            if status not in (400, 401):  # throttled or failing: the refresh token still holds
                return status, body
            self._refresh_token = None  # spent, expired or revoked: log in again
        status, body = await self._log_in(self._user_login)
        if status == 200:
            self._keep_refresh_token(body)
        return status, body

    def _keep_refresh_token(self, body: Any) -> None:
        refresh = body.get("refresh_token") if isinstance(body, dict) else None
        self._refresh_token = refresh if isinstance(refresh, str) and refresh else None

    async def _log_in(self, login: UserLogin) -> tuple[int, Any]:
        """Authorization code + PKCE as ``login.user_id``: the authorize request, then the
        code for a token."""
        endpoint = self._endpoint
        verifier = pkce.new_verifier()
        challenge = pkce.s256_challenge(verifier)
        state = secrets.token_urlsafe(16)
        query = urlencode({
            "response_type": "code", "client_id": endpoint.client_id,
            "redirect_uri": login.redirect_uri, "state": state, "login_hint": login.user_id,
            "code_challenge": challenge, "code_challenge_method": "S256",
        })
        started = time.monotonic()
        try:
            async with self._session.get(
                f"{endpoint.login_url}/oauth/authorize?{query}",
                allow_redirects=False,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
                **self._kwargs,
            ) as response:
                status, location = response.status, response.headers.get("Location", "")
        except (aiohttp.ClientError, TimeoutError) as error:
            self._report("GET", "/oauth/authorize", None, started)
            raise TokenError(f"GET /oauth/authorize failed: {type(error).__name__}") from None
        self._report("GET", "/oauth/authorize", status, started)
        if status not in (302, 303):
            if 200 <= status < 300:
                raise TokenError(
                    f"GET /oauth/authorize answered {status} (a login page), not a redirect: "
                    "this org asks a person to log in; use login client_credentials here"
                )
            raise TokenError(f"GET /oauth/authorize answered {status}")
        answer = parse_qs(urlsplit(location).query)
        if answer.get("error"):
            raise TokenError(f"GET /oauth/authorize refused the login: {answer['error'][0]}")
        code = (answer.get("code") or [""])[0]
        if not code or (answer.get("state") or [""])[0] != state:
            raise TokenError("GET /oauth/authorize redirected without a code for this login")
        return await self._token_request({
            "grant_type": "authorization_code", "code": code,
            "redirect_uri": login.redirect_uri, "client_id": endpoint.client_id,
            "code_verifier": verifier,
        })

    async def _token_request(self, form: dict[str, str]) -> tuple[int, Any]:
        """``POST /oauth/token`` with ``form`` (the client's secret as HTTP Basic when it has
        one) → (status, JSON body of a 200); TokenError without an answer."""
        endpoint = self._endpoint
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        if endpoint.client_secret:
            basic = base64.b64encode(
                f"{endpoint.client_id}:{endpoint.client_secret}".encode()
            ).decode()
            headers["Authorization"] = f"Basic {basic}"
        started = time.monotonic()
        try:
            async with self._session.post(
                endpoint.login_url + "/oauth/token",
                data=urlencode(form),
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=endpoint.timeout),
                **self._kwargs,
            ) as response:
                if response.status != 200:
                    self._report("POST", "/oauth/token", response.status, started)
                    return response.status, None
                body = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as error:
            self._report("POST", "/oauth/token", None, started)
            raise TokenError(f"POST /oauth/token failed: {type(error).__name__}") from None
        self._report("POST", "/oauth/token", 200, started)
        return 200, body

    async def revoke(self) -> Revocation | None:
        """Revoke the current token and check it no longer works (``DELETE`` then ``HEAD``
        ``/api/v2/tokens/me``; the desktop is done with it: the run ends). ``None`` without a
        token. The token is forgotten whatever the answer."""
        token, self._token = self._token, None
        self._refresh_token = None
        if token is None:
            return None
        url = self._endpoint.api_url + REVOKE_PATH
        headers = {"Authorization": f"Bearer {token}"}
        timeout = aiohttp.ClientTimeout(total=min(5.0, self._endpoint.timeout))
        statuses: list[int | None] = []
        for method in ("DELETE", "HEAD"):
            try:
                async with self._session.request(
                    method, url, headers=headers, timeout=timeout, **self._kwargs
                ) as response:
                    statuses.append(response.status)
            except (aiohttp.ClientError, TimeoutError) as error:
                failed = f"{method} {REVOKE_PATH} failed: {type(error).__name__}"
                statuses += [None] * (2 - len(statuses))
                return outcome(statuses[0], statuses[1], failed)
        return outcome(statuses[0], statuses[1])

    def _report(self, method: str, path: str, status: int | None, started: float) -> None:
        if self._on_call is not None:
            latency_ms = (time.monotonic() - started) * 1000
            self._on_call(method, path, status, latency_ms, 0)

    def start(self) -> None:
        """Run the proactive refresh timer (resilient only)."""
        if self._proactive and self._timer is None:
            self._timer = asyncio.get_running_loop().create_task(self._refresh_loop())

    async def _refresh_loop(self) -> None:
        while True:
            margin = min(self._margin, self._lifetime / 2)
            wait = self._expires_at - margin - self._clock.monotonic()
            await asyncio.sleep(max(0.05, wait))
            if not self._due():
                continue
            try:
                await self.refresh("proactive")
            except TokenError:
                await asyncio.sleep(min(5.0, max(0.25, self.expires_in / 4)))

    async def close(self) -> None:
        """Stop the timer and any refresh in flight."""
        for task in (self._timer, self._refreshing):
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._timer = None
