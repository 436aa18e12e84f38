"""Calls, wrap-up across a drop, "last known good state" and tokens, against the sandbox."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.agent.helpers import HEARTBEAT, AgentsThread, agent_seed, wait_for
from tests.conftest import AGENT_1, QUEUE

TIMEOUT_CODE = "7fb334b0-0e9e-11e4-9191-0800200c9a66"


def _conversation(sandbox: Any, conversation_id: str) -> dict[str, Any]:
    return next(c for c in sandbox.snapshot()["conversations"] if c["id"] == conversation_id)


def _agent_wrapup(sandbox: Any, conversation_id: str) -> dict[str, Any]:
    participant = next(
        p for p in sandbox.state.conversations[conversation_id].participants
        if p.purpose == "agent"
    )
    return dict(participant.wrapup or {})


def _presence(sandbox: Any, user: str) -> str:
    return str(next(u["presence"] for u in sandbox.snapshot()["users"] if u["id"] == user))


def _drop(sandbox: Any, seconds: float) -> None:
    """The desktop's network goes: every API, login and socket request fails for ``seconds``
    and the open socket is closed."""
    sandbox.inject_fault(r".", status=503, duration=seconds)
    sandbox.close_notification_sockets(code=1001)


def test_routed_call_is_answered_and_wrapped_up(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        conversation_id = fast_sandbox.route_call(QUEUE, AGENT_1)
        assert wait_for(lambda: agents.stats()["wrapups_submitted"] == 1, 5)
        stats = agents.stats()
        assert stats["calls_alerting"] == 1 and stats["calls_answered"] == 1
        wrapup = _agent_wrapup(fast_sandbox, conversation_id)
        assert wrapup["code"] != TIMEOUT_CODE and wrapup["code"]
        assert _conversation(fast_sandbox, conversation_id)["endTime"]
        assert wait_for(lambda: agents.agent.routing_status == "IDLE", 3)


def test_wrapup_context_survives_a_drop(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1], wrapup_time=0.5, backoff_max=1.0) as agents:
        conversation_id = fast_sandbox.route_call(QUEUE, AGENT_1, answer=True)
        assert wait_for(lambda: agents.agent.store.get(conversation_id) is not None and (
            agents.agent.store.get(conversation_id).pending is not None
            and agents.agent.store.get(conversation_id).pending.kind == "wrapup"), 5)
        _drop(fast_sandbox, 3.5)  # longer than the client's own 503 retries (2 x 1 s)
        assert wait_for(lambda: agents.stats()["wrapups_submitted"] == 1, 8)
        wrapup = _agent_wrapup(fast_sandbox, conversation_id)
        assert wrapup["code"] != TIMEOUT_CODE
        # the wrap-up timer was not reset by the drop: it counts from the start of ACW
        assert wrapup["durationSeconds"] >= 3
        assert agents.stats()["reconnects"] == 1
        assert agents.stats()["consistency_violations"] == 0


def test_a_deferred_wrapup_is_retried_while_the_socket_stays_up(fast_sandbox: Any) -> None:
    # No periodic sync (the default, as the real desktop) and no drop: only the change's own
    # retry can land it. The platform answers the wrap-up 503 twice, then takes it.
    with AgentsThread(fast_sandbox.url, [AGENT_1], sync_interval=0, wrapup_time=0.3) as agents:
        fast_sandbox.inject_fault(r"/wrapup$", status=503, method="POST", count=2)
        conversation_id = fast_sandbox.route_call(QUEUE, AGENT_1, answer=True)
        # the change backoff: 1 s, then 2 s (change_retry_initial 1, doubling)
        assert wait_for(lambda: agents.stats()["wrapups_submitted"] == 1, 8)
        wrapup = _agent_wrapup(fast_sandbox, conversation_id)
        assert wrapup["code"] and wrapup["code"] != TIMEOUT_CODE
        stats = agents.stats()
        assert stats["reconnects"] == 0  # the socket stayed up all along
        assert stats["consistency_violations"] == 0
        assert fast_sandbox.faults() == []  # both 503s were spent on the wrap-up


def test_an_idle_desktop_renews_its_subscription_and_does_not_poll(fast_sandbox: Any) -> None:
    # The defaults of a real desktop: no periodic state read; the subscription is renewed
    # (here every 0.4 s) so that the channel outlives its 24 h.
    with AgentsThread(fast_sandbox.url, [AGENT_1], sync_interval=0,
                      resubscribe_interval=0.4) as agents:
        assert agents.stats()["connected"]
        fast_sandbox.reset_requests()
        time.sleep(2.0)
        renewals = fast_sandbox.requests(r"/subscriptions$", method="PUT") + (
            fast_sandbox.requests(r"/subscriptions$", method="POST"))
        reads = fast_sandbox.requests(rf"^/api/v2/users/{AGENT_1}$", method="GET")
    assert renewals >= 3, renewals
    assert reads == 0, reads


@pytest.mark.parametrize("mode", ["resilient", "naive"])
def test_server_newer_wrapup_discarded_or_overwritten(mode: str) -> None:
    from chaosgenesys.sandbox import Sandbox

    seed = agent_seed(wrapup_timeout=1)
    with (
        Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox,
        AgentsThread(sandbox.url, [AGENT_1], mode=mode, wrapup_time=0.6) as agents,
    ):
        conversation_id = sandbox.route_call(QUEUE, AGENT_1, answer=True)
        assert wait_for(lambda: any(
            i.pending is not None and i.pending.kind == "wrapup"
            for i in agents.agent.store.open()), 5)
        _drop(sandbox, 2.5)  # the platform's 1 s wrap-up timeout fires during the drop
        assert wait_for(lambda: _agent_wrapup(sandbox, conversation_id).get("code") is not None,
                        3)
        if mode == "resilient":
            assert wait_for(lambda: agents.stats()["local_changes_discarded"] >= 1, 8)
            assert _agent_wrapup(sandbox, conversation_id)["code"] == TIMEOUT_CODE
            assert agents.stats()["consistency_violations"] == 0
            assert agents.stats()["wrapups_submitted"] == 0
        else:
            assert wait_for(lambda: agents.stats()["consistency_violations"] >= 1, 8)
            assert wait_for(lambda: _agent_wrapup(sandbox, conversation_id)["code"]
                            != TIMEOUT_CODE, 3)


@pytest.mark.parametrize("mode", ["resilient", "naive"])
def test_server_newer_presence_discarded_or_overwritten(fast_sandbox: Any, mode: str) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1], mode=mode) as agents:
        _drop(fast_sandbox, 1.5)
        fast_sandbox.set_presence(AGENT_1, "Break")  # a supervisor, while the desktop is away
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 8)
        if mode == "resilient":
            assert wait_for(lambda: agents.stats()["local_changes_discarded"] == 1, 3)
            assert agents.agent.presence == "Break"
            assert _presence(fast_sandbox, AGENT_1) == "Break"
            assert agents.stats()["consistency_violations"] == 0
        else:
            assert wait_for(lambda: agents.stats()["consistency_violations"] == 1, 3)
            assert wait_for(lambda: _presence(fast_sandbox, AGENT_1) == "On Queue", 3)


def test_resilient_agent_goes_back_on_queue_when_taken_off(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        _drop(fast_sandbox, 1.0)
        fast_sandbox.set_presence(AGENT_1, "Available")  # as the platform does to a lost session
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 8)
        assert wait_for(lambda: _presence(fast_sandbox, AGENT_1) == "On Queue", 3)
        assert agents.stats()["consistency_violations"] == 0


@pytest.mark.parametrize("mode", ["resilient", "naive"])
def test_revoked_tokens(fast_sandbox: Any, mode: str) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1], mode=mode) as agents:
        assert fast_sandbox.revoke_tokens() >= 1
        if mode == "resilient":
            assert wait_for(lambda: agents.stats()["token_refreshes"] == 2, 3)
            assert wait_for(lambda: agents.stats()["unauthorized"] >= 1, 1)
            assert not agents.stats()["logged_out"]
            fast_sandbox.set_presence(AGENT_1, "Meeting")
            assert wait_for(lambda: agents.agent.presence == "Meeting", 3)
        else:
            assert wait_for(lambda: agents.stats()["logged_out"], 3)
            assert "401" in agents.stats()["logged_out_reason"]


@pytest.mark.parametrize("mode", ["resilient", "naive"])
def test_short_tokens_with_slow_token_endpoint(mode: str) -> None:
    """The guide's edge case 3: tokens live 3 s, /oauth/token takes 0.8 s. The resilient
    agent refreshes ahead of expiry and never sends an expired token; the naive one is logged
    out at the first 401."""
    from chaosgenesys.sandbox import Sandbox

    seed = agent_seed()
    seed["clients"][0]["token_lifetime"] = 3
    with Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox:
        sandbox.inject_fault(r"^/oauth/token$", delay_ms=800)
        with AgentsThread(sandbox.url, [AGENT_1], mode=mode) as agents:
            if mode == "resilient":
                assert not wait_for(lambda: agents.stats()["logged_out"], 5)
                stats = agents.stats()
                assert stats["token_refreshes"] >= 3
                assert stats["unauthorized"] == 0
                # Every token request is one refresh, one at a time: the platform saw each one
                # finished before it is asked, and at most one more, in flight (0.8 s each).
                asked = sandbox.requests(r"^/oauth/token$")
                after = agents.stats()["token_refreshes"]
                assert stats["token_refreshes"] <= asked <= after + 1, (stats, asked, after)
            else:
                assert wait_for(lambda: agents.stats()["logged_out"], 6)
