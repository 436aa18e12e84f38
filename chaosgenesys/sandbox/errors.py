"""Genesys Cloud ``ErrorBody`` responses and the exception the sandbox's handlers raise.

The bodies themselves (codes, messages) are :mod:`chaosgenesys.error_bodies`, shared with the
proxy's ``fail`` rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from chaosgenesys.error_bodies import (
    code_for,
    error_body,
    message_for,
    rate_limit_message,
)

__all__ = [
    "SandboxHTTPError",
    "bad_request",
    "error_body",
    "error_response",
    "not_found",
    "oauth_error",
    "rate_limit_message",
    "user_context_required",
]


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
        self.code = code or code_for(status)
        self.message = message if message is not None else message_for(status)
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
