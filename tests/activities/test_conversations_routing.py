"""conversations.probes and routing.probes against the real sandbox, calls routed by it."""

from __future__ import annotations

import json
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.conversations import probes as conversations
from chaosgenesys.routing import probes as routing
from chaosgenesys.sandbox import actions as sandbox_actions
from tests.activities.activity_seed import (
    AGENT_1,
    AGENT_2,
    AGENT_3,
    CLIENT_ID,
    CLIENT_SECRET,
    QUEUE,
    seed,
)

Cfg = dict[str, Any]
UNKNOWN_CONVERSATION = "c0000000-0000-4000-8000-00000000dead"
UNKNOWN_QUEUE = "7c1d2a90-0000-4000-8000-00000000dead"


def _call(configuration: Cfg, answer: bool, user_id: str = AGENT_1) -> str:
    result = sandbox_actions.route_call(
        QUEUE, user_id=user_id, answer=answer, configuration=configuration
    )
    conversation_id = result["conversation_id"]
    assert isinstance(conversation_id, str) and conversation_id
    return conversation_id


def test_connected_call(configuration: Cfg, secrets: Cfg) -> None:
    cid = _call(configuration, answer=True)
    conversation = conversations.get_conversation(cid, configuration, secrets)
    assert conversation["id"] == cid
    assert any(p.get("userId") == AGENT_1 for p in conversation["participants"])

    state = conversations.participant_state(cid, AGENT_1, configuration, secrets)
    assert state["conversation_id"] == cid
    assert state["user_id"] == AGENT_1
    assert state["participant_id"]
    assert state["media"] == "calls"
    assert state["state"] == "connected"
    assert isinstance(state["wrapup_required"], bool)
    assert conversations.call_is_connected(cid, AGENT_1, configuration, secrets) is True

    interactions = conversations.active_interactions(AGENT_1, configuration, secrets)
    assert interactions["user_id"] == AGENT_1
    assert interactions["total_active"] >= 1
    assert interactions["by_media"]["call"]["active"] >= 1
    idle = conversations.active_interactions(AGENT_2, configuration, secrets)
    assert idle["total_active"] == 0

    wrapup = conversations.wrapup_state(cid, AGENT_1, configuration, secrets)
    assert wrapup["participant_id"] == state["participant_id"]
    assert wrapup["status"] in ("none", "pending")
    assert wrapup["code"] is None
    assert wrapup["call_state"] == "connected"
    json.dumps([conversation, state, interactions, wrapup])


def test_wrapup_after_the_customer_hangs_up(configuration: Cfg, secrets: Cfg) -> None:
    from chaosgenesys.platform import client_for

    cid = _call(configuration, answer=True)
    sandbox_actions.disconnect_call(cid, configuration)
    pending = conversations.wrapup_state(cid, AGENT_1, configuration, secrets)
    assert pending["status"] == "pending"
    assert pending["wrapup_required"] is True
    assert pending["code"] is None
    assert pending["call_state"] == "disconnected"
    assert pending["after_call_work"]["state"] == "pending"
    assert conversations.active_interactions(AGENT_1, configuration, secrets)["total_acw"] == 1
    assert (
        conversations.participant_state(cid, AGENT_1, configuration, secrets)["after_call_work"][
            "state"
        ]
        == "pending"
    )

    # the agent submits a wrap-up code through the platform API
    client = client_for(configuration, secrets)
    code = client.get("/api/v2/routing/wrapupcodes")["entities"][0]
    conversation = conversations.get_conversation(cid, configuration, secrets)
    agent = next(p for p in conversation["participants"] if p.get("userId") == AGENT_1)
    client.post(
        f"/api/v2/conversations/calls/{cid}/participants/{agent['id']}/communications/"
        f"{agent['calls'][0]['id']}/wrapup",
        json={"code": code["id"], "notes": "chaos"},
    )
    done = conversations.wrapup_state(cid, AGENT_1, configuration, secrets)
    assert done["status"] == "done"
    assert done["code"] == code["id"]
    assert done["notes"] == "chaos"
    assert done["after_call_work"]["state"] == "complete"
    assert conversations.active_interactions(AGENT_1, configuration, secrets)["total_acw"] == 0


def test_alerting_call_is_not_connected(configuration: Cfg, secrets: Cfg) -> None:
    cid = _call(configuration, answer=False)
    state = conversations.participant_state(cid, AGENT_1, configuration, secrets)
    assert state["state"] == "alerting"
    assert conversations.call_is_connected(cid, AGENT_1, configuration, secrets) is False


def test_conversation_errors(configuration: Cfg, secrets: Cfg) -> None:
    with pytest.raises(ActivityFailed, match=rf"conversation '{UNKNOWN_CONVERSATION}' was not"):
        conversations.get_conversation(UNKNOWN_CONVERSATION, configuration, secrets)
    with pytest.raises(ActivityFailed, match=UNKNOWN_CONVERSATION):
        conversations.call_is_connected(UNKNOWN_CONVERSATION, AGENT_1, configuration, secrets)
    cid = _call(configuration, answer=True)
    with pytest.raises(ActivityFailed, match=rf"user '{AGENT_3}' is not an agent participant"):
        conversations.participant_state(cid, AGENT_3, configuration, secrets)
    with pytest.raises(ActivityFailed, match="conversation_id must be a non-empty string"):
        conversations.wrapup_state("", AGENT_1, configuration, secrets)
    with pytest.raises(ActivityFailed, match="user_id must be a non-empty string"):
        conversations.active_interactions(" ", configuration, secrets)
    with pytest.raises(ActivityFailed, match=r"user '0b6b3c5e-0000-4000-8000-00000000dead'"):
        conversations.active_interactions(
            "0b6b3c5e-0000-4000-8000-00000000dead", configuration, secrets
        )


def test_queue_members(configuration: Cfg, secrets: Cfg) -> None:
    members = routing.queue_members(QUEUE, configuration, secrets)
    assert sorted(m["user_id"] for m in members) == [AGENT_1, AGENT_2]
    for member in members:
        assert set(member) == {"user_id", "name", "routing_status", "joined"}
        assert member["routing_status"] == "IDLE"
    with pytest.raises(ActivityFailed, match=rf"queue '{UNKNOWN_QUEUE}' was not found"):
        routing.queue_members(UNKNOWN_QUEUE, configuration, secrets)


def test_queue_members_follows_pages() -> None:
    from chaosgenesys.sandbox import Sandbox

    users = [{"id": f"agent-{n:03d}", "name": f"Agent {n}"} for n in range(230)]
    queues = [{"id": QUEUE, "name": "Big Queue", "members": [u["id"] for u in users]}]
    with Sandbox(seed=seed(users=users, queues=queues)) as sb:
        configuration = {"genesys_api_url": sb.url, "genesys_login_url": sb.url}
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        members = routing.queue_members(QUEUE, configuration, secrets)
    assert sorted(m["user_id"] for m in members) == [u["id"] for u in users]


def test_queue_observations(configuration: Cfg, secrets: Cfg) -> None:
    observed = routing.queue_observations(QUEUE, configuration, secrets)
    assert observed["queue_id"] == QUEUE
    metrics = observed["metrics"]
    assert metrics["oWaiting"] == 0
    assert metrics["oInteracting"] == 0
    assert metrics["oOnQueueUsers"] == 2
    assert observed["qualifiers"].get("oOnQueueUsers", {}).get("IDLE") == 2
    json.dumps(observed)

    _call(configuration, answer=True)
    busy = routing.queue_observations(QUEUE, configuration, secrets)["metrics"]
    assert busy["oInteracting"] == 1


def test_queue_is_isolated(configuration: Cfg, secrets: Cfg) -> None:
    assert routing.queue_is_isolated(QUEUE, [AGENT_1, AGENT_2], configuration, secrets) is True
    assert routing.queue_is_isolated(QUEUE, [AGENT_1, AGENT_2, AGENT_3], configuration, secrets)
    # a member that is not a test agent
    assert routing.queue_is_isolated(QUEUE, [AGENT_1], configuration, secrets) is False
    with pytest.raises(ActivityFailed, match=rf"queue '{UNKNOWN_QUEUE}' was not found"):
        routing.queue_is_isolated(UNKNOWN_QUEUE, [AGENT_1], configuration, secrets)
    with pytest.raises(ActivityFailed, match="user_ids must name at least one value"):
        routing.queue_is_isolated(QUEUE, [], configuration, secrets)


def test_queue_with_customer_traffic_is_not_isolated(configuration: Cfg, secrets: Cfg) -> None:
    _call(configuration, answer=False)
    assert routing.queue_is_isolated(QUEUE, [AGENT_1, AGENT_2], configuration, secrets) is False


def test_wait_for_participant_state_follows_the_call(configuration: Cfg, secrets: Cfg) -> None:
    import threading
    import time

    cid = _call(configuration, answer=False)  # alerting: nobody answers
    started = time.monotonic()
    assert conversations.wait_for_participant_state(
        cid, AGENT_1, "connected", timeout=0.6, interval=0.1,
        configuration=configuration, secrets=secrets) is False
    assert time.monotonic() - started >= 0.6
    # the customer hangs up 0.5 s from now: the wait sees it
    timer = threading.Timer(0.5, lambda: sandbox_actions.disconnect_call(
        cid, configuration=configuration))
    timer.start()
    try:
        assert conversations.wait_for_participant_state(
            cid, AGENT_1, "Disconnected", timeout=10, interval=0.1,
            configuration=configuration, secrets=secrets) is True
    finally:
        timer.join()
    with pytest.raises(ActivityFailed, match="timeout"):
        conversations.wait_for_participant_state(
            cid, AGENT_1, "connected", timeout=-1, configuration=configuration, secrets=secrets)
