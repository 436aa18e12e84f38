"""reject_connections: new connections get a reset during the window, and the window always ends."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults import registry
from chaosgenesys.network.nl import in_netns
from chaosgenesys.sockets import reject
from chaosgenesys.sockets.actions import REJECT_KIND, reject_connections, remove_rejections
from tests import polling
from tests.sockets.netns_helpers import Pair, connect, needs_root, serve


def _wait_until(condition: Callable[[], object], timeout: float) -> bool:
    return polling.wait_until(condition, timeout, 0.05)


pytestmark = needs_root


def _attempt(pair: Pair, address: str, port: int) -> str:
    """``"connected"`` or the error name of one connection attempt from the client namespace."""
    with in_netns(pair.client_path):
        try:
            socket.create_connection((address, port), timeout=3).close()
        except OSError as error:
            return type(error).__name__
    return "connected"


def _tables(pair: Pair) -> str:
    return reject.ruleset(pair.client_path)


def _drain(server: socket.socket) -> None:
    server.setblocking(False)
    try:
        while True:
            server.accept()[0].close()
    except BlockingIOError:
        pass
    finally:
        server.setblocking(True)


def test_window_rejects_new_connections_then_ends(pair: Pair, registry_dir: Path) -> None:
    server = serve(pair.server_path, "::")
    other = serve(pair.server_path, pair.server_v4)
    port, other_port = server.getsockname()[1], other.getsockname()[1]
    established, established_peer = connect(pair.client_path, server, pair.server_v4)
    with server, other, established, established_peer:
        result = reject_connections(
            destinations=[pair.server_v4, pair.server_v6],
            ports=[str(port)],
            duration=2.0,
            netns=pair.client,
        )
        started = time.monotonic()
        table = result["table"].split()[1]
        assert table.startswith(reject.TABLE_PREFIX)
        assert table in _tables(pair)
        [fault] = registry.active(kind=REJECT_KIND)
        assert fault.id == result["fault_id"] and fault.deadline == result["deadline"]

        # During the window: new connections get a reset (IPv4 and IPv6); the established one
        # and connections to other ports are untouched.
        assert _attempt(pair, pair.server_v4, port) == "ConnectionRefusedError"
        assert _attempt(pair, pair.server_v6, port) == "ConnectionRefusedError"
        assert _attempt(pair, pair.server_v4, other_port) == "connected"
        established.sendall(b"ok")
        assert established_peer.recv(2) == b"ok"
        assert time.monotonic() - started < 2.0, "the checks outlasted the window"

        # After it: the guardian deleted the table and forgot the fault.
        assert _wait_until(
            lambda: table not in _tables(pair) and registry.active() == [], timeout=6.0
        )
        assert _attempt(pair, pair.server_v4, port) == "connected"
        assert _attempt(pair, pair.server_v6, port) == "connected"
        _drain(server)
        _drain(other)


def test_ingress_rejects_connections_from_the_destinations(pair: Pair, registry_dir: Path) -> None:
    # The rule lives in the server's namespace and refuses connections from the client.
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    with server:
        result = reject_connections(
            destinations=[f"{pair.client_v4}/32"],
            ports=[str(port)],
            duration=30,
            direction="ingress",
            netns=pair.server_path,  # a path works as well as a name
        )
        assert _attempt(pair, pair.server_v4, port) == "ConnectionRefusedError"
        assert remove_rejections(result["fault_id"]) == {"removed": [result["fault_id"]]}
        assert _attempt(pair, pair.server_v4, port) == "connected"
        assert "chaosgenesys_reject_" not in reject.ruleset(pair.server_path)


def test_revert_is_idempotent_and_touches_nothing_else(pair: Pair, registry_dir: Path) -> None:
    # Someone else's table in the namespace stays as it was.
    foreign = '{"nftables": [{"add": {"table": {"family": "inet", "name": "someone_else"}}}]}'
    with in_netns(pair.client_path):
        subprocess.run(["nft", "-j", "-f", "-"], input=foreign, text=True, check=True)
    result = reject_connections(ports=["443"], duration=60, netns=pair.client)
    table = result["table"].split()[1]
    fault = registry.Registry(registry_dir).get(result["fault_id"])
    assert fault is not None
    reject.revert(fault)
    reject.revert(fault)  # already gone: no error
    assert registry.revert(fault.id) is True  # forgets it; the reverter finds nothing to do
    assert registry.revert(fault.id) is False
    rules = _tables(pair)
    assert table not in rules
    assert "table inet someone_else" in rules
    assert remove_rejections() == {"removed": []}


def test_revert_after_the_namespace_is_gone(registry_dir: Path) -> None:
    from tests.sockets.netns_helpers import make_pair

    with make_pair() as pair:
        result = reject_connections(ports=["443"], duration=60, netns=pair.client)
    # The namespace (and the table in it) is gone: reverting succeeds and forgets the fault.
    assert registry.revert(result["fault_id"]) is True


def test_dry_run_returns_the_document_and_applies_nothing(pair: Pair, registry_dir: Path) -> None:
    result = reject_connections(
        destinations=["10.0.0.0/8", "fd00::/8"],
        ports=["443", "16384-32768"],
        exclude=["10.1.0.0/16"],
        duration=10,
        direction="both",
        netns=pair.client,
        dry_run=True,
    )
    assert result["fault_id"] is None and result["dry_run"] is True
    commands = result["nftables"]["nftables"]
    chains = [c["add"]["chain"]["hook"] for c in commands if "chain" in c.get("add", {})]
    assert chains == ["output", "forward", "input"]
    json.dumps(result)
    assert "chaosgenesys_reject_" not in _tables(pair)
    assert registry.active() == []


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"destinations": ["10.0.0.0/33"], "ports": ["443"]}, "'10.0.0.0/33'"),
        ({"ports": ["9-3"]}, "ports: a port range must go from low to high, got '9-3'"),
        ({"ports": ["443"], "duration": 0}, "duration must be greater than 0"),
        ({"ports": ["443"], "duration": -5}, "duration must be greater than 0"),
        ({"ports": ["443"], "duration": "ten"}, "duration must be a number"),
        ({"ports": ["443"], "direction": "sideways"}, "direction must be one of"),
        (
            {"ports": ["443"], "netns": "cgs-no-such-namespace"},
            "netns 'cgs-no-such-namespace' does not exist",
        ),
        ({}, "destinations and ports are both empty"),
    ],
)
def test_bad_arguments_change_nothing(arguments: dict, message: str, registry_dir: Path) -> None:
    with pytest.raises(ActivityFailed) as caught:
        reject_connections(**arguments)
    assert message in str(caught.value)
    assert registry.active() == []
    assert reject.TABLE_PREFIX not in reject.ruleset()


def _fill_output_hook(netns_path: str) -> int:
    """Take every slot of the namespace's output hook with base chains of a table of our own (the
    kernel allows 1,024 on one hook): from then on the kernel refuses any other base chain there.
    Returns how many chains it took."""
    from chaosgenesys.network import nft

    def chains(first: int, count: int) -> str:
        return "".join(
            f"add chain inet filler c{n} {{ type filter hook output priority 0; }}\n"
            for n in range(first, first + count)
        )

    rc, _out, err = nft.run("add table inet filler\n", netns_path, json_output=False)
    assert rc == 0, err
    added = 0
    for step in (256, 16, 1):  # each transaction is all or nothing: the steps find the limit
        while True:
            rc, _out, err = nft.run(chains(added, step), netns_path, json_output=False)
            if rc != 0:
                assert "Argument list too long" in err, err
                break
            added += step
    return added


def test_a_rule_the_kernel_refuses_leaves_nothing_recorded(pair: Pair, registry_dir: Path) -> None:
    assert _fill_output_hook(pair.client_path) > 1000
    with pytest.raises(
        ActivityFailed,
        match=r"nft refused the rule, nothing was applied: .*Argument list too long",
    ):
        reject_connections(ports=["443"], duration=5, netns=pair.client)
    assert registry.active() == []
    assert reject.TABLE_PREFIX not in _tables(pair)
    assert "table inet filler" in _tables(pair)  # what was there before is left alone


_OWNER = """
import json, sys, time
from chaosgenesys.sockets.actions import reject_connections
result = reject_connections(ports=[sys.argv[1]], duration=300, netns=sys.argv[2])
print(json.dumps(result), flush=True)
time.sleep(300)
"""


def test_guardian_reverts_when_the_owner_is_killed(pair: Pair, registry_dir: Path) -> None:
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    owner = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_OWNER), str(port), pair.client],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    with server:
        try:
            assert owner.stdout is not None
            line = owner.stdout.readline()
            assert line, "the owner process printed nothing"
            table = json.loads(line)["table"].split()[1]
            assert _attempt(pair, pair.server_v4, port) == "ConnectionRefusedError"
            owner.send_signal(signal.SIGKILL)
            owner.wait(timeout=10)
            killed = time.monotonic()
            assert _wait_until(
                lambda: table not in _tables(pair) and registry.active() == [], timeout=10.0
            )
            assert time.monotonic() - killed < 5.0
            assert _attempt(pair, pair.server_v4, port) == "connected"
        finally:
            owner.kill()
            owner.wait(timeout=10)
