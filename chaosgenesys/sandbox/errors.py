"""Genesys Cloud ``ErrorBody`` responses and the exception the sandbox's handlers raise."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

__all__ = [
    "STATUS_CODES",
    "SandboxHTTPError",
    "bad_request",
    "error_body",
    "error_response",
    "not_found",
    "oauth_error",
    "rate_limit_message",
    "user_context_required",
]

#: The Genesys ``code`` the sandbox uses for each HTTP status.
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

_DEFAULT_MESSAGES: dict[int, str] = {
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


def error_body(
    status: int,
    code: str | None = None,
    message: str | None = None,
    *,
    context_id: str = "",
    message_params: Mapping[str, str] | None = None,
    details: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """An ``ErrorBody`` dict: ``message, code, status, messageWithParams, messageParams, ...``."""
    text = message if message is not None else _DEFAULT_MESSAGES.get(status, "Error")
    return {
        "message": text,
        "code": code or STATUS_CODES.get(status, "error"),
        "status": status,
        "messageWithParams": text,
        "messageParams": dict(message_params or {}),
        "contextId": context_id,
        "details": list(details or []),
        "errors": [],
    }


def error_response(
    status: int,
    code: str | None = None,
    message: str | None = None,
    *,
    context_id: str = "",
    headers: Mapping[str, str] | None = None,
    message_params: Mapping[str, str] | None = None,
) -> web.Response:
    """A JSON ``ErrorBody`` response."""
    return web.json_response(
        error_body(
            status, code, message, context_id=context_id, message_params=message_params
        ),
        status=status,
        headers=dict(headers or {}),
    )


class SandboxHTTPError(Exception):
    """Raised by handlers and middlewares; the error middleware turns it into an ErrorBody.

    ``body`` replaces the ErrorBody entirely (the OAuth endpoint answers in OAuth's format).
    """

    def __init__(
        self,
        status: int,
        message: str | None = None,
        *,
        code: str | None = None,
        headers: Mapping[str, str] | None = None,
        message_params: Mapping[str, str] | None = None,
        body: dict[str, Any] | None = None,
    ) -> None:
        self.status = status
        self.code = code or STATUS_CODES.get(status, "error")
        self.message = message if message is not None else _DEFAULT_MESSAGES.get(status, "Error")
        self.headers = dict(headers or {})
        self.message_params = dict(message_params or {})
        self.body = body
        super().__init__(f"{status} {self.code}: {self.message}")

    def response(self, context_id: str = "") -> web.Response:
        """The HTTP response for this error."""
        if self.body is not None:
            return web.json_response(self.body, status=self.status, headers=self.headers)
        return error_response(
            self.status,
            self.code,
            self.message,
            context_id=context_id,
            headers=self.headers,
            message_params=self.message_params,
        )


def bad_request(message: str) -> SandboxHTTPError:
    """A 400 ``bad.request`` error."""
    return SandboxHTTPError(400, message, code="bad.request")


def not_found(what: str, ident: str) -> SandboxHTTPError:
    """A 404 ``not.found`` error for an unknown id."""
    return SandboxHTTPError(404, f"{what} not found: {ident}", code="not.found")


#: The platform's answer to a ``me`` resource under a client-credentials token. 400 and the first
#: sentences are as measured against a real organization (``GET /api/v2/users/me`` -> 400 "This
#: request requires a user context. Client credentials cannot be used..."); the end of the
#: message and the ``code`` could not be confirmed: ``bad.request`` is the sandbox's code for 400.
USER_CONTEXT_MESSAGE = (
    "This request requires a user context. Client credentials cannot be used for requests to "
    "this resource."
)


def oauth_error(status: int, error: str, description: str) -> SandboxHTTPError:
    """An error of the OAuth endpoints, in OAuth's shape (RFC 6749 section 5.2, as the platform
    words it): ``{"error", "description", "error_description"}``."""
    return SandboxHTTPError(
        status,
        description,
        code=error,
        body={"error": error, "description": description, "error_description": description},
    )


def user_context_required() -> SandboxHTTPError:
    """400: a ``/me`` resource asked with a token that has no user (client credentials)."""
    return SandboxHTTPError(400, USER_CONTEXT_MESSAGE, code="bad.request")
