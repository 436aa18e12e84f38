"""``chaosgenesys verdict`` on journals real ``chaos run`` processes wrote, and on files that are
not journals. (The examples' journals, with every chaosgenesys control, are read back in
tests/test_agent_examples.py.)"""

from __future__ import annotations

import json
import re
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


# -- what a walkthrough found: real runs against the embedded sandbox ---------------------------

AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"
ROOT = Path(__file__).resolve().parents[2]
SANDBOX = {"name": "genesys-sandbox", "provider": {
    "type": "python", "module": "chaosgenesys.controls.sandbox",
    "arguments": {"seed": str(ROOT / "examples" / "seed.yaml")}}}
VERDICT = {"name": "chaosgenesys-verdict", "provider": {
    "type": "python", "module": "chaosgenesys.controls.verdict"}}


def _probe(name: str, func: str, tolerance: Any, module: str = "chaosgenesys.users.probes",
           **arguments: Any) -> dict[str, Any]:
    return {"type": "probe", "name": name, "tolerance": tolerance,
            "provider": {"type": "python", "module": module, "func": func,
                         "arguments": arguments}}


def _action(name: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "action", "name": name,
            "provider": {"type": "python", "module": module, "func": func,
                         "arguments": arguments}}


def _sandbox_run(probes: list[dict[str, Any]], method: list[dict[str, Any]], tmp_path: Path,
                 *var: str, **configuration: Any) -> Path:
    """``chaos run [--var ...]`` of an experiment on the embedded sandbox with the verdict
    control, as a user runs it; the journal's path."""
    import os

    experiment = {
        "title": "a walkthrough's run", "description": "the verdict of what the run did",
        "configuration": {"agent_1": AGENT_1, **configuration},
        "controls": [SANDBOX, VERDICT],
        "steady-state-hypothesis": {"title": "the agent is fine", "probes": probes},
        "method": method,
    }
    path, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    path.write_text(json.dumps(experiment, indent=1))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("chaos")), "--no-version-check", "--log-file",
         str(tmp_path / "chaostoolkit.log"), "run",
         *[arg for item in var for arg in ("--var", item)],
         "--journal-path", str(journal), str(path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    assert journal.exists(), done.stdout + done.stderr
    return journal


def test_a_duration_changed_by_var_is_the_window_the_verdict_and_report_show(
    tmp_path: Path,
) -> None:
    """``chaos run --var fault_seconds:int=20`` on an experiment whose configuration says 4: the
    journal keeps ``"${fault_seconds}"`` and the configuration's 4 (Chaos Toolkit records
    neither the --var nor the arguments it resolved); the fault ran 20 s, and that is the
    window the verdict, its JSON and the report's timeline give."""
    on_queue = _probe("on-queue", "presence_is", True, user_id="${agent_1}",
                      expected="On Queue")
    fault = _action("slow-nothing-for-a-while", "chaosgenesys.sandbox.actions",
                    "inject_api_fault", path_pattern="^/api/v2/nothing-reads-this$",
                    delay_ms=10, duration="${fault_seconds}")
    journal_path = _sandbox_run([on_queue], [fault], tmp_path, "fault_seconds:int=20",
                                fault_seconds=4)
    journal = json.loads(journal_path.read_text())
    assert journal["experiment"]["configuration"]["fault_seconds"] == 4  # what the journal keeps
    (item,) = journal["run"]
    assert item["activity"]["provider"]["arguments"]["duration"] == "${fault_seconds}"

    done = _verdict(str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": 20.0 s, ended by its duration (20 s)" in done.stdout, done.stdout
    assert "(4 s)" not in done.stdout
    data = json.loads(_verdict(str(journal_path), "--json").stdout)
    (window,) = data["faults"]
    assert window["seconds"] == 20.0 and window["ended_by"] == "its duration (20 s)", window

    from chaosgenesys.results.report import html_report
    from chaosgenesys.results.timeline import timeline

    drawn = timeline(journal)
    (band,) = drawn["faults"]
    assert abs(band["end"] - band["start"] - 20.0) < 1e-6, band  # the band the report draws
    assert "<td>20.000 s</td>" in html_report(drawn, "<svg></svg>")


def test_a_target_tolerance_shows_the_field_it_held_to(tmp_path: Path) -> None:
    """The token's ``seconds_left`` is the last field of a long output: the verdict prints it,
    not the output's start cut off before it."""
    token = _probe("token-has-a-second-left", "token_info",
                   {"type": "range", "range": [0, 1], "target": "seconds_left"},
                   module="chaosgenesys.auth.probes")
    journal_path = _sandbox_run([token], [], tmp_path)
    done = _verdict(str(journal_path))
    assert done.returncode == 1
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("deviated (")]
    assert re.fullmatch(
        r"deviated \(before the method\): token-has-a-second-left observed seconds_left = "
        r"\d+(\.\d+)?, tolerance \{\"type\": \"range\", \"range\": \[0, 1\], "
        r"\"target\": \"seconds_left\"\}", line), line
    # the control's own log line says the same
    log = (tmp_path / "chaostoolkit.log").read_text()
    assert re.search(r"probe 'token-has-a-second-left' is outside its tolerance: observed "
                     r"seconds_left = \d", log), log[-3000:]


def test_a_probe_that_deviated_is_not_held_and_an_error_is_said_once(tmp_path: Path) -> None:
    """``on-queue`` held before the method and deviated after it: it is in the deviated line,
    not in the held one. An action refused by its argument check says ``ActivityFailed`` once
    (chaoslib puts the exception's name in the message it wraps, and again in the journal's
    traceback)."""
    probes = [  # Chaos Toolkit checks no probe after the first that deviates: on-queue last
        _probe("agent-exists", "get_user", {"type": "jsonpath", "path": "$.id", "expect": AGENT_1},
               user_id="${agent_1}"),
        _probe("on-queue", "presence_is", True, user_id="${agent_1}", expected="On Queue"),
    ]
    method = [
        _action("agent-takes-a-break", "chaosgenesys.users.actions", "set_presence",
                user_id="${agent_1}", presence="Break"),
        _action("negative-delay", "chaosgenesys.sandbox.actions", "inject_api_fault",
                path_pattern="^/api/v2/nothing$", delay_ms=-5),
    ]
    journal_path = _sandbox_run(probes, method, tmp_path)
    done = _verdict(str(journal_path))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert "deviated (after the method): on-queue observed false, tolerance true" in lines, lines
    (held,) = [x for x in lines if x.startswith("held: ")]
    assert held == "held: 2 check(s) of 1 probe(s) (agent-exists)", held
    (failed,) = [x for x in lines if x.startswith("failed method action")]
    assert failed == ("failed method action negative-delay: chaoslib.exceptions.ActivityFailed: "
                      "delay_ms must be at least 0, got -5"), failed
    data = json.loads(_verdict(str(journal_path), "--json").stdout)
    assert [a["error"] for a in data["failed_actions"]] == [
        "chaoslib.exceptions.ActivityFailed: delay_ms must be at least 0, got -5"]
    log = (journal_path.parent / "chaostoolkit.log").read_text()
    assert "'negative-delay' never applied (chaoslib.exceptions.ActivityFailed: delay_ms" in log
    ours = [line for line in log.splitlines() if "Verdict" in line]
    assert ours and not [x for x in ours if "ActivityFailed: chaoslib.exceptions" in x], ours
