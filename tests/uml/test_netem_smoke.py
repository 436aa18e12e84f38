"""netem on a veth pair, measured: the smallest proof that the netem kernel works.

Marked ``netem``: skipped on a kernel without sch_netem, run inside user-mode-linux by
``tests/uml/test_netem_in_uml.py``. ``tc`` (iproute2) configures the qdisc, independently of
chaosgenesys.network, whose own netem tests are in tests/network.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest

from chaosgenesys.network.nl import in_netns
from tests.sockets.netns_helpers import Pair, make_pair, needs_root, serve

pytestmark = [pytest.mark.netem, needs_root]


@pytest.fixture
def pair() -> Iterator[Pair]:
    with make_pair() as made:
        yield made


def _tc(pair: Pair, *args: str) -> None:
    subprocess.run(
        ["ip", "netns", "exec", pair.client, "tc", *args],
        check=True,
        capture_output=True,
        timeout=30,
    )


def _echo(server: socket.socket) -> threading.Thread:
    def run() -> None:
        with server:
            conn, _ = server.accept()
            with conn:
                while data := conn.recv(64):
                    conn.sendall(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def _round_trips(pair: Pair, count: int) -> list[float]:
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    _echo(server)
    with in_netns(pair.client_path):
        client = socket.create_connection((pair.server_v4, port), timeout=10)
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    times: list[float] = []
    with client:
        for _ in range(count):
            started = time.perf_counter()
            client.sendall(b"x")
            assert client.recv(1) == b"x"
            times.append((time.perf_counter() - started) * 1000)
    return times


def test_netem_delay_shows_in_the_round_trip_time(pair: Pair) -> None:
    baseline = statistics.median(_round_trips(pair, 10))
    _tc(pair, "qdisc", "add", "dev", pair.client_dev, "root", "netem", "delay", "50ms")
    delayed = _round_trips(pair, 20)
    # Only the client's egress is delayed: one 50 ms delay per round trip.
    assert 49.0 <= statistics.median(delayed) <= 50.0 + baseline + 10.0, delayed
    assert min(delayed) >= 49.0, delayed


def test_netem_loss_of_every_packet_blocks_connections(pair: Pair) -> None:
    server = serve(pair.server_path, pair.server_v4)
    port = server.getsockname()[1]
    _tc(pair, "qdisc", "add", "dev", pair.client_dev, "root", "netem", "loss", "100%")
    with server:
        with in_netns(pair.client_path), pytest.raises(TimeoutError):
            socket.create_connection((pair.server_v4, port), timeout=1.0)
        _tc(pair, "qdisc", "del", "dev", pair.client_dev, "root")
        # the neighbour entry the lost ARP requests left FAILED would answer EHOSTUNREACH at
        # once (seen in CI): forget it, as the loss is what the test is about
        subprocess.run(["ip", "netns", "exec", pair.client, "ip", "neigh", "flush", "dev",
                        pair.client_dev], check=True, capture_output=True, timeout=30)
        with in_netns(pair.client_path):
            socket.create_connection((pair.server_v4, port), timeout=5.0).close()
