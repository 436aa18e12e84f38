"""One run never touches another: two real owners share one registry directory.

The test process is one run; :func:`tests.faults.runs.other_run` is a second, independent
process (not below this one) that records a fault and stays alive. Every way this run reverts
"everything" (revert_all, remove_faults(), the kill switch on a trip and after the run) must
leave the other's fault applied and recorded; ``chaosgenesys cleanup`` and ``scope="all"``
revert both.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.controls import killswitch
from chaosgenesys.faults import actions, probes, registry
from chaosgenesys.network import actions as network_actions
from chaosgenesys.network.engine import REVERTER as NETEM_REVERTER
from tests.faults.conftest import REMOVE, ROOT, guardians
from tests.faults.runs import cli, is_descendant, other_run

#: A tc fault's spec in a namespace that is gone: the real reverter has nothing left to undo,
#: and succeeds (as after a lab was deleted), so the record alone tells what was reverted.
GONE_NS: dict[str, Any] = {
    "netns": "cg-scope-gone",
    "interface": "veth-a",
    "minor": 7,
    "devices": [],
}


def _ids() -> set[str]:
    return {fault.id for fault in registry.active()}


def test_the_other_run_is_independent_and_its_faults_are_not_mine(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    theirs = marker("theirs")
    with other_run("marker", REMOVE, {"path": str(theirs)}) as other:
        assert not is_descendant(other.pid, os.getpid())
        mine = registry.record("marker", "mine", REMOVE, {"path": str(marker("mine"))})
        assert [f.id for f in registry.mine()] == [mine.id]
        assert {f.id for f in registry.active()} == {mine.id, other.fault_id}
        assert {f.id for f in registry.active(scope="all")} == {mine.id, other.fault_id}
        registry.revert(mine.id)


def test_active_faults_lists_this_runs_faults_unless_scope_all(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    with other_run("marker", REMOVE, {"path": str(marker("theirs"))}) as other:
        assert probes.active_faults() == []  # "no fault left behind" holds for this run
        mine = registry.record("marker", "mine", REMOVE, {"path": str(marker("mine"))})
        assert [f["id"] for f in probes.active_faults()] == [mine.id]
        assert [f["id"] for f in probes.active_faults(kind="marker")] == [mine.id]
        everyone = {f["id"] for f in probes.active_faults(scope="all")}
        assert everyone == {mine.id, other.fault_id}
        with pytest.raises(ActivityFailed, match=r"scope must be one of .*'mine'"):
            probes.active_faults(scope="mine")
        registry.revert(mine.id)


def test_revert_all_leaves_another_runs_fault(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    theirs, own = marker("theirs"), marker("own")
    with other_run("marker", REMOVE, {"path": str(theirs)}) as other:
        mine = registry.record("marker", "mine", REMOVE, {"path": str(own)})
        results = actions.revert_all()
        assert [(r["id"], r["status"]) for r in results] == [(mine.id, "reverted")]
        assert not own.exists()
        assert theirs.exists() and _ids() == {other.fault_id}
        # The registry's own function too (the kill switch and rollbacks use it).
        assert registry.revert_all() == []
        assert theirs.exists() and _ids() == {other.fault_id}


def test_scope_all_and_cleanup_revert_every_runs_faults(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    theirs, own = marker("theirs"), marker("own")
    with other_run("marker", REMOVE, {"path": str(theirs)}) as other:
        mine = registry.record("marker", "mine", REMOVE, {"path": str(own)})
        results = actions.revert_all(scope="all")
        assert {r["id"] for r in results} == {mine.id, other.fault_id}
        assert not own.exists() and not theirs.exists() and _ids() == set()
    again, own = marker("theirs-2"), marker("own-2")
    with other_run("marker", REMOVE, {"path": str(again)}) as other:
        mine = registry.record("marker", "mine", REMOVE, {"path": str(own)})
        done = cli("cleanup", "--json", directory=runtime_dir)
        assert done.returncode == 0, done.stderr
        reverted = {r["id"] for r in json.loads(done.stdout)["results"]}
        assert reverted == {mine.id, other.fault_id}
        assert not own.exists() and not again.exists() and _ids() == set()


@pytest.mark.parametrize("scope", ["everyone", "", "RUNS", 1, None])
def test_a_bad_scope_is_refused_naming_it_before_anything_changes(
    runtime_dir: Path, marker: Callable[[str], Path], scope: object
) -> None:
    path = marker("m")
    fault = registry.record("marker", "m", REMOVE, {"path": str(path)})
    with pytest.raises(ActivityFailed, match=rf"scope must be one of 'run', 'all'.*{scope!r}"):
        actions.revert_all(scope=scope)  # type: ignore[arg-type]
    with pytest.raises(ActivityFailed, match=r"scope must be one of"):
        network_actions.remove_faults(scope=scope)  # type: ignore[arg-type]
    assert path.exists() and _ids() == {fault.id}
    registry.revert(fault.id)


CHILD = """
import subprocess, sys
from chaosgenesys.faults import registry
reverter, alive, gone = sys.argv[1:4]
registry.record("marker", "child", reverter, {"path": alive})
grandchild = subprocess.Popen(
    [sys.executable, "-c", "import sys; from chaosgenesys.faults import registry; "
     "registry.record('marker', 'grandchild', sys.argv[1], {'path': sys.argv[2]}); "
     "print('recorded', flush=True); sys.stdin.read()", reverter, gone],
    stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
)
assert grandchild.stdout.readline().strip() == "recorded"
print("ready", flush=True)
sys.stdin.readline()  # the test has paused the guardian: the grandchild may go
grandchild.stdin.close()
grandchild.wait()
grandchild.stdout.close()
print("gone", flush=True)
sys.stdin.read()
"""


def test_a_fault_recorded_by_a_process_the_run_started_is_the_runs(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    """A child (an agent, a proxy, a command run by an activity) records; it may be gone.

    The guardian reverts the fault of a gone owner within 0.1 s: it is paused (SIGSTOP) while
    the grandchild ends, so that revert_all, not the guardian, is what this test sees."""
    paths = [marker("child-alive"), marker("grandchild-gone")]
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD, REMOVE, str(paths[0]), str(paths[1])],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdin is not None
    paused: list[int] = []
    try:
        assert child.stdout.readline().strip() == "ready"
        paused = guardians(runtime_dir)
        assert paused, "no guardian watches the registry"
        for pid in paused:
            os.kill(pid, signal.SIGSTOP)
        child.stdin.write("go\n")
        child.stdin.flush()
        assert child.stdout.readline().strip() == "gone"
        assert len(registry.mine()) == 2
        results = actions.revert_all()
        assert sorted(r["description"] for r in results) == ["child", "grandchild"]
        assert not any(path.exists() for path in paths)
    finally:
        for pid in paused:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        child.stdin.close()
        child.wait(timeout=30)
        child.stdout.close()


def test_remove_faults_without_ids_leaves_another_runs_network_fault(runtime_dir: Path) -> None:
    with other_run("netem", NETEM_REVERTER, GONE_NS) as other:
        mine = registry.record("netem", "mine", NETEM_REVERTER, dict(GONE_NS))
        done = network_actions.remove_faults()
        assert [entry["id"] for entry in done] == [mine.id]
        assert _ids() == {other.fault_id}
        done = network_actions.remove_faults(netns=str(GONE_NS["netns"]))
        assert done == [] and _ids() == {other.fault_id}
        done = network_actions.remove_faults(scope="all")
        assert [entry["id"] for entry in done] == [other.fault_id]
        assert _ids() == set()


def test_remove_faults_takes_one_id_string_as_that_id(runtime_dir: Path) -> None:
    first = registry.record("netem", "first", NETEM_REVERTER, dict(GONE_NS))
    second = registry.record("netem", "second", NETEM_REVERTER, dict(GONE_NS))
    done = network_actions.remove_faults(fault_ids=first.id)  # type: ignore[arg-type]
    assert [entry["id"] for entry in done] == [first.id]
    assert _ids() == {second.id}
    for bad in (5, [second.id, 7], [""], {"id": second.id}):
        with pytest.raises(ActivityFailed, match=r"fault_ids must be a list of fault ids"):
            network_actions.remove_faults(fault_ids=bad)  # type: ignore[arg-type]
    assert _ids() == {second.id}
    assert [e["id"] for e in network_actions.remove_faults(fault_ids=[second.id])] == [second.id]


def test_remove_faults_by_id_reverts_another_runs_fault_when_named(runtime_dir: Path) -> None:
    with other_run("netem", NETEM_REVERTER, GONE_NS) as other:
        done = network_actions.remove_faults(fault_ids=[other.fault_id])
        assert [entry["id"] for entry in done] == [other.fault_id]
        assert _ids() == set()


def test_the_kill_switch_reverts_only_its_runs_faults_on_a_trip_and_after(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    theirs, own, later = marker("theirs"), marker("own"), marker("later")
    with other_run("marker", REMOVE, {"path": str(theirs)}) as other:
        killswitch.before_experiment_control(context={}, check_interval=5)
        try:
            mine = registry.record("marker", "mine", REMOVE, {"path": str(own)})
            watcher = killswitch._watcher
            assert watcher is not None
            watcher.trip("test breach")
            assert [(r["id"], r["status"]) for r in watcher.reverted] == [(mine.id, "reverted")]
            assert not own.exists()
            assert theirs.exists() and _ids() == {other.fault_id}
            after = registry.record("marker", "after", REMOVE, {"path": str(later)})
            journal: dict[str, object] = {"experiment": {}}
            killswitch.after_experiment_control(context={}, state=journal)
        finally:
            killswitch.cleanup_control()
        report = killswitch.status()
        assert report is not None
        assert [r["id"] for r in report["reverted_after"]] == [after.id]
        assert not later.exists()
        assert theirs.exists() and _ids() == {other.fault_id}


def test_remove_rejections_without_an_id_leaves_another_runs_window(runtime_dir: Path) -> None:
    from chaosgenesys.sockets import actions as socket_actions
    from chaosgenesys.sockets.actions import REJECT_KIND, REJECT_REVERTER
    from chaosgenesys.sockets.reject import TABLE_PREFIX

    # Windows in a namespace that is gone: the real reverter finds nothing left to delete.
    spec = {"table": f"{TABLE_PREFIX}scope", "netns_path": "/run/netns/cg-scope-gone"}
    with other_run(REJECT_KIND, REJECT_REVERTER, spec) as other:
        mine = registry.record(REJECT_KIND, "mine", REJECT_REVERTER, dict(spec))
        assert socket_actions.remove_rejections() == {"removed": [mine.id]}
        assert _ids() == {other.fault_id}
        named = socket_actions.remove_rejections(fault_id=other.fault_id)
        assert named == {"removed": [other.fault_id]}
        assert _ids() == set()
