"""The synthetic agent measures its own API calls as the desktop lives them: a delay the sandbox
injects shows in its summary's latency and in the status file the kill switch reads; failures
after retries are counted; token requests count too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tests.agent.helpers import AgentsThread, wait_for
from tests.conftest import AGENT_1

USER_READ = rf"^/api/v2/users/{AGENT_1}$"


def _calls(agents: AgentsThread) -> int:
    return int(agents.stats()["api_calls"])


def test_a_delay_on_the_agents_reads_shows_in_its_api_latency(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1], sync_interval=0.2) as agents:
        assert wait_for(lambda: _calls(agents) >= 6, 5)
        before = agents.stats()["api_latency_ms"]
        assert before["max"] is not None and before["max"] < 300, before  # loopback, no fault
        fast_sandbox.inject_fault(USER_READ, delay_ms=400)
        calls = _calls(agents)
        assert wait_for(lambda: _calls(agents) >= calls + 3, 10)
        after = agents.stats()
        latency = after["api_latency_ms"]
        assert 400 <= latency["max"] < 1400, latency
        assert latency["count"] == after["api_calls"] and after["api_failures"] == 0
        # The process's call list (the status file's api_calls) holds the delayed reads.
        slow = [r for r in agents.manager.calls.records() if r.latency_ms >= 400]
        assert len(slow) >= 3 and {r.path for r in slow} == {"/api/v2/users/{id}"}, slow


def test_failures_after_retries_and_token_requests_are_counted(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1], sync_interval=0.2) as agents:
        tokens = [r for r in agents.manager.calls.records() if r.path == "/oauth/token"]
        assert [(r.method, r.status) for r in tokens] == [("POST", 200)]
        assert wait_for(lambda: _calls(agents) >= 3, 5)
        assert agents.stats()["api_failures"] == 0
        # 503 with Retry-After 0: the resilient agent sends each read 3 times, then gives up.
        fast_sandbox.inject_fault(USER_READ, status=503, retry_after=0)
        assert wait_for(lambda: agents.stats()["api_failures"] >= 2, 10)
        failed = [r for r in agents.manager.calls.records() if r.status == 503]
        assert failed and all(r.retries == 2 for r in failed), failed
        fast_sandbox.clear_faults()
        # A revoked token: the read that meets the 401 fetches a new token and is sent again.
        fast_sandbox.revoke_tokens()
        assert wait_for(
            lambda: any(r.retries == 1 and r.status == 200 for r in agents.manager.calls.records()),
            10,
        )
        tokens = [r for r in agents.manager.calls.records() if r.path == "/oauth/token"]
        assert len(tokens) == 2 and agents.stats()["token_refreshes"] == 2


def test_the_status_file_lists_the_calls_the_kill_switch_reads(
    fast_sandbox: Any, tmp_path: Path
) -> None:
    status_path = tmp_path / "status.json"
    with AgentsThread(fast_sandbox.url, [AGENT_1], sync_interval=0.2) as agents:
        agents.manager.status_path = status_path
        fast_sandbox.inject_fault(USER_READ, delay_ms=300)
        calls = _calls(agents)
        assert wait_for(lambda: _calls(agents) >= calls + 2, 10)
        agents.manager.write_status()
        status = json.loads(status_path.read_text())
    listed = status["api_calls"]
    assert len(listed) == status["agents"][AGENT_1]["api_calls"] >= calls + 2
    assert all(len(call) == 3 for call in listed)
    assert sum(1 for _, latency, code in listed if latency >= 300 and code == 200) >= 2, listed
    assert listed == sorted(listed, key=lambda call: call[0])  # oldest first
