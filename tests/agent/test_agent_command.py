"""``chaosgenesys agent`` run as a real subprocess: failures it must say, and when it must stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AGENT_1, CLIENT_ID, CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]
SECRET = CLIENT_SECRET + "-never-shown"

pytestmark = pytest.mark.timeout(90)


def _env(secret: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYSCLOUD_")}
    env.update(GENESYSCLOUD_OAUTHCLIENT_ID=CLIENT_ID, GENESYSCLOUD_OAUTHCLIENT_SECRET=secret)
    return env


def _agent(url: str, *extra: str, secret: str = SECRET) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "chaosgenesys.agent", "--api-url", url,
               "--user", AGENT_1, *extra]
    return subprocess.Popen(command, env=_env(secret), cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.fixture
def closed_port() -> int:
    """A loopback port nobody listens on: connections are refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@pytest.fixture
def silent_server() -> Iterator[socket.socket]:
    """A loopback server that accepts connections and never answers (a blackholed org)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(64)
        yield server


def _finish(process: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    try:
        return process.communicate(timeout=timeout)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()


@pytest.mark.parametrize("json_flag", [[], ["--json"]], ids=["plain", "json"])
def test_an_unreachable_org_exits_non_zero_saying_what_failed(
    closed_port: int, json_flag: list[str]
) -> None:
    url = f"http://127.0.0.1:{closed_port}"
    process = _agent(url, "--duration", "2", *json_flag)
    # --json used to wait 60 s for readiness whatever the duration
    out, err = _finish(process, timeout=20)
    assert process.returncode == 1, (out, err)
    lines = [line for line in err.splitlines() if line.startswith("chaosgenesys agent: ")]
    final = [line for line in lines if "never got ready" in line]
    assert len(final) == 1, err
    assert AGENT_1 in final[0] and url in final[0] and "/oauth/token" in final[0]
    assert any("cannot start" in line and "retrying" in line for line in lines), err
    assert "Traceback" not in err
    assert SECRET not in err and SECRET not in out
    assert json.loads(out.strip().splitlines()[-1])["stopped"] is True
    if json_flag:
        assert json.loads(out.splitlines()[0])["ready"] is False


def test_json_honours_sigterm_while_a_call_hangs(silent_server: socket.socket) -> None:
    port = silent_server.getsockname()[1]
    process = _agent(f"http://127.0.0.1:{port}", "--json", "--timeout", "30")
    # The token request is in flight, unanswered, once the agent connected (its signal handlers
    # are in place before its first call; a fixed sleep let a loaded machine signal it earlier).
    silent_server.settimeout(30)
    connection, _peer = silent_server.accept()
    with connection:
        time.sleep(0.3)
        assert process.poll() is None
        process.send_signal(signal.SIGTERM)
        stopped = time.monotonic()
        out, err = _finish(process, timeout=30)
    took = time.monotonic() - stopped
    assert took < 4.0, (took, err)  # the stop grace is 1 s (+1 s to cancel): within ~2 s
    assert process.returncode == 1, err
    assert json.loads(out.splitlines()[0]) == {"ready": False, "pid": process.pid,
                                                "users": [AGENT_1]}
    assert json.loads(out.strip().splitlines()[-1])["stopped"] is True
    assert "never got ready" in err and "no answer yet" in err


def test_json_honours_the_duration_once_ready(fast_sandbox: Any) -> None:
    started = time.monotonic()
    process = _agent(fast_sandbox.url, "--json", "--duration", "2",
                     "--option", "ping_interval=0.25", "--option", "heartbeat_interval=0.2",
                     secret=CLIENT_SECRET)
    out, err = _finish(process, timeout=20)
    assert process.returncode == 0, err
    assert json.loads(out.splitlines()[0])["ready"] is True
    assert 2.0 <= time.monotonic() - started < 10.0
    assert "chaosgenesys agent:" not in err


def test_a_wrong_secret_is_named_without_showing_it(fast_sandbox: Any) -> None:
    process = _agent(fast_sandbox.url, "--duration", "1")
    out, err = _finish(process, timeout=20)
    assert process.returncode == 1
    assert "never got ready" in err and "/oauth/token answered 401" in err
    assert SECRET not in err and SECRET not in out
