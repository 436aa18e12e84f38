"""The lab's Genesys Cloud edge, the HTTP probe and the network-lab control the examples use.

The examples themselves (``network-latency-loss``: netem, inside user-mode-linux in CI;
``rtp-throttle``: on this kernel) run end to end in tests/test_examples.py. Here: the edge relays
HTTP from the workstation namespace to a server on loopback (IPv4 and IPv6) and goes with the
lab, a fault on ``veth-a`` shows in the workstation's HTTP round trip and nowhere else, the
control refuses bad arguments before creating anything, and an interrupted ``chaos run`` of an
example leaves no namespace, no agent, no fault and no sandbox behind.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.nl import in_netns
from tests.network.conftest import is_root

ROOT = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).with_name("chaos"))

pytestmark = pytest.mark.skipif(not is_root(), reason="network namespaces need root")


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = json.dumps({"path": self.path, "peer": self.client_address[0]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def loopback_server() -> Iterator[tuple[str, int]]:
    """An HTTP/1.1 server on the host's loopback (stands in for the sandbox)."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield "127.0.0.1", server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def _read_response(sock: socket.socket) -> bytes:
    """Read one HTTP/1.1 response with a Content-Length body, whole, from ``sock``."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-headers: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed mid-body: {data!r}"
        body += chunk
    assert len(body) == length, body
    return head + b"\r\n\r\n" + body


def test_the_edge_relays_http_from_the_workstation_and_goes_with_the_lab(
    lab: dict[str, Any], loopback_server: tuple[str, int]
) -> None:
    from chaosgenesys.network import lab as lab_module
    from chaosgenesys.network.probes import measure_http

    edge = lab_module.start_edge(lab["name"], 8443, loopback_server)
    assert edge["url"] == "http://10.200.0.2:8443"
    for url in ("http://10.200.0.2:8443/api/v2/users/me", "http://[fd42::2]:8443/x"):
        # relayed, whatever the load: no bound on the time (a loaded host put 50 ms on it)
        result = measure_http(url, count=5, netns=lab["netns"])
        assert result["ok"], result
        assert result["statuses"] == {"200": 5} and result["connects"] == 1, result

    # A connection held through the edge is closed when the lab goes.
    with in_netns(lab["netns"]):
        held = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    held.settimeout(5)
    held.connect((lab_module.ADDRESS_B, 8443))
    held.sendall(b"GET / HTTP/1.1\r\nHost: edge\r\n\r\n")
    # Headers and body may arrive in separate segments: read the whole response first, so the
    # only thing left to read after the lab goes is the close.
    assert _read_response(held).startswith(b"HTTP/1.1 200")
    lab_module.delete(lab["name"])
    assert not Path(f"/run/netns/{lab['netns']}").exists()
    with contextlib.suppress(ConnectionResetError):
        assert held.recv(65536) == b""
    held.close()


def test_a_lab_whose_process_is_killed_is_deleted_by_the_guardian(registry_dir: Path) -> None:
    """The namespaces outlive the process that made them: the lab is recorded like a fault, and
    the guardian deletes it when that process dies, SIGKILL included."""
    from chaosgenesys.faults import registry

    name = "k" + os.urandom(4).hex()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import time\n"
            "from chaosgenesys.network import lab\n"
            f"lab.create({name!r}, [20000], [7])\n"
            "print('up', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        cwd=ROOT,
    )
    try:
        assert child.stdout is not None and child.stdout.readline() == b"up\n"
        assert Path(f"/run/netns/{name}-a").exists() and Path(f"/run/netns/{name}-b").exists()
        [record] = registry.active(kind="test-network")
        assert record.spec == {"name": name} and record.owner_pid == child.pid
    finally:
        child.kill()
        child.wait()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and (
        Path(f"/run/netns/{name}-a").exists() or registry.active()
    ):
        time.sleep(0.05)
    assert not Path(f"/run/netns/{name}-a").exists()
    assert not Path(f"/run/netns/{name}-b").exists()
    assert registry.active() == []


_MAKER = """
import json, os, sys, time
from chaoslib.exceptions import ActivityFailed
from chaosgenesys.network import lab
while not os.path.exists(sys.argv[2]):
    time.sleep(0.001)
try:
    lab.create(sys.argv[1], [20000], [])
    print(json.dumps("made"), flush=True)
except ActivityFailed as error:
    print(json.dumps(str(error)), flush=True)
    sys.exit(0)
sys.stdin.read()
lab.delete(sys.argv[1])
"""


def _maker(name: str, runtime: Path, go: Path) -> subprocess.Popen[bytes]:
    """A process that makes lab ``name`` once ``go`` exists, with a fault registry of its own
    (another pipeline job on this runner); it prints ``"made"`` or the refusal (JSON), and
    deletes the lab when its stdin closes."""
    return subprocess.Popen(
        [sys.executable, "-c", _MAKER, name, str(go)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(runtime)},
    )


def _said(child: subprocess.Popen[bytes]) -> str:
    assert child.stdout is not None
    said = json.loads(child.stdout.readline())
    assert isinstance(said, str)
    return said


def _lab_holder(name: str, runtime: Path) -> subprocess.Popen[bytes]:
    """A :func:`_maker` that has made lab ``name``."""
    go = runtime.with_name(runtime.name + "-go")
    go.touch()
    child = _maker(name, runtime, go)
    assert _said(child) == "made"
    return child


def _done(child: subprocess.Popen[bytes]) -> None:
    assert child.stdin is not None
    child.stdin.close()
    assert child.wait(timeout=30) == 0


def test_a_lab_another_live_process_holds_is_refused_and_left_working(
    registry_dir: Path, tmp_path: Path
) -> None:
    """Two jobs on one runner ask for one lab name, each with its own registry: the second is
    refused before it changes anything (it used to delete the first's namespaces under its
    feet), and so is deleting it; once the first is done, the name is free again."""
    from chaosgenesys.faults import registry
    from chaosgenesys.network import lab

    name = "h" + os.urandom(4).hex()
    child = _lab_holder(name, tmp_path / "other-job")
    try:
        for attempt in (lambda: lab.create(name, [20000], []), lambda: lab.delete(name)):
            with pytest.raises(ActivityFailed) as refused:
                attempt()
            assert f"test network {name!r} is " in str(refused.value)
            assert f"by another process ({child.pid})" in str(refused.value)
        # Nothing changed: nothing recorded here, the namespaces and the first job's echo server.
        assert registry.active() == []
        echo = lab.measure_udp(lab.ADDRESS_B, 20000, 3, 10, 64, f"{name}-a")
        assert echo["received"] == 3, echo
    finally:
        _done(child)
    assert not Path(f"/run/netns/{name}-a").exists()
    made = lab.create(name, [], [])
    try:
        assert made["netns"] == f"{name}-a" and Path(f"/run/netns/{name}-a").exists()
    finally:
        lab.delete(name)
    assert not Path(f"/run/netns/{name}-a").exists() and registry.active() == []


def test_two_makers_of_one_name_at_once_one_makes_it_and_the_other_is_refused(
    tmp_path: Path,
) -> None:
    """Started together (two jobs, a registry each), exactly one of two makers of one name
    makes the lab, which works; the other is refused and leaves it standing."""
    from chaosgenesys.network import lab

    name = "m" + os.urandom(4).hex()
    go = tmp_path / "go"
    racers = [_maker(name, tmp_path / f"job{n}", go) for n in range(2)]
    try:
        time.sleep(1.0)  # both have imported and wait for the signal
        go.touch()
        said = [_said(racer) for racer in racers]
        assert said.count("made") == 1, said
        refused = next(text for text in said if text != "made")
        assert f"test network {name!r} is in use by another process" in refused, said
        echo = lab.measure_udp(lab.ADDRESS_B, 20000, 3, 10, 64, f"{name}-a")
        assert echo["received"] == 3, echo
    finally:
        for racer in racers:
            _done(racer)
    assert not Path(f"/run/netns/{name}-a").exists()


def test_reverting_a_dead_makers_lab_spares_the_one_made_again_since(tmp_path: Path) -> None:
    """A job died; before its guardian reverted its lab, another job made a lab of the same
    name: the dead job's revert must not delete the live one's. Reverting the live maker's own
    record (``chaosgenesys cleanup`` of a live run) still deletes it."""
    import dataclasses

    from chaosgenesys.faults import registry
    from chaosgenesys.network import lab

    name = "r" + os.urandom(4).hex()
    runtime = tmp_path / "other-job"
    child = _lab_holder(name, runtime)
    try:
        [record] = registry.Registry(runtime).active(kind=lab.KIND)
        assert record.owner_pid == child.pid
        dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                              capture_output=True, text=True, check=True)
        lab.revert(dataclasses.replace(record, owner_pid=int(dead.stdout)))
        assert Path(f"/run/netns/{name}-a").exists() and Path(f"/run/netns/{name}-b").exists()
        echo = lab.measure_udp(lab.ADDRESS_B, 20000, 3, 10, 64, f"{name}-a")
        assert echo["received"] == 3, echo
        lab.revert(record)
        assert not Path(f"/run/netns/{name}-a").exists()
        assert not Path(f"/run/netns/{name}-b").exists()
    finally:
        _done(child)


def test_measure_http_counts_errors_and_checks_its_bounds(lab: dict[str, Any]) -> None:
    from chaosgenesys.network.probes import measure_http

    # Nothing listens on 10.200.0.2:9 in the peer namespace: every request is refused.
    result = measure_http("http://10.200.0.2:9/", count=3, netns=lab["netns"], timeout_ms=500)
    assert result["answered"] == 0 and result["errors"] == 3 and result["ok"] is False
    with pytest.raises(ActivityFailed, match="url"):
        measure_http("https://10.200.0.2/", netns=lab["netns"])
    with pytest.raises(ActivityFailed, match="count"):
        measure_http("http://10.200.0.2/", count=0, netns=lab["netns"])


def test_a_throttle_on_the_workstation_link_shows_in_http_only_when_targeted(
    lab: dict[str, Any], loopback_server: tuple[str, int]
) -> None:
    """16 kbit/s on TCP 8443 towards the edge: the IPv4 edge slows, the IPv6 edge does not."""
    from chaosgenesys.network import lab as lab_module
    from chaosgenesys.network.actions import remove_faults, throttle_bandwidth
    from chaosgenesys.network.probes import measure_http

    lab_module.start_edge(lab["name"], 8443, loopback_server)
    throttle_bandwidth(
        rate="16kbit",
        latency_ms=2000,
        protocol="tcp",
        ports=["8443"],
        destinations=["10.200.0.2"],
        interface="veth-a",
        netns=lab["netns"],
        duration=60,
    )
    try:
        # Requests of ~2 kB (a long path) at 2 kB/s: each takes about a second to go out.
        path = "/api/v2/" + "x" * 2000
        slow = measure_http(f"http://10.200.0.2:8443{path}", count=3, netns=lab["netns"])
        fast = measure_http(f"http://[fd42::2]:8443{path}", count=3, netns=lab["netns"])
    finally:
        remove_faults(netns=lab["netns"])
    assert slow["answered"] == 3 and slow["latency_ms"]["median"] > 300, slow
    assert fast["answered"] == 3 and fast["latency_ms"]["median"] < 100, fast


def test_the_control_refuses_bad_arguments_before_creating_anything() -> None:
    from chaosgenesys.network import control

    name = "tc" + os.urandom(3).hex()
    cases: list[tuple[dict[str, Any], dict[str, Any], str]] = [
        ({}, {"agents": ["u1"]}, "edge_port"),
        ({}, {"edge_port": 443}, "genesys_api_url"),
        ({"genesys_api_url": "https://api.mypurecloud.com"}, {"edge_port": 443}, "sandbox"),
        ({"genesys_api_url": "http://127.0.0.1:1"}, {"edge_port": 70000}, "edge_port"),
        (
            {"genesys_api_url": "http://127.0.0.1:1", "agent_mode": "sloppy"},
            {"edge_port": 443, "agents": ["u1"]},
            "agent_mode",
        ),
    ]
    for configuration, arguments, message in cases:
        with pytest.raises(ActivityFailed, match=message):
            control.configure_control(configuration=configuration, name=name, **arguments)
        assert not Path(f"/run/netns/{name}-a").exists()
    assert control.lab_state() == {}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z":
            return False
    return True


@pytest.mark.timeout(150)
def test_an_interrupted_run_leaves_nothing_behind(tmp_path: Path) -> None:
    """SIGINT in the middle of rtp-throttle's method: namespaces, agent, fault all gone. The
    lab is named from the command line (``--var lab_name``): the network control substitutes
    its arguments, so runs of one example on one machine need not collide."""
    lab = "r" + os.urandom(4).hex()
    log = tmp_path / "chaostoolkit.log"
    runtime = tmp_path / "runtime"
    env = {**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(runtime)}
    process = subprocess.Popen(
        [CHAOS, "--no-version-check", "--log-file", str(log), "run",
         "--journal-path", str(tmp_path / "journal.json"), "--var", f"lab_name={lab}",
         "examples/rtp-throttle.yaml"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        # A terminal's Ctrl+C, even where this test runs with SIGINT ignored (a CI background
        # job), which the child would otherwise inherit.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while "Probe: one-fault-recorded" not in (log.read_text() if log.exists() else ""):
            assert process.poll() is None, process.communicate()[0][-3000:]
            assert time.monotonic() < deadline, "the method never started"
            time.sleep(0.05)
        assert Path(f"/run/netns/{lab}-a").exists() and Path(f"/run/netns/{lab}-b").exists()
        tree = subprocess.run(
            ["tc", "-n", f"{lab}-a", "qdisc", "show", "dev", "veth-a"],
            capture_output=True, text=True, check=True,
        ).stdout  # fmt: skip
        assert "tbf" in tree, tree
        agent_pids = [
            int(json.loads(run.read_text())["pid"]) for run in runtime.glob("agents/*/run.json")
        ]
        assert agent_pids and all(_alive(pid) for pid in agent_pids)
        process.send_signal(signal.SIGINT)
        output, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    journal = json.loads((tmp_path / "journal.json").read_text())
    assert journal["status"] == "interrupted", output[-3000:]
    assert not Path(f"/run/netns/{lab}-a").exists(), output[-3000:]
    assert not Path(f"/run/netns/{lab}-b").exists(), output[-3000:]
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in agent_pids) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(pid) for pid in agent_pids), "the synthetic agent outlived the run"
    from chaosgenesys.faults import registry

    assert registry.Registry(runtime).active() == []
    text = log.read_text()
    assert "Genesys sandbox at" in text and "stopped" in text, text[-3000:]
