"""The kill switch reverts every fault and stops the run on a breach (real ``chaos run``)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import InterruptExecution, InvalidControl

from chaosgenesys.controls import killswitch
from chaosgenesys.platform import metrics
from tests.conftest import AGENT_1, make_seed
from tests.controls.runner import chaos_run
from tests.faults.conftest import guardians, stop_guardians


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    yield directory
    stop_guardians(directory)


def _probe(index: int) -> dict[str, Any]:
    return {
        "type": "probe",
        "name": f"read-presence-{index}",
        "provider": {
            "type": "python",
            "module": "chaosgenesys.users.probes",
            "func": "get_presence",
            "arguments": {"user_id": AGENT_1},
        },
    }


def _experiment(marker: Path, slow_ms: int, probes: int, **arguments: Any) -> dict[str, Any]:
    method: list[dict[str, Any]] = [
        {
            "type": "action",
            "name": "apply-fault",
            "provider": {
                "type": "python",
                "module": "tests.controls.faulty",
                "func": "apply_marker",
                "arguments": {"path": str(marker)},
            },
        }
    ]
    if slow_ms:
        method.append(
            {
                "type": "action",
                "name": "slow-api",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.sandbox.actions",
                    "func": "inject_api_fault",
                    "arguments": {"path_pattern": "^/api/v2/users/", "delay_ms": slow_ms},
                },
            }
        )
    method.extend(_probe(i) for i in range(1, probes + 1))
    return {
        "title": "killswitch",
        "description": "probes read presence while the API slows down",
        "controls": [
            {
                "name": "genesys-sandbox",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.sandbox",
                    "arguments": {"seed": make_seed()},
                },
            },
            {
                "name": "genesys-killswitch",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.killswitch",
                    "arguments": arguments,
                },
            },
        ],
        "method": method,
    }


def test_slow_api_trips_the_switch_reverts_faults_and_stops_the_run(
    tmp_path: Path, runtime: Path
) -> None:
    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=300,
        probes=15,
        max_api_p99_ms=150,
        api_window_seconds=1,
        check_interval=0.1,
    )
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    ran = run.activities()
    assert ran[:3] == ["apply-fault", "slow-api", "read-presence-1"], ran
    assert len(ran) < 2 + 15, ran  # stopped before the method's end
    assert not marker.exists()  # the recorded fault was reverted
    entry = run.extension("chaosgenesys-killswitch")
    assert entry["tripped"] is True
    assert "API latency p99" in entry["reason"] and "150 ms" in entry["reason"]
    kinds = {(r["kind"], r["status"]) for r in entry["reverted"]}
    assert ("marker", "reverted") in kinds
    assert ("sandbox", "reverted") in kinds  # the sandbox's delay fault was cleared
    assert "WARNING" in run.log and "kill switch: API latency p99" in run.log
    assert "the run stops before activity" in run.log
    assert entry["peaks"]["api_p99_ms"] > 150
    assert run.seconds < 20
    deadline = time.monotonic() + 5  # the guardian leaves once the registry is empty
    while guardians(runtime) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not guardians(runtime)


def test_no_breach_completes_and_still_reverts_at_the_end(tmp_path: Path, runtime: Path) -> None:
    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=0,
        probes=5,
        api_window_seconds=1,
        websocket_window_seconds=1,
        check_interval=0.1,
    )
    experiment["method"][-1]["pauses"] = {"after": 1.2}  # time for the watcher to look
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "completed", run.log[-3000:]
    assert len(run.activities()) == 6
    entry = run.extension("chaosgenesys-killswitch")
    assert entry["tripped"] is False and entry["reason"] is None
    assert entry["checks"] >= 10
    assert 0 < entry["peaks"]["api_p99_ms"] < 2000  # it did watch the probes' calls
    assert entry["peaks"]["websocket_error_rate"] is None  # no synthetic agents ran
    assert entry["last_sample"]["websocket"]["agents"] == 0
    # Nothing reverted the marker during the run; the control did after the experiment.
    assert [r["kind"] for r in entry["reverted_after"]] == ["marker"]
    assert not marker.exists()


def test_watcher_needs_the_breach_for_its_whole_window() -> None:
    metrics.reset()
    thresholds = killswitch.Thresholds(max_api_p99_ms=100, api_window_seconds=0.5)
    watcher = killswitch.Watcher(thresholds)
    watcher.started = time.time() - 1
    try:
        assert watcher.check() is False  # no calls: nothing to judge
        metrics.record("GET", "/api/v2/users/x", 200, 500.0)
        start = time.time()
        assert watcher.check(start) is False  # over the limit, not yet for the window
        assert watcher.last_sample["api"]["over"] is True
        metrics.record("GET", "/api/v2/users/x", 200, 20.0)
        assert watcher.check(start + 0.2) is False  # one slow call in a few: p99 still over
        time.sleep(0.6)  # the slow call leaves the window: back under the limit
        metrics.record("GET", "/api/v2/users/x", 200, 20.0)
        assert watcher.check(start + 0.7) is False
        assert watcher.last_sample["api"]["over"] is False
        # the first stretch over the limit lasted from the check at +0 to the one at +0.2
        assert watcher.report()["longest_over_seconds"]["api_p99_ms"] == 0.2
        for offset in (1.0, 1.3, 1.6):
            metrics.record("GET", "/api/v2/users/x", 200, 400.0)
            assert watcher.check(start + offset) is (offset >= 1.5)
        assert watcher.reason is not None and "API latency p99" in watcher.reason
        assert watcher.report()["longest_over_seconds"] == {
            "api_p99_ms": 0.6, "websocket_error_rate": 0.0
        }
    finally:
        watcher.stop()
        metrics.reset()


def test_activity_boundary_raises_once_tripped_but_rollbacks_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    killswitch.before_experiment_control(context={}, check_interval=5)
    try:
        killswitch.before_activity_control(context={"name": "a"})  # armed, not tripped
        watcher = killswitch._watcher
        assert watcher is not None
        watcher.trip("test breach")
        with pytest.raises(InterruptExecution, match=r"kill switch: test breach.*'b'"):
            killswitch.before_activity_control(context={"name": "b"})
        killswitch.before_rollback_control(context={})
        killswitch.before_activity_control(context={"name": "rollback"})
        journal: dict[str, Any] = {"experiment": {}}
        killswitch.after_experiment_control(context={}, state=journal)
    finally:
        killswitch.cleanup_control()
    report = journal["experiment"]["extensions"][0]
    assert report["tripped"] is True and report["reason"] == "kill switch: test breach"
    assert killswitch.status() is not None


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"max_api_p99_ms": 0}, "max_api_p99_ms"),
        ({"api_window_seconds": -1}, "api_window_seconds"),
        ({"max_websocket_error_rate": 5}, "max_websocket_error_rate"),
        ({"websocket_window_seconds": "soon"}, "websocket_window_seconds"),
        ({"check_interval": 0}, "check_interval"),
        ({"stop_immediately": "yes"}, "stop_immediately"),
    ],
)
def test_bad_arguments_refuse_the_run_naming_the_argument(
    arguments: dict[str, Any], named: str
) -> None:
    with pytest.raises(InterruptExecution, match=named):
        killswitch.before_experiment_control(context={}, **arguments)
    assert killswitch._watcher is None
    with pytest.raises(InvalidControl, match=named):
        killswitch.validate_control({"name": "k", "provider": {"arguments": arguments}})


def test_validate_rejects_unknown_arguments() -> None:
    with pytest.raises(InvalidControl, match="max_p99"):
        killswitch.validate_control({"name": "k", "provider": {"arguments": {"max_p99": 1}}})


def test_websockets_that_stay_down_trip_the_switch_at_once_with_stop_immediately(
    tmp_path: Path, runtime: Path
) -> None:
    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=0,
        probes=0,
        websocket_window_seconds=1,
        max_api_p99_ms=60000,
        check_interval=0.1,
        stop_immediately=True,
    )
    sandbox_control = experiment["controls"][0]["provider"]["arguments"]
    sandbox_control.update(
        {
            "heartbeat_interval": 1.0,
            "agents": [AGENT_1],
            "agent_options": {"ping_interval": 1, "heartbeat_interval": 1},
        }
    )
    sandbox_action: dict[str, Any] = {
        "type": "action",
        "provider": {"type": "python", "module": "chaosgenesys.sandbox.actions"},
    }
    experiment["method"] += [
        {
            **sandbox_action,
            "name": "refuse-websockets",
            "provider": {
                **sandbox_action["provider"],
                "func": "inject_api_fault",
                "arguments": {"path_pattern": "notifications|channels", "status": 503},
            },
        },
        {
            **sandbox_action,
            "name": "drop-websockets",
            "provider": {
                **sandbox_action["provider"],
                "func": "close_notification_sockets",
                "arguments": {"code": 1011},
            },
            "pauses": {"after": 30},
        },
        _probe(1),
    ]
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert run.activities() == ["apply-fault", "refuse-websockets", "drop-websockets"]
    entry = run.extension("chaosgenesys-killswitch")
    assert "WebSocket error rate 100%" in entry["reason"], entry
    assert entry["last_sample"]["websocket"]["in_error"] == [AGENT_1]
    assert not marker.exists()
    assert run.seconds < 15  # stop_immediately cut the 30 s pause short


def test_a_drop_shorter_than_the_window_is_reported_as_how_close_the_run_came(
    tmp_path: Path, runtime: Path
) -> None:
    """The desktop's socket is down about 2 s of the 10 s window: the switch holds, and the
    journal and the verdict say how long the error rate stayed over its limit."""
    from chaosgenesys.results.verdict import render, summarize

    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=0,
        probes=0,
        websocket_window_seconds=10,
        max_api_p99_ms=60000,
        check_interval=0.1,
    )
    sandbox_control = experiment["controls"][0]["provider"]["arguments"]
    sandbox_control.update(
        {
            "agents": [AGENT_1],
            "agent_options": {"ping_interval": 1, "heartbeat_interval": 1,
                              "backoff_initial": 0.2, "backoff_max": 0.2},
        }
    )
    provider = {"type": "python", "module": "chaosgenesys.sandbox.actions"}
    experiment["method"] += [
        {
            "type": "action",
            "name": "refuse-websockets-for-2s",
            "provider": {
                **provider,
                "func": "inject_api_fault",
                "arguments": {"path_pattern": "notifications|channels", "status": 503,
                              "duration": 2},
            },
        },
        {
            "type": "action",
            "name": "drop-websockets",
            "provider": {
                **provider,
                "func": "close_notification_sockets",
                "arguments": {"code": 1011},
            },
            "pauses": {"after": 4},
        },
    ]
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "completed", run.log[-3000:]
    entry = run.extension("chaosgenesys-killswitch")
    assert entry["tripped"] is False, entry["reason"]
    assert entry["peaks"]["websocket_error_rate"] == 1.0
    longest = entry["longest_over_seconds"]
    # refused for 2 s (a check is 0.1 s), and back before the 10 s window ran out
    assert 1.8 <= longest["websocket_error_rate"] < 10, longest
    assert longest["api_p99_ms"] == 0.0
    text = render(summarize(run.journal))
    assert (
        f"longest over a limit: API p99 0.0 s of 30 s, WebSocket error rate "
        f"{longest['websocket_error_rate']:.1f} s of 10 s)" in text
    ), text


def test_the_synthetic_agents_slow_api_calls_trip_the_switch(
    tmp_path: Path, runtime: Path
) -> None:
    """No probe runs during the method: only the desktop's own calls are slow (as when the
    agent sits behind a faulty network), and they are enough."""
    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=300,
        probes=0,
        max_api_p99_ms=150,
        api_window_seconds=1,
        max_websocket_error_rate=1,
        check_interval=0.1,
        stop_immediately=True,
    )
    sandbox_control = experiment["controls"][0]["provider"]["arguments"]
    sandbox_control.update({"agents": [AGENT_1], "agent_options": {"sync_interval": 0.2}})
    experiment["method"][-1]["pauses"] = {"after": 30}
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert run.activities() == ["apply-fault", "slow-api"]
    entry = run.extension("chaosgenesys-killswitch")
    assert "API latency p99" in entry["reason"], entry
    api = entry["last_sample"]["api"]
    assert api["agent_calls"] == api["calls"] >= 1 and api["p99_ms"] >= 300, api
    assert not marker.exists()
    assert run.seconds < 20  # stop_immediately cut the 30 s pause short


def test_a_refusal_is_journaled_and_not_carried_into_the_next_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``chaos run --var p99:int=-5``: the switch refuses to arm; Chaos Toolkit still calls every
    control's ``after_experiment_control``, and the journal gets why (the verdict prints it).
    The next run in the same process starts with no refusal."""
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    with pytest.raises(InterruptExecution, match="max_api_p99_ms"):
        killswitch.before_experiment_control(context={}, max_api_p99_ms=-5)
    journal: dict[str, Any] = {"experiment": {}}
    killswitch.after_experiment_control(context={}, state=journal)
    killswitch.cleanup_control()
    (entry,) = journal["experiment"]["extensions"]
    assert entry == {
        "name": "chaosgenesys-killswitch",
        "refused": "killswitch control: max_api_p99_ms must be greater than 0, got -5",
        "reverted_after": [],
    }
    armed: dict[str, Any] = {"experiment": {}}
    killswitch.before_experiment_control(context={}, check_interval=5)
    try:
        killswitch.after_experiment_control(context={}, state=armed)
    finally:
        killswitch.cleanup_control()
    (entry,) = armed["experiment"]["extensions"]
    assert entry["refused"] is None and entry["tripped"] is False, entry
    nothing: dict[str, Any] = {"experiment": {}}
    killswitch.after_experiment_control(context={}, state=nothing)  # never armed: no entry
    assert nothing == {"experiment": {}}


def test_the_journal_says_which_fault_each_revert_ended_and_when(
    tmp_path: Path, runtime: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A fault reverted by the trip and one reverted after the run: each entry has the
    registry's id (the id the fault action answered) and when it was reverted, which the
    verdict ends the fault's window at."""
    from tests.controls.faulty import apply_marker

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(runtime))
    killswitch.before_experiment_control(context={}, check_interval=5)
    journal: dict[str, Any] = {"experiment": {}}
    try:
        first = apply_marker(str(tmp_path / "first"))
        watcher = killswitch._watcher
        assert watcher is not None
        watcher.trip("test breach")
        assert watcher.tripped_at is not None
        second = apply_marker(str(tmp_path / "second"))  # a rollback's, say, after the trip
        killswitch.after_experiment_control(context={}, state=journal)
        ended = time.time()
    finally:
        killswitch.cleanup_control()
    (entry,) = journal["experiment"]["extensions"]
    (tripped,) = entry["reverted"]
    assert tripped["id"] == first["id"] and tripped["status"] == "reverted", tripped
    assert watcher.tripped_at - 0.001 <= tripped["at"] <= watcher.tripped_at + 5, tripped
    (after,) = entry["reverted_after"]
    assert after["id"] == second["id"] and after["status"] == "reverted", after
    assert tripped["at"] <= after["at"] <= ended + 0.001, after
