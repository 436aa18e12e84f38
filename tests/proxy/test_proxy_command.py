"""``chaosgenesys proxy``: a real command, real HTTP through it to the sandbox, Ctrl+C reverts.

The command runs as a subprocess with a runtime directory of the test's own; its rules come from
a rule file (the proxy's JSON format) and a Fiddler ``.farx`` export; requests go through it to
the sandbox, which counts what reached it. After SIGINT (or SIGTERM) the command exits 0, the
proxy process is gone and nothing is left recorded in the fault registry.
"""

from __future__ import annotations

import json
import os
import select
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AGENT_1
from tests.proxy.conftest import direct_session, guardians, token_for, wait_for

CHAOSGENESYS = str(Path(sys.executable).with_name("chaosgenesys"))
PRESENCE = f"/api/v2/users/{AGENT_1}/presences/purecloud"
FARX = """<?xml version="1.0" encoding="utf-8"?>
<AutoResponder LastSave="2026-01-01T00:00:00" FiddlerVersion="5.0">
  <State Enabled="true" Fallthrough="true" UseLatency="false">
    <ResponseRule Match="regex:.*/api/v2/routing/queues$" Action="*502" Enabled="true" />
    <ResponseRule Match="regex:.*/api/v2/users/.*" Action="*reset" Enabled="false" />
  </State>
</AutoResponder>
"""


class Lines:
    """Lines of a child's standard output, read with a timeout (unbuffered: select on the fd)."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        assert process.stdout is not None
        self.process = process
        self.fd = process.stdout.fileno()
        self.buffer = b""

    def next(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.fd], [], [], max(0.0, left))
            if not ready:
                self.process.kill()
                raise AssertionError(f"no line within {timeout} s, got {self.buffer!r}")
            chunk = os.read(self.fd, 65536)
            if not chunk:
                raise AssertionError(f"the command exited, output {self.buffer!r}")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\n")
        return line.decode()


def _records(runtime: Path) -> list[str]:
    from chaosgenesys.faults import registry

    return [fault.id for fault in registry.Registry(runtime).active()]


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def _start(tmp_path: Path, *arguments: str) -> tuple[subprocess.Popen[bytes], Path]:
    runtime = tmp_path / "runtime"
    env = {**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(runtime)}
    process = subprocess.Popen(
        [CHAOSGENESYS, "proxy", *arguments],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    return process, runtime


@pytest.mark.timeout(120)
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_rules_from_files_apply_and_ctrl_c_reverts(
    tmp_path: Path, proxy_sandbox: Any, proxy_ca_dir: Path, signum: int
) -> None:
    rules = tmp_path / "rules.json"
    rules.write_text(
        json.dumps({"rules": [{"action": "fail", "path": "/presences/", "status": 503}]})
    )
    farx = tmp_path / "desktop.farx"
    farx.write_text(FARX)
    process, runtime = _start(
        tmp_path,
        "--name", "cmdtest", "--port", "0", "--mode", f"reverse:{proxy_sandbox.url}",
        "--rules", str(rules), "--fiddler", str(farx), "--confdir", str(proxy_ca_dir), "--json",
    )  # fmt: skip
    try:
        details = json.loads(Lines(process).next(60))
        url = details["proxy_url"]
        assert details["mode"] == f"reverse:{proxy_sandbox.url}"
        assert [r["action"] for r in details["rules"]] == ["fail", "fail"]
        assert _records(runtime) == [details["fault_id"]]
        proxy_sandbox.reset_requests()
        session = direct_session()
        token = token_for(url)
        headers = {"Authorization": f"Bearer {token}"}
        # the rule file's rule: 503 from the proxy, the sandbox never sees it
        answer = session.get(url + PRESENCE, headers=headers, timeout=10)
        assert answer.status_code == 503
        assert proxy_sandbox.requests(path_regex="/presences/") == 0
        # the Fiddler rule: 502 for the queue list; its disabled rule does nothing
        answer = session.get(url + "/api/v2/routing/queues", headers=headers, timeout=10)
        assert answer.status_code == 502
        assert proxy_sandbox.requests(path_regex=r"/api/v2/routing/queues$") == 0
        # everything else passes through to the sandbox
        answer = session.get(url + f"/api/v2/users/{AGENT_1}", headers=headers, timeout=10)
        assert answer.status_code == 200 and answer.json()["id"] == AGENT_1
        assert proxy_sandbox.requests(path_regex=f"/api/v2/users/{AGENT_1}$") == 1
    finally:
        process.send_signal(signum)
        try:
            process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
    stderr = process.stderr.read() if process.stderr else b""
    assert process.returncode == 0, stderr
    assert not _alive(int(details["pid"]))
    assert _records(runtime) == []
    assert not list(runtime.glob("*.json"))
    wait_for(lambda: not guardians(runtime), 15)


@pytest.mark.timeout(120)
def test_a_killed_command_leaves_no_proxy(tmp_path: Path, proxy_ca_dir: Path) -> None:
    """SIGKILL gives the command no chance to clean up: the guardian stops its proxy."""
    process, runtime = _start(
        tmp_path, "--name", "cmdkill", "--port", "0", "--confdir", str(proxy_ca_dir), "--json"
    )
    details = json.loads(Lines(process).next(60))
    assert _alive(int(details["pid"]))
    process.kill()
    process.wait(timeout=10)
    wait_for(lambda: not _alive(int(details["pid"])) and not _records(runtime), 30)
    wait_for(lambda: not guardians(runtime), 15)


def test_the_text_output_says_how_to_point_a_desktop(tmp_path: Path, proxy_ca_dir: Path) -> None:
    process, runtime = _start(
        tmp_path, "--name", "cmdtext", "--port", "0", "--confdir", str(proxy_ca_dir)
    )
    lines: list[str] = []
    output = Lines(process)
    try:
        while not lines or not lines[-1].startswith("Press Ctrl+C"):
            lines.append(output.next(60))
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=30)
    text = "\n".join(lines)
    assert "(regular) listening on http://127.0.0.1:" in text
    assert "set the HTTP and HTTPS proxy of the browser or the OS to 127.0.0.1:" in text
    assert "TLS interception is on" in text
    assert str(proxy_ca_dir / "mitmproxy-ca-cert.pem") in text
    assert (proxy_ca_dir / "mitmproxy-ca-cert.pem").is_file()
    assert process.returncode == 0
    assert _records(runtime) == []


@pytest.mark.parametrize(
    ("content", "option", "message"),
    [
        ('[{"action": "fail", "path": "/x", "status": 42}]', "--rules", "rules[0]: status"),
        ('{"rules": []}', "--rules", "must hold a non-empty list of rule objects"),
        ("not json", "--rules", "is not valid JSON"),
        ("<AutoResponder><ResponseRule Match='x' Action='*fly'/></AutoResponder>", "--fiddler",
         "unsupported Fiddler action '*fly'"),
    ],
)  # fmt: skip
def test_a_bad_rule_file_is_named_and_nothing_starts(
    tmp_path: Path, content: str, option: str, message: str
) -> None:
    path = tmp_path / "rules.txt"
    path.write_text(content)
    process, runtime = _start(tmp_path, "--name", "cmdbad", "--port", "0", option, str(path))
    out_bytes, err_bytes = process.communicate(timeout=60)
    out, err = out_bytes.decode(), err_bytes.decode()
    assert process.returncode == 1, (out, err)
    assert f"{option} {str(path)!r}" in err and message in err
    assert out == ""
    assert _records(runtime) == []
    assert not guardians(runtime)


def test_a_bad_listen_host_is_named(tmp_path: Path) -> None:
    process, runtime = _start(tmp_path, "--port", "0", "--listen-host", "999.1.1.1")
    err = process.communicate(timeout=60)[1].decode()
    assert process.returncode == 1
    assert "listen_host must be an IP address" in err and "'999.1.1.1'" in err
    assert _records(runtime) == []
