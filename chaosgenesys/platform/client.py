"""GenesysClient: authenticated, retrying calls to the Genesys Cloud Platform API.

Every call takes a bearer token from the process-wide
:class:`~chaosgenesys.platform.tokens.TokenCache` and has a timeout. A 401 triggers one forced
token refresh and one retry. 429, 503 and 504 are retried after ``Retry-After`` seconds (or an
exponential, jittered wait when the header is absent), at most ``max_retries`` times and
``max_retry_wait`` seconds in total; when the server asks for more than is left, the call fails
at once saying so. Every call is recorded in :mod:`chaosgenesys.platform.metrics`.
"""

from __future__ import annotations

import json as jsonlib
import logging
import threading
import time
from collections.abc import Collection, Mapping
from typing import Any
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.platform import http, metrics
from chaosgenesys.platform.errors import GenesysApiError
from chaosgenesys.platform.retry import RETRYABLE_STATUSES, backoff_delay, parse_retry_after
from chaosgenesys.platform.settings import ClientSettings, settings_from
from chaosgenesys.platform.tokens import AccessToken, TokenCache, token_cache

__all__ = ["GenesysClient", "clear_clients", "client_for"]

logger = logging.getLogger("chaostoolkit")


class GenesysClient:
    """A client for one org (one :class:`ClientSettings`). Thread-safe; share it."""

    def __init__(self, settings: ClientSettings, tokens: TokenCache | None = None) -> None:
        self.settings = settings
        self._tokens = tokens if tokens is not None else token_cache()

    def __repr__(self) -> str:
        return (
            f"GenesysClient(api_url={self.settings.api_url!r}, "
            f"client_id={self.settings.client_id!r})"
        )

    # -- tokens ------------------------------------------------------------------------------

    @property
    def tokens(self) -> TokenCache:
        """The token cache this client uses (the process-wide one by default)."""
        return self._tokens

    @property
    def access_token_expires_at(self) -> float:
        """Epoch seconds at which the current token expires (fetches a token if none is cached)."""
        return self._tokens.get(self.settings).expires_at

    def force_refresh(self) -> AccessToken:
        """Replace the cached token with a new one now (single-flight across threads)."""
        return self._tokens.force_refresh(self.settings, self._tokens.peek(self.settings))

    def token_info(self) -> Any:
        """``GET /api/v2/tokens/me``: organization, OAuth client and scopes of the token."""
        return self.get("/api/v2/tokens/me")

    # -- requests ----------------------------------------------------------------------------

    def _url(self, path: str) -> tuple[str, str]:
        """(absolute URL, path for messages) for an API path or an absolute URL on the API."""
        if path.startswith(("http://", "https://")):
            if not path.startswith(self.settings.api_url + "/"):
                raise ActivityFailed(
                    f"refusing to send the Genesys Cloud token to {http.safe_url(path)}: "
                    f"it is not under the API URL {self.settings.api_url}"
                )
            rel = path[len(self.settings.api_url) :]
            return path, urlsplit(rel).path
        if not path.startswith("/"):
            path = "/" + path
        return self.settings.api_url + path, urlsplit(path).path

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        expected: Collection[int] | None = None,
    ) -> Any:
        """Call the API and return the parsed JSON body.

        Returns ``None`` for HEAD, 204 and empty bodies, the text for non-JSON bodies. A status
        outside ``expected`` (default: any 2xx/3xx) raises :class:`GenesysApiError`; transport
        failures and timeouts raise ``ActivityFailed``.
        """
        method = method.upper()
        url, shown = self._url(path)
        settings = self.settings
        started = time.monotonic()
        retries = 0
        waited = 0.0
        busy_retries = 0
        refreshed = False
        token = self._tokens.get(settings)
        while True:
            headers = {"Authorization": f"Bearer {token.value}", "Accept": "application/json"}
            try:
                response = http.send(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=settings.timeout,
                    verify=settings.verify_tls,
                )
            except ActivityFailed:
                self._record(method, shown, None, started, retries, None)
                raise
            status = response.status_code

            if status == 401 and not refreshed and (expected is None or 401 not in expected):
                refreshed = True
                retries += 1
                logger.info(
                    "%s %s returned 401 %s; getting a new Genesys Cloud token and retrying once",
                    method,
                    shown,
                    _code(response),
                )
                token = self._tokens.force_refresh(settings, token)
                continue

            if status in RETRYABLE_STATUSES and (expected is None or status not in expected):
                asked = parse_retry_after(response.headers)
                remaining = settings.max_retry_wait - waited
                if busy_retries >= settings.max_retries:
                    self._record(method, shown, status, started, retries, response)
                    raise GenesysApiError.from_response(
                        method,
                        shown,
                        response,
                        retry_after=asked,
                        note=f"gave up after {busy_retries} retries "
                        f"(genesys_max_retries={settings.max_retries})",
                    )
                if asked is not None and asked > remaining:
                    self._record(method, shown, status, started, retries, response)
                    raise GenesysApiError.from_response(
                        method,
                        shown,
                        response,
                        retry_after=asked,
                        note=f"Retry-After {asked:g} s exceeds the remaining retry budget of "
                        f"{remaining:.1f} s (genesys_max_retry_wait={settings.max_retry_wait:g});"
                        " not retrying",
                    )
                if asked is None:
                    delay = min(backoff_delay(settings.retry_backoff, busy_retries + 1), remaining)
                    if remaining <= 0:
                        self._record(method, shown, status, started, retries, response)
                        raise GenesysApiError.from_response(
                            method,
                            shown,
                            response,
                            note=f"retry budget of {settings.max_retry_wait:g} s "
                            "(genesys_max_retry_wait) used up",
                        )
                else:
                    delay = asked
                busy_retries += 1
                retries += 1
                waited += delay
                logger.warning(
                    "%s %s returned %d %s; retrying in %.1f s (retry %d of %d%s)",
                    method,
                    shown,
                    status,
                    _code(response),
                    delay,
                    busy_retries,
                    settings.max_retries,
                    _corr(response),
                )
                time.sleep(delay)
                # a retry after a long wait may need a fresher token
                token = self._tokens.get(settings)
                continue

            self._record(method, shown, status, started, retries, response)
            ok = status in expected if expected is not None else status < 400
            if not ok:
                note = "after a token refresh" if status == 401 and refreshed else ""
                raise GenesysApiError.from_response(method, shown, response, note=note)
            return _body(method, response)

    def _record(
        self,
        method: str,
        path: str,
        status: int | None,
        started: float,
        retries: int,
        response: http.Response | None,
    ) -> None:
        metrics.record(
            method,
            path,
            status,
            (time.monotonic() - started) * 1000,
            retries=retries,
            headers=response.headers if response is not None else None,
        )

    def get(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        expected: Collection[int] | None = None,
    ) -> Any:
        """``GET path`` → parsed JSON."""
        return self.request("GET", path, params=params, expected=expected)

    def post(
        self,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        expected: Collection[int] | None = None,
    ) -> Any:
        """``POST path`` with a JSON body → parsed JSON."""
        return self.request("POST", path, params=params, json=json, expected=expected)

    def put(
        self,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        expected: Collection[int] | None = None,
    ) -> Any:
        """``PUT path`` with a JSON body → parsed JSON."""
        return self.request("PUT", path, params=params, json=json, expected=expected)

    def patch(
        self,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        expected: Collection[int] | None = None,
    ) -> Any:
        """``PATCH path`` with a JSON body → parsed JSON."""
        return self.request("PATCH", path, params=params, json=json, expected=expected)

    def delete(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        expected: Collection[int] | None = None,
    ) -> Any:
        """``DELETE path`` → parsed JSON or ``None``."""
        return self.request("DELETE", path, params=params, expected=expected)


def _code(response: http.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return ""
    return str(body.get("code", "")) if isinstance(body, dict) else ""


def _corr(response: http.Response) -> str:
    value = response.headers.get("ININ-Correlation-Id")
    return f", correlation id {value}" if value else ""


def _body(method: str, response: http.Response) -> Any:
    if method == "HEAD" or response.status_code == 204 or not response.content:
        return None
    content_type = response.headers.get("Content-Type", "")
    if "json" in content_type or response.content[:1] in (b"{", b"["):
        try:
            return jsonlib.loads(response.content)
        except ValueError:
            pass
    return response.text


_clients_lock = threading.Lock()
_clients: dict[ClientSettings, GenesysClient] = {}


def client_for(
    configuration: Mapping[str, Any] | None = None, secrets: Mapping[str, Any] | None = None
) -> GenesysClient:
    """The shared :class:`GenesysClient` for an experiment's configuration and secrets."""
    settings = settings_from(configuration, secrets)
    with _clients_lock:
        client = _clients.get(settings)
        if client is None:
            client = _clients[settings] = GenesysClient(settings)
        return client


def clear_clients() -> None:
    """Forget the cached clients (tokens stay in the token cache)."""
    with _clients_lock:
        _clients.clear()
