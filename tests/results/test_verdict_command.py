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

from tests.controls.runner import action, chaos_run

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
    """``chaos run --var fault_seconds:int=2`` on an experiment whose configuration says 30: the
    journal keeps ``"${fault_seconds}"`` and the configuration's 30 (Chaos Toolkit records
    neither the --var nor the arguments it resolved); the fault ran 2 s (the run goes on 3 s
    after it: a sandbox fault ends with the run at the latest, its sandbox stops then), and
    that is the window the verdict, its JSON and the report's timeline give."""
    on_queue = _probe("on-queue", "presence_is", True, user_id="${agent_1}",
                      expected="On Queue")
    fault = action("slow-nothing-for-a-while", "chaosgenesys.sandbox.actions",
                    "inject_api_fault", path_pattern="^/api/v2/nothing-reads-this$",
                    delay_ms=10, duration="${fault_seconds}")
    fault["pauses"] = {"after": 3}
    journal_path = _sandbox_run([on_queue], [fault], tmp_path, "fault_seconds:int=2",
                                fault_seconds=30)
    journal = json.loads(journal_path.read_text())
    assert journal["experiment"]["configuration"]["fault_seconds"] == 30  # what it keeps
    (item,) = journal["run"]
    assert item["activity"]["provider"]["arguments"]["duration"] == "${fault_seconds}"

    done = _verdict(str(journal_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert ": 2.0 s, ended by its duration (2 s)" in done.stdout, done.stdout
    assert "(30 s)" not in done.stdout
    data = json.loads(_verdict(str(journal_path), "--json").stdout)
    (window,) = data["faults"]
    assert window["seconds"] == 2.0 and window["ended_by"] == "its duration (2 s)", window

    from chaosgenesys.results.report import html_report
    from chaosgenesys.results.timeline import timeline

    drawn = timeline(journal)
    (band,) = drawn["faults"]
    assert abs(band["end"] - band["start"] - 2.0) < 1e-6, band  # the band the report draws
    assert "<td>2.000 s</td>" in html_report(drawn, "<svg></svg>")


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
        action("agent-takes-a-break", "chaosgenesys.users.actions", "set_presence",
                user_id="${agent_1}", presence="Break"),
        action("negative-delay", "chaosgenesys.sandbox.actions", "inject_api_fault",
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


# -- what a second walkthrough found: the controls' lines and the kill switch's windows ---------

KILLSWITCH = "chaosgenesys.controls.killswitch"


def _control(name: str, module: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "provider": {"type": "python", "module": module,
                                       "arguments": arguments}}


def _run(experiment: dict[str, Any], tmp_path: Path, *options: str) -> dict[str, Any]:
    """``chaos run [options] experiment.json`` as a user runs it; the journal it wrote."""
    import os

    path, journal = tmp_path / "experiment.json", tmp_path / "journal.json"
    path.write_text(json.dumps(experiment, indent=1))
    done = subprocess.run(
        [str(Path(sys.executable).with_name("chaos")), "--no-version-check", "--log-file",
         str(tmp_path / "chaostoolkit.log"), "run", *options, "--journal-path", str(journal),
         str(path)],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    assert journal.exists(), done.stdout + done.stderr
    return dict(json.loads(journal.read_text()))


def _extension(journal: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [e for e in journal["experiment"].get("extensions") or [] if e["name"] == name]
    return dict(found)


def test_a_safeguard_the_run_stopped_before_never_said_the_queue_was_isolated(
    tmp_path: Path,
) -> None:
    """docs/real-org.md's controls, fake credentials, an API that does not answer, ``chaos run
    --dry=activities``: the preflight refuses, so the safeguard never checks the queue. Its
    journal entry says so (``last_check: null``), and so must the verdict."""
    import socket

    with socket.socket() as unused:  # a port nothing listens on: no network, as in the walk
        unused.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{unused.getsockname()[1]}"
    experiment = {
        "title": "a real org, dry", "description": "the preflight refuses",
        "configuration": {"genesys_api_url": closed, "genesys_login_url": closed,
                          "genesys_timeout": 2, "agent_1": AGENT_1,
                          "chaos_queue": "7c1d2a90-0000-4000-8000-0000000000aa"},
        "secrets": {"genesys": {"client_id": "fake-client", "client_secret": "fake-secret"}},
        "controls": [
            VERDICT,
            _control("genesys-preflight", "chaosgenesys.controls.preflight",
                     user_ids=["${agent_1}"], queue_id="${chaos_queue}"),
            _control("chaos-queue-safeguard", "chaosgenesys.controls.safeguard",
                     queue_id="${chaos_queue}", user_ids=["${agent_1}"]),
            _control("genesys-killswitch", KILLSWITCH),
        ],
        "method": [_probe("presence", "get_presence", None, user_id="${agent_1}")],
    }
    journal = _run(experiment, tmp_path, "--dry=activities")
    assert journal["status"] == "interrupted"
    guard = _extension(journal, "chaosgenesys-safeguard")
    assert guard["refused"] is None and guard["last_check"] is None, guard
    done = _verdict(str(tmp_path / "journal.json"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert any(x.startswith("preflight: REFUSED: region ") for x in lines), lines
    assert "safeguard: not checked (the run stopped before it)" in lines, lines
    assert "isolated" not in done.stdout


def test_a_fault_the_kill_switch_reverted_ends_at_the_trip(tmp_path: Path) -> None:
    """The users API 1,500 ms slower for 30 s; the kill switch (p99 over 500 ms for 1 s) trips
    a few seconds in and removes the fault. Its window ends there, by the kill switch, in the
    verdict, its JSON and the report's band: not at its 30 s."""
    slow = action("users-api-slow", "chaosgenesys.sandbox.actions", "inject_api_fault",
                   path_pattern="/api/v2/users", delay_ms=1500, duration=30)
    read = _probe("read-presence", "get_presence", None, user_id="${agent_1}")
    read["pauses"] = {"after": 20}
    experiment = {
        "title": "the kill switch ends the fault", "description": "a slow users API",
        "configuration": {"agent_1": AGENT_1},
        "controls": [VERDICT, SANDBOX, _control(
            "genesys-killswitch", KILLSWITCH, max_api_p99_ms=500, api_window_seconds=1,
            check_interval=0.1, stop_immediately=True)],
        "method": [slow, read],
    }
    journal = _run(experiment, tmp_path)
    assert journal["status"] == "interrupted"
    switch = _extension(journal, "chaosgenesys-killswitch")
    assert switch["tripped"] is True, switch
    fault_id = journal["run"][0]["output"]["id"]
    (cleared,) = [r for r in switch["reverted"] if r["kind"] == "sandbox"]
    assert cleared["fault_ids"] == [fault_id], cleared  # which fault the trip removed, and when
    assert switch["tripped_at"] <= cleared["at"] < switch["tripped_at"] + 2, cleared
    from chaosgenesys.results.journal import parse_time

    start = parse_time(journal["run"][0]["start"])
    assert start is not None
    lasted = round(cleared["at"] - start, 3)
    assert lasted < 15, lasted

    done = _verdict(str(tmp_path / "journal.json"))
    (line,) = [x for x in done.stdout.splitlines() if "users-api-slow" in x]
    assert line.endswith(f": {lasted} s, ended by the kill switch"), line
    data = json.loads(_verdict(str(tmp_path / "journal.json"), "--json").stdout)
    (window,) = data["faults"]
    assert window["seconds"] == lasted and window["ended_by"] == "the kill switch", window

    from chaosgenesys.results.timeline import timeline

    (band,) = timeline(journal)["faults"]
    assert abs(band["end"] - cleared["at"]) < 1e-3, band  # the report's band ends at the trip


def test_a_proxy_rule_the_kill_switch_s_final_revert_ended(tmp_path: Path) -> None:
    """A proxy rule of 30 s in a run of about a second: nothing removes it, the kill switch's
    revert after the run stops the proxy it is in (its journal names the proxy's fault id,
    which ``start_proxy`` answered). The rule lasted until then, not 30 s."""
    start = action("start-proxy", "chaosgenesys.proxy.actions", "start_proxy",
                    port=0, confdir=str(tmp_path / "ca"))
    rule = action("slow-nothing", "chaosgenesys.proxy.actions", "delay_requests",
                   path_pattern="^/nothing", delay_ms=10, duration=30)
    for step in (start, rule):  # a proxy of its own name: the rule goes to it
        step["provider"]["arguments"]["name"] = "walk"
    rule["pauses"] = {"after": 1}
    experiment = {
        "title": "a proxy rule", "description": "ended by the kill switch after the run",
        "controls": [VERDICT, _control("genesys-killswitch", KILLSWITCH, check_interval=0.1)],
        "method": [start, rule],
    }
    journal = _run(experiment, tmp_path)
    assert journal["status"] == "completed", journal["run"]
    switch = _extension(journal, "chaosgenesys-killswitch")
    (stopped,) = switch["reverted_after"]
    assert stopped["id"] == journal["run"][0]["output"]["fault_id"], stopped
    data = json.loads(_verdict(str(tmp_path / "journal.json"), "--json").stdout)
    (window,) = data["faults"]
    assert window["ended_by"] == "the kill switch's revert after the run", window
    assert 1 <= window["seconds"] < 10, window


def test_a_kill_switch_that_refused_the_run_is_in_its_journal_and_its_verdict(
    tmp_path: Path,
) -> None:
    """``chaos run --var p99:int=-5`` with ``max_api_p99_ms: "${p99}"``: the kill switch refuses
    to arm. The journal says why, and the verdict prints it; the safeguard, declared after it
    here, never checked, and the verdict says that too."""
    experiment = {
        "title": "a kill switch with a bad limit", "description": "refused",
        "configuration": {"agent_1": AGENT_1, "p99": 500,
                          "chaos_queue": "7c1d2a90-0000-4000-8000-0000000000aa"},
        "controls": [
            VERDICT, SANDBOX,
            _control("genesys-killswitch", KILLSWITCH, max_api_p99_ms="${p99}"),
            _control("chaos-queue-safeguard", "chaosgenesys.controls.safeguard",
                     queue_id="${chaos_queue}", user_ids=["${agent_1}"]),
        ],
        "method": [_probe("presence", "get_presence", None, user_id="${agent_1}")],
    }
    journal = _run(experiment, tmp_path, "--var", "p99:int=-5")
    assert journal["status"] == "interrupted" and journal["run"] == []
    reason = "killswitch control: max_api_p99_ms must be greater than 0, got -5"
    switch = _extension(journal, "chaosgenesys-killswitch")
    assert switch["refused"] == reason, switch
    done = _verdict(str(tmp_path / "journal.json"))
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert f"kill switch: REFUSED: {reason}" in lines, lines
    assert "safeguard: not checked (the run stopped before it)" in lines, lines
    data = json.loads(_verdict(str(tmp_path / "journal.json"), "--json").stdout)
    assert data["controls"]["killswitch"]["refused"] == reason


def test_a_preflight_refused_for_its_own_arguments_says_why_in_the_verdict(
    tmp_path: Path,
) -> None:
    """``chaos run --var agent_1=a/b`` with ``user_ids: ["${agent_1}"]``: the preflight refuses
    its own argument before it checks anything. The journal and the verdict say why."""
    experiment = {
        "title": "a preflight with a bad user id", "description": "refused",
        "configuration": {"agent_1": AGENT_1},
        "controls": [
            VERDICT, SANDBOX,
            _control("genesys-preflight", "chaosgenesys.controls.preflight",
                     user_ids=["${agent_1}"]),
        ],
        "method": [_probe("presence", "get_presence", None, user_id=AGENT_1)],
    }
    journal = _run(experiment, tmp_path, "--var", "agent_1=a/b")
    assert journal["status"] == "interrupted" and journal["run"] == []
    preflight = _extension(journal, "chaosgenesys-preflight")
    assert preflight["refused"].startswith("preflight control: user_ids"), preflight
    assert "'a/b'" in preflight["refused"], preflight
    lines = _verdict(str(tmp_path / "journal.json")).stdout.splitlines()
    assert f"preflight: REFUSED: {preflight['refused']}" in lines, lines
