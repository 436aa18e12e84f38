"""``chaosgenesys status`` / ``cleanup`` run as a user runs them, and the two activities."""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaoslib.discovery.discover import discover_actions, discover_probes
from chaoslib.exceptions import ActivityFailed
from chaoslib.hypothesis import within_tolerance

from chaosgenesys.faults import actions, probes, registry
from tests.faults.conftest import CLI, FAIL, REMOVE, ROOT


def _run(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CLI, *args],
        cwd=ROOT,
        env={
            **os.environ,
            "CHAOSGENESYS_RUNTIME_DIR": str(directory),
            # The test reverters live in tests/, which a console script does not see by itself
            # (real reverters are modules of installed packages).
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        },
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_status_lists_the_faults_with_owner_and_deadline(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    timed = registry.record(
        "netem", "delay 200ms on veth0", REMOVE, {"path": str(marker("a"))}, duration=600
    )
    forever = registry.record(
        "proxy", "proxy 'default' on 127.0.0.1:8080", REMOVE, {"path": str(marker("b"))}
    )
    (runtime_dir / "broken.json").write_text("{")
    # record() spawns the guardian; on a busy machine it may still be importing Python.
    deadline = time.monotonic() + 10
    while not registry.Registry(runtime_dir).guardian_pid() and time.monotonic() < deadline:
        time.sleep(0.05)

    shown = _run("status", "--json", directory=runtime_dir)
    assert shown.returncode == 0, shown.stderr
    status = json.loads(shown.stdout)
    assert status["directory"] == str(runtime_dir)
    assert isinstance(status["guardian_pid"], int)
    assert [f["id"] for f in status["faults"]] == [timed.id, forever.id]
    assert all(f["owner_alive"] and f["owner_pid"] == os.getpid() for f in status["faults"])
    assert 590 < status["faults"][0]["remaining"] <= 600
    assert status["faults"][1]["remaining"] is None
    assert [bad["id"] for bad in status["corrupt"]] == ["broken"]

    table = _run("status", directory=runtime_dir)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0] == f"registry: {runtime_dir}"
    assert lines[1].startswith("guardian: pid ")
    assert lines[2].split() == ["ID", "KIND", "OWNER", "DEADLINE", "DESCRIPTION"]
    assert lines[3].split()[:4] == [timed.id, "netem", str(os.getpid()), "alive"]
    assert "in 59" in lines[3] and lines[3].endswith("delay 200ms on veth0")
    assert lines[4].split()[:5] == [forever.id, "proxy", str(os.getpid()), "alive", "none"]
    assert lines[5].startswith("broken") and "UNREADABLE" in lines[5]
    (runtime_dir / "broken.json").unlink()


def test_status_of_an_empty_registry(tmp_path: Path) -> None:
    shown = _run("status", directory=tmp_path / "never-created")
    assert shown.returncode == 0, shown.stderr
    assert "no active faults" in shown.stdout
    assert "guardian: not running (none needed)" in shown.stdout
    assert not (tmp_path / "never-created").exists()  # status changes nothing


def test_cleanup_reverts_everything_and_says_what(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    a, b, c = marker("a"), marker("b"), marker("c")
    first = registry.record("netem", "marker a", REMOVE, {"path": str(a)})
    second = registry.record("proxy", "marker b", REMOVE, {"path": str(b)})
    third = registry.record("netem", "marker c", REMOVE, {"path": str(c)})

    only = _run("cleanup", "--kind", "proxy", directory=runtime_dir)
    assert only.returncode == 0, only.stderr
    assert only.stdout.splitlines() == [
        f"reverted  {second.id}  proxy  marker b",
        "1 of 1 faults reverted",
    ]
    assert a.exists() and not b.exists() and c.exists()

    everything = _run("cleanup", directory=runtime_dir)
    assert everything.returncode == 0, everything.stderr
    assert everything.stdout.splitlines() == [
        f"reverted  {third.id}  netem  marker c",
        f"reverted  {first.id}  netem  marker a",
        "2 of 2 faults reverted",
    ]
    assert not a.exists() and not c.exists() and registry.active() == []

    again = _run("cleanup", directory=runtime_dir)
    assert again.returncode == 0 and again.stdout.strip() == "nothing to clean up"


def test_cleanup_exits_1_when_a_revert_fails_and_reverts_the_rest(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    good, bad = marker("good"), marker("bad")
    stubborn = registry.record("nft", "stubborn", FAIL, {"path": str(bad)})
    registry.record("nft", "fine", REMOVE, {"path": str(good)})

    result = _run("cleanup", directory=runtime_dir)
    assert result.returncode == 1
    assert not good.exists() and bad.exists()
    assert f"FAILED    {stubborn.id}: reverting fault {stubborn.id}" in result.stderr
    assert "1 of 2 faults reverted; 1 failed and stay recorded" in result.stderr

    as_json = _run("cleanup", "--json", directory=runtime_dir)
    assert as_json.returncode == 1
    results = json.loads(as_json.stdout)["results"]
    assert [(r["id"], r["status"]) for r in results] == [(stubborn.id, "failed")]
    assert registry.active() == [stubborn]
    registry.forget(stubborn.id)


def test_revert_all_activity(runtime_dir: Path, marker: Callable[[str], Path]) -> None:
    a, b = marker("a"), marker("b")
    registry.record("netem", "a", REMOVE, {"path": str(a)})
    proxy = registry.record("proxy", "b", REMOVE, {"path": str(b)})
    assert actions.revert_all(kind="proxy") == [
        {"id": proxy.id, "kind": "proxy", "description": "b", "status": "reverted"}
    ]
    assert a.exists() and not b.exists()
    results = actions.revert_all()
    assert [r["status"] for r in results] == ["reverted"] and not a.exists()
    assert actions.revert_all() == []
    with pytest.raises(ActivityFailed, match="kind must be a non-empty string, got 5"):
        actions.revert_all(kind=5)  # type: ignore[arg-type]


def test_revert_all_activity_fails_after_trying_every_fault(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    good, bad = marker("good"), marker("bad")
    stubborn = registry.record("nft", "stubborn", FAIL, {"path": str(bad)})
    registry.record("nft", "fine", REMOVE, {"path": str(good)})
    with pytest.raises(ActivityFailed) as raised:
        actions.revert_all()
    assert "1 of 2 faults could not be reverted" in str(raised.value)
    assert stubborn.id in str(raised.value)
    assert not good.exists() and bad.exists()
    registry.forget(stubborn.id)


def test_active_faults_probe(runtime_dir: Path, marker: Callable[[str], Path]) -> None:
    assert probes.active_faults() == []
    assert within_tolerance([[]], probes.active_faults())  # the docstring's steady state
    fault = registry.record("netem", "a", REMOVE, {"path": str(marker("a"))}, duration=60)
    (runtime_dir / "broken.json").write_text("[]")

    found = probes.active_faults(scope="all")
    json.dumps(found)
    assert found[0] == {
        **fault.to_dict(),
        "owner_alive": True,
        "remaining": pytest.approx(60, abs=2),
        "corrupt": False,
    }
    assert found[1]["id"] == "broken" and found[1]["corrupt"] is True
    assert not within_tolerance([[]], found)
    # Whose an unreadable file is cannot be told: this run's list leaves it out.
    assert [f["id"] for f in probes.active_faults()] == [fault.id]
    assert [f["id"] for f in probes.active_faults(kind="netem")] == [fault.id]
    assert probes.active_faults(kind="proxy") == []
    (runtime_dir / "broken.json").unlink()
    registry.revert(fault.id)


def test_the_activities_are_discoverable_with_their_types() -> None:
    discovered: list[Any] = [
        *discover_actions("chaosgenesys.faults.actions"),
        *discover_probes("chaosgenesys.faults.probes"),
    ]
    by_name = {activity["name"]: activity for activity in discovered}
    assert by_name["revert_all"]["type"] == "action"
    assert by_name["active_faults"]["type"] == "probe"
    for activity in discovered:
        assert activity["arguments"][0] == {"name": "kind", "default": "", "type": "string"}
    assert by_name["revert_all"]["arguments"][1] == {
        "name": "scope",
        "default": "run",
        "type": "string",
    }
    assert [a["name"] for a in by_name["revert_all"]["arguments"][2:]] == [
        "configuration",
        "secrets",
    ]
    assert by_name["active_faults"]["arguments"][1] == by_name["revert_all"]["arguments"][1]
    assert [a["name"] for a in by_name["active_faults"]["arguments"][2:]] == [
        "configuration",
        "secrets",
    ]
