"""Bad input is answered 4xx with the platform's error shape, never 500, and the sandbox keeps
serving: the real bytes are sent over HTTP to a real sandbox."""

from __future__ import annotations

import base64
from typing import Any

import pytest
import requests
import websocket

from tests.sandbox.sandbox_helpers import (
    AGENT_1,
    CLIENT_ID,
    CLIENT_SECRET,
    QUEUE,
    Api,
    api_fixture,
)

api = api_fixture()

ERROR_KEYS = {"message", "code", "status", "messageWithParams", "messageParams", "contextId",
              "details", "errors"}
PRESENCE = f"/api/v2/users/{AGENT_1}/presences/purecloud"
DEEP = b"[" * 100_000 + b"]" * 100_000

#: (method, path, admin?) for every route of the sandbox that reads a JSON body.
JSON_ROUTES = [
    ("PATCH", PRESENCE, False),
    ("PUT", f"/api/v2/users/{AGENT_1}/routingstatus", False),
    ("PATCH", f"/api/v2/users/{AGENT_1}/queues", False),
    ("POST", "/api/v2/analytics/queues/observations/query", False),
    ("PATCH", "/api/v2/conversations/calls/{call}/participants/{agent}", False),
    ("POST", "/api/v2/conversations/calls/{call}/participants/{agent}/communications/{comm}"
     "/wrapup", False),
    ("POST", "/sandbox/v1/faults", True),
    ("POST", "/sandbox/v1/tokens/expire", True),
    ("POST", "/sandbox/v1/tokens/revoke", True),
    ("PATCH", f"/sandbox/v1/clients/{CLIENT_ID}", True),
    ("POST", "/sandbox/v1/notifications/socket-closing", True),
    ("PATCH", f"/sandbox/v1/users/{AGENT_1}", True),
    ("POST", "/sandbox/v1/calls", True),
    ("POST", "/sandbox/v1/notifications/close", True),
    ("PATCH", "/sandbox/v1/platform", True),
    ("POST", "/sandbox/v1/seed", True),
]


def _send(api: Api, method: str, path: str, body: bytes, content_type: str) -> requests.Response:
    if "{call}" in path:  # a real call answered by AGENT_1, so the ids exist
        call = api.sandbox.route_call(QUEUE, user_id=AGENT_1, answer=True)
        agent = [p for p in api.get(f"/api/v2/conversations/{call}").json()["participants"]
                 if p["purpose"] == "agent"][-1]
        path = path.format(call=call, agent=agent["id"], comm=agent["calls"][0]["id"])
    headers = {"Content-Type": content_type}
    if not path.startswith("/sandbox/"):
        headers["Authorization"] = f"Bearer {api.token}"
    return api.session.request(method, api.url + path, data=body, headers=headers, timeout=30)


def _assert_error(response: requests.Response, status: int, code: str, fragment: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) >= ERROR_KEYS
    assert body["status"] == status and body["code"] == code
    assert fragment in body["message"]
    assert body["contextId"] == response.headers["ININ-Correlation-Id"]


def _still_serving(api: Api) -> None:
    assert api.get(PRESENCE).status_code == 200
    assert api.admin("GET", "/state").status_code == 200


@pytest.mark.parametrize(("method", "path", "admin"), JSON_ROUTES)
def test_invalid_utf8_in_a_json_body(api: Api, method: str, path: str, admin: bool) -> None:
    response = _send(api, method, path, b'{"presenceDefinition": "\xff\xfe"}', "application/json")
    _assert_error(response, 400, "bad.request", "not valid UTF-8")
    _still_serving(api)


@pytest.mark.parametrize(("method", "path", "admin"), JSON_ROUTES)
def test_unknown_charset_of_a_json_body(api: Api, method: str, path: str, admin: bool) -> None:
    response = _send(api, method, path, b"{}", "application/json; charset=bogus")
    _assert_error(response, 415, "unsupported.media.type", "'bogus'")
    _still_serving(api)


@pytest.mark.parametrize(("method", "path", "admin"), JSON_ROUTES)
def test_json_nested_100000_deep(api: Api, method: str, path: str, admin: bool) -> None:
    response = _send(api, method, path, DEEP, "application/json")
    _assert_error(response, 400, "bad.request", "nested too deeply")
    _still_serving(api)


@pytest.mark.parametrize("charset", ["UTF-8", "utf8", '"utf-8"', "US-ASCII"])
def test_utf8_charset_label_is_accepted(api: Api, charset: str) -> None:
    # The charset parameter itself is fine when it says UTF-8 (or ASCII, a subset), in any case.
    body = b'{"presenceDefinition": {"id": "6a3af858-942f-489d-9700-5f9bcdcdae9b"}}'
    response = _send(api, "PATCH", PRESENCE, body, f"application/json; charset={charset}")
    assert response.status_code == 200, response.text
    assert response.json()["presenceDefinition"]["systemPresence"] == "Available"


@pytest.mark.parametrize("charset", ["utf-16", "latin-1", "koi8-r"])
def test_other_charsets_are_415(api: Api, charset: str) -> None:
    response = _send(api, "PATCH", PRESENCE, b"{}", f"application/json; charset={charset}")
    _assert_error(response, 415, "unsupported.media.type", f"{charset!r}")


def test_subscriptions_body_goes_through_the_same_parser(api: Api) -> None:
    channel = api.post("/api/v2/notifications/channels").json()
    path = f"/api/v2/notifications/channels/{channel['id']}/subscriptions"
    for method in ("POST", "PUT"):
        _assert_error(_send(api, method, path, b'[{"id": "\xff"}]', "application/json"),
                      400, "bad.request", "not valid UTF-8")
        _assert_error(_send(api, method, path, b"[]", "application/json; charset=latin-1"),
                      415, "unsupported.media.type", "'latin-1'")
        _assert_error(_send(api, method, path, DEEP, "application/json"),
                      400, "bad.request", "nested too deeply")
    # the channel still works: a real subscription and a real socket
    topic = f"v2.users.{AGENT_1}.presence"
    assert api.put(path, json=[{"id": topic}]).status_code == 200
    socket = websocket.create_connection(channel["connectUri"], timeout=5)
    socket.close()


def test_deep_json_on_the_notification_socket_is_ignored(api: Api) -> None:
    channel = api.post("/api/v2/notifications/channels").json()
    socket = websocket.create_connection(channel["connectUri"], timeout=5)
    try:
        socket.send("[" * 30_000 + "]" * 30_000)  # under the 64 KiB message limit
        socket.send("not json")
        socket.send('{"message": "ping"}')
        assert '"pong"' in socket.recv()  # the same socket, still served
    finally:
        socket.close()
    _still_serving(api)


BASIC = "Basic " + base64.b64encode(f"{CLIENT_ID}:{CLIENT_SECRET}".encode()).decode()
GARBAGE_FORMS: list[tuple[str, bytes, str]] = [
    ("application/x-www-form-urlencoded", b"grant_type=\xff\xfeclient", "codec"),
    ("application/x-www-form-urlencoded; charset=bogus", b"grant_type=client_credentials",
     "bogus"),
    ("multipart/form-data; boundary=xx", b"garbage", "boundary"),
    ("multipart/form-data", b"--xx\r\n\r\nx\r\n--xx--\r\n", "boundary"),
    ("multipart/form-data; boundary=xx",
     b"--xx\r\nContent-Disposition: form-data\r\n\r\nclient_credentials\r\n--xx--\r\n", "name"),
    ("multipart/form-data; boundary=xx",
     b"--xx\r\nC\x82ntent-Disposition: form-data; name=\"grant_type\"\r\n\r\nx\r\n--xx--\r\n",
     "header"),
    ("multipart/form-data; boundary=xx",
     b'--xx\r\nContent-Disposition: form-data; name="grant_type"\r\n'
     b"Content-Transfer-Encoding: bogus\r\n\r\nx\r\n--xx--\r\n", "bogus"),
]


@pytest.mark.parametrize(("content_type", "body", "fragment"), GARBAGE_FORMS)
def test_garbage_token_form(api: Api, content_type: str, body: bytes, fragment: str) -> None:
    response = requests.post(
        api.url + "/oauth/token",
        data=body,
        headers={"Content-Type": content_type, "Authorization": BASIC},
        timeout=10,
    )
    assert response.status_code == 400, response.text
    answer: dict[str, Any] = response.json()
    assert set(answer) == {"error", "description", "error_description"}
    assert answer["error"] == "invalid_request"
    assert fragment in answer["error_description"]
    # a well-formed request still gets a token, multipart included
    assert api.new_token()
    multipart = requests.post(
        api.url + "/oauth/token",
        files={"grant_type": (None, "client_credentials")},
        headers={"Authorization": BASIC},
        timeout=10,
    )
    assert multipart.status_code == 200 and multipart.json()["access_token"]


@pytest.mark.parametrize("code", [1004, 1005, 1006, 1015, 999, 2000, 5000, "1001", True])
def test_admin_refuses_close_codes_never_sent(api: Api, code: Any) -> None:
    channel = api.post("/api/v2/notifications/channels").json()
    api.put(f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
            json=[{"id": f"v2.routing.queues.{QUEUE}.members"}])
    socket = websocket.create_connection(channel["connectUri"], timeout=5)
    try:
        response = api.admin("POST", "/notifications/close", json={"code": code})
        _assert_error(response, 400, "bad.request", f"code {code!r}")
        # nothing was closed: the socket still answers a ping
        socket.send('{"message": "ping"}')
        assert '"pong"' in socket.recv()
    finally:
        socket.close()
    _still_serving(api)
