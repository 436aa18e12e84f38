"""GenesysApiError: attributes and message from ErrorBody JSON, OAuth errors and non-JSON bodies."""

from __future__ import annotations

import json
import pickle
from typing import Any

import requests
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.platform import GenesysApiError
from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse


def response(status: int, body: Any, headers: dict[str, str] | None = None) -> requests.Response:
    """A requests.Response as the HTTP layer returns it (no server needed to format errors)."""
    r = requests.Response()
    r.status_code = status
    r._content = body if isinstance(body, bytes) else json.dumps(body).encode()
    r.headers.update(headers or {})
    r.reason = {404: "Not Found", 502: "Bad Gateway"}.get(status, "")
    return r


def test_error_body_with_correlation_header() -> None:
    body = {
        "message": "The requested resource was not found",
        "code": "not.found",
        "status": 404,
        "contextId": "ctx-1",
    }
    err = GenesysApiError.from_response(
        "get",
        "/api/v2/users/X?expand=presence",
        response(404, body, {"ININ-Correlation-Id": "1234"}),
    )
    assert isinstance(err, ActivityFailed)
    assert (err.status, err.code, err.message) == (404, "not.found", body["message"])
    assert (err.correlation_id, err.method, err.path) == ("1234", "GET", "/api/v2/users/X")
    assert str(err) == (
        "GET /api/v2/users/X failed: 404 not.found: The requested resource was not found "
        "(correlation id 1234)"
    )


def test_context_id_when_no_header() -> None:
    err = GenesysApiError.from_response(
        "GET", "/x", response(400, {"message": "m", "code": "bad.request", "contextId": "c-9"})
    )
    assert err.correlation_id == "c-9"
    assert "(correlation id c-9)" in str(err)


def test_oauth_error_body() -> None:
    body = {
        "error": "invalid_client",
        "description": "authentication failed",
        "error_description": "authentication failed",
    }
    err = GenesysApiError.from_response("POST", "/oauth/token", response(401, body))
    assert err.code == "invalid_client"
    assert str(err) == "POST /oauth/token failed: 401 invalid_client: authentication failed"


def test_non_json_body_and_empty_body() -> None:
    err = GenesysApiError.from_response("GET", "/p", response(502, b"<html>  bad\n gateway</html>"))
    assert err.code == ""
    assert str(err) == "GET /p failed: 502: <html> bad gateway</html>"
    err = GenesysApiError.from_response("DELETE", "/p", response(404, b""))
    assert str(err) == "DELETE /p failed: 404: Not Found"
    long = GenesysApiError.from_response("GET", "/p", response(500, b"x" * 5000))
    assert len(str(long)) < 400


def test_note_and_pickling() -> None:
    err = GenesysApiError(
        status=429,
        code="too.many.requests",
        message="slow down",
        method="GET",
        path="/a",
        retry_after=40.0,
        note="not retrying",
    )
    assert str(err).endswith("; not retrying")
    again = pickle.loads(pickle.dumps(err))
    assert str(again) == str(err) and again.retry_after == 40.0
