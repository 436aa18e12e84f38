"""The kill switch sees sustained slowness when the desktop's calls are sparse.

A synthetic agent syncs every 4 s (one ``GET /api/v2/users/{id}`` a sync) and the sandbox
makes that call take 3 s, with a 3 s window and a 500 ms limit. Between two calls the window
holds no completed call: a check without calls keeps the last verdict, and the call still in
flight past the limit counts as slow. The switch must trip within the window + 2 s (the
issue's bound) after the first slow call crossed the limit: the time it crossed is read back
from the desktop's own record of that call (its status file), the trip from the journal.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.agent.runtime import list_runs, read_json
from chaosgenesys.faults.registry import ENV_DIR
from tests.conftest import AGENT_1
from tests.controls.runner import chaos_run
from tests.controls.test_killswitch import _experiment
from tests.faults.conftest import stop_guardians

LIMIT_MS = 500
WINDOW_S = 3
DELAY_MS = 3000
SYNC_S = 4


@pytest.fixture
def runtime(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    monkeypatch.setenv(ENV_DIR, str(directory))  # list_runs reads the run's agent folders
    yield directory
    stop_guardians(directory)


def test_sparse_slow_calls_trip_the_switch_within_the_window_plus_two_seconds(
    tmp_path: Path, runtime: Path
) -> None:
    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=0,
        probes=0,
        max_api_p99_ms=LIMIT_MS,
        api_window_seconds=WINDOW_S,
        max_websocket_error_rate=1,
        check_interval=0.2,
        stop_immediately=True,
    )
    sandbox_control = experiment["controls"][0]["provider"]["arguments"]
    sandbox_control.update({"agents": [AGENT_1], "agent_options": {"sync_interval": SYNC_S}})
    slow: dict[str, Any] = {
        "type": "action",
        "name": "slow-user-reads",
        "provider": {
            "type": "python",
            "module": "chaosgenesys.sandbox.actions",
            "func": "inject_api_fault",
            "arguments": {
                "path_pattern": "^/api/v2/users/[^/]+$",
                "method": "GET",
                "delay_ms": DELAY_MS,
            },
        },
        "pauses": {"after": 25},
    }
    experiment["method"].append(slow)
    run = chaos_run(experiment, tmp_path, runtime)
    entry = run.extension("chaosgenesys-killswitch")
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert entry["tripped"] is True and "API latency p99" in entry["reason"], entry

    [agents] = [r for r in list_runs() if r.get("users") == [AGENT_1]]
    status = read_json(Path(str(agents["status"])))
    assert status is not None
    slow_calls = [call for call in status["api_calls"] if call[1] >= DELAY_MS]
    assert slow_calls, status["api_calls"]
    done_at, latency_ms = float(slow_calls[0][0]), float(slow_calls[0][1])
    crossed_at = done_at - latency_ms / 1000 + LIMIT_MS / 1000
    tripped_after = float(entry["tripped_at"]) - crossed_at
    # Sparse: the slow calls are at least a sync interval apart, so no window holds two.
    starts = [float(c[0]) - float(c[1]) / 1000 for c in slow_calls]
    assert all(b - a >= SYNC_S for a, b in itertools.pairwise(starts)), slow_calls
    assert 0 < tripped_after <= WINDOW_S + 2, (tripped_after, entry, slow_calls)
    assert not marker.exists()
