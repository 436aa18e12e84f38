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

from tests.agent.helpers import agent_run_alive, fast_options, wait_for
from tests.conftest import AGENT_1, AGENT_2
from tests.faults.runs import DETACH, is_descendant, other_process

OTHER = DETACH + """
from chaosgenesys.agent import actions
configuration, secrets, options = (json.loads(arg) for arg in sys.argv[1:4])
run = actions.start_agents([sys.argv[4]], "", "resilient", options=options,
                           configuration=configuration, secrets=secrets)
print(run["id"], os.getpid(), flush=True)
time.sleep(120)
"""


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
        assert agent_run_alive(theirs) and agent_run_alive(mine)
        with pytest.raises(ActivityFailed, match="scope must be one of"):
            actions.stop_agents(scope="everyone")
        assert agent_run_alive(mine)
        assert actions.stop_agents()["stopped"] == [mine]
        assert wait_for(lambda: not agent_run_alive(mine), 5)
        assert agent_run_alive(theirs)
        assert actions.stop_agents()["stopped"] == []
        assert actions.stop_agents(scope="all")["stopped"] == [theirs]
        assert wait_for(lambda: not agent_run_alive(theirs), 5)
