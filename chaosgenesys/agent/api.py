"""The agent's REST calls: bearer token from its :class:`TokenKeeper`, timeout, proxy, TLS.

A 401 makes the resilient agent fetch one new token and retry once; the naive agent gives up
(:class:`LoggedOut`). A 429 or 503 is retried after its ``Retry-After`` (at most 5 s, twice).
Network failures and other errors raise :class:`ApiError` with the status (0 for no answer).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from chaosgenesys.agent.config import Endpoint
from chaosgenesys.agent.tokens import LoggedOut, TokenError, TokenKeeper

__all__ = ["ApiClient", "ApiError"]

_RETRY_STATUSES = (429, 503)
_MAX_RETRY_WAIT = 5.0


class ApiError(Exception):
    """A request failed: ``status`` is the HTTP status, 0 when no answer came."""

    def __init__(self, method: str, path: str, status: int, detail: str = "") -> None:
        self.method = method
        self.path = path
        self.status = status
        super().__init__(f"{method} {path}: {status or 'no answer'} {detail}".strip())


class ApiClient:
    """REST calls of one agent."""

    def __init__(
        self,
        endpoint: Endpoint,
        session: aiohttp.ClientSession,
        tokens: TokenKeeper,
        *,
        resilient: bool,
        request_kwargs: dict[str, Any] | None = None,
        on_status: Callable[[int], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._session = session
        self._tokens = tokens
        self._resilient = resilient
        self._kwargs = request_kwargs or {}
        self._on_status = on_status

    async def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        timeout: float | None = None,
        retry: bool = True,
    ) -> Any:
        """Send one request; returns the JSON body (``None`` when empty).

        ``retry=False``: no retry after 429/503 (a state change guarded by optimistic locking
        is re-checked against the server before it is sent again, so it is not resent blindly).
        """
        retried_401 = False
        retries = 0
        while True:
            try:
                token = await self._tokens.token()
            except TokenError as error:
                raise ApiError(method, path, 0, str(error)) from None
            status, payload, retry_after = await self._send(method, path, body, token, timeout)
            if self._on_status is not None:
                self._on_status(status)
            if status == 401:
                if not self._resilient:
                    raise LoggedOut(f"{method} {path} answered 401")
                if retried_401:
                    raise ApiError(method, path, 401, "after a fresh token")
                retried_401 = True
                try:
                    await self._tokens.invalidate_and_refresh(token)
                except TokenError as error:
                    raise ApiError(method, path, 401, str(error)) from None
                continue
            if status in _RETRY_STATUSES and self._resilient and retry and retries < 2:
                retries += 1
                await asyncio.sleep(min(_MAX_RETRY_WAIT, retry_after))
                continue
            if status >= 400:
                raise ApiError(method, path, status, _error_code(payload))
            return payload

    async def _send(
        self, method: str, path: str, body: Any, token: str, timeout: float | None
    ) -> tuple[int, Any, float]:
        headers = {"Authorization": f"Bearer {token}"}
        data: str | None = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body)
        try:
            async with self._session.request(
                method,
                self._endpoint.api_url + path,
                data=data,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=timeout or self._endpoint.timeout),
                **self._kwargs,
            ) as response:
                raw = await response.read()
                retry_after = _retry_after(response.headers.get("Retry-After"))
                payload: Any = None
                if raw:
                    try:
                        payload = json.loads(raw)
                    except ValueError:
                        payload = None
                return response.status, payload, retry_after
        except (aiohttp.ClientError, TimeoutError, OSError) as error:
            raise ApiError(method, path, 0, type(error).__name__) from None


def _retry_after(value: str | None) -> float:
    try:
        return max(0.0, float(value)) if value else 1.0
    except ValueError:
        return 1.0


def _error_code(payload: Any) -> str:
    if isinstance(payload, dict):
        return str(payload.get("code") or payload.get("error") or "")
    return ""
