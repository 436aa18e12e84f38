"""The HTTP layer: errors, correlation ids, rate limiting, server-side faults, accounting."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.admin import AdminError
from tests.sandbox.sandbox_helpers import AGENT_1, Api, api_fixture, make_seed, wait_until

api = api_fixture()

ROUTING = f"/api/v2/users/{AGENT_1}/routingstatus"
PRESENCE = f"/api/v2/users/{AGENT_1}/presences/purecloud"
ERROR_KEYS = {"message", "code", "status", "messageWithParams", "messageParams", "contextId",
              "details", "errors"}


def test_not_found_and_method_not_allowed(api: Api) -> None:
    unknown = api.get("/api/v2/nothing/here")
    assert unknown.status_code == 404
    body = unknown.json()
    assert set(body) >= ERROR_KEYS
    assert body["code"] == "not.found" and body["status"] == 404
    assert body["contextId"] == unknown.headers["ININ-Correlation-Id"]
    assert requests.get(f"{api.url}/elsewhere", timeout=5).json()["code"] == "not.found"
    wrong = api.delete(f"/api/v2/users/{AGENT_1}")
    assert wrong.status_code == 405
    assert wrong.json()["code"] == "method.not.allowed"
    assert "GET" in wrong.headers["Allow"]


def test_correlation_ids_are_unique(api: Api) -> None:
    first = api.get(ROUTING)
    second = api.get(ROUTING)
    assert first.headers["ININ-Correlation-Id"] != second.headers["ININ-Correlation-Id"]
    admin = api.admin("GET", "/state")
    assert admin.headers["ININ-Correlation-Id"]


def test_rate_limit() -> None:
    with Sandbox(seed=make_seed(), rate_limit_per_minute=3) as sb:
        client = Api(sb)
        responses = [client.get(ROUTING) for _ in range(4)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert responses[0].headers["inin-ratelimit-allowed"] == "3"
        assert responses[0].headers["inin-ratelimit-count"] == "1"
        assert 1 <= int(responses[0].headers["inin-ratelimit-reset"]) <= 60
        limited = responses[3]
        body = limited.json()
        assert body["code"] == "too.many.requests.retry.after"
        retry = int(limited.headers["Retry-After"])
        assert 1 <= retry <= 60
        assert body["message"] == (
            f"Rate limit exceeded the maximum. Retry the request in [{retry}] seconds"
        )
        # The limit is per token: a new token has its own budget; the admin surface none.
        other = Api(sb)
        assert other.get(ROUTING).status_code == 200
        assert all(client.admin("GET", "/state").status_code == 200 for _ in range(5))
        client.close()
        other.close()


def test_the_rate_limit_window_ends_a_minute_after_its_first_request() -> None:
    from chaosgenesys.clock import ManualClock

    # The window runs on the sandbox's clock: a minute passes without waiting for it.
    with Sandbox(seed=make_seed(), rate_limit_per_minute=2, clock=ManualClock()) as sb:
        client = Api(sb)
        assert [client.get(ROUTING).status_code for _ in range(3)] == [200, 200, 429]
        sb.advance(30)
        limited = client.get(ROUTING)
        assert limited.status_code == 429 and int(limited.headers["Retry-After"]) == 30
        sb.advance(30)
        again = client.get(ROUTING)
        assert again.status_code == 200 and again.headers["inin-ratelimit-count"] == "1"
        client.close()


def test_rate_limit_off() -> None:
    with Sandbox(seed=make_seed(), rate_limit_per_minute=0) as sb:
        client = Api(sb)
        responses = [client.get(ROUTING) for _ in range(5)]
        assert all(r.status_code == 200 for r in responses)
        assert "inin-ratelimit-allowed" not in responses[0].headers
        client.close()


def test_fault_delay(sandbox: Any, api: Api) -> None:
    sandbox.inject_fault(r"/routingstatus$", delay_ms=300)
    started = time.monotonic()
    assert api.get(ROUTING).status_code == 200
    assert time.monotonic() - started >= 0.3
    started = time.monotonic()
    api.get(PRESENCE)
    assert time.monotonic() - started < 0.3
    # Several faults: their delays add up.
    sandbox.inject_fault(r"/users/", delay_ms=200)
    started = time.monotonic()
    api.get(ROUTING)
    assert time.monotonic() - started >= 0.5


def test_fault_status(sandbox: Any, api: Api) -> None:
    fault_id = sandbox.inject_fault(r"/presences/", status=503)
    response = api.get(PRESENCE)
    assert response.status_code == 503
    body = response.json()
    assert set(body) >= ERROR_KEYS
    assert body["code"] == "service.unavailable" and body["status"] == 503
    assert response.headers["ININ-Correlation-Id"]
    assert api.get(ROUTING).status_code == 200
    assert sandbox.remove_fault(fault_id) is True
    assert api.get(PRESENCE).status_code == 200

    sandbox.inject_fault(r"/presences/", status=429, retry_after=3)
    limited = api.get(PRESENCE)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "3"
    assert limited.json()["code"] == "too.many.requests.retry.after"
    assert limited.json()["message"] == (
        "Rate limit exceeded the maximum. Retry the request in [3] seconds")
    sandbox.clear_faults()
    sandbox.inject_fault(r"/presences/", status=429)
    assert api.get(PRESENCE).headers["Retry-After"] == "1"
    assert sandbox.clear_faults() == 1
    for status, code in ((500, "internal.server.error"), (504, "request.timeout"),
                         (408, "client.timeout"), (401, "bad.credentials")):
        sandbox.inject_fault(r"/presences/", status=status, count=1)
        answer = api.get(PRESENCE)
        assert answer.status_code == status
        assert answer.json()["code"] == code


def test_fault_count(sandbox: Any, api: Api) -> None:
    sandbox.inject_fault(r"/routingstatus", status=502, count=2)
    assert [api.get(ROUTING).status_code for _ in range(3)] == [502, 502, 200]
    assert sandbox.faults() == []


def test_fault_duration(sandbox: Any, api: Api) -> None:
    sandbox.inject_fault(r"/routingstatus", status=503, duration=0.3)
    assert api.get(ROUTING).status_code == 503
    assert len(sandbox.faults()) == 1
    assert wait_until(lambda: api.get(ROUTING).status_code == 200, timeout=3)
    assert sandbox.faults() == []


def test_fault_method_filter(sandbox: Any, api: Api) -> None:
    sandbox.inject_fault(r"/presences/purecloud$", status=500, method="patch")
    assert api.get(PRESENCE).status_code == 200
    response = api.patch(PRESENCE, json={
        "presenceDefinition": {"id": "5e5c5c66-ea97-4e7f-ac41-6424784829f2"}})
    assert response.status_code == 500
    # The failed PATCH changed nothing.
    assert api.get(PRESENCE).json()["presenceDefinition"]["systemPresence"] == "On Queue"


def test_fault_on_oauth_and_never_on_admin(sandbox: Any, api: Api) -> None:
    sandbox.inject_fault(r".*", status=503)
    token = requests.post(f"{api.url}/oauth/token", auth=(api.client_id, api.client_secret),
                          data={"grant_type": "client_credentials"}, timeout=5)
    assert token.status_code == 503
    assert api.admin("GET", "/state").status_code == 200
    assert api.admin("DELETE", "/faults").json() == {"cleared": 1}
    assert api.get(ROUTING).status_code == 200


def test_fault_validation(sandbox: Any) -> None:
    with pytest.raises(AdminError, match="path_pattern"):
        sandbox.inject_fault("(unclosed", status=500)
    with pytest.raises(ValueError, match="status"):
        sandbox.inject_fault("/x", status=200)
    with pytest.raises(ValueError, match="delay_ms"):
        sandbox.inject_fault("/x", delay_ms=-1)
    with pytest.raises(ValueError, match="method"):
        sandbox.inject_fault("/x", status=500, method="FETCH")
    with pytest.raises(ValueError, match="count"):
        sandbox.inject_fault("/x", status=500, count=0)
    with pytest.raises(ValueError, match="duration"):
        sandbox.inject_fault("/x", status=500, duration=-2)
    with pytest.raises(ValueError, match="delay_ms > 0 or a status"):
        sandbox.inject_fault("/x")
    assert sandbox.faults() == []


def test_request_accounting(sandbox: Any, api: Api) -> None:
    assert sandbox.requests(r"^/oauth/token$") == 1
    api.get(ROUTING)
    api.get(ROUTING)
    api.patch(PRESENCE, json={"presenceDefinition": {"id": "bogus"}})
    api.get("/api/v2/users/nobody")
    requests.get(f"{api.url}{ROUTING}", timeout=5)  # unauthenticated: still counted
    api.admin("GET", "/state")  # admin: not counted
    assert sandbox.requests(r"/routingstatus$") == 3
    assert sandbox.requests(r"/routingstatus$", method="GET") == 3
    assert sandbox.requests(r"/presences/", method="PATCH") == 1
    assert sandbox.requests(method="POST") == 1
    assert sandbox.requests() == 6
    listing = api.admin("GET", "/requests", params={"path": "routingstatus"}).json()
    assert listing["total"] == 3
    assert listing["requests"] == [{"method": "GET", "path": ROUTING, "count": 3}]
    assert api.admin("GET", "/requests", params={"path": "("}).status_code == 400
    sandbox.reset_requests()
    assert sandbox.requests() == 0


def test_a_client_gone_mid_request_is_not_logged_as_a_failure(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    # A desktop stopped while its token request was on its way: the sandbox reads a body that
    # never comes. Nothing failed in the sandbox; its log must not say so (with a traceback).
    import logging
    import socket
    import struct

    host, port = api.url.removeprefix("http://").split(":")
    caplog.set_level(logging.DEBUG, logger="chaosgenesys")
    with socket.create_connection((host, int(port)), timeout=5) as client:
        client.sendall(
            b"POST /oauth/token HTTP/1.1\r\nHost: sandbox\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 200\r\n\r\n"
            b"grant_type=client"
        )
        time.sleep(0.2)  # the handler is reading the body
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(lambda: "the client went away" in caplog.text, 5)
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert api.get(ROUTING).status_code == 200  # and it serves on
