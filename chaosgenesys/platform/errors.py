"""Errors of the Genesys Cloud API, with everything support needs in the message.

``str(GenesysApiError)`` reads like::

    GET /api/v2/users/X failed: 404 not.found: The requested resource was not found
    (correlation id 1234...)
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.http import Response

__all__ = ["GenesysApiError", "parse_error_body"]

_MAX_TEXT = 300


def parse_error_body(body: bytes | str | None) -> dict[str, Any]:
    """The Genesys ``ErrorBody`` (or OAuth error) in ``body``, ``{}`` when it is not JSON."""
    if not body:
        return {}
    try:
        parsed = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _text(body: bytes | str | None) -> str:
    if not body:
        return ""
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    text = " ".join(text.split())
    return text[:_MAX_TEXT] + ("..." if len(text) > _MAX_TEXT else "")


class GenesysApiError(ActivityFailed):  # type: ignore[misc]
    """A Genesys Cloud API call that failed with an HTTP status.

    Attributes: ``status`` (HTTP status), ``code`` (Genesys error code such as ``not.found``,
    or ``""``), ``message`` (Genesys message or a short excerpt of a non-JSON body),
    ``correlation_id`` (``ININ-Correlation-Id``, or ``""``), ``method`` and ``path`` (without
    the query string), ``retry_after`` (seconds asked by the server, if any) and ``note`` (what
    the client did, e.g. why it stopped retrying).
    """

    def __init__(
        self,
        *,
        status: int,
        code: str = "",
        message: str = "",
        correlation_id: str = "",
        method: str = "",
        path: str = "",
        retry_after: float | None = None,
        note: str = "",
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.correlation_id = correlation_id
        self.method = method.upper()
        self.path = path
        self.retry_after = retry_after
        self.note = note
        super().__init__(self._format())

    def _format(self) -> str:
        text = f"{self.method} {self.path} failed: {self.status}"
        if self.code:
            text += f" {self.code}"
        if self.message:
            text += f": {self.message}"
        if self.correlation_id:
            text += f" (correlation id {self.correlation_id})"
        if self.note:
            text += f"; {self.note}"
        return text

    def __str__(self) -> str:
        return self._format()

    def __reduce__(self) -> tuple[Any, ...]:
        return (_rebuild, (self.__dict__.copy(),))

    @classmethod
    def from_response(
        cls,
        method: str,
        path: str,
        response: Response,
        *,
        note: str = "",
        retry_after: float | None = None,
    ) -> GenesysApiError:
        """Build the error from a response whose body is an ErrorBody, other JSON or not JSON."""
        body = parse_error_body(response.content)
        code = body.get("code") or body.get("error") or ""
        message = (
            body.get("message") or body.get("error_description") or body.get("description") or ""
        )
        if not body:
            message = _text(response.content) or (response.reason or "")
        correlation = response.headers.get("ININ-Correlation-Id") or body.get("contextId") or ""
        return cls(
            status=response.status_code,
            code=str(code),
            message=str(message),
            correlation_id=str(correlation),
            method=method,
            path=urlsplit(path).path or path,
            retry_after=retry_after,
            note=note,
        )


def _rebuild(state: dict[str, Any]) -> GenesysApiError:
    error = GenesysApiError.__new__(GenesysApiError)
    error.__dict__.update(state)
    ActivityFailed.__init__(error, error._format())
    return error
