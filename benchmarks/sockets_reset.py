"""``reset_connections`` on 200 established sockets against ``ss -K``, side by side in one run.

In a network namespace of its own (loopback only; deleted at the end), a listener and 200
established connections to it. Each round rebuilds the 200 connections, then one method resets
the client ends (remote port = the listener's) and every server end is read: each must fail
with ``ECONNRESET``, i.e. a real RST reached the peer. Methods, interleaved round by round:

- ``reset_connections(destinations=["127.0.0.1"], ports=[PORT], netns=NS)``: the whole
  activity (argument checks, one sock_diag dump per family, 200 ``SOCK_DESTROY`` requests in
  one ``send()``) - **goal: ≥ 2x faster than ``ss -K``, every peer sees a reset**;
- ``ss -K dst 127.0.0.1 dport = :PORT``: one ``ss`` process, started from a thread already in
  the namespace (no ``ip netns exec`` overhead is counted against it);
- naive pyroute2 (``info``): ``DiagSocket.get_sock_stats`` then one ``nlm_request`` with
  ``SOCK_DESTROY`` per socket, as a straightforward pyroute2 user would write it.

Figures are medians over R rounds (R = 9; ``--quick``: 3). Needs root (namespaces,
CAP_NET_ADMIN) and ``ss`` (iproute2).

Run: ``.venv/bin/python benchmarks/sockets_reset.py [--quick] [--json]``
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable

from _common import BenchmarkError, Figure, median, parse_args, report, run_main

TITLE = "sockets_reset: reset_connections on 200 sockets vs ss -K"
SOCKETS = 200


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise BenchmarkError(f"ip {' '.join(args)}: {result.stderr.strip()}")


class Bench:
    def __init__(self, netns: str) -> None:
        from chaosgenesys.network.nl import in_netns

        self.netns = netns
        self.path = f"/run/netns/{netns}"
        self.in_netns = in_netns
        with in_netns(self.path):
            self.server = socket.create_server(("127.0.0.1", 0), backlog=1024)
        self.port = self.server.getsockname()[1]
        self.clients: list[socket.socket] = []
        self.peers: list[socket.socket] = []

    def connect_all(self) -> None:
        self.close_all()
        with self.in_netns(self.path):
            for _ in range(SOCKETS):
                self.clients.append(socket.create_connection(("127.0.0.1", self.port), timeout=5))
                peer, _ = self.server.accept()
                peer.settimeout(2)
                self.peers.append(peer)

    def peers_reset(self) -> int:
        count = 0
        for peer in self.peers:
            try:
                peer.recv(1)
            except ConnectionResetError:
                count += 1
            except OSError:
                pass
        return count

    def close_all(self) -> None:
        for sock in self.clients + self.peers:
            sock.close()
        self.clients, self.peers = [], []


def reset_ours(bench: Bench) -> int:
    from chaosgenesys.sockets.actions import reset_connections

    result = reset_connections(
        destinations=["127.0.0.1"], ports=[str(bench.port)], netns=bench.netns
    )
    count: int = result["count"]
    return count


def reset_ss(bench: Bench, ss: str) -> int:
    with bench.in_netns(bench.path):
        subprocess.run(
            [ss, "-K", "-n", "-t", "dst", "127.0.0.1", "dport", "=", f":{bench.port}"],
            check=True,
            capture_output=True,
            timeout=30,
        )
    return SOCKETS


def reset_pyroute2(bench: Bench) -> int:
    from pyroute2 import DiagSocket
    from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
    from pyroute2.netlink.diag import SOCK_DESTROY, inet_diag_req

    count = 0
    with bench.in_netns(bench.path):
        diag = DiagSocket()
    with diag:
        diag.bind()
        for msg in diag.get_sock_stats(family=socket.AF_INET, states=1 << 1):
            if msg["idiag_dport"] != bench.port:
                continue
            req = inet_diag_req()
            req["sdiag_family"] = socket.AF_INET
            req["sdiag_protocol"] = socket.IPPROTO_TCP
            req["idiag_states"] = 0xFFFFFFFF
            req["idiag_sport"] = msg["idiag_sport"]
            req["idiag_dport"] = msg["idiag_dport"]
            for key in ("idiag_src", "idiag_dst"):
                raw = socket.inet_pton(socket.AF_INET, msg[key]).ljust(16, b"\0")
                req[key] = struct.unpack(">4I", raw)
            req["idiag_if"] = msg["idiag_if"]
            req["idiag_cookie"] = msg["idiag_cookie"]
            tuple(diag.nlm_request(req, SOCK_DESTROY, NLM_F_REQUEST | NLM_F_ACK))
            count += 1
    return count


def body() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rounds = 3 if args.quick else 9
    if os.geteuid() != 0:
        raise BenchmarkError("needs root (a network namespace and CAP_NET_ADMIN)")
    ss = shutil.which("ss")
    if ss is None:
        raise BenchmarkError("ss (iproute2) is missing")
    try:
        import pyroute2  # noqa: F401

        have_pyroute2 = True
    except ImportError:
        have_pyroute2 = False

    netns = f"cgs-bench-{secrets.token_hex(3)}"
    _ip("netns", "add", netns)
    try:
        _ip("-n", netns, "link", "set", "lo", "up")
        bench = Bench(netns)
        methods: dict[str, Callable[[Bench], int]] = {
            "reset_connections": reset_ours,
            "ss -K": lambda b: reset_ss(b, ss),
        }
        if have_pyroute2:
            methods["naive pyroute2"] = reset_pyroute2
        times: dict[str, list[float]] = {name: [] for name in methods}
        peers: dict[str, list[int]] = {name: [] for name in methods}
        reported: dict[str, list[int]] = {name: [] for name in methods}
        # One warm-up of each (imports, first netlink socket), then interleaved rounds.
        for method in methods.values():
            bench.connect_all()
            method(bench)
        for index in range(rounds):
            order = list(methods.items())
            if index % 2:
                order.reverse()
            for name, method in order:
                bench.connect_all()
                started = time.perf_counter()
                reported[name].append(method(bench))
                times[name].append((time.perf_counter() - started) * 1000)
                peers[name].append(bench.peers_reset())
        bench.close_all()
        bench.server.close()
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True, timeout=30)

    ours = median(times["reset_connections"])
    theirs = median(times["ss -K"])
    ratio = theirs / ours if ours else float("inf")
    figures = [
        Figure("reset_connections, 200 sockets", ours, "ms", "", None),
        Figure("ss -K, 200 sockets", theirs, "ms", "", None),
        Figure("speed-up over ss -K", ratio, "x", ">= 2x", ratio >= 2.0),
        Figure(
            "peers that saw a reset (reset_connections)",
            min(peers["reset_connections"]),
            f"/ {SOCKETS}",
            f"= {SOCKETS} every round",
            min(peers["reset_connections"]) == SOCKETS
            and min(reported["reset_connections"]) == SOCKETS,
        ),
        Figure(
            "peers that saw a reset (ss -K)",
            min(peers["ss -K"]),
            f"/ {SOCKETS}",
            "",
            None,
        ),
    ]
    if have_pyroute2:
        figures.insert(
            2,
            Figure("naive pyroute2, 200 sockets", median(times["naive pyroute2"]), "ms", "", None),
        )
        figures.append(
            Figure(
                "peers that saw a reset (naive pyroute2)",
                min(peers["naive pyroute2"]),
                f"/ {SOCKETS}",
                "",
                None,
            )
        )
    notes = [
        f"medians of {rounds} interleaved rounds after one warm-up each; "
        f"min/max ours {min(times['reset_connections']):.2f}/"
        f"{max(times['reset_connections']):.2f} ms, "
        f"ss {min(times['ss -K']):.2f}/{max(times['ss -K']):.2f} ms",
        "every figure counts the dump as well as the resets; ss includes its process start",
    ]
    report(TITLE, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
