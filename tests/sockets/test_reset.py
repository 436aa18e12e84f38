"""reset_connections: real RSTs through SOCK_DESTROY, only on the targeted connections."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.nl import in_netns
from chaosgenesys.sockets.actions import reset_connections
from chaosgenesys.sockets.probes import list_connections
from tests.conftest import without_net_admin
from tests.sockets.netns_helpers import Pair, connect, needs_root, serve

pytestmark = needs_root


def _peer_sees_reset(sock: socket.socket) -> bool:
    """The peer's next read fails with ECONNRESET: a real RST arrived."""
    try:
        data = sock.recv(16)
    except ConnectionResetError:
        return True
    except OSError:
        return False
    del data  # data or an orderly end of stream: no reset
    return False


def _alive(client: socket.socket, server: socket.socket) -> bool:
    client.sendall(b"ping")
    return server.recv(4) == b"ping"


def test_peer_receives_a_real_reset(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    client, accepted = connect(pair.client_path, server, pair.server_v4)
    with server, client, accepted:
        assert _alive(client, accepted)
        result = reset_connections(
            destinations=[pair.server_v4], ports=[str(port)], netns=pair.client
        )
        assert result["count"] == 1
        assert result["reset"][0]["remote"] == f"{pair.server_v4}:{port}"
        assert result["reset"][0]["local"] == "{}:{}".format(*client.getsockname()[:2])
        assert result["dry_run"] is False
        # The peer (server side) gets the RST; the local owner gets ECONNABORTED.
        assert _peer_sees_reset(accepted)
        with pytest.raises(ConnectionAbortedError):
            client.recv(1)
    json.dumps(result)


def test_only_matching_connections_are_reset(pair: Pair) -> None:
    targeted = serve(pair.server_path, pair.server_v4)
    other = serve(pair.server_path, pair.server_v4)
    hit_client, hit_peer = connect(pair.client_path, targeted, pair.server_v4)
    spared_client, spared_peer = connect(pair.client_path, other, pair.server_v4)
    with targeted, other, hit_client, hit_peer, spared_client, spared_peer:
        result = reset_connections(
            destinations=[f"{pair.server_v4}/32"],
            ports=[str(targeted.getsockname()[1])],
            netns=pair.client,
        )
        assert result["count"] == 1
        assert _peer_sees_reset(hit_peer)
        assert _alive(spared_client, spared_peer)
        assert _alive(spared_peer, spared_client)


def test_exclude_spares_an_address(pair: Pair) -> None:
    server = serve(pair.server_path, "::", backlog=8)
    port = server.getsockname()[1]
    c4, s4 = connect(pair.client_path, server, pair.server_v4)
    c6, s6 = connect(pair.client_path, server, pair.server_v6)
    with server, c4, s4, c6, s6:
        result = reset_connections(
            destinations=["10.0.0.0/8", "fd42::/16"],
            exclude=[pair.server_v6],
            ports=port,  # an int is accepted too
            netns=pair.client,
        )
        assert [r["remote"] for r in result["reset"]] == [f"{pair.server_v4}:{port}"]
        assert _peer_sees_reset(s4)
        assert _alive(c6, s6)


def test_ipv6_connection_is_reset(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v6)
    port = server.getsockname()[1]
    client, accepted = connect(pair.client_path, server, pair.server_v6)
    with server, client, accepted:
        result = reset_connections(
            destinations=["fd42:6367::/32"], ports=[f"{port}-{port}"], netns=pair.client
        )
        assert result["count"] == 1
        assert result["reset"][0]["family"] == "ipv6"
        assert result["reset"][0]["remote"] == f"[{pair.server_v6}]:{port}"
        assert _peer_sees_reset(accepted)


def test_port_ranges_and_lists(pair: Pair) -> None:
    servers = [serve(pair.server_path, pair.server_v4) for _ in range(3)]
    conns = [connect(pair.client_path, s, pair.server_v4) for s in servers]
    ports = sorted(s.getsockname()[1] for s in servers)
    try:
        result = reset_connections(
            destinations=pair.server_v4,  # one string is accepted too
            ports=f"{ports[0]}-{ports[1]}",
            netns=pair.client,
        )
        assert result["count"] == 2
        assert result["target"]["ports"] == [f"{ports[0]}-{ports[1]}"]
    finally:
        for s in servers:
            s.close()
        for c, a in conns:
            c.close()
            a.close()


def test_several_ranges_pass_the_kernel_filter(pair: Pair) -> None:
    # Three or more ranges make a filter program with jumps: only the listed ports are hit.
    servers = [serve(pair.server_path, pair.server_v4) for _ in range(4)]
    conns = [connect(pair.client_path, s, pair.server_v4) for s in servers]
    ports = [s.getsockname()[1] for s in servers]
    try:
        chosen = [ports[0], ports[2], ports[3]]
        result = reset_connections(
            destinations=[pair.server_v4],
            ports=[str(ports[0]), f"{ports[2]}-{ports[2]}", ports[3]],
            netns=pair.client,
        )
        assert sorted(int(r["remote"].rsplit(":", 1)[1]) for r in result["reset"]) == sorted(chosen)
        assert _peer_sees_reset(conns[0][1]) and _peer_sees_reset(conns[2][1])
        assert _alive(*conns[1])
    finally:
        for s in servers:
            s.close()
        for c, a in conns:
            c.close()
            a.close()


def test_ipv4_mapped_ipv6_sockets_match_ipv4_destinations(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    with in_netns(pair.client_path):
        client = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        client.settimeout(5)
        client.connect((f"::ffff:{pair.server_v4}", port))
    accepted, _ = server.accept()
    with server, client, accepted:
        result = reset_connections(destinations=[f"{pair.server_v4}/32"], netns=pair.client)
        assert result["count"] == 1
        assert result["reset"][0]["family"] == "ipv6"
        assert _peer_sees_reset(accepted)


def test_pid_limits_the_reset_to_one_process(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    holder_code = textwrap.dedent(
        f"""
        import socket, sys, time
        s = socket.create_connection(({pair.server_v4!r}, {port}), timeout=5)
        print("connected", flush=True)
        try:
            s.recv(1)
        except OSError as error:
            print(type(error).__name__, flush=True)
        """
    )
    with in_netns(pair.client_path):
        holder = subprocess.Popen(
            [sys.executable, "-c", holder_code], stdout=subprocess.PIPE, text=True
        )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "connected"
        theirs, _ = server.accept()
        ours, ours_peer = connect(pair.client_path, server, pair.server_v4)
        with server, theirs, ours, ours_peer:
            # No netns given: the process's own namespace is used.
            result = reset_connections(ports=[str(port)], pid=holder.pid)
            assert result["count"] == 1
            assert result["target"]["pid"] == holder.pid
            assert holder.stdout.readline().strip() == "ConnectionAbortedError"
            assert _peer_sees_reset(theirs)
            assert _alive(ours, ours_peer)
    finally:
        holder.kill()
        holder.wait(timeout=10)


def test_host_names_resolve_to_every_address(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4)
    client, accepted = connect(pair.client_path, server, pair.server_v4)
    # Within the client namespace, loopback: 'localhost' is 127.0.0.1 (and ::1 where listed).
    with in_netns(pair.client_path):
        local = socket.create_server(("127.0.0.1", 0))
        lport = local.getsockname()[1]
        lclient = socket.create_connection(("127.0.0.1", lport), timeout=5)
    lpeer, _ = local.accept()
    with server, client, accepted, local, lclient, lpeer:
        result = reset_connections(
            destinations=["localhost"], ports=[str(lport)], netns=pair.client
        )
        assert "127.0.0.1/32" in result["target"]["destinations"]
        assert result["count"] == 1
        assert _peer_sees_reset(lpeer)
        assert _alive(client, accepted)


def test_dry_run_lists_and_resets_nothing(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4)
    client, accepted = connect(pair.client_path, server, pair.server_v4)
    with server, client, accepted:
        port = server.getsockname()[1]
        result = reset_connections(
            destinations=[pair.server_v4], ports=[str(port)], netns=pair.client, dry_run=True
        )
        assert result["count"] == 1 and result["dry_run"] is True
        assert _alive(client, accepted)
        listed = list_connections(
            destinations=[pair.server_v4], ports=[str(port)], netns=pair.client
        )
        assert listed["count"] == 1
        assert listed["connections"][0]["remote"] == f"{pair.server_v4}:{port}"


def test_nothing_matching_is_not_an_error(pair: Pair) -> None:
    result = reset_connections(destinations=["192.0.2.0/24"], ports=["443"], netns=pair.client)
    assert result == {
        "reset": [],
        "count": 0,
        "vanished": 0,
        "target": {"destinations": ["192.0.2.0/24"], "exclude": [], "ports": ["443"], "pid": None},
        "netns": pair.client,
        "dry_run": False,
    }


def test_two_hundred_sockets_in_one_call(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4, backlog=512)
    conns = [connect(pair.client_path, server, pair.server_v4) for _ in range(200)]
    try:
        started = time.perf_counter()
        result = reset_connections(
            destinations=[pair.server_v4], ports=[str(server.getsockname()[1])], netns=pair.client
        )
        elapsed = time.perf_counter() - started
        assert result["count"] == 200
        assert all(_peer_sees_reset(peer) for _, peer in conns)
        assert elapsed < 2.0
    finally:
        server.close()
        for c, a in conns:
            c.close()
            a.close()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"destinations": ["10.0.0.0/33"]}, "destinations must hold valid CIDRs"),
        ({"destinations": ["10.0.0.300"]}, "'10.0.0.300'"),
        ({"destinations": ["no-such-host.invalid"]}, "'no-such-host.invalid'"),
        ({"destinations": [42]}, "destinations must hold CIDRs"),
        ({"ports": ["9-3"]}, "ports: a port range must go from low to high, got '9-3'"),
        ({"ports": ["70000"]}, "ports must be between 1 and 65535, got '70000'"),
        ({"ports": ["https"]}, "got 'https'"),
        ({"ports": ["443"], "exclude": ["fd00::/129"]}, "exclude must hold valid CIDRs"),
        ({"ports": ["443"], "pid": -1}, "pid must be at least 0"),
        ({"ports": ["443"], "pid": 2**22 + 7}, "pid: no process"),
        (
            {"ports": ["443"], "netns": "cgs-no-such-namespace"},
            "netns 'cgs-no-such-namespace' does not exist",
        ),
        ({"ports": ["443"], "dry_run": "yes"}, "dry_run must be true or false"),
        ({}, "destinations and ports are both empty"),
    ],
)
def test_bad_arguments_are_refused_by_name(arguments: dict, message: str) -> None:
    with pytest.raises(ActivityFailed) as caught:
        reset_connections(**arguments)
    assert message in str(caught.value)


_NO_CAP_SCRIPT = """
import json, socket
from chaoslib.exceptions import ActivityFailed
from chaosgenesys.sockets.actions import reject_connections, reset_connections
server = socket.create_server(("127.0.0.1", 0))
client = socket.create_connection(server.getsockname(), timeout=5)
peer, _ = server.accept()
try:
    reset_connections(destinations=["127.0.0.1"], ports=[str(server.getsockname()[1])])
    outcome = "no error"
except ActivityFailed as error:
    outcome = str(error)
try:
    reject_connections(ports=["9"], duration=5)
    rejected = "no error"
except ActivityFailed as error:
    rejected = str(error)
client.sendall(b"ok")
print(json.dumps({"error": outcome, "reject": rejected, "alive": peer.recv(2) == b"ok"}))
"""


def test_without_cap_net_admin_it_fails_clearly_and_changes_nothing(tmp_path: Path) -> None:
    # Loopback of the host namespace, the connection is the child's own, and the child lacks
    # CAP_NET_ADMIN.
    script = tmp_path / "no_cap.py"
    script.write_text(_NO_CAP_SCRIPT)
    result = subprocess.run(
        without_net_admin([sys.executable, str(script)]),
        capture_output=True,
        text=True,
        timeout=60,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(sys.path),
            "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "registry"),
        },
    )
    assert result.returncode == 0, result.stderr
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert "reset_connections needs CAP_NET_ADMIN" in outcome["error"]
    assert "reject_connections needs CAP_NET_ADMIN" in outcome["reject"]
    assert outcome["alive"] is True
    assert not (tmp_path / "registry").exists() or not list((tmp_path / "registry").glob("*.json"))


def test_importing_the_activities_imports_no_netlink_library() -> None:
    code = (
        "import sys, chaosgenesys.sockets.actions, chaosgenesys.sockets.probes; "
        "print(sorted(m for m in sys.modules if m.startswith(('pyroute2', "
        "'chaosgenesys.sockets.diag', 'chaosgenesys.faults', 'chaosgenesys.network.tc', "
        "'chaosgenesys.network.nl'))))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.strip() == "[]"
