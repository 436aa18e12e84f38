"""A real ``chaos run`` with the sandbox and kill switch controls leaves another run's faults.

The other run is an independent process sharing the registry directory (as two runs as root
share ``/run/chaosgenesys``). The run's after-experiment cleanup and its cleanup on an
interruption revert the run's own faults only.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.faults.registry import ENV_DIR, Registry
from tests.conftest import make_seed
from tests.controls.runner import chaos_run
from tests.faults.conftest import REMOVE, stop_guardians
from tests.faults.runs import other_run


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    monkeypatch.setenv(ENV_DIR, str(directory))
    yield directory
    stop_guardians(directory)


def _experiment(seed: Any, marker: Path) -> dict[str, Any]:
    return {
        "title": "one run never touches another",
        "description": "a run with a sandbox and a kill switch, beside another run",
        "controls": [
            {
                "name": "genesys-sandbox",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.sandbox",
                    "arguments": {"seed": seed},
                },
            },
            {
                "name": "genesys-killswitch",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.killswitch",
                    "arguments": {"check_interval": 0.2},
                },
            },
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
            }
        ],
    }


def test_a_run_interrupted_before_it_started_leaves_another_runs_fault(
    tmp_path: Path, runtime: Path
) -> None:
    theirs = tmp_path / "theirs"
    theirs.write_text("another run's fault")
    with other_run("agents", REMOVE, {"path": str(theirs)}) as other:
        experiment = _experiment(str(tmp_path / "no-such-seed.yaml"), tmp_path / "never")
        run = chaos_run(experiment, tmp_path, runtime)
        assert run.journal["status"] == "interrupted", run.log[-3000:]
        assert run.activities() == []
        assert theirs.exists(), run.log[-3000:]
        assert [f.id for f in Registry(runtime).active()] == [other.fault_id]
        assert f"fault {other.fault_id}" not in run.log


def test_a_completed_run_reverts_its_fault_and_leaves_another_runs(
    tmp_path: Path, runtime: Path
) -> None:
    theirs, own = tmp_path / "theirs", tmp_path / "own"
    theirs.write_text("another run's fault")
    with other_run("marker", REMOVE, {"path": str(theirs)}) as other:
        run = chaos_run(_experiment(make_seed(), own), tmp_path, runtime)
        assert run.journal["status"] == "completed", run.log[-3000:]
        assert run.activities() == ["apply-fault"]
        entry = run.extension("chaosgenesys-killswitch")
        assert [(r["kind"], r["status"]) for r in entry["reverted_after"]] == [
            ("marker", "reverted")
        ]
        assert not own.exists()
        assert theirs.exists()
        assert [f.id for f in Registry(runtime).active()] == [other.fault_id]
