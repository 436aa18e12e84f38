"""The safeguard control refuses a run unless the chaos queue is isolated (real ``chaos run``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import InterruptExecution, InvalidControl

from chaosgenesys.controls import safeguard
from tests.conftest import AGENT_1, AGENT_2, AGENT_3, CLIENT_ID, CLIENT_SECRET, QUEUE, make_seed
from tests.controls.runner import chaos_run
from tests.faults.conftest import stop_guardians


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    yield directory
    stop_guardians(directory)


def _experiment(sandbox: Any, marker: Path, **arguments: Any) -> dict[str, Any]:
    return {
        "title": "safeguard",
        "description": "a fault that must only be applied on an isolated chaos queue",
        "configuration": {
            "genesys_api_url": sandbox.url,
            "genesys_login_url": sandbox.url,
            "genesys_timeout": 5,
        },
        "secrets": {"genesys": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}},
        "controls": [
            {
                "name": "chaos-queue-safeguard",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.safeguard",
                    "arguments": {"queue_id": QUEUE, **arguments},
                },
            }
        ],
        "method": [
            {
                "type": "action",
                "name": "apply-fault",
                "provider": {
                    "type": "python",
                    "module": "tests.controls.faulty",
                    "func": "apply_marker",
                    "arguments": {"path": str(marker)},
                },
            },
            {
                "type": "probe",
                "name": "queue-members",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.routing.probes",
                    "func": "queue_members",
                    "secrets": ["genesys"],
                    "arguments": {"queue_id": QUEUE},
                },
            },
        ],
        "rollbacks": [
            {
                "type": "action",
                "name": "revert-all-faults",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.faults.actions",
                    "func": "revert_all",
                },
            }
        ],
    }


def test_refuses_when_a_member_is_not_a_test_agent(
    sandbox: Any, tmp_path: Path, runtime: Path
) -> None:
    marker = tmp_path / "marker"
    # Test Agent 2 is a member of the queue but not declared a test agent.
    run = chaos_run(_experiment(sandbox, marker, user_ids=[AGENT_1]), tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert run.activities() == []
    assert not marker.exists()
    assert "not isolated" in run.log and AGENT_2 in run.log and "Test Agent 2" in run.log
    entry = run.extension("chaosgenesys-safeguard")
    assert entry["refused"] and AGENT_2 in entry["refused"]
    assert entry["last_check"]["outsiders"] == [{"user_id": AGENT_2, "name": "Test Agent 2"}]


def test_refuses_when_a_customer_call_is_in_the_queue(
    sandbox: Any, tmp_path: Path, runtime: Path
) -> None:
    sandbox.route_call(QUEUE)  # offered to an idle On Queue test agent: alerting
    marker = tmp_path / "marker"
    run = chaos_run(_experiment(sandbox, marker, user_ids=[AGENT_1, AGENT_2]), tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert run.activities() == []
    assert not marker.exists()
    entry = run.extension("chaosgenesys-safeguard")
    assert "1 alerting" in entry["refused"], entry
    assert "1 alerting" in run.log


def test_runs_when_the_queue_is_isolated(sandbox: Any, tmp_path: Path, runtime: Path) -> None:
    marker = tmp_path / "marker"
    run = chaos_run(_experiment(sandbox, marker, user_ids=[AGENT_1, AGENT_2]), tmp_path, runtime)
    assert run.journal["status"] == "completed", run.log[-3000:]
    assert run.activities() == ["apply-fault", "queue-members"]
    assert [r["status"] for r in run.journal["rollbacks"]] == ["succeeded"]
    assert not marker.exists()  # applied, then reverted by the rollback
    entry = run.extension("chaosgenesys-safeguard")
    assert entry["refused"] is None and entry["last_check"]["isolated"] is True


def test_recheck_stops_the_run_when_customers_arrive_mid_run(
    sandbox: Any, tmp_path: Path, runtime: Path
) -> None:
    marker = tmp_path / "marker"
    experiment = _experiment(
        sandbox, marker, user_ids=[AGENT_1, AGENT_2], check_before_activities=True
    )
    experiment["method"].insert(
        0,
        {
            "type": "action",
            "name": "a-customer-calls",
            "provider": {
                "type": "python",
                "module": "chaosgenesys.sandbox.actions",
                "func": "route_call",
                "arguments": {"queue_id": QUEUE},
            },
        },
    )
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert run.activities() == ["a-customer-calls"]
    assert not marker.exists()
    assert "activity 'apply-fault'" in run.extension("chaosgenesys-safeguard")["refused"]


def test_allow_waiting_tolerates_queued_calls_only(configuration: dict[str, Any]) -> None:
    from chaosgenesys.sandbox import Sandbox

    seed = make_seed()
    for user in seed["users"]:
        user["presence"] = "Available"  # nobody On Queue: calls wait
    with Sandbox(seed=seed) as sb:
        sb.route_call(QUEUE)
        config = {"genesys_api_url": sb.url, "genesys_login_url": sb.url}
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        strict = safeguard.check_isolation(QUEUE, [AGENT_1, AGENT_2], False, config, secrets)
        assert strict["isolated"] is False
        assert strict["conversations"]["waiting"] == 1
        assert strict["reasons"] == ["customer conversations in the queue: 1 waiting"]
        lenient = safeguard.check_isolation(QUEUE, [AGENT_1, AGENT_2], True, config, secrets)
        assert lenient["isolated"] is True


def test_unreachable_platform_refuses(tmp_path: Path) -> None:
    config = {"genesys_api_url": "http://127.0.0.1:9", "genesys_login_url": "http://127.0.0.1:9"}
    with pytest.raises(InterruptExecution, match="cannot tell whether queue"):
        safeguard.before_experiment_control(
            context={},
            queue_id=QUEUE,
            user_ids=[AGENT_1],
            configuration={**config, "genesys_timeout": 2},
            secrets={"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET},
        )


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"queue_id": "", "user_ids": [AGENT_1]}, "queue_id"),
        ({"queue_id": QUEUE, "user_ids": []}, "user_ids"),
        ({"queue_id": QUEUE, "user_ids": [AGENT_1, 7]}, "user_ids"),
        ({"queue_id": QUEUE, "user_ids": [AGENT_3], "allow_waiting": "yes"}, "allow_waiting"),
    ],
)
def test_bad_arguments_refuse_naming_the_argument(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(InterruptExecution, match=named):
        safeguard.before_experiment_control(context={}, configuration={}, **arguments)
    if arguments.get("user_ids"):
        with pytest.raises(InvalidControl, match=named):
            safeguard.validate_control({"name": "s", "provider": {"arguments": arguments}})


def test_validate_requires_the_queue_and_the_agents_and_skips_substitutions() -> None:
    with pytest.raises(InvalidControl, match="queue_id"):
        safeguard.validate_control({"name": "s", "provider": {"arguments": {}}})
    safeguard.validate_control(
        {"name": "s", "provider": {"arguments": {"queue_id": "${q}", "user_ids": "${agents}"}}}
    )
