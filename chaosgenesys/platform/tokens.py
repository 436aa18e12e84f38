"""The process-wide OAuth token cache (client-credentials grant).

Tokens are cached per (login URL, client id, client secret): the secret enters the key as an
HMAC under a random key of the process, never in clear, so a wrong secret is sent to the login
server (and refused there) instead of being handed the right secret's token.

:meth:`TokenCache.get` hands out the cached token until it is within ``token_refresh_margin``
seconds of expiry; then exactly one caller asks for a new one while the others wait on that
key's condition (single flight). No lock is held during HTTP except the per-key "a refresh is
in flight" flag, so a refresh never queues behind API requests and keys never block each other.
:meth:`TokenCache.force_refresh` replaces a token the API rejected, once, however many threads
saw the rejection.

Token expiry and the refresh margin run on the cache's ``clock`` (:mod:`chaosgenesys.clock`,
the real one unless a test passes a ``ManualClock``); waits and latencies are real time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import threading
import time
from dataclasses import dataclass, field

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.clock import REAL_CLOCK, Clock
from chaosgenesys.platform import http, metrics
from chaosgenesys.platform.errors import GenesysApiError, parse_error_body
from chaosgenesys.platform.retry import RETRYABLE_STATUSES, backoff_delay, parse_retry_after
from chaosgenesys.platform.settings import ClientSettings

__all__ = ["AccessToken", "TokenCache", "token_cache"]

logger = logging.getLogger("chaostoolkit")

TOKEN_PATH = "/oauth/token"


@dataclass(frozen=True)
class AccessToken:
    """A bearer token. ``value`` is left out of ``repr``; times are epoch seconds."""

    value: str = field(repr=False)
    expires_at: float
    obtained_at: float

    @property
    def lifetime(self) -> float:
        """Seconds between issue and expiry."""
        return self.expires_at - self.obtained_at

    def seconds_left(self, now: float | None = None) -> float:
        """Seconds until expiry (negative once expired)."""
        return self.expires_at - (time.time() if now is None else now)

    def needs_refresh(self, margin: float, now: float | None = None) -> bool:
        """Whether the token expires within ``margin`` seconds.

        The margin is capped at half the token's lifetime, so a token that lives shorter than
        the margin (a sandbox set to 5 s lifetimes) is still used for half its life rather than
        refreshed on every call.
        """
        effective = min(margin, max(0.0, self.lifetime) / 2)
        return self.seconds_left(now) <= effective


class _Entry:
    """State of one cache key; ``cond`` guards every field."""

    def __init__(self) -> None:
        self.cond = threading.Condition(threading.Lock())
        self.token: AccessToken | None = None
        self.refreshing = False
        self.attempts = 0  # refreshes finished (successful or not)
        self.last_error: BaseException | None = None
        self.refreshes = 0  # successful refreshes
        self.settings: ClientSettings | None = None  # what the token was obtained with


Key = tuple[str, str, str]

#: A random key of this process: the cache keys hold an HMAC of the client secret under it, so
#: a wrong secret never finds the token of the right one, and no key reveals the secret (not
#: even a plain hash of it, which could be checked against a guess outside this process).
_SECRET_KEY = secrets.token_bytes(32)


def _key(settings: ClientSettings) -> Key:
    """(login URL, client id, HMAC-SHA256 of the client secret): one token per credential."""
    digest = hmac.new(_SECRET_KEY, settings.client_secret.encode(), hashlib.sha256).hexdigest()
    return (settings.login_url, settings.client_id, digest)


class TokenCache:
    """A thread-safe cache of access tokens with single-flight refresh per key; expiry and
    the refresh margin are read on ``clock``."""

    def __init__(self, clock: Clock = REAL_CLOCK) -> None:
        self.clock = clock
        self._lock = threading.Lock()  # guards _entries only, never held during HTTP
        self._entries: dict[Key, _Entry] = {}

    def _entry(self, settings: ClientSettings) -> _Entry:
        key = _key(settings)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                entry = self._entries[key] = _Entry()
            return entry

    # -- public API --------------------------------------------------------------------------

    def get(self, settings: ClientSettings) -> AccessToken:
        """A token valid for more than the refresh margin, fetching one if needed."""
        entry = self._entry(settings)
        with entry.cond:
            token = entry.token
            if token is not None and not token.needs_refresh(
                settings.token_refresh_margin, self.clock.time()
            ):
                return token
            if entry.refreshing:
                return self._wait(entry, settings)
            entry.refreshing = True
        return self._refresh(entry, settings)

    def force_refresh(
        self, settings: ClientSettings, stale_token: AccessToken | None = None
    ) -> AccessToken:
        """A new token, unless the cached one already replaced ``stale_token``.

        When several threads see the same token rejected, the first refreshes and the others get
        its result. ``stale_token=None`` refreshes whatever is cached (still single-flight).
        """
        entry = self._entry(settings)
        with entry.cond:
            if entry.refreshing:
                return self._wait(entry, settings)
            token = entry.token
            if (
                stale_token is not None
                and token is not None
                and token.value != stale_token.value
                and not token.needs_refresh(settings.token_refresh_margin, self.clock.time())
            ):
                return token
            entry.refreshing = True
        return self._refresh(entry, settings)

    def peek(self, settings: ClientSettings) -> AccessToken | None:
        """The cached token for ``settings`` (possibly expiring), without fetching."""
        entry = self._entry(settings)
        with entry.cond:
            return entry.token

    def invalidate(self, settings: ClientSettings) -> None:
        """Drop the cached token of ``settings``; the next :meth:`get` fetches a new one."""
        entry = self._entry(settings)
        with entry.cond:
            entry.token = None

    def take_all(self) -> list[tuple[ClientSettings, AccessToken]]:
        """Every cached token with the settings it was obtained with, dropped from the cache
        (to revoke them at the end of a run; the next :meth:`get` fetches a new token)."""
        with self._lock:
            entries = list(self._entries.values())
        taken: list[tuple[ClientSettings, AccessToken]] = []
        for entry in entries:
            with entry.cond:
                if entry.token is not None and entry.settings is not None:
                    taken.append((entry.settings, entry.token))
                entry.token = None
        return taken

    def clear(self) -> None:
        """Forget every key (tokens and counters). In-flight refreshes finish harmlessly."""
        with self._lock:
            self._entries.clear()

    def refresh_count(self, settings: ClientSettings | None = None) -> int:
        """Successful token requests made for ``settings`` (or all keys) since :meth:`clear`."""
        with self._lock:
            entries = (
                [e for k, e in self._entries.items() if k == _key(settings)]
                if settings is not None
                else list(self._entries.values())
            )
        return sum(e.refreshes for e in entries)

    # -- internals ---------------------------------------------------------------------------

    def _wait(self, entry: _Entry, settings: ClientSettings) -> AccessToken:
        """Wait (holding ``entry.cond``) for the refresh in flight and return its outcome."""
        attempts = entry.attempts
        limit = settings.max_retry_wait + (settings.max_retries + 1) * 2 * settings.timeout + 5
        deadline = time.monotonic() + limit
        while entry.refreshing and entry.attempts == attempts:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ActivityFailed(
                    f"timed out after {limit:g} s waiting for the Genesys Cloud token refresh "
                    f"in progress for client id {settings.client_id!r}"
                )
            entry.cond.wait(remaining)
        if entry.token is not None and entry.last_error is None:
            return entry.token
        error = entry.last_error
        if isinstance(error, GenesysApiError):
            raise GenesysApiError(
                status=error.status,
                code=error.code,
                message=error.message,
                correlation_id=error.correlation_id,
                method=error.method,
                path=error.path,
                note=error.note,
            )
        raise ActivityFailed(str(error) if error else "the Genesys Cloud token refresh failed")

    def _refresh(self, entry: _Entry, settings: ClientSettings) -> AccessToken:
        """Fetch a token (``entry.refreshing`` is set by the caller) and publish the outcome."""
        try:
            token = request_token(settings, self.clock)
        except BaseException as exc:
            with entry.cond:
                entry.refreshing = False
                entry.attempts += 1
                entry.last_error = exc
                entry.cond.notify_all()
            raise
        with entry.cond:
            entry.token = token
            entry.settings = settings
            entry.refreshing = False
            entry.attempts += 1
            entry.refreshes += 1
            entry.last_error = None
            entry.cond.notify_all()
        return token


def _basic(settings: ClientSettings) -> str:
    raw = f"{settings.client_id}:{settings.client_secret}".encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def request_token(settings: ClientSettings, clock: Clock = REAL_CLOCK) -> AccessToken:
    """One client-credentials token from ``login_url/oauth/token``, retrying 429/503/504;
    its ``obtained_at`` and ``expires_at`` are on ``clock``.

    Failures raise :class:`GenesysApiError` (status, OAuth ``error`` and description) or
    ``ActivityFailed`` for transport errors; never the secret.
    """
    url = settings.login_url + TOKEN_PATH
    headers = {
        "Authorization": _basic(settings),
        "Content-Type": "application/x-www-form-urlencoded",
        "Accept": "application/json",
    }
    started = time.monotonic()
    waited = 0.0
    retries = 0
    while True:
        try:
            response = http.send(
                "POST",
                url,
                data={"grant_type": "client_credentials"},
                headers=headers,
                timeout=settings.timeout,
                verify=settings.verify_tls,
            )
        except ActivityFailed:
            metrics.record(
                "POST", TOKEN_PATH, None, (time.monotonic() - started) * 1000, retries=retries
            )
            raise
        status = response.status_code
        if status in RETRYABLE_STATUSES and retries < settings.max_retries:
            asked = parse_retry_after(response.headers)
            if asked is None:
                asked = backoff_delay(settings.retry_backoff, retries + 1)
            delay = asked
            if waited + delay <= settings.max_retry_wait:
                retries += 1
                waited += delay
                logger.warning(
                    "Genesys Cloud token request for client id %r returned %d; retrying in "
                    "%.1f s (retry %d of %d)",
                    settings.client_id,
                    status,
                    delay,
                    retries,
                    settings.max_retries,
                )
                time.sleep(delay)
                continue
        latency = (time.monotonic() - started) * 1000
        metrics.record(
            "POST", TOKEN_PATH, status, latency, retries=retries, headers=response.headers
        )
        if status != 200:
            raise _token_error(settings, response)
        body = parse_error_body(response.content)
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise ActivityFailed(
                f"POST {http.safe_url(url)} returned 200 without an access_token "
                f"(client id {settings.client_id!r})"
            )
        try:
            expires_in = float(body.get("expires_in", 86399))
        except (TypeError, ValueError):
            expires_in = 86399.0
        now = clock.time()
        logger.info(
            "obtained a Genesys Cloud access token for client id %r from %s (expires in %d s)",
            settings.client_id,
            settings.login_url,
            int(expires_in),
        )
        return AccessToken(value=value, expires_at=now + expires_in, obtained_at=now)


def _token_error(settings: ClientSettings, response: http.Response) -> GenesysApiError:
    error = GenesysApiError.from_response(
        "POST",
        TOKEN_PATH,
        response,
        note=f"token request for OAuth client {settings.client_id!r} at {settings.login_url}",
    )
    secret = settings.client_secret
    if secret and (secret in error.message or secret in error.code):
        error = GenesysApiError(
            status=error.status,
            code=error.code.replace(secret, "***"),
            message=error.message.replace(secret, "***"),
            correlation_id=error.correlation_id,
            method=error.method,
            path=error.path,
            note=error.note,
        )
    return error


_CACHE = TokenCache()


def token_cache() -> TokenCache:
    """The process-wide token cache every client shares."""
    return _CACHE
