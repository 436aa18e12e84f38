"""Activities under platform faults: 401 mid-run, 429 with Retry-After, 503, timeouts."""

from __future__ import annotations

import time
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.routing import probes as routing
from chaosgenesys.users import actions, probes
from tests.activities.activity_seed import AGENT_1, AGENT_2, CLIENT_ID, CLIENT_SECRET, QUEUE, seed

Cfg = dict[str, Any]


def test_401_mid_run_is_recovered(sandbox: Any, configuration: Cfg, secrets: Cfg) -> None:
    assert probes.presence_is(AGENT_1, "On Queue", configuration, secrets)
    sandbox.revoke_tokens()
    assert probes.presence_is(AGENT_1, "On Queue", configuration, secrets)
    sandbox.expire_tokens()
    assert probes.agents_state([AGENT_1, AGENT_2], configuration, secrets)["on_queue"] == 2


def test_429_with_retry_after_is_honoured(
    sandbox: Any, fast_configuration: Cfg, secrets: Cfg
) -> None:
    probes.get_presence(AGENT_1, fast_configuration, secrets)
    sandbox.inject_fault(r"/presences/purecloud$", status=429, count=1)
    started = time.monotonic()
    assert probes.presence_is(AGENT_1, "On Queue", fast_configuration, secrets)
    assert time.monotonic() - started >= 0.9  # the sandbox's 429 asks for Retry-After >= 1 s


def test_429_rate_limit_of_the_sandbox() -> None:
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed=seed(), rate_limit_per_minute=5) as sb:
        configuration = {
            "genesys_api_url": sb.url,
            "genesys_login_url": sb.url,
            "genesys_max_retry_wait": 1,
        }
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        for _ in range(5):  # the token's budget: five calls a minute
            probes.get_presence(AGENT_1, configuration, secrets)
        with pytest.raises(ActivityFailed, match="429"):
            probes.get_presence(AGENT_1, configuration, secrets)


def test_503_once_is_retried(sandbox: Any, fast_configuration: Cfg, secrets: Cfg) -> None:
    probes.get_presence(AGENT_1, fast_configuration, secrets)
    presence_path, members_path = r"/presences/purecloud$", r"/routing/queues/.*/members"
    before = sandbox.requests(presence_path)
    sandbox.inject_fault(presence_path, status=503, count=1, retry_after=0)
    assert (
        probes.get_presence(AGENT_1, fast_configuration, secrets)["system_presence"] == "On Queue"
    )
    # the fault fired once and the read was sent again: two requests for one probe
    assert sandbox.requests(presence_path) - before == 2
    before = sandbox.requests(members_path)
    sandbox.inject_fault(members_path, status=503, count=2, retry_after=0)
    assert len(routing.queue_members(QUEUE, fast_configuration, secrets)) == 2
    assert sandbox.requests(members_path) - before == 3


def test_persistent_503_fails_naming_the_status(
    sandbox: Any, fast_configuration: Cfg, secrets: Cfg
) -> None:
    sandbox.inject_fault(r"/presences/purecloud$", status=503, retry_after=0)
    started = time.monotonic()
    with pytest.raises(ActivityFailed, match=r"503 service.unavailable.*gave up after 3 retries"):
        probes.presence_is(AGENT_1, "On Queue", fast_configuration, secrets)
    assert time.monotonic() - started < 2
    # a Retry-After beyond the retry budget fails at once, saying so
    sandbox.clear_faults()
    sandbox.inject_fault(r"/presences/purecloud$", status=503, retry_after=60)
    started = time.monotonic()
    with pytest.raises(ActivityFailed, match=r"503.*exceeds the remaining retry budget"):
        probes.get_presence(AGENT_1, fast_configuration, secrets)
    assert time.monotonic() - started < 1
    with pytest.raises(ActivityFailed, match=r"503"):
        actions.set_presence(AGENT_1, "Break", fast_configuration, secrets)
    sandbox.clear_faults()
    assert probes.presence_is(AGENT_1, "On Queue", fast_configuration, secrets)


def test_timeout_fails_with_a_clear_message(sandbox: Any, configuration: Cfg, secrets: Cfg) -> None:
    configuration = {**configuration, "genesys_timeout": 0.5}
    probes.get_presence(AGENT_1, configuration, secrets)
    sandbox.inject_fault(r"/presences/purecloud$", delay_ms=1500)
    started = time.monotonic()
    with pytest.raises(ActivityFailed, match="timeout"):
        probes.get_presence(AGENT_1, configuration, secrets)
    assert time.monotonic() - started < 3
    # wait_for_presence does not swallow API errors
    with pytest.raises(ActivityFailed, match="timeout"):
        probes.wait_for_presence(AGENT_1, "On Queue", 1, 0.1, configuration, secrets)
