"""examples/pipeline.sh, as a CI job runs it (docs/pipelines.md): exit 0 when the hypothesis
holds, 1 with the probe that caught a bad desktop, 3 when the preflight fails; nothing left
recorded afterwards and no secret in what it prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import without_net_admin

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "examples" / "pipeline.sh"


def _pipeline(
    tmp_path: Path, *args: str, drop_net_admin: bool = False, **env: str
) -> subprocess.CompletedProcess[str]:
    command = ["bash", str(SCRIPT), *args]
    if drop_net_admin:
        command = without_net_admin(command)
    return subprocess.run(
        command,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={
            **os.environ,
            "RESULTS": str(tmp_path / "results"),
            "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime"),
            "CHAOSGENESYS_BIN": str(Path(sys.executable).parent),
            **env,
        },
    )


def _verdict(done: subprocess.CompletedProcess[str]) -> list[str]:
    return [line for line in done.stdout.splitlines() if line.startswith("verdict: ")]


def _nothing_recorded(tmp_path: Path) -> None:
    assert list((tmp_path / "runtime").glob("*.json")) == []


@dataclass
class Job:
    """A pipeline run started in the background, with its own results and runtime dirs."""

    folder: Path
    future: Future[subprocess.CompletedProcess[str]]

    def done(self) -> subprocess.CompletedProcess[str]:
        return self.future.result(timeout=300)


@pytest.fixture(scope="module")
def jobs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Job]]:
    """The resilient and the naive job, both started at once (each about 15 s of waiting on
    the desktop's timers): the module's two long runs overlap instead of adding up."""
    pool = ThreadPoolExecutor(max_workers=2)
    started = {}
    for mode in ("resilient", "naive"):
        folder = tmp_path_factory.mktemp(f"pipeline-{mode}")
        started[mode] = Job(folder, pool.submit(
            _pipeline, folder, "examples/websocket-close.json", "--var", f"agent_mode={mode}"))
    yield started
    pool.shutdown(wait=True)


def test_a_resilient_desktop_passes(jobs: dict[str, Job]) -> None:
    tmp_path = jobs["resilient"].folder
    done = jobs["resilient"].done()
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # the desktop's and the tooling's tokens revoked at the end (chaosgenesys.controls.tokens)
    assert _verdict(done) == ["verdict: status=completed deviated=False",
                              "verdict: tokens revoked=2 still_working=0"]
    assert "every check passed" in done.stdout and "nothing to clean up" in done.stdout
    assert (tmp_path / "results" / "journal.json").is_file()
    assert (tmp_path / "results" / "chaostoolkit.log").is_file()
    _nothing_recorded(tmp_path)
    assert "chaos-secret" not in done.stdout + done.stderr


def test_a_naive_desktop_fails_the_job_naming_the_probe(jobs: dict[str, Job]) -> None:
    tmp_path = jobs["naive"].folder
    done = jobs["naive"].done()
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    verdict = _verdict(done)
    assert verdict[0] == "verdict: status=completed deviated=True", verdict
    assert any("api-shows-agent-1-on-queue did not hold" in line for line in verdict), verdict
    _nothing_recorded(tmp_path)


def test_a_fault_that_never_applied_fails_the_job_naming_it(tmp_path: Path) -> None:
    experiment = tmp_path / "broken-fault.json"
    experiment.write_text(
        json.dumps(
            {
                "title": "a fault that cannot apply",
                "description": "the injection fails; the hypothesis holds because nothing happened",
                "controls": [
                    {"name": "genesys-sandbox", "provider": {
                        "type": "python", "module": "chaosgenesys.controls.sandbox",
                        "arguments": {"seed": "examples/seed.yaml"}}},
                    {"name": "chaosgenesys-verdict", "provider": {
                        "type": "python", "module": "chaosgenesys.controls.verdict"}},
                ],
                "steady-state-hypothesis": {"title": "agent 1 On Queue", "probes": [
                    {"type": "probe", "name": "on-queue", "tolerance": True, "provider": {
                        "type": "python", "module": "chaosgenesys.users.probes",
                        "func": "presence_is", "arguments": {
                            "user_id": "0b6b3c5e-0000-4000-8000-000000000001",
                            "expected": "On Queue"}}}]},
                "method": [
                    {"type": "action", "name": "slow-oauth", "provider": {
                        "type": "python", "module": "chaosgenesys.sandbox.actions",
                        "func": "inject_api_fault",
                        "arguments": {"path_pattern": "(oauth", "delay_ms": 5000}}}],
            }
        )
    )
    done = _pipeline(tmp_path, str(experiment))
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-3000:]
    verdict = _verdict(done)
    assert verdict[0] == "verdict: status=failed deviated=False", verdict
    assert any(
        line.startswith("verdict: method action slow-oauth never applied:")
        and "path_pattern" in line
        for line in verdict
    ), verdict
    _nothing_recorded(tmp_path)


def test_a_failed_preflight_runs_nothing(tmp_path: Path) -> None:
    """A network experiment on a machine (here: a process) without CAP_NET_ADMIN."""
    done = _pipeline(
        tmp_path,
        "examples/websocket-close.json",
        drop_net_admin=True,
        DOCTOR_GROUPS="platform network",
    )
    assert done.returncode == 3, done.stdout + done.stderr
    assert "preflight failed, nothing was run" in done.stderr
    assert "FAIL  CAP_NET_ADMIN" in done.stdout
    assert not (tmp_path / "results" / "journal.json").exists()


def test_a_run_that_never_starts_says_so_not_an_earlier_run_s_verdict(tmp_path: Path) -> None:
    # An earlier job's journal in the results folder: a run that never starts (here, an
    # experiment path that does not exist) writes none, and must not print that one's verdict.
    results = tmp_path / "results"
    results.mkdir()
    earlier = {"status": "completed", "deviated": True, "experiment": {},
               "steady_states": {"before": None, "after": None}}
    (results / "journal.json").write_text(json.dumps(earlier))
    done = _pipeline(tmp_path, "experiments/no-such-experiment.json")
    assert done.returncode == 1, done.stdout + done.stderr
    assert _verdict(done) == [
        "verdict: no journal: the run did not start (chaos exited 1; see "
        f"{results}/chaostoolkit.log)"
    ]
    assert "Traceback" not in done.stdout + done.stderr
    assert not (results / "journal.json").exists()
