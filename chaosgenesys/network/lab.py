"""A two-namespace test network with echo servers, and the probes that measure through it.

``create(name)`` makes network namespaces ``<name>-a`` and ``<name>-b`` joined by a veth pair
(``veth-a`` 10.200.0.1/24 + fd42::1/64, ``veth-b`` 10.200.0.2/24 + fd42::2/64) and starts UDP
and TCP echo servers in ``<name>-b`` (threads of this process). Faults go on ``veth-a`` in
``<name>-a``; :func:`measure_udp` / :func:`measure_tcp` measure from there. ``delete(name)`` stops
the servers and deletes both namespaces (the veth pair goes with them). Examples and tests use it
so that nothing touches the host's own interfaces.
"""

import contextlib
import os
import select
import socket
import statistics
import struct
import subprocess
import threading
import time
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.nl import NetlinkError, in_netns

__all__ = ["ADDRESS_A", "ADDRESS_B", "create", "delete", "measure_tcp", "measure_udp"]

ADDRESS_A, ADDRESS_B = "10.200.0.1", "10.200.0.2"
ADDRESS6_A, ADDRESS6_B = "fd42::1", "fd42::2"
_servers: dict[str, list[socket.socket]] = {}
_lock = threading.Lock()


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10)
    if done.returncode != 0:
        raise ActivityFailed(f"`ip {' '.join(args)}` failed: {done.stderr.strip()}")


def _bound(netns: str, kind: int, address: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with in_netns(netns):
        sock = socket.socket(family, kind)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if family == socket.AF_INET6:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    sock.bind((address, port))
    return sock


def _udp_echo(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while True:
            data, peer = sock.recvfrom(65535)
            if peer is None:
                return
            sock.sendto(data, peer)


def _tcp_echo(sock: socket.socket) -> None:
    def serve(conn: socket.socket) -> None:
        with contextlib.suppress(OSError), conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            while data := conn.recv(65535):
                conn.sendall(data)

    with contextlib.suppress(OSError):
        sock.listen(64)
        while True:
            conn, _peer = sock.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()


def create(name: str, udp_ports: list[int], tcp_ports: list[int]) -> dict[str, Any]:
    """Create the namespaces, the veth pair, the addresses and the echo servers."""
    ns_a, ns_b = f"{name}-a", f"{name}-b"
    if os.path.exists(f"/run/netns/{ns_a}") or os.path.exists(f"/run/netns/{ns_b}"):
        delete(name)
    try:
        _ip("netns", "add", ns_a)
        _ip("netns", "add", ns_b)
        _ip(
            "link",
            "add",
            "veth-a",
            "netns",
            ns_a,
            "type",
            "veth",
            "peer",
            "name",
            "veth-b",
            "netns",
            ns_b,
        )
        for ns, dev, v4, v6 in (
            (ns_a, "veth-a", ADDRESS_A, ADDRESS6_A),
            (ns_b, "veth-b", ADDRESS_B, ADDRESS6_B),
        ):
            _ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            _ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        sockets: list[socket.socket] = []
        for port in udp_ports:
            for address in ("0.0.0.0", "::"):
                sock = _bound(ns_b, socket.SOCK_DGRAM, address, port)
                sockets.append(sock)
                threading.Thread(target=_udp_echo, args=(sock,), daemon=True).start()
        for port in tcp_ports:
            sock = _bound_dual(ns_b, port)
            sockets.append(sock)
            threading.Thread(target=_tcp_echo, args=(sock,), daemon=True).start()
        with _lock:
            _servers[name] = sockets
        _warm_up(ns_a, udp_ports)
    except BaseException:
        delete(name)
        raise
    return {
        "name": name,
        "netns": ns_a,
        "peer_netns": ns_b,
        "interface": "veth-a",
        "peer_interface": "veth-b",
        "address": ADDRESS_A,
        "peer_address": ADDRESS_B,
        "address6": ADDRESS6_A,
        "peer_address6": ADDRESS6_B,
        "udp_ports": list(udp_ports),
        "tcp_ports": list(tcp_ports),
    }


def _warm_up(netns: str, udp_ports: list[int]) -> None:
    """Resolve the neighbours of both families once, so that the first measurement is clean."""
    if not udp_ports:
        return
    for address in (ADDRESS_B, ADDRESS6_B):
        for _ in range(30):
            if measure_udp(address, udp_ports[0], 1, 0, 16, netns, 100)["received"]:
                break


def _bound_dual(netns: str, port: int) -> socket.socket:
    with in_netns(netns):
        sock = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("::", port))
    return sock


def delete(name: str) -> dict[str, Any]:
    """Stop the echo servers and delete both namespaces (idempotent)."""
    with _lock:
        sockets = _servers.pop(name, [])
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    deleted = []
    for ns in (f"{name}-a", f"{name}-b"):
        if os.path.exists(f"/run/netns/{ns}"):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
            deleted.append(ns)
    return {"name": name, "deleted": deleted}


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 3),
        "mean": round(statistics.fmean(ordered), 3),
        "median": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))], 3),
        "max": round(ordered[-1], 3),
        "stdev": round(statistics.pstdev(ordered), 3),
    }


def _client(netns: str, family: int, kind: int) -> socket.socket:
    try:
        with in_netns(netns):
            return socket.socket(family, kind)
    except NetlinkError as error:
        raise ActivityFailed(f"netns {netns!r} does not exist: {error.strerror}") from None


def measure_udp(
    address: str,
    port: int,
    count: int,
    interval_ms: float,
    size: int,
    netns: str,
    timeout_ms: float = 1000.0,
) -> dict[str, Any]:
    """Send ``count`` datagrams to an echo server; round-trip times and loss of the echoes."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = _client(netns, family, socket.SOCK_DGRAM)
    sock.setblocking(False)
    sent: dict[int, float] = {}
    rtts: list[float] = []
    payload = b"\0" * max(0, size - 12)
    try:
        sock.connect((address, port))
        start = time.perf_counter()
        deadline = None
        seq = 0
        while True:
            now = time.perf_counter()
            if seq < count and now >= start + seq * interval_ms / 1000:
                with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                    sent[seq] = time.perf_counter()
                    sock.send(struct.pack("!Id", seq, sent[seq]) + payload)
                seq += 1
                if seq == count:
                    deadline = time.perf_counter() + timeout_ms / 1000
                continue
            if deadline is not None and now >= deadline:
                break
            wait = (
                (start + seq * interval_ms / 1000 - now)
                if seq < count
                else ((deadline or now) - now)
            )
            readable, _, _ = select.select([sock], [], [], max(0.0, wait))
            while readable:
                try:
                    data = sock.recv(65535)
                except (BlockingIOError, ConnectionRefusedError):
                    break
                if len(data) >= 12:
                    number, stamp = struct.unpack_from("!Id", data)
                    if sent.pop(number, None) is not None:
                        rtts.append((time.perf_counter() - stamp) * 1000)
            if deadline is not None and not sent:
                break
    finally:
        sock.close()
    received = len(rtts)
    return {
        "address": address,
        "port": port,
        "sent": count,
        "received": received,
        "loss_percent": round(100.0 * (count - received) / count, 3) if count else 0.0,
        "rtt_ms": _stats(rtts),
    }


def measure_tcp(address: str, port: int, count: int, size: int, netns: str) -> dict[str, Any]:
    """Connect to a TCP echo server, then ``count`` request/echo round trips."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = _client(netns, family, socket.SOCK_STREAM)
    sock.settimeout(10)
    rtts: list[float] = []
    payload = b"x" * max(1, size)
    try:
        started = time.perf_counter()
        try:
            sock.connect((address, port))
        except OSError as error:
            return {
                "address": address,
                "port": port,
                "connected": False,
                "error": str(error),
                "round_trips": 0,
                "rtt_ms": {},
            }
        connect_ms = (time.perf_counter() - started) * 1000
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for _ in range(count):
            t0 = time.perf_counter()
            sock.sendall(payload)
            got = 0
            while got < len(payload):
                chunk = sock.recv(65535)
                if not chunk:
                    break
                got += len(chunk)
            rtts.append((time.perf_counter() - t0) * 1000)
    finally:
        sock.close()
    return {
        "address": address,
        "port": port,
        "connected": True,
        "connect_ms": round(connect_ms, 3),
        "round_trips": len(rtts),
        "rtt_ms": _stats(rtts),
    }
