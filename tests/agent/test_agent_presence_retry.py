"""Presence changes retried until they land (the guide's trap 3 on our own reference desktop),
and the desktop's token expiry handed to experiments; against the real sandbox."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest

from tests.agent.helpers import HEARTBEAT, AgentsThread, agent_seed, fast_options, wait_for
from tests.conftest import AGENT_1, CLIENT_ID, CLIENT_SECRET

#: Seconds the presence PATCHes are answered 503.
FAULT = 8.0


def _events(path: Path, event: str) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("event") == event]


def test_presence_503_with_a_dropped_socket_is_retried_until_it_lands(tmp_path: Path) -> None:
    from chaosgenesys.sandbox import Sandbox
    from chaosgenesys.users import probes

    log = tmp_path / "agents.jsonl"
    with (
        Sandbox(seed=agent_seed(wrapup_timeout=0), heartbeat_interval=HEARTBEAT,
                session_grace_seconds=1.0, presence_renew_seconds=0.2) as sandbox,
        AgentsThread(sandbox.url, [AGENT_1], log_path=str(log)) as agents,
    ):
        configuration = {"genesys_api_url": sandbox.url, "genesys_login_url": sandbox.url}
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        assert probes.get_presence(AGENT_1, configuration, secrets)["system_presence"] == (
            "On Queue"
        )
        # the guide's trap 3: presence changes fail for 8 s while the socket is also lost
        sandbox.inject_fault(r"/presences/", status=503, method="PATCH", duration=FAULT)
        fault_ends = time.monotonic() + FAULT
        assert sandbox.close_notification_sockets(code=1011) == 1

        # the platform takes the agent off queue (no session past the 1 s grace) ...
        assert wait_for(lambda: probes.get_presence(AGENT_1, configuration, secrets)[
            "system_presence"] != "On Queue", 5)
        # ... and the desktop's change back is refused while the fault lasts
        assert wait_for(lambda: len(_events(log, "change_failed")) >= 2, FAULT)
        assert probes.get_presence(AGENT_1, configuration, secrets)["system_presence"] != (
            "On Queue"
        )
        # once the fault clears, the change lands within the retry cap (8 s) plus slack
        restored = wait_for(lambda: probes.get_presence(AGENT_1, configuration, secrets)[
            "system_presence"] == "On Queue", FAULT + 8.0 + 3.0)
        late = time.monotonic() - fault_ends
        assert restored, f"still not On Queue {late:.1f} s after the fault ended"
        assert late <= 8.0 + 3.0, late
        assert wait_for(lambda: probes.get_routing_status(AGENT_1, configuration, secrets)[
            "status"] == "IDLE", 3)

        failures = _events(log, "change_failed")
        assert failures and all(f["what"] == "presence" and f["status"] == 503
                                for f in failures), failures
        assert [f["attempt"] for f in failures] == list(range(1, len(failures) + 1))
        assert wait_for(lambda: bool(_events(log, "change_landed")), 3)
        stats = agents.stats()
        assert "503" in stats["last_error"], stats
        assert stats["changes_failed"] == len(failures) and stats["changes_retried"] == 1


def test_a_newer_wanted_presence_supersedes_the_retries(tmp_path: Path) -> None:
    from chaosgenesys.sandbox import Sandbox

    log = tmp_path / "agents.jsonl"
    with (
        Sandbox(seed=agent_seed(wrapup_timeout=0), heartbeat_interval=HEARTBEAT,
                session_grace_seconds=1.0, presence_renew_seconds=0.2) as sandbox,
        AgentsThread(sandbox.url, [AGENT_1], log_path=str(log)) as agents,
    ):
        sandbox.inject_fault(r"/presences/", status=503, method="PATCH", duration=30)
        sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: len(_events(log, "change_failed")) >= 1, 8)
        # someone decides: a break (newer than the desktop's wish) ends the retries
        sandbox.set_presence(AGENT_1, "Break")
        assert wait_for(lambda: bool(_events(log, "change_superseded")), 10)
        failed = len(_events(log, "change_failed"))
        time.sleep(3.0)  # the retry cap is 8 s: a live retry loop would fail again soon
        assert agents.agent.presence == "Break"
        assert len(_events(log, "change_failed")) <= failed + 1


def test_wait_until_agent_token_expiry_follows_the_desktop_token(
    fast_sandbox: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent import actions, probes

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    fast_sandbox.set_token_lifetime(CLIENT_ID, 12)
    configuration = {"genesys_api_url": fast_sandbox.url, "genesys_login_url": fast_sandbox.url}
    secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    # the naive desktop never refreshes: its one token's expiry stays put
    run = actions.start_agents([AGENT_1], mode="naive", options=fast_options(),
                               configuration=configuration, secrets=secrets)
    try:
        summary = probes.agent_summary(AGENT_1)
        expires_at, left = summary["token_expires_at"], summary["token_expires_in"]
        assert 0 < left <= 12 and abs(expires_at - time.time() - left) < 1.0, summary
        assert "access_token" not in json.dumps(summary)

        with pytest.raises(ActivityFailed, match="max_wait"):
            actions.wait_until_agent_token_expiry(AGENT_1, seconds_before=1, max_wait=2)
        with pytest.raises(ActivityFailed, match="no synthetic agent"):
            actions.wait_until_agent_token_expiry("0b6b3c5e-0000-4000-8000-00000000ffff", 1)
        with pytest.raises(ActivityFailed, match="seconds_before"):
            actions.wait_until_agent_token_expiry(AGENT_1, seconds_before=-1)
        with pytest.raises(ActivityFailed, match="max_wait"):
            actions.wait_until_agent_token_expiry(AGENT_1, 1, max_wait=10**9)

        result = actions.wait_until_agent_token_expiry(AGENT_1, seconds_before=4, max_wait=30)
        assert 3.0 <= result["seconds_left"] <= 4.5, result
        assert abs(expires_at - 4 - time.time()) < 0.5, result
        assert result["refreshed"] is False
        # already that close: returns at once
        again = actions.wait_until_agent_token_expiry(AGENT_1, seconds_before=10, max_wait=30)
        assert again["waited"] < 0.5
    finally:
        actions.stop_agents(run["id"])
