"""``chaosgenesys agent`` as a process, and the activities that start, read and stop it."""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.helpers import fast_options, wait_for
from tests.conftest import AGENT_1, AGENT_2, CLIENT_ID, CLIENT_SECRET
from tests.fresh_imports import imported_by

ROOT = Path(__file__).resolve().parents[2]


def test_register_adds_the_agent_command() -> None:
    from chaosgenesys.commands import agent

    parser = argparse.ArgumentParser()
    agent.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["agent", "--user", "a", "--user", "b", "--mode", "naive",
                              "--proxy", "http://127.0.0.1:3128"])
    assert args.user == ["a", "b"] and args.mode == "naive" and args.handler is not None


def test_cli_runs_agents_and_stops_on_sigterm(fast_sandbox: Any, tmp_path: Path) -> None:
    status = tmp_path / "status.json"
    log = tmp_path / "events.jsonl"
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYSCLOUD_")}
    env.update(GENESYSCLOUD_OAUTHCLIENT_ID=CLIENT_ID, GENESYSCLOUD_OAUTHCLIENT_SECRET=CLIENT_SECRET)
    command = [sys.executable, "-m", "chaosgenesys.agent", "--api-url", fast_sandbox.url,
               "--user", AGENT_1, "--user", AGENT_2, "--log", str(log),
               "--status-file", str(status), "--json",
               "--option", "ping_interval=0.25", "--option", "heartbeat_interval=0.2"]
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        ready = json.loads(process.stdout.readline())
        assert ready["ready"] is True and ready["users"] == [AGENT_1, AGENT_2]
        assert CLIENT_SECRET not in " ".join(command)
        fast_sandbox.close_notification_sockets(code=1001)
        assert wait_for(lambda: all(
            a["reconnects"] == 1
            for a in json.loads(status.read_text())["agents"].values()), 5)
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, err
    assert json.loads(out.strip().splitlines()[-1])["stopped"] is True
    final = json.loads(status.read_text())
    assert final["running"] is False
    events = [json.loads(line) for line in log.read_text().splitlines()]
    kinds = {e["event"] for e in events}
    assert {"start", "token", "connect", "disconnect", "reconnect", "stop"} <= kinds
    assert CLIENT_SECRET not in log.read_text() and CLIENT_SECRET not in err


def test_importing_the_activities_does_not_import_aiohttp() -> None:
    modules = ["chaosgenesys.agent.actions", "chaosgenesys.agent.probes"]
    assert imported_by(modules, ("aiohttp",)) == []


def test_start_summary_stop_end_to_end(
    fast_sandbox: Any, configuration: Any, secrets: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent import actions, probes

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {**configuration, "genesys_api_url": fast_sandbox.url,
                     "genesys_login_url": fast_sandbox.url}
    run = actions.start_agents([AGENT_1], "", "resilient", options=fast_options(),
                               configuration=configuration, secrets=secrets)
    try:
        assert run["users"] == [AGENT_1] and run["pid"] > 0
        summary = probes.agent_summary(AGENT_1, configuration=configuration, secrets=secrets)
        assert summary["running"] and summary["connected"] and summary["reconnects"] == 0
        fast_sandbox.close_notification_sockets(code=1001)
        assert wait_for(lambda: probes.agent_summary(AGENT_1)["reconnects"] == 1, 5)
        latency = probes.agent_summary(AGENT_1)["reconnect_latency_ms"]
        assert 2000 <= latency["max"] <= 3000  # the streaming client's first delay: 2 s
        # the path, from the desktop's own view: no socket for the ~2 s of the reconnect
        assert probes.desktop_max_reconnect_latency(AGENT_1) == latency["max"]
        assert wait_for(lambda: probes.agent_summary(AGENT_1)["off_queue_now"] is False, 3)
        longest = probes.desktop_longest_off_queue(AGENT_1)
        assert 2.0 <= longest <= latency["max"] / 1000 + 1.0, (longest, latency)
        assert probes.agent_summary(AGENT_1)["off_queue_periods"] == 1
        # over a window: the last 10 minutes hold the same stretch and reconnect ...
        assert abs(probes.desktop_longest_off_queue(AGENT_1, 600) - longest) < 0.6
        assert probes.desktop_max_reconnect_latency(AGENT_1, 600) == latency["max"]
        # ... the last second, once it has passed, neither
        time.sleep(1.5)
        assert probes.desktop_longest_off_queue(AGENT_1, window_seconds=1) == 0.0
        assert probes.desktop_max_reconnect_latency(AGENT_1, window_seconds=1) == 0.0
        with pytest.raises(ActivityFailed, match="window_seconds"):
            probes.desktop_longest_off_queue(AGENT_1, window_seconds=-1)
    finally:
        stopped = actions.stop_agents(configuration=configuration, secrets=secrets)
    assert stopped["stopped"] == [run["id"]]
    final = probes.agent_summary(AGENT_1)
    assert final["running"] is False and final["reconnects"] == 1
    assert actions.stop_agents()["stopped"] == []
    with pytest.raises(Exception, match="no synthetic agent"):
        probes.agent_summary(AGENT_2)


def test_the_duration_counts_from_when_every_agent_is_ready(
    fast_sandbox: Any, configuration: Any, secrets: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A login slower than the duration: the window opens once the agents are ready, the fault
    record's deadline follows the process's own, and the process stops itself then."""
    from chaosgenesys.agent import actions, process
    from chaosgenesys.faults import registry

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {**configuration, "genesys_api_url": fast_sandbox.url,
                     "genesys_login_url": fast_sandbox.url}
    fast_sandbox.inject_fault(r"^/oauth/token$", delay_ms=2500, count=1)
    asked = time.time()
    run = actions.start_agents([AGENT_1], "", "resilient", duration=2, options=fast_options(),
                               configuration=configuration, secrets=secrets)
    try:
        status = json.loads(Path(run["status"]).read_text())
        ready_at, deadline = status["all_ready_at"], status["deadline"]
        assert asked + 2.5 <= ready_at <= time.time(), (asked, status)
        assert deadline == pytest.approx(ready_at + 2, abs=0.01)
        (record,) = registry.mine(kind="agents")
        assert record.deadline == pytest.approx(deadline, abs=0.01)
        (mine,) = [r for r in process.list_runs() if r["id"] == run["id"]]
        assert wait_for(
            lambda: not process.process_alive(int(mine["pid"]), mine["start_time"]), 10
        )
        ended = time.time()
        # not before its deadline; after it, a 0.5 s tick, 1 s for the agents to log off, the
        # exit, on a machine that may be busy
        assert deadline <= ended <= deadline + 5, (deadline, ended)
    finally:
        actions.stop_agents()


def test_start_agents_checks_its_arguments() -> None:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent import actions

    with pytest.raises(ActivityFailed, match="mode"):
        actions.start_agents([AGENT_1], mode="careless")
    with pytest.raises(ActivityFailed, match="proxy"):
        actions.start_agents([AGENT_1], proxy="socks5://x")
    with pytest.raises(ActivityFailed, match="unknown agent option"):
        actions.start_agents([AGENT_1], options={"pingg": 1})
    with pytest.raises(ActivityFailed, match="netns"):
        actions.start_agents([AGENT_1], netns="no-such-namespace-xyz")
