"""The guardian as a real detached process: deadlines, owner death, one per directory, exit."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults import registry
from chaosgenesys.faults.registry import Registry
from tests.faults.conftest import FAIL, REMOVE, ROOT, guardians, wait_for

OWNER = """
import json, signal, sys, time
# As chaos does: Ctrl+C interrupts it even where the test runner was started with SIGINT
# ignored (a background job in CI), which the child would otherwise inherit.
signal.signal(signal.SIGINT, signal.default_int_handler)
from chaosgenesys.faults import registry
fault = registry.record("test", "owned marker", sys.argv[1], json.loads(sys.argv[2]))
print(fault.id, flush=True)
time.sleep(60)
"""


def _owner(reverter: str, spec: dict[str, str]) -> tuple[subprocess.Popen[str], str]:
    """A process that records a fault (in the test's registry) and then sleeps."""
    process = subprocess.Popen(
        [sys.executable, "-c", OWNER, reverter, json.dumps(spec)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert process.stdout is not None
    fault_id = process.stdout.readline().strip()
    assert fault_id, "the owner process recorded nothing"
    return process, fault_id


def _reverted_at(log: Path) -> tuple[float, int]:
    when, pid = log.read_text().split()
    return float(when), int(pid)


def test_the_guardian_reverts_at_the_deadline(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    path, log = marker("a"), tmp_path / "revert.log"
    fault = registry.record(
        "test", "half a second", REMOVE, {"path": str(path), "log": str(log)}, duration=0.5
    )
    assert fault.deadline is not None
    wait_for(lambda: not path.exists(), timeout=3)
    when, pid = _reverted_at(log)
    assert fault.deadline <= when <= fault.deadline + 1.0
    assert pid != os.getpid() and pid in guardians(runtime_dir)  # the guardian did it
    wait_for(lambda: not registry.active(), timeout=1)
    line = f"reverted {fault.id} (test: half a second) because its deadline passed"
    wait_for(lambda: line in (runtime_dir / "guardian.log").read_text(), timeout=1)


def test_a_moved_deadline_is_the_one_the_guardian_keeps(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    path, log = marker("a"), tmp_path / "revert.log"
    fault = registry.record(
        "test", "an hour, then a second", REMOVE, {"path": str(path), "log": str(log)},
        duration=3600,
    )
    moved = registry.update(fault.id, deadline=time.time() + 1.0)
    assert moved.deadline is not None and moved.spec == fault.spec
    wait_for(lambda: not path.exists(), timeout=4)
    when, _ = _reverted_at(log)
    assert moved.deadline <= when <= moved.deadline + 1.0
    with pytest.raises(ActivityFailed, match="deadline"):
        registry.update(registry.record("test", "x", REMOVE, {"path": str(marker("b"))}).id,
                        deadline=float("nan"))


def test_the_guardian_reverts_when_the_owner_is_killed(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    path, log = marker("a"), tmp_path / "revert.log"
    owner, fault_id = _owner(REMOVE, {"path": str(path), "log": str(log)})
    try:
        wait_for(lambda: Registry(runtime_dir).guardian_pid(), timeout=5)
        time.sleep(0.3)
        assert path.exists()  # owner alive, no deadline: left alone
        killed_at = time.time()
        owner.kill()  # SIGKILL: no rollback, no finally, nothing
        wait_for(lambda: not path.exists(), timeout=3)
        when, _ = _reverted_at(log)
        assert when - killed_at <= 2.0
    finally:
        owner.kill()
        owner.wait()
    wait_for(lambda: not registry.active(), timeout=1)
    line = f"reverted {fault_id} (test: owned marker) because its owner process {owner.pid}"
    wait_for(lambda: line in (runtime_dir / "guardian.log").read_text(), timeout=1)


def test_the_guardian_survives_a_ctrl_c_to_the_owners_process_group(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("a")
    owner, _ = _owner(REMOVE, {"path": str(path)})
    try:
        wait_for(lambda: Registry(runtime_dir).guardian_pid(), timeout=5)
        (guardian,) = guardians(runtime_dir)
        assert os.getpgid(guardian) != owner.pid and os.getsid(guardian) == guardian
        os.killpg(owner.pid, signal.SIGINT)  # what a terminal's Ctrl+C does to `chaos run`
        owner.wait(timeout=5)
        wait_for(lambda: not path.exists(), timeout=3)  # the guardian lived to revert
        assert guardian in guardians(runtime_dir)
    finally:
        owner.kill()
        owner.wait()


def test_a_guardian_from_a_reused_pid_is_not_the_owner(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("a")
    fault = registry.record("test", "reused pid", REMOVE, {"path": str(path)})
    time.sleep(0.3)
    assert path.exists()
    # Pretend the record was made by another process that had this pid before.
    stored = json.loads((runtime_dir / f"{fault.id}.json").read_text())
    stored["owner_start"] = (fault.owner_start or 0) - 1
    (runtime_dir / "rewrite.tmp").write_text(json.dumps(stored))
    os.replace(runtime_dir / "rewrite.tmp", runtime_dir / f"{fault.id}.json")
    wait_for(lambda: not path.exists(), timeout=3)


def test_one_guardian_per_directory(runtime_dir: Path, marker: Callable[[str], Path]) -> None:
    registry.record("test", "a", REMOVE, {"path": str(marker("a"))})
    wait_for(lambda: Registry(runtime_dir).guardian_pid(), timeout=5)
    (first,) = guardians(runtime_dir)
    assert Registry(runtime_dir).guardian_pid() == first

    started = time.monotonic()
    second = subprocess.run(
        [sys.executable, "-m", "chaosgenesys.faults.guardian", "--dir", str(runtime_dir)],
        timeout=10,
    )
    assert second.returncode == 0 and time.monotonic() - started < 3
    registry.record("test", "b", REMOVE, {"path": str(marker("b"))})
    time.sleep(0.3)
    assert guardians(runtime_dir) == [first]


def test_the_guardian_exits_once_the_registry_is_empty(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    fault = registry.record("test", "a", REMOVE, {"path": str(marker("a"))})
    wait_for(lambda: Registry(runtime_dir).guardian_pid(), timeout=5)
    (guardian,) = guardians(runtime_dir)
    time.sleep(0.5)
    assert guardians(runtime_dir) == [guardian]  # still watching while a fault is recorded

    registry.revert(fault.id)
    waited = wait_for(lambda: not guardians(runtime_dir), timeout=5)
    assert 1.5 <= waited <= 3.5  # after the grace period, not before
    assert Registry(runtime_dir).guardian_pid() is None
    assert "registry empty: exiting" in (runtime_dir / "guardian.log").read_text()

    # The next record starts a new one.
    registry.record("test", "b", REMOVE, {"path": str(marker("b"))})
    wait_for(lambda: guardians(runtime_dir), timeout=5)


def test_the_guardian_retries_a_failing_reverter_and_shrugs_off_corrupt_files(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    runtime_dir.mkdir()
    (runtime_dir / "garbage.json").write_text("{not json")
    path, heal = marker("a"), tmp_path / "heal"
    fault = registry.record(
        "test", "stubborn", FAIL, {"path": str(path), "heal": str(heal)}, duration=0.2
    )
    wait_for(
        lambda: "attempt 1; next in 1 s" in (runtime_dir / "guardian.log").read_text(), timeout=5
    )
    assert path.exists() and registry.active() == [fault]
    heal.touch()
    wait_for(lambda: not path.exists(), timeout=3)  # the retry, a second later
    wait_for(lambda: not registry.active(), timeout=1)
    wait_for(
        lambda: "because its deadline passed" in (runtime_dir / "guardian.log").read_text(),
        timeout=1,
    )
    text = (runtime_dir / "guardian.log").read_text()
    assert "unreadable record" in text and "garbage.json" in text
    assert text.count("unreadable record") == 1  # said once, not every poll
    assert (runtime_dir / "garbage.json").exists()  # left for a human
    # Unreadable files alone do not keep a guardian alive.
    wait_for(lambda: not guardians(runtime_dir), timeout=5)
