"""agent_summary() reads this run's synthetic desktop, not a newer one of another run.

Two runs start a desktop for the same user in one runtime directory, as two ``chaos run``
processes from two shells do: the other run is an independent process (double-forked, not below
the test process) that calls ``start_agents`` after this one, so its run is the newest. The
figures must still be this run's: a verdict never comes from another run. Against the embedded
sandbox, over real sockets; the desktops are real ``chaosgenesys agent`` processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from tests.agent.helpers import agent_run_alive, fast_options, wait_for
from tests.conftest import AGENT_1, AGENT_2, AGENT_3
from tests.faults.runs import DETACH, is_descendant, other_process

ROOT = Path(__file__).resolve().parents[2]

#: Another run: no descendant of the test process, it starts desktops for the users it is given
#: and stays alive with them.
OTHER = DETACH + """
from chaosgenesys.agent import actions
configuration, secrets, options, users = (json.loads(arg) for arg in sys.argv[1:5])
run = actions.start_agents(users, "", "resilient", options=options,
                           configuration=configuration, secrets=secrets)
print(run["id"], os.getpid(), flush=True)
time.sleep(120)
"""

#: A process this run starts (a child of the test process): it starts a desktop, says so, and
#: stays until its stdin closes.
CHILD = """
import json, sys
from chaosgenesys.agent import actions
configuration, secrets, options, users = (json.loads(arg) for arg in sys.argv[1:5])
run = actions.start_agents(users, "", "resilient", options=options,
                           configuration=configuration, secrets=secrets)
print(run["id"], run["pid"], flush=True)
sys.stdin.read()
"""


def test_agent_summary_reads_this_runs_desktop_when_another_runs_is_newer(
    fast_sandbox: Any, secrets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosgenesys.agent import actions, probes
    from chaosgenesys.agent.runtime import list_runs

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {"genesys_api_url": fast_sandbox.url, "genesys_login_url": fast_sandbox.url}
    mine = actions.start_agents([AGENT_1], "", "resilient", options=fast_options(),
                                configuration=configuration, secrets=secrets)["id"]
    try:
        # this run's desktop reconnects once (the streaming client's first delay: ~2 s) ...
        fast_sandbox.close_notification_sockets(code=1001, user_ids=[AGENT_1])
        assert wait_for(lambda: probes.agent_summary(AGENT_1)["reconnects"] == 1, 6)
        args = [json.dumps(configuration), json.dumps(secrets), json.dumps(fast_options()),
                json.dumps([AGENT_1, AGENT_2])]
        # ... the other run's desktop of the same user, started after it, never does
        with other_process(OTHER, *args) as other:
            assert not is_descendant(other.pid, os.getpid())
            theirs = other.fault_id  # the other run's agent run id
            assert list_runs()[0]["id"] == theirs != mine  # theirs is the newest run
            summary = probes.agent_summary(AGENT_1)
            assert (summary["run_id"], summary.get("this_run")) == (mine, True), summary
            assert summary["reconnects"] == 1 and summary["running"] is True
            for scope in ("run", "all", " RUN "):
                chosen = probes.agent_summary(AGENT_1, scope=scope)
                assert (chosen["run_id"], chosen["this_run"]) == (mine, True), scope
            # the sibling probes read the same desktop: this run's reconnect, not 0.0
            assert probes.desktop_max_reconnect_latency(AGENT_1) >= 1500.0
            assert probes.desktop_max_reconnect_latency(AGENT_1, scope="run") >= 1500.0
            assert probes.desktop_longest_off_queue(AGENT_1, scope="run") >= 1.5

            # a user this run has no desktop for: another run's, said so (scope "all", the
            # default), or none at all (scope "run")
            other_desktop = probes.agent_summary(AGENT_2)
            assert other_desktop["run_id"] == theirs and other_desktop["this_run"] is False
            assert probes.agent_summary(AGENT_2, scope="all")["run_id"] == theirs
            with pytest.raises(ActivityFailed, match=rf"scope 'run'.*{theirs}"):
                probes.agent_summary(AGENT_2, scope="run")
            with pytest.raises(ActivityFailed, match="scope 'run'"):
                probes.desktop_longest_off_queue(AGENT_2, scope="run")
            with pytest.raises(ActivityFailed, match="no synthetic agent"):
                probes.agent_summary(AGENT_3, scope="all")

            # bad input names the argument and the value, before anything is read
            for call in (probes.agent_summary, probes.desktop_longest_off_queue,
                         probes.desktop_max_reconnect_latency):
                with pytest.raises(ActivityFailed, match=r"scope must be one of .*'mine'"):
                    call(AGENT_1, scope="mine")  # type: ignore[operator]
            with pytest.raises(ActivityFailed, match="scope must be one of"):
                probes.agent_summary(AGENT_1, scope=None)  # type: ignore[arg-type]

            # stopped (its fault record reverted), this run's desktop is still the one read
            assert actions.stop_agents()["stopped"] == [mine]
            assert agent_run_alive(theirs)
            final = probes.agent_summary(AGENT_1)
            assert (final["run_id"], final["this_run"], final["running"]) == (mine, True, False)
            assert final["reconnects"] == 1
    finally:
        actions.stop_agents(scope="all")


def test_a_desktop_started_by_a_process_this_run_started_is_this_runs(
    fast_sandbox: Any, secrets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The run is this process and every process it started: a desktop started by a child is
    this run's, also once the child (and so its desktop) is gone, and beats a newer desktop of
    another run."""
    from chaosgenesys.agent import actions, probes

    runtime = tmp_path / "runtime"
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(runtime))
    configuration = {"genesys_api_url": fast_sandbox.url, "genesys_login_url": fast_sandbox.url}
    args = [json.dumps(configuration), json.dumps(secrets), json.dumps(fast_options()),
            json.dumps([AGENT_1])]
    env = {
        **os.environ,
        "CHAOSGENESYS_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    child = subprocess.Popen([sys.executable, "-c", CHILD, *args], cwd=ROOT, env=env,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdin is not None
        line = child.stdout.readline().split()
        assert len(line) == 2, "the child did not start its desktop"
        ours = line[0]
        with other_process(OTHER, *args) as other:
            theirs = other.fault_id
            summary = probes.agent_summary(AGENT_1)
            assert (summary["run_id"], summary.get("this_run")) == (ours, True), summary
            assert probes.agent_summary(AGENT_1, scope="run")["run_id"] == ours
            # the child ends: its desktop stops (its owner is gone), its record is reverted
            child.stdin.close()
            child.wait(timeout=20)
            assert wait_for(lambda: not agent_run_alive(ours), 10)
            after = probes.agent_summary(AGENT_1)
            assert (after["run_id"], after["this_run"], after["running"]) == (ours, True, False)
            assert agent_run_alive(theirs)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait(timeout=10)
        actions.stop_agents(scope="all")
