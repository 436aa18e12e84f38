"""stop_agents() stops this run's synthetic agents, not another run's (unless scope="all").

The other run is an independent process (double-forked, not below the test process) that
starts its own agents with ``start_agents`` in the same runtime directory and stays alive, as a
second ``chaos run`` from another shell would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from tests.agent.helpers import fast_options, wait_for
from tests.conftest import AGENT_1, AGENT_2
from tests.faults.runs import is_descendant, other_process

OTHER = """
import json, os, sys, time
launcher = os.getpid()
if os.fork() > 0:
    os._exit(0)
os.setsid()
while os.getppid() == launcher:
    time.sleep(0.005)
from chaosgenesys.agent import actions
configuration, secrets, options = (json.loads(arg) for arg in sys.argv[1:4])
run = actions.start_agents([sys.argv[4]], "", "resilient", options=options,
                           configuration=configuration, secrets=secrets)
print(run["id"], os.getpid(), flush=True)
time.sleep(120)
"""


def _running(run_id: str) -> bool:
    from chaosgenesys.agent import process

    for record in process.list_runs():
        if record.get("id") == run_id:
            return process.process_alive(int(record["pid"]), str(record.get("start_time") or ""))
    return False


def test_stop_agents_leaves_another_runs_agents_unless_scope_all(
    fast_sandbox: Any, secrets: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaosgenesys.agent import actions

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {"genesys_api_url": fast_sandbox.url, "genesys_login_url": fast_sandbox.url}
    args = [json.dumps(configuration), json.dumps(secrets), json.dumps(fast_options()), AGENT_2]
    with other_process(OTHER, *args) as other:
        assert not is_descendant(other.pid, os.getpid())
        theirs = other.fault_id  # the other run's agent run id
        mine = actions.start_agents([AGENT_1], "", "resilient", options=fast_options(),
                                    configuration=configuration, secrets=secrets)["id"]
        assert _running(theirs) and _running(mine)
        with pytest.raises(ActivityFailed, match="scope must be one of"):
            actions.stop_agents(scope="everyone")
        assert _running(mine)
        assert actions.stop_agents()["stopped"] == [mine]
        assert wait_for(lambda: not _running(mine), 5)
        assert _running(theirs)
        assert actions.stop_agents()["stopped"] == []
        assert actions.stop_agents(scope="all")["stopped"] == [theirs]
        assert wait_for(lambda: not _running(theirs), 5)
