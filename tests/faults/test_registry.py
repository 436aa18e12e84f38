"""The fault registry in one process: record, update, revert, revert_all, corrupt files."""

from __future__ import annotations

import importlib
import json
import math
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults import registry
from chaosgenesys.faults.registry import FaultRecord, Registry
from tests.faults.conftest import FAIL, REMOVE, ROOT, guardians, wait_for


def _stat_start(pid: int) -> int:
    text = Path(f"/proc/{pid}/stat").read_text()
    return int(text.rsplit(")", 1)[1].split()[19])


def test_record_writes_the_record_before_returning(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("a")
    before = time.time()
    fault = registry.record("test", "marker a", REMOVE, {"path": str(path)}, duration=30)

    stored = json.loads((runtime_dir / f"{fault.id}.json").read_text())
    assert stored["version"] == 1
    assert FaultRecord.from_dict(stored) == fault
    assert fault.kind == "test" and fault.description == "marker a"
    assert fault.reverter == REMOVE and fault.spec == {"path": str(path)}
    assert fault.owner_pid == os.getpid()
    assert fault.owner_start == _stat_start(os.getpid())
    assert before <= fault.created_at <= time.time()
    assert fault.deadline == pytest.approx(fault.created_at + 30)
    assert fault.to_dict()["spec"] == {"path": str(path)}
    assert path.exists()  # recording applies nothing
    assert registry.active() == [fault]
    assert registry.get(fault.id) == fault
    # No temporary file is left next to the record; the directory is private.
    assert sorted(p.name for p in runtime_dir.iterdir() if p.name.startswith(".")) == []
    assert (runtime_dir.stat().st_mode & 0o777) == 0o700
    # And a guardian watches the directory.
    wait_for(lambda: guardians(runtime_dir), timeout=5)


@pytest.mark.parametrize(
    ("arguments", "named", "shown"),
    [
        ({"reverter": "nocolon"}, "reverter must be 'module:function'", "'nocolon'"),
        ({"reverter": "a:b:c"}, "reverter must be 'module:function'", "'a:b:c'"),
        ({"reverter": "no_such_module_xyz:f"}, "cannot import module", "no_such_module_xyz"),
        ({"reverter": "tests.faults.reverters:nope"}, "has no function", "'nope'"),
        ({"spec": {"x": object()}}, "spec must be JSON-serialisable", "object"),
        ({"spec": {"x": math.nan}}, "spec must be JSON-serialisable", "nan"),
        ({"spec": ["not", "a", "dict"]}, "spec must be a JSON object", "['not', 'a', 'dict']"),
        ({"duration": 0}, "duration must be a number of seconds > 0", "got 0"),
        ({"duration": -1.5}, "duration must be a number of seconds > 0", "got -1.5"),
        ({"duration": math.inf}, "duration must be", "got inf"),
        ({"duration": True}, "duration must be", "got True"),
        ({"duration": "5"}, "duration must be", "got '5'"),
        ({"kind": ""}, "kind must be a non-empty string", "''"),
    ],
)
def test_record_refuses_bad_arguments_and_records_nothing(
    runtime_dir: Path, arguments: dict[str, Any], named: str, shown: str
) -> None:
    call: dict[str, Any] = {
        "kind": "test",
        "description": "bad",
        "reverter": REMOVE,
        "spec": {"path": "/nonexistent"},
        "duration": None,
    }
    call.update(arguments)
    with pytest.raises(ActivityFailed) as raised:
        registry.record(**call)
    assert named in str(raised.value)
    assert shown in str(raised.value)
    assert registry.active() == []
    assert not runtime_dir.exists() or not list(runtime_dir.glob("*.json"))
    assert guardians(runtime_dir) == []


def test_revert_calls_the_reverter_then_forgets_and_is_idempotent(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    path, log = marker("a"), tmp_path / "revert.log"
    fault = registry.record("test", "marker a", REMOVE, {"path": str(path), "log": str(log)})

    assert registry.revert(fault.id) is True
    assert not path.exists()
    assert not (runtime_dir / f"{fault.id}.json").exists()
    assert registry.active() == []
    # The reverter ran here, once.
    lines = log.read_text().splitlines()
    assert len(lines) == 1 and lines[0].split()[1] == str(os.getpid())

    assert registry.revert(fault.id) is False  # twice is harmless
    assert registry.revert("never-recorded") is False
    assert len(log.read_text().splitlines()) == 1


def test_a_failing_reverter_keeps_the_record_and_says_which_fault(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    path, heal = marker("a"), tmp_path / "heal"
    fault = registry.record("test", "stubborn marker", FAIL, {"path": str(path), "heal": str(heal)})

    with pytest.raises(ActivityFailed) as raised:
        registry.revert(fault.id)
    message = str(raised.value)
    assert fault.id in message and "stubborn marker" in message and FAIL in message
    assert "RuntimeError: the test reverter refuses" in message
    assert "stays recorded" in message and "chaosgenesys cleanup" in message
    assert registry.active() == [fault]
    assert path.exists()

    heal.touch()  # the cause is fixed: a retry succeeds
    assert registry.revert(fault.id) is True
    assert registry.active() == [] and not path.exists()


def test_undone_on_failure_reverts_when_the_block_raises_and_keeps_its_error(
    runtime_dir: Path, marker: Callable[[str], Path], tmp_path: Path
) -> None:
    kept, undone, log = marker("kept"), marker("undone"), tmp_path / "revert.log"
    fault = registry.record("test", "marker kept", REMOVE, {"path": str(kept), "log": str(log)})
    with registry.undone_on_failure(fault.id):
        pass  # applied: the fault stays
    assert registry.active() == [fault] and kept.exists()

    failed = registry.record("test", "marker undone", REMOVE, {"path": str(undone)})
    with pytest.raises(KeyError, match="the apply failed"), registry.undone_on_failure(failed.id):
        raise KeyError("the apply failed")
    assert not undone.exists()  # reverted by its reverter
    assert registry.active() == [fault]

    # A revert that fails too: the block's error goes on, the record stays for a retry.
    heal = tmp_path / "heal"
    stubborn = registry.record("test", "stubborn", FAIL, {"path": str(undone), "heal": str(heal)})
    with pytest.raises(KeyError, match="first"), registry.undone_on_failure(stubborn.id):
        raise KeyError("first")
    assert stubborn.id in {f.id for f in registry.active()}
    heal.touch()
    assert registry.revert(stubborn.id) and registry.revert(fault.id)


def test_revert_all_goes_on_past_failures_newest_first(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    a, b, c, d = marker("a"), marker("b"), marker("c"), marker("d")
    first = registry.record("test", "a", REMOVE, {"path": str(a)})
    stubborn = registry.record("test", "b", FAIL, {"path": str(b)})
    third = registry.record("test", "c", REMOVE, {"path": str(c)})
    other = registry.record("other", "d", REMOVE, {"path": str(d)})

    # One kind only.
    assert registry.revert_all(kind="other") == [
        {"id": other.id, "kind": "other", "description": "d", "status": "reverted"}
    ]
    assert not d.exists() and a.exists()

    results = registry.revert_all()
    assert [entry["id"] for entry in results] == [third.id, stubborn.id, first.id]
    assert [entry["status"] for entry in results] == ["reverted", "failed", "reverted"]
    assert stubborn.id in results[1]["error"]
    assert "error" not in results[0]
    assert not a.exists() and b.exists() and not c.exists()
    assert registry.active() == [stubborn]
    json.dumps(results)  # JSON-serialisable
    registry.forget(stubborn.id)


def test_update_replaces_the_spec_and_description(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("a")
    fault = registry.record("test", "before", REMOVE, {"path": "/not/yet"})
    updated = registry.update(fault.id, spec={"path": str(path), "pid": 42}, description="after")
    assert updated.spec == {"path": str(path), "pid": 42} and updated.description == "after"
    assert updated.id == fault.id and updated.created_at == fault.created_at
    assert registry.get(fault.id) == updated
    # The reverter sees what update() stored.
    assert registry.revert(fault.id) is True
    assert not path.exists()

    with pytest.raises(ActivityFailed, match="is not recorded"):
        registry.update(fault.id, spec={})
    with pytest.raises(ActivityFailed, match="spec must be JSON-serialisable"):
        registry.update(fault.id, spec={"x": {1, 2}})
    with pytest.raises(ActivityFailed, match="fault_id must be the id"):
        registry.revert("../etc/passwd")


def test_a_reverter_may_call_back_into_the_registry(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("a")
    fault = registry.record(
        "test",
        "calls back",
        "tests.faults.reverters:revert_again",
        {"path": str(path), "dir": str(runtime_dir)},
    )
    assert registry.revert(fault.id) is True
    assert registry.active() == [] and not path.exists()


def test_unreadable_records_are_reported_not_fatal(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("a")
    good = registry.record("test", "good", REMOVE, {"path": str(path)})
    (runtime_dir / "garbage.json").write_text("{not json")
    (runtime_dir / "partial.json").write_text(json.dumps({"id": "partial", "kind": "x"}))
    (runtime_dir / "notes.txt").write_text("ignored: not a record")

    faults, corrupt = registry.scan()
    assert faults == [good]
    assert {bad.id: bad.error.split(":")[0] for bad in corrupt} == {
        "garbage": "not JSON",
        "partial": "missing key 'description'",
    }
    assert registry.active() == [good]
    with pytest.raises(ActivityFailed, match=r"garbage\.json is unreadable"):
        registry.revert("garbage")

    # Whose an unreadable file is cannot be told: a run's own revert_all leaves them alone.
    assert registry.revert_all() == [
        {"id": good.id, "kind": "test", "description": "good", "status": "reverted"}
    ]
    results = registry.revert_all(scope="all")
    assert [(r["id"], r["status"]) for r in results] == [
        ("garbage", "failed"),
        ("partial", "failed"),
    ]
    assert "delete the file" in results[0]["error"]
    assert not path.exists()
    assert registry.forget("garbage") and registry.forget("partial")
    assert registry.scan() == ([], [])


def test_owner_identity_is_pid_and_start_time(tmp_path: Path) -> None:
    me, start = os.getpid(), registry.process_start_time(os.getpid())
    assert start == _stat_start(me)
    assert registry.process_alive(me, start, time.time())
    assert not registry.process_alive(me, (start or 0) + 1)  # a reused pid is someone else
    assert not registry.process_alive(me, start, created_at=0.0)  # recorded before this boot
    assert not registry.process_alive(2**22 + 12345, None)
    # A zombie is dead.
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    wait_for(
        lambda: Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z",
        timeout=5,
    )
    assert not registry.process_alive(child.pid, registry.process_start_time(child.pid))
    child.wait()


def test_many_processes_recording_and_reverting_lose_nothing(runtime_dir: Path) -> None:
    script = (
        "import sys\n"
        "from chaosgenesys.faults import registry\n"
        "ids = [registry.record('race', f'{sys.argv[1]}-{i}', 'tests.faults.reverters:"
        "remove_marker', {'path': '/nonexistent/' + sys.argv[1]}).id for i in range(15)]\n"
        "for fault_id in ids[::2]:\n"
        "    assert registry.revert(fault_id)\n"
        "registry.update(ids[1], spec={'path': '/nonexistent/updated'})\n"
        "print('done', flush=True)\n"
        "sys.stdin.read()\n"  # stay the live owner until the test has looked
    )
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", script, str(n)],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for n in range(4)
    ]
    for worker in workers:
        assert worker.stdout is not None
        assert worker.stdout.readline().strip() == "done"
    faults, corrupt = Registry(runtime_dir).scan()
    assert corrupt == []
    assert sorted(f.description for f in faults) == sorted(
        f"{n}-{i}" for n in range(4) for i in range(1, 15, 2)
    )
    assert len(guardians(runtime_dir)) == 1
    assert {f.spec["path"] for f in faults if f.description.endswith("-1")} == {
        "/nonexistent/updated"
    }
    for worker in workers:
        worker.communicate("", timeout=30)
        assert worker.returncode == 0
    # The workers are gone: the guardian reverts what they left.
    wait_for(lambda: not registry.active(), timeout=5)


def test_the_reverter_example_in_messages_and_docs_exists(runtime_dir: Path) -> None:
    """The example a bad reverter's message gives (and the docs') is a real reverter."""
    with pytest.raises(ActivityFailed, match=r"e\.g\. '([\w.:]+)'") as refused:
        registry.record("test", "bad", "no colon", {})
    example = re.search(r"e\.g\. '([\w.:]+)'", str(refused.value))
    assert example is not None
    module, _, function = example.group(1).partition(":")
    assert callable(getattr(importlib.import_module(module), function))
    for page in ("docs/faults.md", "docs/internals.md"):
        text = (ROOT / page).read_text(encoding="utf-8")
        for name in re.findall(r'reverter="([\w.]+:\w+)"', text):
            module, _, function = name.partition(":")
            assert callable(getattr(importlib.import_module(module), function)), (page, name)
    assert registry.scan() == ([], [])
