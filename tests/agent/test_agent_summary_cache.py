"""An agent's summary is built again only after a figure changed; every change shows, and the
figures about now move with time."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from tests.agent.helpers import AgentsThread, wait_for
from tests.conftest import AGENT_1


def test_every_change_shows_in_the_next_summary() -> None:
    from chaosgenesys.agent.summary import AgentStats

    stats = AgentStats(user_id="U", mode="resilient")
    assert stats.to_dict()["reconnects"] == 0  # built once, kept
    stats.disconnects += 1
    stats.reconnected(2500.0)
    stats.api_call(429, 12.0)
    stats.last_error = "channel gone (404): x"
    stats.queue_state(True)
    stats.queue_state(False)
    summary = stats.to_dict()
    assert summary["disconnects"] == 1 and summary["reconnects"] == 1
    assert summary["reconnect_latency_ms"]["max"] == 2500.0
    assert [at_ms[1] for at_ms in summary["recent_reconnects"]] == [2500.0]
    assert summary["api_calls"] == 1 and summary["api_failures"] == 1
    assert summary["api_latency_ms"]["max"] == 12.0
    assert summary["last_error"] == "channel gone (404): x"
    assert summary["off_queue_now"] and summary["off_queue_periods"] == 1
    stats.queue_state(True)
    closed = stats.to_dict()
    assert not closed["off_queue_now"]
    assert closed["off_queue_stretches"][0][1] is not None  # the stretch's end, set in place


def test_the_figures_about_now_move_without_a_change() -> None:
    from chaosgenesys.agent.summary import AgentStats

    stats = AgentStats(user_id="U", mode="resilient")
    stats.token_expires_at = time.time() + 100
    stats.queue_state(True)
    stats.queue_state(False)
    before = stats.to_dict()
    time.sleep(0.05)
    after = stats.to_dict()
    assert after["token_expires_in"] < before["token_expires_in"]
    assert after["off_queue_current_seconds"] > before["off_queue_current_seconds"]
    assert after["longest_off_queue_seconds"] > before["longest_off_queue_seconds"]
    assert after["uptime_seconds"] > before["uptime_seconds"]


def test_a_summary_handed_out_is_the_callers() -> None:
    from chaosgenesys.agent.summary import AgentStats

    stats = AgentStats(user_id="U", mode="resilient")
    handed = stats.to_dict()
    handed["reconnects"] = 99
    assert stats.to_dict()["reconnects"] == 0


def test_the_status_file_keeps_up_with_calls_and_changes(
    fast_sandbox: Any, tmp_path: Path
) -> None:
    """The status file reuses what it encoded before (rows of calls still in the window,
    entries of agents that did not change); what changed or came shows in the next write,
    and agent_summary adds the figures about now."""
    from chaosgenesys.agent.manager import STATUS_INTERVAL

    status = tmp_path / "status.json"

    def written() -> dict[str, Any]:
        data: dict[str, Any] = json.loads(status.read_text())
        return data

    with AgentsThread(fast_sandbox.url, [AGENT_1], status_path=str(status)) as agents:
        assert wait_for(lambda: status.exists() and written()["agents"][AGENT_1]["ready"], 3)
        first = written()
        entry = first["agents"][AGENT_1]
        assert "uptime_seconds" not in entry and entry["started_at"] > 0
        assert entry["reconnects"] == 0 and first["api_calls"]
        time.sleep(2 * STATUS_INTERVAL)
        again = written()
        # idle: the same calls' rows (plus any sync since), the same figures
        assert again["api_calls"][: len(first["api_calls"])] == first["api_calls"]
        assert again["agents"][AGENT_1]["reconnects"] == 0
        assert fast_sandbox.close_notification_sockets(code=1001) == 1
        assert wait_for(lambda: written()["agents"][AGENT_1]["reconnects"] == 1, 5)
        after = written()
        assert len(after["api_calls"]) > len(first["api_calls"])  # the re-read after it
        assert after["updated_at"] > first["updated_at"]
        assert agents.stats()["reconnects"] == 1
