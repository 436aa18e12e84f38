"""Calls through a queue: alerting, answer, hang up, wrap-up, waiting, timeouts and events."""

from __future__ import annotations

import re
import threading
from typing import Any

import pytest

from chaosgenesys.clock import ManualClock
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.admin import AdminError
from tests.sandbox.sandbox_helpers import (
    AGENT_1,
    AGENT_2,
    QUEUE,
    Api,
    api_fixture,
    make_seed,
    wait_until,
)

api = api_fixture()

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
AWAY_ID = "5e5c5c66-ea97-4e7f-ac41-6424784829f2"
ON_QUEUE_ID = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
RESOLVED = "4c4d5a11-0000-4000-8000-0000000000c1"


def _participant(conversation: dict[str, Any], purpose: str) -> dict[str, Any]:
    return next(p for p in conversation["participants"] if p["purpose"] == purpose)


def _agent(api: Api, conversation_id: str) -> dict[str, Any]:
    """The latest agent participant."""
    conversation = api.get(f"/api/v2/conversations/{conversation_id}").json()
    return [p for p in conversation["participants"] if p["purpose"] == "agent"][-1]


def _routing(api: Api, user_id: str) -> str:
    status: str = api.get(f"/api/v2/users/{user_id}/routingstatus").json()["status"]
    return status


def _summary(api: Api, user_id: str) -> dict[str, int]:
    user = api.get(f"/api/v2/users/{user_id}", params={"expand": "conversationSummary"}).json()
    counts: dict[str, int] = user["conversationSummary"]["call"]["contactCenter"]
    return counts


def test_call_lifecycle(sandbox: Any, api: Api) -> None:
    events: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def listener(topic: str, body: dict[str, Any]) -> None:
        with lock:
            events.append((topic, body))

    sandbox.events.subscribe(listener)
    conversation_id = sandbox.route_call(QUEUE)

    # Alerting on the longest-idle member.
    conversation = api.get(f"/api/v2/conversations/{conversation_id}").json()
    assert conversation["id"] == conversation_id
    assert ISO.match(conversation["startTime"]) and "endTime" not in conversation
    assert {p["purpose"] for p in conversation["participants"]} == {"customer", "acd", "agent"}
    agent = _participant(conversation, "agent")
    user_id = agent["userId"]
    assert user_id in (AGENT_1, AGENT_2)
    assert agent["queueId"] == QUEUE
    call = agent["calls"][0]
    assert call["state"] == "alerting" and call["direction"] == "inbound"
    assert call["initialState"] == "alerting"
    assert "state" not in agent  # state lives on the media
    assert _routing(api, user_id) == "INTERACTING"
    assert _summary(api, user_id) == {"active": 1, "acw": 0}
    status = api.get(f"/api/v2/analytics/agents/{user_id}/status").json()
    assert status["sessions"][0]["conversationId"] == conversation_id
    assert status["sessions"][0]["segmentType"] == "alert"

    # The calls view carries state on each participant.
    calls_view = api.get(f"/api/v2/conversations/calls/{conversation_id}").json()
    call_agent = _participant(calls_view, "agent")
    assert call_agent["state"] == "alerting"
    assert call_agent["user"]["id"] == user_id and call_agent["queue"]["id"] == QUEUE

    # Answer.
    path = f"/api/v2/conversations/calls/{conversation_id}/participants/{agent['id']}"
    assert api.patch(path, json={"state": "connected"}).status_code == 202
    agent = _agent(api, conversation_id)
    assert agent["calls"][0]["state"] == "connected"
    assert ISO.match(agent["connectedTime"]) and ISO.match(agent["calls"][0]["connectedTime"])
    acd = _participant(api.get(f"/api/v2/conversations/{conversation_id}").json(), "acd")
    assert acd["calls"][0]["state"] == "disconnected"
    assert acd["calls"][0]["disconnectType"] == "transfer"
    assert _routing(api, user_id) == "INTERACTING"

    # Hold and mute.
    api.patch(path, json={"held": True, "muted": True})
    assert _agent(api, conversation_id)["calls"][0]["held"] is True
    api.patch(path, json={"held": False})

    # Hang up: after-call work, still INTERACTING.
    assert api.patch(path, json={"state": "disconnected"}).status_code == 202
    conversation = api.get(f"/api/v2/conversations/{conversation_id}").json()
    agent = _participant(conversation, "agent")
    assert agent["calls"][0]["state"] == "disconnected"
    assert agent["calls"][0]["disconnectType"] == "client"
    assert agent["wrapupRequired"] is True
    assert agent["calls"][0]["afterCallWork"]["state"] == "pending"
    assert agent["calls"][0]["afterCallWorkRequired"] is True
    assert ISO.match(agent["startAcwTime"])
    assert _participant(conversation, "customer")["calls"][0]["state"] == "disconnected"
    assert ISO.match(conversation["endTime"])
    assert _routing(api, user_id) == "INTERACTING"
    assert _summary(api, user_id) == {"active": 0, "acw": 1}
    wrapup_path = f"/api/v2/conversations/{conversation_id}/participants/{agent['id']}/wrapup"
    assert api.get(wrapup_path).json() == {}
    codes = api.get(
        f"/api/v2/conversations/{conversation_id}/participants/{agent['id']}/wrapupcodes").json()
    assert RESOLVED in {c["id"] for c in codes}

    # Wrap up: IDLE again.
    comm = agent["calls"][0]["id"]
    post = f"{path}/communications/{comm}/wrapup"
    assert api.post(post, json={"code": "bogus"}).status_code == 400
    assert api.post(f"{path}/communications/nope/wrapup",
                    json={"code": RESOLVED}).status_code == 404
    assert api.post(post, json={"code": RESOLVED, "notes": "done"}).status_code == 202
    assert _routing(api, user_id) == "IDLE"
    assert _summary(api, user_id) == {"active": 0, "acw": 0}
    wrapup = api.get(wrapup_path).json()
    assert wrapup["code"] == RESOLVED and wrapup["notes"] == "done"
    assert ISO.match(wrapup["endTime"])
    agent = _agent(api, conversation_id)
    assert agent["calls"][0]["afterCallWork"]["state"] == "complete"
    assert ISO.match(agent["endAcwTime"])

    topics = [topic for topic, _ in events]
    assert f"v2.users.{user_id}.conversations" in topics
    assert f"v2.routing.queues.{QUEUE}.conversations" in topics
    routing_events = [b["routingStatus"]["status"] for t, b in events
                      if t == f"v2.users.{user_id}.routingStatus"]
    assert routing_events == ["INTERACTING", "IDLE"]
    last = [b for t, b in events if t == f"v2.users.{user_id}.conversations"][-1]
    assert last["id"] == conversation_id


def test_calls_wait_when_nobody_is_idle(sandbox: Any, api: Api) -> None:
    first = sandbox.route_call(QUEUE, answer=True)
    second = sandbox.route_call(QUEUE, answer=True)
    assert {_agent(api, first)["userId"], _agent(api, second)["userId"]} == {AGENT_1, AGENT_2}
    waiting = sandbox.route_call(QUEUE)
    conversation = api.get(f"/api/v2/conversations/{waiting}").json()
    assert {p["purpose"] for p in conversation["participants"]} == {"customer", "acd"}
    assert sandbox.snapshot()["queues"][0]["waiting"] == 1

    # The first agent finishes: the waiting call is offered to them.
    agent = _agent(api, first)
    path = f"/api/v2/conversations/calls/{first}/participants/{agent['id']}"
    api.patch(path, json={"state": "disconnected"})
    assert _participant(api.get(f"/api/v2/conversations/{waiting}").json(), "acd")
    api.post(f"{path}/communications/{agent['calls'][0]['id']}/wrapup", json={"code": RESOLVED})
    offered = _agent(api, waiting)
    assert offered["userId"] == agent["userId"]
    assert offered["calls"][0]["state"] == "alerting"
    assert sandbox.snapshot()["queues"][0]["waiting"] == 0


def test_waiting_call_goes_to_agent_coming_on_queue(sandbox: Any, api: Api) -> None:
    for user_id in (AGENT_1, AGENT_2):
        api.patch(f"/api/v2/users/{user_id}/presences/purecloud",
                  json={"presenceDefinition": {"id": AWAY_ID}})
    conversation_id = sandbox.route_call(QUEUE)
    assert sandbox.snapshot()["queues"][0]["waiting"] == 1
    api.patch(f"/api/v2/users/{AGENT_2}/presences/purecloud",
              json={"presenceDefinition": {"id": ON_QUEUE_ID}})
    assert _agent(api, conversation_id)["userId"] == AGENT_2
    assert _routing(api, AGENT_2) == "INTERACTING"


def test_targeted_call_and_customer_hangup(sandbox: Any, api: Api) -> None:
    conversation_id = sandbox.route_call(QUEUE, user_id=AGENT_2, answer=True)
    agent = _agent(api, conversation_id)
    assert agent["userId"] == AGENT_2 and agent["calls"][0]["state"] == "connected"
    sandbox.disconnect_call(conversation_id)
    agent = _agent(api, conversation_id)
    assert agent["calls"][0]["state"] == "disconnected"
    assert agent["calls"][0]["disconnectType"] == "peer"
    assert agent["calls"][0]["afterCallWork"]["state"] == "pending"
    assert _routing(api, AGENT_2) == "INTERACTING"
    # Customer hangs up while alerting: no wrap-up, agent back to IDLE.
    alerting = sandbox.route_call(QUEUE, user_id=AGENT_1)
    sandbox.disconnect_call(alerting)
    agent = _agent(api, alerting)
    assert agent["calls"][0]["state"] == "disconnected"
    assert "afterCallWork" not in agent["calls"][0]
    assert _routing(api, AGENT_1) == "IDLE"
    # Customer hangs up while waiting (for AGENT_2, still in after-call work).
    sandbox.route_call(QUEUE, user_id=AGENT_2)
    waiting = sandbox.route_call(QUEUE, user_id=AGENT_2)
    assert sandbox.snapshot()["queues"][0]["waiting"] == 2
    sandbox.disconnect_call(waiting)
    assert sandbox.snapshot()["queues"][0]["waiting"] == 1
    acd = _participant(api.get(f"/api/v2/conversations/{waiting}").json(), "acd")
    assert acd["calls"][0]["state"] == "disconnected"


def test_decline_requeues(sandbox: Any, api: Api) -> None:
    conversation_id = sandbox.route_call(QUEUE, user_id=None)
    first = _agent(api, conversation_id)
    api.patch(f"/api/v2/conversations/calls/{conversation_id}/participants/{first['id']}",
              json={"state": "disconnected"})
    assert _routing(api, first["userId"]) == "IDLE"
    second = _agent(api, conversation_id)
    assert second["userId"] != first["userId"]
    assert second["calls"][0]["state"] == "alerting"


def test_participant_errors(sandbox: Any, api: Api) -> None:
    conversation_id = sandbox.route_call(QUEUE)
    agent = _agent(api, conversation_id)
    path = f"/api/v2/conversations/calls/{conversation_id}/participants/{agent['id']}"
    assert api.patch(path, json={"state": "parked"}).status_code == 400
    assert api.patch(path, json={"held": "yes"}).status_code == 400
    assert api.patch(path, data="{", headers={"Content-Type": "application/json"}
                     ).json()["code"] == "bad.request"
    assert api.patch(f"/api/v2/conversations/calls/{conversation_id}/participants/nope",
                     json={"state": "connected"}).status_code == 404
    assert api.get("/api/v2/conversations/nope").status_code == 404
    assert api.get("/api/v2/conversations/calls/nope").json()["code"] == "not.found"
    with pytest.raises(AdminError, match="queue_id"):
        sandbox.route_call("no-such-queue")
    with pytest.raises(ValueError, match="user_id"):
        sandbox.route_call(QUEUE, user_id="nobody")


def test_my_conversations_is_empty(sandbox: Any, api: Api) -> None:
    sandbox.route_call(QUEUE)
    body = api.get("/api/v2/conversations").json()
    assert body["entities"] == [] and body["total"] == 0
    assert api.get("/api/v2/conversations/calls").json()["entities"] == []


def test_wrapup_and_alerting_timeouts() -> None:
    seed = make_seed(queues=[{"id": QUEUE, "name": "Fast Queue", "members": [AGENT_1],
                              "wrapup_timeout": 0.3, "alerting_timeout": 0.3}])
    with Sandbox(seed=seed, clock=ManualClock()) as sb:
        client = Api(sb)
        answered = sb.route_call(QUEUE, answer=True)
        agent = _agent(client, answered)
        assert agent["wrapupPrompt"] == "timeout" and agent["wrapupTimeoutMs"] == 300
        client.patch(f"/api/v2/conversations/calls/{answered}/participants/{agent['id']}",
                     json={"state": "disconnected"})
        assert _routing(client, AGENT_1) == "INTERACTING"
        sb.advance(0.29)
        assert _routing(client, AGENT_1) == "INTERACTING"
        sb.advance(0.02)  # the wrap-up timeout is up: its timer has run
        assert wait_until(lambda: _routing(client, AGENT_1) == "IDLE", timeout=3)
        agent = _agent(client, answered)
        assert agent["wrapup"]["code"] == "7fb334b0-0e9e-11e4-9191-0800200c9a66"
        assert agent["calls"][0]["afterCallWork"]["state"] == "complete"

        # Not answered in time: NOT_RESPONDING and the call waits again.
        ignored = sb.route_call(QUEUE)
        sb.advance(0.29)
        assert _routing(client, AGENT_1) == "INTERACTING"  # still alerting
        sb.advance(0.02)
        assert wait_until(lambda: _routing(client, AGENT_1) == "NOT_RESPONDING", timeout=3)
        agent = _agent(client, ignored)
        assert agent["calls"][0]["disconnectType"] == "transfer.noanswer"
        assert sb.snapshot()["queues"][0]["waiting"] == 1
        # Back on queue (presence set again): the call is offered again.
        client.patch(f"/api/v2/users/{AGENT_1}/presences/purecloud",
                     json={"presenceDefinition": {"id": ON_QUEUE_ID}})
        assert _routing(client, AGENT_1) == "INTERACTING"
        offered = [p for p in client.get(f"/api/v2/conversations/{ignored}").json()[
            "participants"] if p["purpose"] == "agent"]
        assert [p["calls"][0]["state"] for p in offered] == ["disconnected", "alerting"]
        client.close()


def test_event_and_reread_give_the_agent_the_same_marker(sandbox: Any, api: Api) -> None:
    """The synthetic agent's optimistic locking compares a marker (the participant's latest
    timestamp) taken from a conversation event with one from ``GET /conversations/{id}``. The
    event model has fewer times than the REST body (no ``startTime``, no
    ``startAlertingTime``): for the same state both must still give the same marker, or a
    re-read after a reconnect would look newer and a pending answer would be discarded."""
    from chaosgenesys.agent.store import agent_participant, participant_marker

    bodies: list[dict[str, Any]] = []
    lock = threading.Lock()

    def listener(topic: str, body: dict[str, Any]) -> None:
        if topic == f"v2.users.{AGENT_1}.conversations":
            with lock:
                bodies.append(body)

    sandbox.events.subscribe(listener)
    conversation_id = sandbox.route_call(QUEUE, user_id=AGENT_1)  # alerting
    for expected in ("alerting", "connected"):
        assert wait_until(lambda state=expected: any(
            (agent_participant(b, AGENT_1) or {}).get("calls", [{}])[0].get("state") == state
            for b in bodies))
        with lock:
            event = next(b for b in reversed(bodies)
                         if agent_participant(b, AGENT_1)["calls"][0]["state"] == expected)
        rest = api.get(f"/api/v2/conversations/{conversation_id}").json()
        from_event = participant_marker(agent_participant(event, AGENT_1) or {})
        from_rest = participant_marker(agent_participant(rest, AGENT_1) or {})
        assert from_event == from_rest, (expected, from_event, from_rest)
        if expected == "alerting":
            agent = _agent(api, conversation_id)
            path = f"/api/v2/conversations/calls/{conversation_id}/participants/{agent['id']}"
            assert api.patch(path, json={"state": "connected"}).status_code == 202
