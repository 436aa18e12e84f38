"""``chaosgenesys verdict`` on journals real ``chaos run`` processes wrote, and on files that are
not journals. (The examples' journals, with every chaosgenesys control, are read back in
tests/test_agent_examples.py.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.controls.runner import chaos_run

CHAOSGENESYS = str(Path(sys.executable).with_name("chaosgenesys"))


def _verdict(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHAOSGENESYS, "verdict", *args], capture_output=True, text=True,
                          timeout=60)


def _experiment(expected: Any) -> dict[str, Any]:
    return {
        "title": "no chaosgenesys control",
        "description": "a plain experiment",
        "steady-state-hypothesis": {"title": "the registry answers", "probes": [
            {"type": "probe", "name": "no-fault-in-force", "tolerance": expected,
             "provider": {"type": "process", "path": "true"}},
        ]},
        "method": [{"type": "action", "name": "nothing", "provider": {
            "type": "process", "path": "true"}}],
    }


def test_a_plain_run_that_held(tmp_path: Path) -> None:
    run = chaos_run(_experiment(0), tmp_path, tmp_path / "runtime")
    assert run.returncode == 0, run.log[-2000:]
    done = _verdict(str(tmp_path / "journal.json"))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "PASSED: no chaosgenesys control"
    assert "held: 2 check(s) of 1 probe(s) (no-fault-in-force)" in done.stdout
    assert "no chaosgenesys verdict control in this run" in done.stdout


def test_a_deviated_run_names_the_probe_and_what_it_saw(tmp_path: Path) -> None:
    run = chaos_run(_experiment(1), tmp_path, tmp_path / "runtime")
    # Chaos Toolkit ends a run whose steady state failed before the method "completed" (exit 0):
    # nothing was tested, and the verdict says FAILED
    assert run.journal["status"] == "completed" and run.journal["deviated"] is False
    done = _verdict(str(tmp_path / "journal.json"))
    assert done.returncode == 1
    assert done.stdout.startswith("FAILED: no chaosgenesys control")
    assert "deviated (before the method): no-fault-in-force observed {" in done.stdout
    assert '"status": 0' in done.stdout and "tolerance 1" in done.stdout
    data = json.loads(_verdict(str(tmp_path / "journal.json"), "--json").stdout)
    assert data["passed"] is False and data["status"] == "completed"
    assert [d["name"] for d in data["deviations"]] == ["no-fault-in-force"]


def test_what_is_not_a_journal_is_named(tmp_path: Path) -> None:
    experiment = tmp_path / "experiment.json"
    experiment.write_text(json.dumps(_experiment(0)))
    for path, said in (
        (experiment, "not a Chaos Toolkit journal (it has no experiment, status, run)"),
        (tmp_path / "missing.json", "cannot be read"),
        (Path(__file__), "not JSON"),
    ):
        done = _verdict(str(path))
        assert done.returncode == 2 and done.stdout == ""
        assert said in done.stderr, done.stderr


def test_a_dry_run_says_nothing_was_tested(tmp_path: Path) -> None:
    experiment = tmp_path / "experiment.json"
    experiment.write_text(json.dumps(_experiment(1)))  # would deviate if it ran
    journal = tmp_path / "journal.json"
    run = subprocess.run(
        [str(Path(sys.executable).with_name("chaos")), "--no-version-check", "--log-file",
         str(tmp_path / "log"), "run", "--dry=activities", "--journal-path", str(journal),
         str(experiment)],
        capture_output=True, text=True, timeout=120,
    )
    assert run.returncode == 0, run.stdout + run.stderr
    done = _verdict(str(journal))
    assert done.returncode == 0
    assert done.stdout.startswith(
        "DRY RUN (activities skipped, nothing tested): the controls passed: "), done.stdout
    assert "deviated (" not in done.stdout and "held:" not in done.stdout
