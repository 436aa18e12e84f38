"""Agent run folders (``<runtime dir>/agents/<run id>/``) are pruned, never a live one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.agent import process
from tests.agent.helpers import fast_options
from tests.conftest import AGENT_1

DAY = 86400.0


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    monkeypatch.delenv(process.ENV_RUNS_KEEP, raising=False)
    monkeypatch.delenv(process.ENV_RUNS_MAX_AGE, raising=False)
    from chaosgenesys.agent.runtime import agents_dir

    return agents_dir()


@pytest.fixture
def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture
def live_process() -> Iterator[subprocess.Popen[bytes]]:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    yield child
    child.kill()
    child.wait()


def _folder(runs: Path, name: str, age: float, *, pid: int, owner: int,
            start_time: str = "", owner_start_time: str = "") -> Path:
    """A run folder as start_run leaves it, last written ``age`` seconds ago."""
    folder = runs / name
    folder.mkdir()
    created = time.time() - age
    record: dict[str, Any] = {"id": name, "users": [AGENT_1], "created_at": created,
                              "pid": pid, "start_time": start_time, "owner_pid": owner,
                              "owner_start_time": owner_start_time,
                              "status": str(folder / "status.json")}
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "status.json").write_text(json.dumps({"running": False, "agents": {}}))
    (folder / "events.jsonl").write_text("{}\n")
    for path in (folder / "run.json", folder / "status.json", folder / "events.jsonl", folder):
        os.utime(path, (created, created))
    return folder


def test_old_finished_folders_go_live_ones_stay(
    runtime: Path, dead_pid: int, live_process: subprocess.Popen[bytes]
) -> None:
    live = live_process.pid
    old_dead = _folder(runtime, "old-dead", 8 * DAY, pid=dead_pid, owner=dead_pid)
    old_owner_alive = _folder(runtime, "old-owner-alive", 8 * DAY, pid=dead_pid,
                              owner=os.getpid())
    old_agents_alive = _folder(runtime, "old-agents-alive", 8 * DAY, pid=live, owner=dead_pid,
                               start_time=process.start_time(live))
    recent_dead = _folder(runtime, "recent-dead", 2 * 3600, pid=dead_pid, owner=dead_pid)
    unreadable = runtime / "no-record"
    unreadable.mkdir()
    os.utime(unreadable, (time.time() - 8 * DAY,) * 2)

    removed = process.prune_runs()

    assert sorted(removed) == ["no-record", "old-dead"]
    assert not old_dead.exists() and not unreadable.exists()
    assert old_owner_alive.is_dir() and old_agents_alive.is_dir() and recent_dead.is_dir()
    assert process.prune_runs() == []


def test_a_reused_pid_does_not_keep_a_folder(runtime: Path, dead_pid: int) -> None:
    # the owner's pid now belongs to another process (ours) that started at another time
    stale = _folder(runtime, "stale", 8 * DAY, pid=dead_pid, owner=os.getpid(),
                    owner_start_time="1")
    assert process.prune_runs() == ["stale"] and not stale.exists()


def test_only_the_newest_finished_folders_are_kept(
    runtime: Path, dead_pid: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for hours in range(1, 6):
        _folder(runtime, f"run-{hours}h", hours * 3600, pid=dead_pid, owner=dead_pid)
    _folder(runtime, "just-finished", 5, pid=dead_pid, owner=dead_pid)  # may still be read
    _folder(runtime, "in-use", 9 * 3600, pid=dead_pid, owner=os.getpid())
    monkeypatch.setenv(process.ENV_RUNS_KEEP, "2")

    removed = process.prune_runs()

    assert sorted(removed) == ["run-3h", "run-4h", "run-5h"]
    assert sorted(p.name for p in runtime.iterdir()) == [
        "in-use", "just-finished", "run-1h", "run-2h"]
    assert process.prune_runs(keep=0) == ["run-1h", "run-2h"]
    assert sorted(p.name for p in runtime.iterdir()) == ["in-use", "just-finished"]


def test_a_bad_setting_is_named(runtime: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(process.ENV_RUNS_MAX_AGE, "a week")
    with pytest.raises(ValueError, match=r"CHAOSGENESYS_AGENT_RUNS_MAX_AGE.*a week"):
        process.prune_runs()


def test_starting_agents_prunes_old_folders_and_records_its_owner(
    runtime: Path, dead_pid: int, fast_sandbox: Any, configuration: Any, secrets: Any,
) -> None:
    from chaosgenesys.agent import actions

    old = _folder(runtime, "old-dead", 8 * DAY, pid=dead_pid, owner=dead_pid)
    configuration = {**configuration, "genesys_api_url": fast_sandbox.url,
                     "genesys_login_url": fast_sandbox.url}
    run = actions.start_agents([AGENT_1], options=fast_options(), configuration=configuration,
                               secrets=secrets)
    try:
        assert not old.exists()
        record = json.loads((Path(run["dir"]) / "run.json").read_text())
        assert record["owner_pid"] == os.getpid()
        assert record["owner_start_time"] == process.start_time(os.getpid())
        # the live run is never pruned, whatever the bounds
        assert process.prune_runs(keep=0, max_age=0, now=time.time() + 30 * DAY) == []
    finally:
        actions.stop_agents(configuration=configuration, secrets=secrets)
    assert Path(run["dir"]).is_dir()  # its owner (this process) still runs
