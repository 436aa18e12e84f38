"""``chaosgenesys.controls.tokens`` in a real ``chaos run``: the tooling's token, a synthetic
desktop's and a browser session the run logged in are all revoked when the run ends, and the
sandbox (which outlives the run here) holds no valid token of theirs afterwards."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.faults.registry import ENV_DIR
from chaosgenesys.sandbox import Sandbox
from tests.conftest import AGENT_1, AGENT_2, CLIENT_ID, CLIENT_SECRET, make_seed
from tests.controls.runner import chaos_run
from tests.controls.sandbox_tokens import active_tokens
from tests.faults.conftest import stop_guardians

DESKTOP_CLIENT = "chaosgenesys-desktop"


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    monkeypatch.setenv(ENV_DIR, str(directory))
    # the run's credentials come from the environment: nothing secret in the experiment
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_ID", CLIENT_ID)
    monkeypatch.setenv("GENESYSCLOUD_OAUTHCLIENT_SECRET", CLIENT_SECRET)
    yield directory
    stop_guardians(directory)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=make_seed(), heartbeat_interval=1.0) as running:
        yield running


def _experiment(url: str, controls: list[dict[str, Any]]) -> dict[str, Any]:
    python = {"type": "python"}
    return {
        "title": "no token the run obtained outlives it",
        "description": "tooling, a synthetic desktop and a browser session, then the end",
        "configuration": {"genesys_api_url": url, "genesys_login_url": url},
        "controls": controls,
        "method": [
            {"type": "action", "name": "desktop-1-logs-in", "provider": {
                **python, "module": "chaosgenesys.agent.actions", "func": "start_agents",
                "arguments": {"user_ids": [AGENT_1],
                              "options": {"ping_interval": 1, "heartbeat_interval": 1}}}},
            {"type": "action", "name": "desktop-2-logs-in-in-a-browser", "provider": {
                **python, "module": "chaosgenesys.browser.actions", "func": "start_observer",
                "arguments": {"open_url": f"{url}/desktop/?user={AGENT_2}"}}},
            {"type": "probe", "name": "tooling-reads-the-platform", "provider": {
                **python, "module": "chaosgenesys.users.probes", "func": "wait_for_presence",
                "arguments": {"user_id": AGENT_2, "expected": "On Queue", "timeout": 10}}},
            {"type": "probe", "name": "tokens-during-the-run", "provider": {
                **python, "module": "tests.controls.sandbox_tokens", "func": "active_tokens"}},
        ],
    }


TOKENS = {"name": "chaosgenesys-tokens",
          "provider": {"type": "python", "module": "chaosgenesys.controls.tokens"}}
VERDICT = {"name": "chaosgenesys-verdict",
           "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}}


def test_every_token_of_the_run_is_revoked_and_proved_dead(
    sandbox: Sandbox, runtime: Path, tmp_path: Path
) -> None:
    run = chaos_run(_experiment(sandbox.url, [VERDICT, TOKENS]), tmp_path, runtime)
    assert run.returncode == 0, run.output + run.log[-4000:]
    (during,) = [r["output"] for r in run.journal["run"] if r["activity"]["name"] ==
                 "tokens-during-the-run"]
    # the tooling's token and the synthetic desktop's (one client), the browser session's
    assert during[CLIENT_ID] >= 2 and during[DESKTOP_CLIENT] >= 1, during
    report = run.extension("chaosgenesys-tokens")
    assert report["still_working"] == 0 and report["problems"] == [], report
    assert report["desktops"]["revoked"] == 1 and report["tooling"]["revoked"] >= 1, report
    assert report["browsers"]["revoked"] >= 1, report
    assert report["revoked"] == sum(report[p]["revoked"] for p in ("browsers", "desktops",
                                                                    "tooling"))
    # proved from the platform's side too: not one valid token of theirs is left
    assert active_tokens({"genesys_api_url": sandbox.url}) == {CLIENT_ID: 0, DESKTOP_CLIENT: 0}
    assert "Tokens: " in run.log and "none still works" in run.log
    for text in (run.log, (tmp_path / "journal.json").read_text()):
        assert "chaos-secret" not in text and "access_token" not in text


def test_a_desktop_stopped_during_the_run_is_counted_with_its_revoked_token(
    sandbox: Sandbox, runtime: Path, tmp_path: Path
) -> None:
    # The method stops the desktop itself (as a kill switch's revert does): it revoked its
    # token as it stopped, and the control's count must say so, not "0 desktops".
    experiment = _experiment(sandbox.url, [VERDICT, TOKENS])
    experiment["method"] = [
        experiment["method"][0],
        {"type": "action", "name": "desktop-1-stops", "provider": {
            "type": "python", "module": "chaosgenesys.agent.actions", "func": "stop_agents"}},
    ]
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.returncode == 0, run.output + run.log[-4000:]
    report = run.extension("chaosgenesys-tokens")
    assert report["desktops"]["runs"] == 1 and report["desktops"]["revoked"] == 1, report
    assert report["still_working"] == 0 and report["problems"] == [], report
    assert active_tokens({"genesys_api_url": sandbox.url}) == {CLIENT_ID: 0, DESKTOP_CLIENT: 0}


def test_declared_after_the_sandbox_control_the_run_is_refused(
    runtime: Path, tmp_path: Path
) -> None:
    sandbox_control = {"name": "genesys-sandbox", "provider": {
        "type": "python", "module": "chaosgenesys.controls.sandbox"}}
    experiment = {
        "title": "misplaced", "description": "the token control after the sandbox",
        "controls": [sandbox_control, TOKENS],
        "method": [{"type": "probe", "name": "nothing", "provider": {
            "type": "python", "module": "os.path", "func": "exists",
            "arguments": {"path": "/"}}}],
    }
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.returncode != 0 and run.journal["status"] == "interrupted", run.log[-3000:]
    assert "before chaosgenesys.controls.sandbox" in run.log
    assert run.activities() == []


OWNER = """
import json, os, sys, time
from chaosgenesys.agent.actions import start_agents
configuration = json.loads(sys.argv[1])
run = start_agents([sys.argv[2]], options={"ping_interval": 1, "heartbeat_interval": 1},
                   configuration=configuration)
print(run["pid"], flush=True)
time.sleep(120)
"""


def test_a_run_killed_outright_still_revokes_its_desktops_tokens(
    sandbox: Sandbox, runtime: Path
) -> None:
    """SIGKILL on the process that started a synthetic desktop: the desktop notices its owner
    is gone (or the registry's guardian stops it) and revokes its token on the way out."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from tests.controls.runner import ROOT

    configuration = {"genesys_api_url": sandbox.url, "genesys_login_url": sandbox.url}
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, __import__("json").dumps(configuration), AGENT_1],
        stdout=subprocess.PIPE, text=True, env=env, cwd=ROOT,
    )
    try:
        assert owner.stdout is not None
        agent_pid = int(owner.stdout.readline())
        assert active_tokens(configuration)[CLIENT_ID] == 1  # the desktop's
        owner.send_signal(signal.SIGKILL)
        owner.wait(5)
        deadline = time.monotonic() + 15
        while Path(f"/proc/{agent_pid}").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not Path(f"/proc/{agent_pid}").exists(), "the desktop outlived its run"
        assert active_tokens(configuration)[CLIENT_ID] == 0
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
