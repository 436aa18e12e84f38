"""Verdicts on the path from the external observer: ``watch_events`` writes a timeline that
``longest_not_on_queue`` and ``max_reconnect_latency`` read, in-process and in a real chaos run."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.notifications import probes
from chaosgenesys.notifications.probes import (
    longest_not_on_queue,
    max_reconnect_latency,
    watch_events,
)
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.users.actions import set_presence
from tests.conftest import AGENT_1, AGENT_2, make_seed
from tests.controls.runner import chaos_run
from tests.notifications.test_watch_events import (
    HEARTBEAT,
    SECRETS,
    Background,
    _configuration,
    _fresh_clients,  # noqa: F401 - autouse fixture
    _watch,
)

pytestmark = pytest.mark.timeout(90)

#: How close the observer's figure must be to the time measured around the API calls.
TOLERANCE = 0.25
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    probes._ASKED_UNOBSERVED.clear()
    yield tmp_path / "runtime"
    probes._ASKED_UNOBSERVED.clear()


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=make_seed(), heartbeat_interval=HEARTBEAT) as sb:
        yield sb


def _off_queue_for(config: dict[str, Any], seconds: float) -> float:
    """Break through the API, then On Queue: the measured time between the two answers."""
    set_presence(AGENT_1, "Break", configuration=config, secrets=SECRETS)
    started = time.monotonic()
    time.sleep(seconds)
    before = time.monotonic()
    set_presence(AGENT_1, "On Queue", configuration=config, secrets=SECRETS)
    after = time.monotonic()
    return (before + after) / 2 - started


def test_the_longest_stretch_off_queue_is_measured_not_the_sum(sandbox: Sandbox) -> None:
    config = _configuration(sandbox)
    assert longest_not_on_queue(AGENT_1) == 0.0  # before any observation (hypothesis before)
    background = _watch(sandbox, 4.0)
    short = _off_queue_for(config, 0.4)
    time.sleep(0.3)
    long = _off_queue_for(config, 1.5)
    result = background.join()

    value = longest_not_on_queue(AGENT_1)
    assert abs(value - long) < TOLERANCE, (value, long)
    assert value == result["users"][AGENT_1]["longest_not_on_queue_seconds"]
    # the sum of both stretches is what seconds_not_on_queue says: not the path verdict
    assert abs(result["seconds_not_on_queue"][AGENT_1] - (short + long)) < 2 * TOLERANCE
    periods = result["users"][AGENT_1]["not_on_queue_periods"]
    assert [p["presence"] for p in periods] == ["Break", "Break"]
    assert [p["open"] for p in periods] == [False, False]
    assert abs(periods[0]["seconds"] - short) < TOLERANCE
    assert longest_not_on_queue(AGENT_2) == 0.0
    assert max_reconnect_latency(AGENT_1) == 0.0  # its socket never dropped

    timeline = json.loads(Path(result["timeline_path"]).read_text())
    assert timeline["format"] == "chaosgenesys.watch_events.timeline/1"
    assert timeline["complete"] is True and timeline["connected"] is True
    assert timeline["longest_not_on_queue_seconds"][AGENT_1] == value
    assert SECRETS["client_secret"] not in Path(result["timeline_path"]).read_text()


def test_a_stretch_still_open_at_the_end_counts_up_to_the_end(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    path = tmp_path / "observer.json"
    background = _watch(sandbox, 2.0, timeline_path=str(path))
    sandbox.set_presence(AGENT_2, "Meal")
    changed = time.monotonic() - background.started
    result = background.join()
    value = longest_not_on_queue(AGENT_2, timeline_path=str(path))
    assert abs(value - (2.0 - changed)) < TOLERANCE, (value, changed)
    assert result["users"][AGENT_2]["not_on_queue_periods"][-1]["open"] is True


def test_reconnect_latency_is_the_observers_longest_blind_window(sandbox: Sandbox) -> None:
    background = _watch(sandbox, 2.5)
    sandbox.close_notification_sockets(code=4000)
    result = background.join()
    (drop,) = result["disconnect_details"]
    value = max_reconnect_latency(AGENT_2)
    assert value > 0 and abs(value - drop["reconnect_ms"]) < 5.0, (value, drop)
    assert value == round(result["blind_windows"][0]["seconds"] * 1000, 1)


def test_a_channel_fault_held_off_shows_in_the_reconnect_latency(sandbox: Sandbox) -> None:
    sandbox.inject_fault("^/channels/", status=503, duration=1.0)
    result = Background(
        lambda: watch_events([AGENT_1], 3.0, configuration=_configuration(sandbox),
                             secrets=SECRETS)
    ).join()
    assert max_reconnect_latency(AGENT_1) == round(result["blind_seconds"] * 1000, 1) >= 900


def test_silence_is_never_a_pass(sandbox: Sandbox, tmp_path: Path) -> None:
    # asked twice with no observation in between: the method had no watch_events
    assert longest_not_on_queue(AGENT_1) == 0.0
    with pytest.raises(ActivityFailed, match="still no watch_events timeline"):
        longest_not_on_queue(AGENT_1)
    missing = str(tmp_path / "nowhere.json")
    assert max_reconnect_latency(timeline_path=missing) == 0.0
    with pytest.raises(ActivityFailed, match="still no watch_events timeline"):
        max_reconnect_latency(timeline_path=missing)

    # a watch_events that failed (here: a user that does not exist) leaves a failed timeline
    with pytest.raises(ActivityFailed, match="nobody"):
        watch_events(["nobody"], 1, configuration=_configuration(sandbox), secrets=SECRETS)
    with pytest.raises(ActivityFailed, match=r"never connected.*nobody"):
        longest_not_on_queue("nobody")
    with pytest.raises(ActivityFailed, match="no watch_events timeline of this run follows"):
        longest_not_on_queue(AGENT_1)

    # one that could not connect in its duration: no verdict either
    bad = str(tmp_path / "refused.json")
    sandbox.inject_fault("^/channels/", status=503)
    with pytest.raises(ActivityFailed, match="could not connect"):
        watch_events([AGENT_1], 1, timeline_path=bad, configuration=_configuration(sandbox),
                     secrets=SECRETS)
    with pytest.raises(ActivityFailed, match=r"never connected.*503"):
        longest_not_on_queue(AGENT_1, timeline_path=bad)


def test_arguments_are_checked(tmp_path: Path) -> None:
    with pytest.raises(ActivityFailed, match="timeline_path"):
        watch_events([AGENT_1], 1, timeline_path=str(tmp_path / "no" / "such.json"))
    with pytest.raises(ActivityFailed, match=r"timeline_path .* is a directory"):
        watch_events([AGENT_1], 1, timeline_path=str(tmp_path))
    with pytest.raises(ActivityFailed, match="user_id"):
        longest_not_on_queue("")
    with pytest.raises(ActivityFailed, match=r"user_id .* or timeline_path"):
        max_reconnect_latency()
    not_a_timeline = tmp_path / "other.json"
    not_a_timeline.write_text("{}")
    with pytest.raises(ActivityFailed, match="not a watch_events timeline"):
        longest_not_on_queue(AGENT_1, timeline_path=str(not_a_timeline))


def _experiment(off_queue_seconds: float) -> dict[str, Any]:
    agent = AGENT_1
    hypothesis_probe = {
        "type": "probe",
        "name": "agent-never-off-queue-for-more-than-2-s",
        "tolerance": {"type": "range", "range": [0, 2]},
        "provider": {"type": "python", "module": "chaosgenesys.notifications.probes",
                     "func": "longest_not_on_queue", "arguments": {"user_id": agent}},
    }

    def presence(name: str, value: str, pause: float = 0) -> dict[str, Any]:
        action: dict[str, Any] = {
            "type": "action", "name": name,
            "provider": {"type": "python", "module": "chaosgenesys.users.actions",
                         "func": "set_presence",
                         "arguments": {"user_id": agent, "presence": value}},
        }
        if pause:
            action["pauses"] = {"after": pause}
        return action

    return {
        "version": "1.0.0",
        "title": "An agent is never off queue for long",
        "description": "The external observer's longest stretch off queue judges the path.",
        "configuration": {"genesys_timeout": 5},
        "controls": [{"name": "genesys-sandbox", "provider": {
            "type": "python", "module": "chaosgenesys.controls.sandbox",
            "arguments": {"seed": "examples/seed.yaml", "heartbeat_interval": 0.5}}}],
        "steady-state-hypothesis": {"title": "never long off queue",
                                    "probes": [hypothesis_probe]},
        "method": [
            {"type": "probe", "name": "external-observer", "background": True,
             "provider": {"type": "python", "module": "chaosgenesys.notifications.probes",
                          "func": "watch_events",
                          "arguments": {"user_ids": [agent], "duration": 2 + off_queue_seconds}}},
            {"type": "action", "name": "wait-for-the-observer",
             "provider": {"type": "process", "path": "true"}, "pauses": {"after": 0.7}},
            presence("agent-takes-a-break", "Break", pause=off_queue_seconds),
            presence("agent-back-on-queue", "On Queue"),
        ],
    }


@pytest.mark.parametrize(("off_queue", "deviated"), [(0.5, False), (3.5, True)])
def test_chaos_run_judges_the_longest_stretch(
    tmp_path: Path, runtime: Path, off_queue: float, deviated: bool
) -> None:
    run = chaos_run(_experiment(off_queue), tmp_path, runtime)
    journal = run.journal
    assert journal["deviated"] is deviated, run.log[-3000:]
    assert journal["status"] == "completed", run.log[-3000:]
    assert (run.returncode != 0) is deviated, run.returncode
    before = journal["steady_states"]["before"]["probes"][0]
    after = journal["steady_states"]["after"]["probes"][0]
    assert before["status"] == "succeeded" and before["output"] == 0.0
    assert after["status"] == "succeeded"
    assert abs(after["output"] - off_queue) < 0.5, after["output"]
    assert after["tolerance_met"] is not deviated


def test_old_timelines_of_finished_processes_are_pruned(runtime: Path) -> None:
    import os
    import subprocess
    import sys

    from chaosgenesys.notifications import timeline

    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    folder = timeline.timelines_dir()
    week = timeline.MAX_AGE

    def written(name: str, pid: int, age: float) -> Path:
        path = folder / name
        writer = {"pid": pid, "start_time": timeline.start_time(pid)}
        path.write_text(json.dumps({"format": timeline.FORMAT, "writer": writer}))
        os.utime(path, (time.time() - age,) * 2)
        return path

    gone = written(f"watch-{child.pid}-old.json", child.pid, week + 60)
    recent = written(f"watch-{child.pid}-recent.json", child.pid, 3600)
    mine = written(f"watch-{os.getpid()}-old.json", os.getpid(), week + 60)
    assert timeline.prune_timelines() == [gone.name]
    assert not gone.exists() and recent.exists() and mine.exists()
