"""The verdict control: a fault action that failed fails the run; wrong argument types refuse
it before anything runs; a deviating probe is reported with what it observed.

Every case is a real ``chaos run`` (or ``chaos validate``) against the embedded sandbox.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.controls.runner import CHAOS, ROOT, chaos_run

AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"
VERDICT = {
    "name": "chaosgenesys-verdict",
    "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"},
}
SANDBOX = {
    "name": "genesys-sandbox",
    "provider": {
        "type": "python",
        "module": "chaosgenesys.controls.sandbox",
        "arguments": {"seed": str(ROOT / "examples" / "seed.yaml")},
    },
}


def _experiment(
    method: list[dict[str, Any]], *, verdict: bool = True, tolerance: Any = True, **extra: Any
) -> dict[str, Any]:
    return {
        "title": "verdict control",
        "description": "a test experiment",
        "configuration": {"agent_1": AGENT_1},
        "controls": [SANDBOX, *([VERDICT] if verdict else [])],
        "steady-state-hypothesis": {
            "title": "agent 1 On Queue",
            "probes": [
                {
                    "type": "probe",
                    "name": "on-queue",
                    "tolerance": tolerance,
                    "provider": {
                        "type": "python",
                        "module": "chaosgenesys.users.probes",
                        "func": "presence_is",
                        "arguments": {"user_id": "${agent_1}", "expected": "On Queue"},
                    },
                }
            ],
        },
        "method": method,
        **extra,
    }


def _inject(name: str, **arguments: Any) -> dict[str, Any]:
    return {
        "type": "action",
        "name": name,
        "provider": {
            "type": "python",
            "module": "chaosgenesys.sandbox.actions",
            "func": "inject_api_fault",
            "arguments": arguments,
        },
    }


CLEAR = {
    "type": "action",
    "name": "clear-faults",
    "provider": {
        "type": "python",
        "module": "chaosgenesys.sandbox.actions",
        "func": "clear_sandbox_faults",
    },
}


def _verdict(run: Any) -> dict[str, Any]:
    return run.extension("chaosgenesys-verdict")


def test_without_the_control_a_fault_that_never_applied_passes(tmp_path: Path) -> None:
    # Chaos Toolkit's own semantics, the false pass this control exists for.
    run = chaos_run(
        _experiment([_inject("bad-fault", path_pattern="(")], verdict=False),
        tmp_path,
        tmp_path / "runtime",
    )
    assert run.journal["run"][0]["status"] == "failed"
    assert run.journal["status"] == "completed"
    assert run.returncode == 0


def test_a_method_action_that_failed_fails_the_run_and_the_journal_says_why(
    tmp_path: Path,
) -> None:
    run = chaos_run(
        _experiment([_inject("bad-fault", path_pattern="(")]), tmp_path, tmp_path / "runtime"
    )
    assert run.returncode == 1, run.log[-3000:]
    assert run.journal["status"] == "failed"
    assert run.journal["deviated"] is False
    verdict = _verdict(run)
    assert verdict["status_changed"] is True
    [failed] = verdict["failed_actions"]
    assert failed["name"] == "bad-fault"
    assert failed["phase"] == "method"
    assert failed["module"] == "chaosgenesys.sandbox.actions"
    assert "path_pattern" in failed["error"]
    assert "the run FAILED" in run.log
    assert "'bad-fault'" in run.log


def test_an_ignored_action_may_fail(tmp_path: Path) -> None:
    experiment = _experiment([_inject("expected-refusal", path_pattern="(")])
    experiment["controls"][1] = {
        **VERDICT,
        "provider": {**VERDICT["provider"], "arguments": {"ignore": ["expected-refusal"]}},
    }
    run = chaos_run(experiment, tmp_path, tmp_path / "runtime")
    assert run.returncode == 0, run.log[-3000:]
    assert run.journal["status"] == "completed"
    assert _verdict(run)["failed_actions"] == []


def test_a_rollback_that_failed_fails_the_run(tmp_path: Path) -> None:
    experiment = _experiment([CLEAR], rollbacks=[_inject("bad-rollback", path_pattern="(")])
    run = chaos_run(experiment, tmp_path, tmp_path / "runtime")
    assert run.returncode == 1, run.log[-3000:]
    assert run.journal["status"] == "failed"
    [failed] = _verdict(run)["failed_actions"]
    assert (failed["name"], failed["phase"]) == ("bad-rollback", "rollback")


def test_a_run_whose_actions_held_is_untouched(tmp_path: Path) -> None:
    run = chaos_run(
        _experiment([_inject("slow-users", path_pattern="^/api/v2/users", delay_ms=10), CLEAR]),
        tmp_path,
        tmp_path / "runtime",
    )
    assert run.returncode == 0, run.log[-3000:]
    assert run.journal["status"] == "completed"
    verdict = _verdict(run)
    assert verdict["failed_actions"] == [] and verdict["status_changed"] is False


def _run_with_vars(experiment: dict[str, Any], tmp_path: Path, *var: str) -> dict[str, Any]:
    """``chaos run --var ...``; the journal, with the log under ``"log"``."""
    import os

    path, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    path.write_text(json.dumps(experiment))
    log = tmp_path / "chaostoolkit.log"
    args = [arg for item in var for arg in ("--var", item)]
    subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "--log-file",
            str(log),
            "run",
            *args,
            "--journal-path",
            str(journal),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    result: dict[str, Any] = json.loads(journal.read_text())
    result["log"] = log.read_text()
    return result


def test_wrong_argument_types_refuse_the_run_before_anything_runs(tmp_path: Path) -> None:
    # A value written in the experiment: chaos run validates first and stops there.
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(_experiment([_inject("slow", path_pattern="^/", delay_ms="5s")])))
    result = subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "run",
            "--journal-path",
            str(tmp_path / "journal.json"),
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 1
    assert "delay_ms must be an integer, got '5s'" in result.stdout + result.stderr
    assert not (tmp_path / "journal.json").exists()


def test_substituted_arguments_are_checked_before_the_steady_state(tmp_path: Path) -> None:
    # A value only known at run time (--var): refused before the steady state is read.
    experiment = _experiment(
        [_inject("slow-users", path_pattern="^/api/v2/users", delay_ms="${delay}"), CLEAR]
    )
    experiment["configuration"]["delay"] = 10  # what chaos validate sees
    bad = tmp_path / "bad"
    bad.mkdir()
    journal = _run_with_vars(experiment, bad, "delay=5s")
    assert journal["status"] == "interrupted"
    assert journal["steady_states"]["before"] is None
    assert journal["run"] == []
    assert "delay_ms must be an integer, got '5s'" in journal["log"]
    good = tmp_path / "good"
    good.mkdir()
    journal = _run_with_vars(experiment, good, "delay:int=10")
    assert journal["status"] == "completed", journal["log"][-3000:]


def test_a_placeholder_nothing_defines_refuses_the_run_before_the_steady_state(
    tmp_path: Path,
) -> None:
    # The configuration lacks agent_1: the probe would look for a user named '${agent_1}'.
    # chaos validate does not read the run's configuration; the run does, before it starts.
    # A --var does not add the key either: chaoslib only changes the keys declared.
    experiment = _experiment([CLEAR])
    del experiment["configuration"]["agent_1"]
    for case, variables in (("missing", ()), ("var", (f"agent_1={AGENT_1}",))):
        (tmp_path / case).mkdir()
        journal = _run_with_vars(experiment, tmp_path / case, *variables)
        assert journal["status"] == "interrupted", case
        assert journal["steady_states"]["before"] is None and journal["run"] == []
        assert ("user_id is '${agent_1}', and no configuration key or secret is named agent_1"
                " (declare it in the experiment's configuration") in journal["log"], case


def test_chaos_validate_catches_wrong_argument_types(tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(_experiment([_inject("slow", path_pattern="^/", delay_ms="5s")])))
    result = subprocess.run(
        [CHAOS, "--no-version-check", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "delay_ms must be an integer, got '5s'" in result.stdout + result.stderr
    path.write_text(json.dumps(_experiment([_inject("slow", path_pattern="^/", delay_ms=5)])))
    result = subprocess.run(
        [CHAOS, "--no-version-check", "validate", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_deviating_probe_is_reported_with_what_it_observed(tmp_path: Path) -> None:
    experiment = _experiment([CLEAR], tolerance=False)
    run = chaos_run(experiment, tmp_path, tmp_path / "runtime")
    [deviation] = _verdict(run)["deviations"]
    assert deviation == {"name": "on-queue", "observed": True, "tolerance": False}
    assert "probe 'on-queue' is outside its tolerance: observed true, tolerance false" in run.log


def test_a_steady_state_missed_before_the_method_is_not_a_pass(tmp_path: Path) -> None:
    # Chaos Toolkit ends it "completed", not deviated, exit 0: the method never ran.
    plain = chaos_run(
        _experiment([CLEAR], verdict=False, tolerance=False), tmp_path, tmp_path / "runtime"
    )
    assert (plain.returncode, plain.journal["status"], plain.journal["deviated"]) == (
        0,
        "completed",
        False,
    )
    judged_path = tmp_path / "judged"
    judged_path.mkdir()
    judged = chaos_run(_experiment([CLEAR], tolerance=False), judged_path, judged_path / "runtime")
    assert judged.returncode == 1
    assert judged.journal["status"] == "failed"
    assert judged.journal["run"] == []
    assert _verdict(judged)["steady_state_before_met"] is False
    assert "nothing was tested" in judged.log
