"""Shared fixtures: a real sandbox on a free loopback port, and the configuration to reach it."""

from __future__ import annotations

import os
import shlex
from collections.abc import Iterator
from typing import Any

import pytest

AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"
AGENT_2 = "0b6b3c5e-0000-4000-8000-000000000002"
AGENT_3 = "0b6b3c5e-0000-4000-8000-000000000003"
QUEUE = "7c1d2a90-0000-4000-8000-0000000000aa"
CLIENT_ID = "chaos-client"
CLIENT_SECRET = "chaos-secret-value-never-printed"


def without_net_admin(command: list[str]) -> list[str]:
    """``command`` as capsh runs it with CAP_NET_ADMIN dropped from its bounding set, so neither
    it nor its children have the capability. Not root: the command as it is (it lacks it)."""
    if os.geteuid() != 0:
        return command
    return ["capsh", "--drop=cap_net_admin", "--", "-c", "exec " + shlex.join(command)]


def make_seed(**overrides: Any) -> dict[str, Any]:
    """The seed most tests use: two On Queue agents in the chaos queue, one Available outsider."""
    seed: dict[str, Any] = {
        "clients": [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token_lifetime": 86400}
        ],
        "users": [
            {"id": AGENT_1, "name": "Test Agent 1", "presence": "On Queue"},
            {"id": AGENT_2, "name": "Test Agent 2", "presence": "On Queue"},
            {"id": AGENT_3, "name": "Outside Agent", "presence": "Available"},
        ],
        "queues": [{"id": QUEUE, "name": "Chaos Queue", "members": [AGENT_1, AGENT_2]}],
    }
    seed.update(overrides)
    return seed


@pytest.fixture
def sandbox() -> Iterator[Any]:
    """A sandbox on a free port with :func:`make_seed`, stopped after the test."""
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed=make_seed()) as sb:
        yield sb


@pytest.fixture
def configuration(sandbox: Any) -> dict[str, Any]:
    """Experiment configuration pointing the platform client at the sandbox."""
    return {"genesys_api_url": sandbox.url, "genesys_login_url": sandbox.url, "genesys_timeout": 5}


@pytest.fixture
def secrets() -> dict[str, str]:
    """Secrets as chaoslib hands them to an activity (scopes already flattened)."""
    return {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def _host_network_state() -> dict[str, str]:
    """The host namespace's qdiscs and nftables tables, as text (empty where unreadable)."""
    import shutil
    import subprocess

    state: dict[str, str] = {}
    for name, command in (("qdiscs", ["tc", "qdisc", "show"]), ("nft", ["nft", "list", "tables"])):
        if shutil.which(command[0]) is None:
            continue
        result = subprocess.run(command, capture_output=True, text=True, timeout=30)
        state[name] = result.stdout if result.returncode == 0 else ""
    return state


@pytest.fixture(scope="session", autouse=True)
def host_network_untouched() -> Iterator[None]:
    """Tests build their own namespaces: the machine's qdiscs and firewall end as they began."""
    before = _host_network_state()
    yield
    after = _host_network_state()
    assert after == before, (
        "the test run changed the host's network namespace (it must only touch namespaces it "
        f"creates):\nbefore: {before}\nafter: {after}"
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Under CI, a skip is a failure, except netem tests, which run inside user-mode-linux.

    A skipped test is not a passing test: CI runs as root on a machine that has everything the
    suite needs; the one capability it lacks, sch_netem, is covered by
    tests/uml/test_netem_in_uml.py, which fails unless every netem test ran and passed there.
    """
    import os

    from tests.uml.netem_plugin import SKIP_REASON

    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not os.environ.get("CI") or not report.skipped or hasattr(report, "wasxfail"):
        return
    reason = str(report.longrepr[-1]) if isinstance(report.longrepr, tuple) else ""
    if SKIP_REASON in reason:
        return
    report.outcome = "failed"
    report.longrepr = f"skipped under CI, where nothing may be skipped: {reason}"
