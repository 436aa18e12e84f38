"""A revert that keeps failing is retried a bounded number of times, then given up: it stays
listed as failed with its reason, the guardian exits, and ``cleanup`` stops retrying it."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults import actions, probes, registry
from tests.faults.conftest import FAIL, guardians, wait_for
from tests.faults.runs import cli


def _record(fault_id: str) -> registry.FaultRecord:
    found = registry.get(fault_id)
    assert found is not None
    return found


def test_the_guardian_gives_up_a_failing_revert_and_exits(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("stuck")
    fault = registry.record("stuck", "stuck", FAIL, {"path": str(path)}, duration=0.1)
    assert guardians(runtime_dir)
    # The guardian retries at its growing pauses, then gives up and leaves.
    wait_for(lambda: not guardians(runtime_dir), timeout=60, step=0.1)
    stuck = _record(fault.id)
    assert stuck.given_up and stuck.failures == registry.MAX_REVERT_ATTEMPTS
    assert stuck.last_error is not None and "refuses to revert" in stuck.last_error
    assert path.exists()  # never reverted: still listed, not forgotten
    log = (runtime_dir / "guardian.log").read_text()
    assert "given up" in log and "only given-up records left" in log

    [entry] = probes.active_faults()
    assert entry["id"] == fault.id and entry["given_up"] is True
    assert entry["failures"] == registry.MAX_REVERT_ATTEMPTS
    assert "refuses to revert" in entry["last_error"]

    status = cli("status", directory=runtime_dir)
    assert status.returncode == 0
    assert f"FAILED: given up after {registry.MAX_REVERT_ATTEMPTS} failed reverts" in status.stdout
    assert "refuses to revert" in status.stdout
    assert "guardian: not running (only given-up faults left" in status.stdout
    as_json = json.loads(cli("status", "--json", directory=runtime_dir).stdout)
    assert as_json["faults"][0]["given_up"] is True

    # cleanup lists it as failed without calling the reverter again; --retry calls it.
    cleanup = cli("cleanup", "--json", directory=runtime_dir)
    assert cleanup.returncode == 1
    [result] = json.loads(cleanup.stdout)["results"]
    assert result["status"] == "failed" and result["given_up"] is True
    assert "cleanup --forget" in result["error"]
    assert _record(fault.id).failures == registry.MAX_REVERT_ATTEMPTS
    retried = cli("cleanup", "--retry", directory=runtime_dir)
    assert retried.returncode == 1
    assert _record(fault.id).failures == registry.MAX_REVERT_ATTEMPTS + 1

    forgotten = cli("cleanup", "--forget", fault.id, directory=runtime_dir)
    assert forgotten.returncode == 0 and f"forgotten {fault.id}" in forgotten.stdout
    assert registry.scan() == ([], [])


def test_each_failed_revert_counts_whoever_tries(
    runtime_dir: Path, marker: Callable[[str], Path]
) -> None:
    path = marker("stuck")
    fault = registry.record("stuck", "stuck", FAIL, {"path": str(path)})
    for attempt in range(1, registry.MAX_REVERT_ATTEMPTS + 1):
        results = registry.revert_all()
        assert [r["status"] for r in results] == ["failed"]
        stuck = _record(fault.id)
        assert stuck.failures == attempt
        assert stuck.given_up is (attempt == registry.MAX_REVERT_ATTEMPTS)
    assert "given up after" in results[0]["error"]
    # Given up: revert_all (the activity too) lists it, failed, without trying again.
    for _ in range(2):
        with pytest.raises(ActivityFailed, match="given up after"):
            actions.revert_all()
    assert _record(fault.id).failures == registry.MAX_REVERT_ATTEMPTS
    # Healed (the test reverter succeeds once the heal file exists): by id it tries again.
    heal = marker("heal")
    registry.update(fault.id, spec={"path": str(path), "heal": str(heal)})
    assert registry.revert(fault.id) is True
    assert not path.exists() and registry.scan() == ([], [])
