"""The admin surface /sandbox/v1 over HTTP, and the runner's lifecycle."""

from __future__ import annotations

import socket
from typing import Any

import pytest
import requests

from chaosgenesys.sandbox import Sandbox
from tests.sandbox.sandbox_helpers import (
    AGENT_1,
    AGENT_2,
    AGENT_3,
    CLIENT_ID,
    QUEUE,
    Api,
    api_fixture,
    make_seed,
)

api = api_fixture()


def test_state_view(api: Api) -> None:
    state = api.admin("GET", "/state").json()
    users = {u["id"]: u for u in state["users"]}
    assert users[AGENT_1]["presence"] == "On Queue"
    assert users[AGENT_1]["routingStatus"] == "IDLE"
    assert users[AGENT_3]["routingStatus"] == "OFF_QUEUE"
    assert isinstance(users[AGENT_1]["version"], int)
    assert state["queues"][0]["id"] == QUEUE
    assert [m["userId"] for m in state["queues"][0]["members"]] == [AGENT_1, AGENT_2]
    assert state["conversations"] == []
    assert state["faults"] == []
    assert "channels" in state["notifications"]
    assert state["clients"][0]["clientId"] == CLIENT_ID
    assert "chaos-secret" not in str(state)


def test_faults_over_http(api: Api) -> None:
    created = api.admin("POST", "/faults", json={
        "path_pattern": "/routingstatus", "status": 503, "method": "GET", "count": 5})
    assert created.status_code == 201
    fault_id = created.json()["id"]
    listed = api.admin("GET", "/faults").json()["faults"]
    assert [f["id"] for f in listed] == [fault_id]
    assert listed[0]["remaining"] == 5 and listed[0]["method"] == "GET"
    assert api.get(f"/api/v2/users/{AGENT_1}/routingstatus").status_code == 503
    assert api.admin("GET", "/faults").json()["faults"][0]["applied"] == 1
    assert api.admin("DELETE", f"/faults/{fault_id}").status_code == 200
    assert api.admin("DELETE", f"/faults/{fault_id}").status_code == 404
    api.admin("POST", "/faults", json={"path_pattern": "/x", "delay_ms": 10})
    api.admin("POST", "/faults", json={"path_pattern": "/y", "delay_ms": 10})
    assert api.admin("DELETE", "/faults").json() == {"cleared": 2}

    bad = api.admin("POST", "/faults", json={"path_pattern": "/x", "status": 700})
    assert bad.status_code == 400
    assert "status" in bad.json()["message"] and "700" in bad.json()["message"]
    typo = api.admin("POST", "/faults", json={"path_pattern": "/x", "stauts": 500})
    assert typo.status_code == 400 and "'stauts'" in typo.json()["message"]
    assert api.admin("POST", "/faults", json={"status": 500}).status_code == 400
    assert api.admin("POST", "/faults", data="nope").status_code == 400


def test_tokens_and_clients(api: Api) -> None:
    assert api.admin("POST", "/tokens/expire").json() == {"count": 1}
    assert api.get("/api/v2/tokens/me").json()["code"] == "bad.credentials"
    api.token = api.new_token()
    assert api.admin("POST", "/tokens/revoke", json={"client_id": CLIENT_ID}).json() == {
        "count": 1}
    assert api.get("/api/v2/tokens/me").status_code == 401
    unknown = api.admin("POST", "/tokens/revoke", json={"client_id": "ghost"})
    assert unknown.status_code == 400 and "ghost" in unknown.json()["message"]
    changed = api.admin("PATCH", f"/clients/{CLIENT_ID}", json={"token_lifetime": 600})
    assert changed.status_code == 200
    token = requests.post(f"{api.url}/oauth/token", auth=(api.client_id, api.client_secret),
                          data={"grant_type": "client_credentials"}, timeout=5).json()
    assert token["expires_in"] == 600
    bad = api.admin("PATCH", f"/clients/{CLIENT_ID}", json={"token_lifetime": "soon"})
    assert bad.status_code == 400 and "token_lifetime" in bad.json()["message"]
    assert api.admin("PATCH", "/clients/ghost", json={"token_lifetime": 5}).status_code == 404


def test_calls_over_http(api: Api) -> None:
    created = api.admin("POST", "/calls", json={"queue_id": QUEUE, "user_id": AGENT_2,
                                                "answer": True})
    assert created.status_code == 201
    conversation_id = created.json()["conversation_id"]
    conversation = api.get(f"/api/v2/conversations/{conversation_id}").json()
    agent = next(p for p in conversation["participants"] if p["purpose"] == "agent")
    assert agent["userId"] == AGENT_2 and agent["calls"][0]["state"] == "connected"
    state = api.admin("GET", "/state").json()
    assert state["conversations"][0]["id"] == conversation_id
    hung = api.admin("POST", f"/conversations/{conversation_id}/disconnect")
    assert hung.status_code == 200
    assert api.get(f"/api/v2/users/{AGENT_2}/routingstatus").json()["status"] == "INTERACTING"
    assert api.admin("POST", "/conversations/nope/disconnect").status_code == 404
    missing = api.admin("POST", "/calls", json={"queue_id": "nope"})
    assert missing.status_code == 400 and "nope" in missing.json()["message"]
    assert api.admin("POST", "/calls", json={}).status_code == 400
    assert api.admin("POST", "/calls", json={"queue_id": QUEUE, "answer": "y"}
                     ).status_code == 400


def test_user_presence_over_admin(api: Api) -> None:
    answer = api.admin("PATCH", f"/users/{AGENT_1}", json={"presence": "offline"})
    assert answer.json()["routingStatus"] == "OFF_QUEUE"
    assert api.admin("PATCH", f"/users/{AGENT_1}", json={"presence": "nap"}).status_code == 400
    assert api.admin("PATCH", "/users/ghost", json={"presence": "Away"}).status_code == 404


def test_notifications_admin(api: Api) -> None:
    closed = api.admin("POST", "/notifications/close", json={"code": 1001,
                                                            "user_ids": [AGENT_1]})
    assert closed.status_code == 200 and closed.json() == {"closed": 0, "streaming": 0}
    assert api.admin("POST", "/notifications/socket-closing").json() == {"sent": 0}
    bad = api.admin("POST", "/notifications/close", json={"code": 99})
    assert bad.status_code == 400 and "code" in bad.json()["message"]
    assert api.admin("POST", "/notifications/close", json={"user_ids": "x"}).status_code == 400


def test_reseed(sandbox: Any, api: Api) -> None:
    sandbox.route_call(QUEUE)
    seed = make_seed(users=[{"id": AGENT_1, "name": "Only", "presence": "Away"}],
                     queues=[{"id": QUEUE, "name": "Q", "members": [AGENT_1]}])
    response = api.admin("POST", "/seed", json=seed)
    assert response.status_code == 200
    assert [u["id"] for u in response.json()["users"]] == [AGENT_1]
    assert response.json()["conversations"] == []
    # The client still exists, so the token still works.
    assert api.get(f"/api/v2/users/{AGENT_1}/routingstatus").json()["status"] == "OFF_QUEUE"
    assert api.get(f"/api/v2/users/{AGENT_2}").status_code == 404
    bad = api.admin("POST", "/seed", json={"users": [{"name": "X", "presense": "Away"}]})
    assert bad.status_code == 400 and "users[0].presense" in bad.json()["message"]
    sandbox.load_seed(None)
    assert len(sandbox.snapshot()["users"]) == 2


def test_runner_lifecycle() -> None:
    sb = Sandbox()
    with pytest.raises(RuntimeError):
        _ = sb.port
    with pytest.raises(RuntimeError, match="not running"):
        sb.route_call(QUEUE)
    sb.start()
    assert sb.start() is sb  # idempotent
    assert sb.url == f"http://127.0.0.1:{sb.port}"
    assert sb.client_id == "chaos-client" and sb.client_secret == "chaos-secret"
    assert requests.get(f"{sb.url}/sandbox/v1/state", timeout=5).status_code == 200
    assert sb.wait(0.01) is False
    sb.stop()
    sb.stop()
    assert sb.wait(1) is True
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{sb.url}/sandbox/v1/state", timeout=2)
    # A taken port fails start() loudly.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError):
            Sandbox(port=port).start()


def test_events_listener_cannot_call_back_into_the_runner(sandbox: Any) -> None:
    errors: list[BaseException] = []

    def listener(topic: str, body: dict[str, Any]) -> None:
        try:
            sandbox.snapshot()
        except RuntimeError as exc:
            errors.append(exc)

    sandbox.events.subscribe(listener)
    sandbox.set_presence(AGENT_1, "Away")
    assert errors and "own loop" in str(errors[0])


def test_the_clock_is_advanced_only_on_a_manual_clock(api: Api) -> None:
    from chaosgenesys.clock import ManualClock
    from chaosgenesys.sandbox.admin import AdminError

    refused = api.admin("POST", "/clock", json={"advance": 5})
    assert refused.status_code == 400 and "real clock" in refused.json()["message"]
    with Sandbox(seed=make_seed(), clock=ManualClock()) as sb:
        manual = Api(sb)
        try:
            sb.set_token_lifetime(CLIENT_ID, 60)
            fresh = Api(sb)
            assert fresh.get("/api/v2/users").status_code == 200
            moved = manual.admin("POST", "/clock", json={"advance": 61})
            assert moved.status_code == 200 and moved.json() == {"ran": 0, "elapsed": 61.0}
            assert fresh.get("/api/v2/users").status_code == 401  # its lifetime is up
            for bad in ({"advance": -1}, {"advance": "soon"}, {"forward": 1}):
                assert manual.admin("POST", "/clock", json=bad).status_code == 400
            with pytest.raises(AdminError, match="advance"):
                sb.advance(-1)
            fresh.close()
        finally:
            manual.close()


def test_inject_api_fault_answers_the_window_it_put_in_force(sandbox: Any) -> None:
    # the verdict and the report read a fault's window from its action's output
    from chaosgenesys.sandbox.actions import clear_sandbox_faults, inject_api_fault

    configuration = {"genesys_api_url": sandbox.url, "genesys_login_url": sandbox.url}
    timed = inject_api_fault("/presences", status=503, duration=30, configuration=configuration)
    until_cleared = inject_api_fault("/routingstatus", delay_ms=10, configuration=configuration)
    try:
        assert timed["duration"] == 30.0 and until_cleared["duration"] is None
        assert timed["id"] != until_cleared["id"]
    finally:
        clear_sandbox_faults(configuration=configuration)
