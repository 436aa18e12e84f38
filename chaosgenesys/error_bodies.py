"""Genesys Cloud ``ErrorBody`` payloads, written once: the sandbox answers with them and the
fault-injecting proxy's ``fail`` rules synthesise them.

The ``code`` of each status follows ``docs/genesys-cloud-api.md`` (401 ``bad.credentials``, 408
``client.timeout``, 429 ``too.many.requests.retry.after``, 503 ``service.unavailable``, 504
``request.timeout``, ...). Only the standard library: the proxy's rule model imports it without
aiohttp or mitmproxy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = [
    "DEFAULT_MESSAGES",
    "STATUS_CODES",
    "code_for",
    "error_body",
    "message_for",
    "rate_limit_message",
]

#: The Genesys ``code`` for each HTTP status.
STATUS_CODES: dict[int, str] = {
    400: "bad.request",
    401: "bad.credentials",
    403: "not.authorized",
    404: "not.found",
    405: "method.not.allowed",
    408: "client.timeout",
    409: "conflict",
    413: "request.entity.too.large",
    415: "unsupported.media.type",
    429: "too.many.requests.retry.after",
    500: "internal.server.error",
    501: "not.implemented",
    502: "bad.gateway",
    503: "service.unavailable",
    504: "request.timeout",
}

#: The ``message`` for each status when none is given (429's is :func:`rate_limit_message`).
DEFAULT_MESSAGES: dict[int, str] = {
    400: "The request could not be understood by the server due to malformed syntax.",
    401: "Invalid login credentials.",
    403: "You are not authorized to perform the requested action.",
    404: "The requested resource was not found.",
    405: "The requested method is not allowed on this resource.",
    408: "The client did not produce a request within the server timeout limit.",
    409: "The request could not be completed due to a conflict.",
    413: "The request is larger than the server is willing to process.",
    415: "Unsupported media type.",
    500: "The server encountered an unexpected condition.",
    501: "Not implemented.",
    502: "The server received an invalid response from an upstream server.",
    503: "The service is currently unavailable.",
    504: "The request timed out.",
}


def rate_limit_message(retry_after: int) -> str:
    """The platform's 429 message for ``retry_after`` seconds."""
    return f"Rate limit exceeded the maximum. Retry the request in [{retry_after}] seconds"


def code_for(status: int) -> str:
    """The Genesys ``code`` of ``status``; a status without an entry gets ``bad.request`` (4xx)
    or ``internal.server.error`` (5xx)."""
    return STATUS_CODES.get(status) or ("bad.request" if status < 500 else "internal.server.error")


def message_for(status: int) -> str:
    """The default ``message`` of ``status`` (``HTTP <status>`` for one without an entry)."""
    return DEFAULT_MESSAGES.get(status, f"HTTP {status}")


def error_body(
    status: int,
    code: str | None = None,
    message: str | None = None,
    *,
    context_id: str = "",
    message_params: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ``ErrorBody`` dict: ``message, code, status, messageWithParams, messageParams, ...``
    (``code`` and ``message`` default to :func:`code_for` and :func:`message_for`)."""
    text = message if message is not None else message_for(status)
    return {
        "message": text,
        "code": code or code_for(status),
        "status": status,
        "messageWithParams": text,
        "messageParams": dict(message_params or {}),
        "contextId": context_id,
        "details": list(details or []),
        "errors": [],
    }
