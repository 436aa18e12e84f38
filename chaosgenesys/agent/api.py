"""The agent's REST calls: bearer token from its :class:`TokenKeeper`, timeout, proxy, TLS.

A 401 makes the resilient agent fetch one new token and retry once; the naive agent gives up
(:class:`LoggedOut`). A 429 or 503 is retried after its ``Retry-After`` (at most 5 s, twice).
Network failures and other errors raise :class:`ApiError` with the status (0 for no answer).
Every call that ends (answered, failed or given up; not cancelled) is reported to ``on_call``
once, with its final status (``None``: no answer), its latency as the desktop lives it (token
wait and retry waits included) and how many times it was sent again. While a call is under way
its wall-clock start is in ``in_flight`` when one is set (the status file's ``api_in_flight``,
which the kill switch reads: a call still waiting past its threshold is slow too).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp

from chaosgenesys.agent.config import Endpoint
from chaosgenesys.agent.tokens import CallListener, LoggedOut, TokenError, TokenKeeper

__all__ = ["ApiClient", "ApiError", "CallListener"]

_RETRY_STATUSES = (429, 503)
_MAX_RETRY_WAIT = 5.0


class ApiError(Exception):
    """A request failed: ``status`` is the HTTP status, 0 when no answer came."""

    def __init__(
        self, method: str, path: str, status: int, detail: str = "", retry_after: float = 0.0
    ) -> None:
        self.method = method
        self.path = path
        self.status = status
        #: The answer's ``Retry-After`` (seconds; 0 when it had none).
        self.retry_after = retry_after
        super().__init__(f"{method} {path}: {status or 'no answer'} {detail}".strip())


@dataclass
class _Outcome:
    """How one call ended: the last answer's status (None: none), re-sends, cancelled."""

    status: int | None = None
    retries: int = 0
    cancelled: bool = False


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
        on_call: CallListener | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._session = session
        self._tokens = tokens
        self._resilient = resilient
        self._kwargs = request_kwargs or {}
        self._on_status = on_status
        self._on_call = on_call
        #: Calls under way: a key per call to its wall-clock start (shared by the manager).
        self.in_flight: dict[object, float] | None = None

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
        started = time.monotonic()
        outcome = _Outcome()
        in_flight, key = self.in_flight, object()
        if in_flight is not None:
            in_flight[key] = time.time()
        try:
            return await self._request(method, path, body, timeout, retry, outcome)
        except asyncio.CancelledError:
            outcome.cancelled = True
            raise
        finally:
            if in_flight is not None:
                in_flight.pop(key, None)
            if self._on_call is not None and not outcome.cancelled:
                latency_ms = (time.monotonic() - started) * 1000
                self._on_call(method, path, outcome.status, latency_ms, outcome.retries)

    async def _request(
        self,
        method: str,
        path: str,
        body: Any,
        timeout: float | None,
        retry: bool,
        outcome: _Outcome,
    ) -> Any:
        retried_401 = False
        retries = 0
        while True:
            try:
                token = await self._tokens.token()
            except TokenError as error:
                raise ApiError(method, path, 0, str(error)) from None
            outcome.status = None  # until this attempt is answered
            status, payload, retry_after, retry_after_given = await self._send(
                method, path, body, token, timeout
            )
            outcome.status = status
            if self._on_status is not None:
                self._on_status(status)
            if status == 401:
                if not self._resilient:
                    raise LoggedOut(f"{method} {path} answered 401")
                if retried_401:
                    raise ApiError(method, path, 401, "after a fresh token")
                retried_401 = True
                outcome.retries += 1
                try:
                    await self._tokens.invalidate_and_refresh(token)
                except TokenError as error:
                    raise ApiError(method, path, 401, str(error)) from None
                continue
            if status in _RETRY_STATUSES and self._resilient and retry and retries < 2:
                retries += 1
                outcome.retries += 1
                await asyncio.sleep(min(_MAX_RETRY_WAIT, retry_after))
                continue
            if status >= 400:
                raise ApiError(method, path, status, _error_code(payload),
                               retry_after=retry_after if retry_after_given else 0.0)
            return payload

    async def _send(
        self, method: str, path: str, body: Any, token: str, timeout: float | None
    ) -> tuple[int, Any, float, bool]:
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
                given = response.headers.get("Retry-After")
                retry_after = _retry_after(given)
                payload: Any = None
                if raw:
                    try:
                        payload = json.loads(raw)
                    except ValueError:
                        payload = None
                return response.status, payload, retry_after, bool(given)
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
