"""users.probes and users.actions against the real sandbox over HTTP."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.users import actions, probes
from tests.activities.activity_seed import (
    AGENT_1,
    AGENT_2,
    AGENT_3,
    CLIENT_ID,
    CLIENT_SECRET,
    UNKNOWN_USER,
    seed,
)

Cfg = dict[str, Any]


def test_get_user_expands_presence_and_routing(configuration: Cfg, secrets: Cfg) -> None:
    user = probes.get_user(AGENT_1, configuration, secrets)
    assert user["id"] == AGENT_1
    assert user["presence"]["presenceDefinition"]["systemPresence"] == "On Queue"
    assert user["routingStatus"]["status"] in ("IDLE", "INTERACTING", "COMMUNICATING")
    assert "statusId" not in user
    json.dumps(user)


def test_get_user_unknown_names_the_id(configuration: Cfg, secrets: Cfg) -> None:
    with pytest.raises(ActivityFailed, match=rf"user '{UNKNOWN_USER}' was not found.*404"):
        probes.get_user(UNKNOWN_USER, configuration, secrets)


@pytest.mark.parametrize("func", [probes.get_user, probes.get_presence, probes.get_routing_status])
def test_malformed_user_id_refused_before_any_request(func: Any) -> None:
    # no configuration at all: the argument check must come first
    with pytest.raises(ActivityFailed, match=r"user_id must be a non-empty string.*got ''"):
        func("")
    with pytest.raises(ActivityFailed, match=r"user_id must be.*'a/b'"):
        func("a/b")


def test_get_presence_shape(configuration: Cfg, secrets: Cfg) -> None:
    presence = probes.get_presence(AGENT_3, configuration, secrets)
    assert set(presence) == {
        "user_id",
        "system_presence",
        "presence_id",
        "modified_date",
        "message",
    }
    assert presence["user_id"] == AGENT_3
    assert presence["system_presence"] == "Available"
    assert presence["presence_id"]
    with pytest.raises(ActivityFailed, match=UNKNOWN_USER):
        probes.get_presence(UNKNOWN_USER, configuration, secrets)


def test_get_routing_status(configuration: Cfg, secrets: Cfg) -> None:
    on = probes.get_routing_status(AGENT_1, configuration, secrets)
    assert on == {"user_id": AGENT_1, "status": "IDLE", "start_time": on["start_time"]}
    off = probes.get_routing_status(AGENT_3, configuration, secrets)
    assert off["status"] == "OFF_QUEUE"


def test_get_routing_status_unknown_user_is_not_off_queue(configuration: Cfg, secrets: Cfg) -> None:
    # the API answers 200 OFF_QUEUE for an unknown user: the probe must not believe it
    with pytest.raises(ActivityFailed, match=rf"user '{UNKNOWN_USER}' was not found"):
        probes.get_routing_status(UNKNOWN_USER, configuration, secrets)


@pytest.mark.parametrize("spelling", ["On Queue", "OnQueue", "ON_QUEUE", "on queue"])
def test_presence_is_any_spelling(configuration: Cfg, secrets: Cfg, spelling: str) -> None:
    assert probes.presence_is(AGENT_1, spelling, configuration, secrets) is True
    assert probes.presence_is(AGENT_3, spelling, configuration, secrets) is False


def test_presence_is_list_and_bad_name(configuration: Cfg, secrets: Cfg) -> None:
    several: Any = ["Busy", "AVAILABLE"]  # declared str for chaos init; lists are accepted
    assert probes.presence_is(AGENT_3, several, configuration, secrets) is True
    assert probes.presence_is(AGENT_3, "Busy,Away", configuration, secrets) is False
    with_a_typo: Any = ["Available", "Lunch"]
    with pytest.raises(ActivityFailed, match=r"expected must be a system presence.*'Lunch'"):
        probes.presence_is(AGENT_3, with_a_typo, configuration, secrets)
    with pytest.raises(ActivityFailed, match=UNKNOWN_USER):
        probes.presence_is(UNKNOWN_USER, "Available", configuration, secrets)


def test_routing_status_is(configuration: Cfg, secrets: Cfg) -> None:
    statuses: Any = ["IDLE", "INTERACTING"]
    assert probes.routing_status_is(AGENT_1, statuses, configuration, secrets)
    assert probes.routing_status_is(AGENT_3, "off queue", configuration, secrets)
    assert not probes.routing_status_is(AGENT_3, "IDLE", configuration, secrets)
    with pytest.raises(ActivityFailed, match=r"expected must be a routing status.*'ON_QUEUE'"):
        probes.routing_status_is(AGENT_1, "ON_QUEUE", configuration, secrets)


def test_wait_for_presence_already_there(configuration: Cfg, secrets: Cfg) -> None:
    started = time.monotonic()
    assert probes.wait_for_presence(AGENT_1, "On Queue", 5, 1, configuration, secrets) is True
    assert time.monotonic() - started < 1


def test_wait_for_presence_times_out_with_false(configuration: Cfg, secrets: Cfg) -> None:
    started = time.monotonic()
    assert probes.wait_for_presence(AGENT_3, "On Queue", 0.6, 0.1, configuration, secrets) is False
    assert 0.6 <= time.monotonic() - started < 2


def test_wait_for_presence_sees_a_change(configuration: Cfg, secrets: Cfg) -> None:
    timer = threading.Timer(
        0.3, actions.set_presence, (AGENT_3, "On Queue", configuration, secrets)
    )
    timer.start()
    try:
        started = time.monotonic()
        assert probes.wait_for_presence(AGENT_3, "ON_QUEUE", 5, 0.1, configuration, secrets)
        assert time.monotonic() - started < 3
    finally:
        timer.join()


@pytest.mark.parametrize(
    ("timeout", "interval", "message"),
    [
        (-1, 1, "timeout must be at least 0, got -1"),
        (5, 0, "interval must be greater than 0, got 0"),
        ("30", 1, "timeout must be a number, got '30'"),
        (7200, 1, "timeout must be at most 3600, got 7200"),
    ],
)
def test_wait_for_presence_bad_timing(timeout: Any, interval: Any, message: str) -> None:
    with pytest.raises(ActivityFailed, match=message):
        probes.wait_for_presence(AGENT_1, "On Queue", timeout, interval)


def test_wait_for_presence_unknown_user_raises(configuration: Cfg, secrets: Cfg) -> None:
    with pytest.raises(ActivityFailed, match=UNKNOWN_USER):
        probes.wait_for_presence(UNKNOWN_USER, "On Queue", 1, 0.1, configuration, secrets)


def test_presence_and_routing_agree(configuration: Cfg, secrets: Cfg) -> None:
    assert probes.presence_and_routing_agree(AGENT_1, configuration, secrets) is True
    assert probes.presence_and_routing_agree(AGENT_3, configuration, secrets) is True
    with pytest.raises(ActivityFailed, match=UNKNOWN_USER):
        probes.presence_and_routing_agree(UNKNOWN_USER, configuration, secrets)


def test_agents_state_in_order_deduped_unknown_reported(configuration: Cfg, secrets: Cfg) -> None:
    state = probes.agents_state(
        [AGENT_2, AGENT_1, AGENT_3, AGENT_1, UNKNOWN_USER], configuration, secrets
    )
    assert [a["user_id"] for a in state["agents"]] == [AGENT_2, AGENT_1, AGENT_3, UNKNOWN_USER]
    assert state["count"] == 4
    assert state["on_queue"] == 2
    assert state["off_queue"] == 1
    assert state["not_found"] == 1
    by_id = {a["user_id"]: a for a in state["agents"]}
    assert by_id[AGENT_1]["presence"] == "On Queue"
    assert by_id[AGENT_1]["routing_status"] == "IDLE"
    assert by_id[AGENT_3] == {
        "user_id": AGENT_3,
        "name": "Outside Agent",
        "presence": "Available",
        "routing_status": "OFF_QUEUE",
        "found": True,
    }
    assert by_id[UNKNOWN_USER]["found"] is False
    assert by_id[UNKNOWN_USER]["presence"] is None
    json.dumps(state)


def test_agents_state_500_agents_in_10_requests() -> None:
    from chaosgenesys.platform import metrics
    from chaosgenesys.sandbox import Sandbox

    users = [
        {"id": f"agent-{n:03d}", "name": f"Agent {n}", "presence": "On Queue" if n % 2 else "Busy"}
        for n in range(500)
    ]
    with Sandbox(seed=seed(users=users, queues=[])) as sb:
        configuration = {"genesys_api_url": sb.url, "genesys_login_url": sb.url}
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        metrics.reset()
        state = probes.agents_state([u["id"] for u in users], configuration, secrets)
        calls = [r for r in metrics.records() if "/api/v2/users" in str(r.get("path"))]
    assert state["count"] == 500
    assert state["on_queue"] == 250
    assert state["off_queue"] == 250
    assert state["not_found"] == 0
    assert [a["user_id"] for a in state["agents"]] == [u["id"] for u in users]
    assert len(calls) == 10


@pytest.mark.parametrize(
    ("user_ids", "message"),
    [
        ([], "user_ids must name at least one value"),
        ([AGENT_1, ""], "user_ids must be a list of non-empty strings.*at index 1"),
        ([AGENT_1, 7], "user_ids must be a list of non-empty strings.*7 at index 1"),
        ({"id": AGENT_1}, "user_ids must be an id or a list of them, got dict"),
        ([f"a{n}" for n in range(501)], "user_ids may name at most 500 ids, got 501"),
    ],
)
def test_agents_state_bad_ids(user_ids: Any, message: str) -> None:
    with pytest.raises(ActivityFailed, match=message):
        probes.agents_state(user_ids)


def test_set_and_restore_presence(configuration: Cfg, secrets: Cfg) -> None:
    result = actions.set_presence(AGENT_2, "Break", configuration, secrets)
    assert result["user_id"] == AGENT_2
    assert result["presence"] == "Break"
    assert result["previous"] == "On Queue"
    assert probes.presence_is(AGENT_2, "Break", configuration, secrets)
    assert probes.routing_status_is(AGENT_2, "OFF_QUEUE", configuration, secrets)
    assert probes.presence_and_routing_agree(AGENT_2, configuration, secrets)

    # a second change does not overwrite what was there before the first
    assert actions.set_presence(AGENT_2, "meal", configuration, secrets)["previous"] == "Break"
    restored = actions.restore_presence(AGENT_2, configuration, secrets)
    assert restored["restored"] is True
    assert restored["presence"] == "On Queue"
    assert probes.presence_is(AGENT_2, "On Queue", configuration, secrets)

    again = actions.restore_presence(AGENT_2, configuration, secrets)
    assert again["restored"] is False
    assert "no presence remembered" in again["reason"]
    json.dumps([result, restored, again])


def test_restore_presence_without_set_is_a_no_op(configuration: Cfg, secrets: Cfg) -> None:
    result = actions.restore_presence(AGENT_1, configuration, secrets)
    assert result["restored"] is False
    assert probes.presence_is(AGENT_1, "On Queue", configuration, secrets)


def test_set_presence_bad_arguments_change_nothing(configuration: Cfg, secrets: Cfg) -> None:
    with pytest.raises(ActivityFailed, match=r"presence must be a system presence.*'Lunch'"):
        actions.set_presence(AGENT_1, "Lunch", configuration, secrets)
    with pytest.raises(ActivityFailed, match="user_id must be a non-empty string"):
        actions.set_presence("", "Break", configuration, secrets)
    with pytest.raises(ActivityFailed, match=rf"user '{UNKNOWN_USER}' was not found"):
        actions.set_presence(UNKNOWN_USER, "Break", configuration, secrets)
    assert probes.presence_is(AGENT_1, "On Queue", configuration, secrets)
    assert actions.restore_presence(UNKNOWN_USER, configuration, secrets)["restored"] is False
