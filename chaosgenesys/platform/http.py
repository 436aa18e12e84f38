"""The one HTTP layer: pooled ``requests`` sessions and :func:`send`.

This is the only module of chaosgenesys that imports ``requests``. One ``requests.Session`` is
kept per TLS-verification setting and shared by every thread (its connection pool is
thread-safe). Every call has a timeout; transport failures become ``ActivityFailed`` naming the
method, the URL (without its query string) and what happened.
"""

from __future__ import annotations

import errno
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
from chaoslib.exceptions import ActivityFailed
from requests.adapters import HTTPAdapter

__all__ = ["Response", "close_sessions", "safe_url", "send", "session_for"]

#: The response type :func:`send` returns (``requests.Response``).
Response = requests.Response

_POOL_SIZE = 64
_lock = threading.Lock()
_sessions: dict[bool | str, requests.Session] = {}


def session_for(verify: bool | str = True) -> requests.Session:
    """The shared session for one verification setting (``True``, ``False`` or a CA path)."""
    with _lock:
        session = _sessions.get(verify)
        if session is None:
            session = requests.Session()
            session.verify = verify
            session.trust_env = False  # no proxy or netrc surprises; proxies are explicit URLs
            adapter = HTTPAdapter(pool_connections=16, pool_maxsize=_POOL_SIZE, max_retries=0)
            session.mount("http://", adapter)
            session.mount("https://", adapter)
            _sessions[verify] = session
        return session


def close_sessions() -> None:
    """Close every pooled session (the next :func:`send` opens new ones)."""
    with _lock:
        sessions = list(_sessions.values())
        _sessions.clear()
    for session in sessions:
        session.close()


def safe_url(url: str) -> str:
    """``url`` without query string, fragment or user info, fit for messages and logs."""
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _reason(exc: BaseException) -> str:
    """The innermost OS-level reason of a transport error, without URLs or object reprs."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno is not None:
            name = errno.errorcode.get(current.errno, str(current.errno))
            return f"{current.strerror or name} ({name})"
        inner = getattr(current, "reason", None)
        if isinstance(inner, BaseException):
            current = inner
            continue
        if current.args and isinstance(current.args[0], BaseException):
            current = current.args[0]
            continue
        current = current.__cause__ or current.__context__
    text = str(exc)
    for marker in ("Failed to establish a new connection: ", "Caused by "):
        if marker in text:
            text = text.split(marker, 1)[1]
    return text.rstrip(")")[:200]


def send(
    method: str,
    url: str,
    *,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    data: Mapping[str, Any] | str | bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float,
    verify: bool | str = True,
) -> requests.Response:
    """Send one request and return the response, whatever its status.

    ``timeout`` (seconds) bounds the connection and each read. Timeouts, refused connections,
    DNS and TLS failures raise ``ActivityFailed`` naming the method and URL (no query string).
    """
    if timeout is None or timeout <= 0:
        raise ActivityFailed(f"{method} {safe_url(url)}: a timeout greater than 0 is required")
    session = session_for(verify)
    where = f"{method.upper()} {safe_url(url)}"
    try:
        return session.request(
            method.upper(),
            url,
            params=params,
            json=json,
            data=data,
            headers=dict(headers) if headers else None,
            timeout=timeout,
        )
    except requests.exceptions.ConnectTimeout:
        raise ActivityFailed(
            f"{where} failed: connection timeout after {timeout:g} s (no connection established)"
        ) from None
    except requests.exceptions.Timeout:
        raise ActivityFailed(
            f"{where} failed: read timeout after {timeout:g} s (no response in time)"
        ) from None
    except requests.exceptions.SSLError as exc:
        raise ActivityFailed(f"{where} failed: TLS error: {_reason(exc)}") from None
    except requests.exceptions.ConnectionError as exc:
        raise ActivityFailed(f"{where} failed: connection error: {_reason(exc)}") from None
    except requests.exceptions.RequestException as exc:
        raise ActivityFailed(f"{where} failed: {type(exc).__name__}: {_reason(exc)}") from None
