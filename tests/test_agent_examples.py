"""The synthetic agent examples hold with the resilient desktop and deviate with the naive one.

Each example runs twice with the real ``chaos run`` (a subprocess, as a user runs it, from the
repository root): with its configured ``agent_mode`` (resilient) it completes without deviating
and every activity succeeds; with ``--var agent_mode=naive`` it deviates, and the probe that
deviates is the one the example exists for (``docs/examples.md``). The two runs of an example
go in parallel, each with its own runtime directory (so ``agent_summary`` and ``stop_agents``
of one run never see the other's agents). No secret or token may reach a journal, the chaos
log or the agents' files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.test_examples import check_held

ROOT = Path(__file__).resolve().parent.parent
CHAOS = str(Path(sys.executable).with_name("chaos"))
AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"
#: The seeded client's secret; no file written by a run may contain it.
SECRET = "chaos-secret"
#: What would betray a token: an OAuth answer, an Authorization header, a JWT-looking string.
TOKEN_MARKERS = re.compile(r"access_token|Bearer\s+\S|eyJ[A-Za-z0-9_-]{10,}\.")


@dataclass(frozen=True)
class Example:
    file: str
    #: The hypothesis probe the naive desktop must fail.
    naive_fails: str
    #: Seconds a run may take (the test fails beyond).
    budget: float = 60.0


EXAMPLES = [
    Example("websocket-close.json", "api-shows-agent-1-on-queue"),
    Example("token-expiry.yaml", "desktop-was-never-logged-out"),
    Example("wrapup-persistence.yaml", "platform-wrap-up-not-overwritten"),
]


@dataclass
class Run:
    mode: str
    folder: Path
    process: subprocess.Popen[str]
    started: float
    seconds: float = 0.0
    output: str = ""

    @property
    def journal_path(self) -> Path:
        return self.folder / "journal.json"

    @property
    def log_path(self) -> Path:
        return self.folder / "chaostoolkit.log"

    def journal(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(self.journal_path.read_text())
        return data

    def log(self) -> str:
        return self.log_path.read_text() if self.log_path.exists() else ""


def _start(example: Path, mode: str, tmp_path: Path) -> Run:
    folder = tmp_path / mode
    folder.mkdir()
    env = dict(os.environ)
    env["CHAOSGENESYS_RUNTIME_DIR"] = str(folder / "runtime")
    for name in ("GENESYSCLOUD_OAUTHCLIENT_ID", "GENESYSCLOUD_OAUTHCLIENT_SECRET"):
        env.pop(name, None)
    command = [CHAOS, "--no-version-check", "--log-file", str(folder / "chaostoolkit.log"),
               "run", "--journal-path", str(folder / "journal.json")]
    if mode == "naive":
        command += ["--var", "agent_mode=naive"]
    command.append(str(example.relative_to(ROOT)))
    process = subprocess.Popen(
        command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    return Run(mode, folder, process, time.monotonic())


def _wait(run: Run, timeout: float) -> None:
    try:
        run.output, _ = run.process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.output, _ = run.process.communicate()
        pytest.fail(f"{run.mode} run still running after {timeout:.0f} s:\n{run.output[-3000:]}")
    run.seconds = time.monotonic() - run.started


def _failed_probe(journal: dict[str, Any]) -> dict[str, Any] | None:
    """The hypothesis probe that deviated (Chaos Toolkit stops at the first one)."""
    for phase in ("before", "after"):
        state = journal["steady_states"].get(phase) or {}
        for probe in state.get("probes") or []:
            if probe.get("tolerance_met") is False:
                return {"phase": phase, **probe}
    return None


def _describe(journal: dict[str, Any]) -> str:
    probe = _failed_probe(journal)
    if probe is None:
        return "no hypothesis probe deviated"
    output = json.dumps(probe.get("output"), default=str)[:600]
    return (
        f"probe {probe['activity']['name']!r} deviated ({probe['phase']} the method, "
        f"status {probe['status']}): output {output}"
    )


def _check_no_secret(run: Run) -> None:
    files = [run.journal_path, run.log_path]
    runtime = run.folder / "runtime"
    if runtime.exists():
        files += [p for p in runtime.rglob("*") if p.is_file() and not p.name.endswith(".lock")]
    assert len(files) > 2, f"the {run.mode} run left no agent files in {runtime}"
    for path in files:
        text = path.read_text(errors="replace")
        assert SECRET not in text, f"the client secret is in {path}"
        found = TOKEN_MARKERS.search(text)
        assert found is None, f"something like a token ({found.group(0)!r}) is in {path}"


@pytest.mark.parametrize("example", EXAMPLES, ids=lambda e: e.file)
def test_example_holds_with_the_resilient_agent_and_deviates_with_the_naive_one(
    example: Example, tmp_path: Path
) -> None:
    path = ROOT / "examples" / example.file
    runs = {mode: _start(path, mode, tmp_path) for mode in ("resilient", "naive")}
    for run in runs.values():
        _wait(run, example.budget + 30)

    resilient, naive = runs["resilient"], runs["naive"]
    journal = resilient.journal()
    context = f"{resilient.output[-2000:]}\n{resilient.log()[-4000:]}"
    assert journal["deviated"] is False, f"{_describe(journal)}\n{context}"
    check_held(path, resilient.journal_path, resilient.log_path,
               resilient.process.returncode or 0, resilient.output)
    assert resilient.seconds < example.budget, f"the resilient run took {resilient.seconds:.1f} s"

    journal = naive.journal()
    context = f"{naive.output[-2000:]}\n{naive.log()[-4000:]}"
    assert journal["status"] == "completed", context
    assert journal["deviated"] is True, (
        f"the naive agent did not make {example.file} deviate\n{context}"
    )
    assert naive.process.returncode == 1, context
    probe = _failed_probe(journal)
    assert probe is not None, context
    assert probe["activity"]["name"] == example.naive_fails, (
        f"expected {example.naive_fails!r} to deviate with the naive agent, but "
        f"{_describe(journal)}"
    )
    # a real deviation: the probe ran and measured, it did not crash
    assert probe["status"] == "succeeded", _describe(journal)
    assert probe["phase"] == "after", _describe(journal)
    assert naive.seconds < example.budget, f"the naive run took {naive.seconds:.1f} s"
    _check_naive_reason(example, probe, naive)

    for run in runs.values():
        _check_no_secret(run)


def _summary(run: Run) -> dict[str, Any]:
    """The agent's last summary, from the status file the agent process wrote."""
    statuses = list((run.folder / "runtime").rglob("status.json"))
    assert len(statuses) == 1, statuses
    agents: dict[str, Any] = json.loads(statuses[0].read_text())["agents"]
    summary: dict[str, Any] = agents[AGENT_1]
    return summary


def _check_naive_reason(example: Example, probe: dict[str, Any], run: Run) -> None:
    """The naive agent deviates for the reason the example documents."""
    summary = _summary(run)
    assert summary["mode"] == "naive"
    if example.file.startswith("websocket-close"):
        # it came back (quickly, without noticing anything) but never went back On Queue
        assert probe["output"] is False
        assert summary["reconnects"] >= 1 and summary["logged_out"] is False, summary
        assert summary["presence"] != "On Queue", summary
    elif example.file.startswith("token-expiry"):
        assert summary["logged_out"] is True, summary
        assert "401" in summary["logged_out_reason"], summary
        assert summary["token_refreshes"] == 1, summary  # the first token, never renewed
    else:
        # the stale local wrap-up went over the platform's record
        assert probe["output"]["status"] == "done", probe["output"]
        assert probe["output"]["name"] != "ININ-WRAP-UP-TIMEOUT", probe["output"]
        assert summary["consistency_violations"] >= 1, summary


def test_sandbox_control_starts_agents_in_the_configured_mode_and_stops_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent import probes
    from chaosgenesys.agent.process import process_alive
    from chaosgenesys.controls import sandbox as control

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    with pytest.raises(ActivityFailed, match="agent_mode must be one of resilient, naive"):
        control.configure_control(
            configuration={"agent_mode": "careless"}, secrets={}, agents=[AGENT_1]
        )
    assert control.running_sandbox() is None
    with pytest.raises(ActivityFailed, match="agents must be a list of user ids"):
        control.configure_control(configuration={}, secrets={}, agents=AGENT_1)  # type: ignore[arg-type]

    configuration: dict[str, Any] = {"agent_mode": "naive"}
    control.configure_control(
        configuration=configuration,
        secrets={},
        seed=str(ROOT / "examples/seed.yaml"),
        heartbeat_interval=1.0,
        session_grace_seconds=2,
        renew_on_queue=True,
        agents=[AGENT_1],
        agent_options={"ping_interval": 1, "heartbeat_interval": 1},
    )
    try:
        sandbox = control.running_sandbox()
        run = control.running_agents()
        assert sandbox is not None and run is not None
        assert run["mode"] == "naive" and run["users"] == [AGENT_1]
        platform = sandbox.platform()
        assert platform["session_grace_seconds"] == 2 and platform["renew_on_queue"] is True
        assert platform["usersWithSession"] == [AGENT_1]  # the desktop holds its session
        summary = probes.agent_summary(AGENT_1)
        assert summary["mode"] == "naive" and summary["connected"] is True
    finally:
        control.after_experiment_control(context={}, state={})
    assert control.running_sandbox() is None and control.running_agents() is None
    assert not process_alive(int(run["pid"]), "")
    assert probes.agent_summary(AGENT_1)["running"] is False
