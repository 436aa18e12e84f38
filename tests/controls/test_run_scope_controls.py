"""A real ``chaos run`` with the sandbox and kill switch controls leaves another run's faults.

The other run is an independent process sharing the registry directory (as two runs as root
share ``/run/chaosgenesys``). The run's after-experiment cleanup and its cleanup on an
interruption revert the run's own faults only.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.faults.registry import ENV_DIR, Registry
from tests.conftest import AGENT_1, make_seed
from tests.controls.runner import chaos_run
from tests.faults.conftest import REMOVE, stop_guardians
from tests.faults.runs import DETACH, other_process, other_run


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    monkeypatch.setenv(ENV_DIR, str(directory))
    yield directory
    stop_guardians(directory)


def _experiment(seed: Any, marker: Path) -> dict[str, Any]:
    return {
        "title": "one run never touches another",
        "description": "a run with a sandbox and a kill switch, beside another run",
        "controls": [
            {
                "name": "genesys-sandbox",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.sandbox",
                    "arguments": {"seed": seed},
                },
            },
            {
                "name": "genesys-killswitch",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.killswitch",
                    "arguments": {"check_interval": 0.2},
                },
            },
        ],
        "method": [
            {
                "type": "action",
                "name": "apply-fault",
                "provider": {
                    "type": "python",
                    "module": "tests.controls.faulty",
                    "func": "apply_marker",
                    "arguments": {"path": str(marker)},
                },
            }
        ],
    }


def test_a_run_interrupted_before_it_started_leaves_another_runs_fault(
    tmp_path: Path, runtime: Path
) -> None:
    theirs = tmp_path / "theirs"
    theirs.write_text("another run's fault")
    with other_run("agents", REMOVE, {"path": str(theirs)}) as other:
        # a seed the sandbox refuses when it starts (chaos validate does not read it)
        bad_seed = tmp_path / "bad-seed.yaml"
        bad_seed.write_text("users:\n  - {id: u, presense: Away}\n")
        experiment = _experiment(str(bad_seed), tmp_path / "never")
        run = chaos_run(experiment, tmp_path, runtime)
        assert run.journal["status"] == "interrupted", run.log[-3000:]
        assert run.activities() == []
        assert theirs.exists(), run.log[-3000:]
        assert [f.id for f in Registry(runtime).active()] == [other.fault_id]
        assert f"fault {other.fault_id}" not in run.log


def test_a_completed_run_reverts_its_fault_and_leaves_another_runs(
    tmp_path: Path, runtime: Path
) -> None:
    theirs, own = tmp_path / "theirs", tmp_path / "own"
    theirs.write_text("another run's fault")
    with other_run("marker", REMOVE, {"path": str(theirs)}) as other:
        run = chaos_run(_experiment(make_seed(), own), tmp_path, runtime)
        assert run.journal["status"] == "completed", run.log[-3000:]
        assert run.activities() == ["apply-fault"]
        entry = run.extension("chaosgenesys-killswitch")
        assert [(r["kind"], r["status"]) for r in entry["reverted_after"]] == [
            ("marker", "reverted")
        ]
        assert not own.exists()
        assert theirs.exists()
        assert [f.id for f in Registry(runtime).active()] == [other.fault_id]


#: Another run: its own sandbox, whose user reads take 300 ms, and a synthetic agent that
#: syncs every 0.2 s against it; once the agent has made a slow call, its WebSocket is closed
#: and refused.
OTHER_AGENTS = DETACH + """
from chaosgenesys.agent.actions import start_agents
from chaosgenesys.platform.settings import register_default_credentials
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.actions import close_notification_sockets, inject_api_fault
sandbox = Sandbox(seed=json.loads(sys.argv[1]), heartbeat_interval=1.0)
sandbox.start()
register_default_credentials(sandbox.url, sandbox.client_id, sandbox.client_secret)
config = {"genesys_api_url": sandbox.url, "genesys_login_url": sandbox.url}
run = start_agents([sys.argv[2]], options={"sync_interval": 0.2}, configuration=config)
inject_api_fault("^/api/v2/users/", delay_ms=300, configuration=config)
# Slow first: its agent makes a slow call (read back from its status file) before the refusal.
deadline = time.monotonic() + 20
while time.monotonic() < deadline:
    try:
        calls = json.load(open(run["status"]))["api_calls"]
    except (OSError, ValueError, KeyError):
        calls = []
    if any(call[1] >= 300 for call in calls):
        break
    time.sleep(0.05)
inject_api_fault("notifications|channels", status=503, configuration=config)
close_notification_sockets(code=1011, configuration=config)
print(run["id"], os.getpid(), flush=True)
time.sleep(120)
"""


def test_another_runs_slow_agents_do_not_trip_this_runs_switch(
    tmp_path: Path, runtime: Path
) -> None:
    with other_process(OTHER_AGENTS, json.dumps(make_seed()), AGENT_1) as other:
        experiment = _experiment(make_seed(), tmp_path / "own")
        experiment["controls"][1]["provider"]["arguments"] = {
            "max_api_p99_ms": 150,
            "api_window_seconds": 1,
            "websocket_window_seconds": 1,
            "check_interval": 0.1,
        }
        experiment["method"][0]["pauses"] = {"after": 3}
        run = chaos_run(experiment, tmp_path, runtime)
        assert run.journal["status"] == "completed", run.log[-3000:]
        entry = run.extension("chaosgenesys-killswitch")
        assert entry["tripped"] is False, entry
        assert entry["last_sample"]["websocket"]["agents"] == 0, entry
        assert entry["last_sample"]["api"]["agent_calls"] == 0, entry
        # The other run's agents were there, slow and disconnected, all along.
        from chaosgenesys.agent.runtime import list_runs, read_json

        [theirs] = [r for r in list_runs() if r.get("id") == other.fault_id]
        status = read_json(Path(str(theirs["status"])))
        assert status is not None and status.get("running"), status
        assert any(call[1] >= 300 for call in status["api_calls"]), status["api_calls"]


def test_a_kill_switch_trip_leaves_another_runs_fault(tmp_path: Path, runtime: Path) -> None:
    from tests.controls.test_killswitch import _experiment as tripping_experiment

    theirs, own = tmp_path / "theirs", tmp_path / "own"
    theirs.write_text("another run's throttle")
    with other_run("htb", REMOVE, {"path": str(theirs)}) as other:
        experiment = tripping_experiment(
            own, slow_ms=300, probes=15, max_api_p99_ms=150, api_window_seconds=1,
            check_interval=0.1,
        )
        run = chaos_run(experiment, tmp_path, runtime)
        assert run.journal["status"] == "interrupted", run.log[-3000:]
        entry = run.extension("chaosgenesys-killswitch")
        assert entry["tripped"] is True
        assert [(r["kind"], r["status"]) for r in entry["reverted"] if r["id"]] == [
            ("marker", "reverted")
        ]
        assert not own.exists()
        assert theirs.exists()
        assert [f.id for f in Registry(runtime).active()] == [other.fault_id]
