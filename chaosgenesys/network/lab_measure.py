"""Measuring through a network namespace: UDP and TCP round trips to the lab's echo servers,
HTTP round trips on one keep-alive connection; the figures the network probes return::

    from chaosgenesys.network import lab_measure

    lab_measure.measure_udp("10.200.0.2", 20000, count=50, interval_ms=2, netns="lab-a")
    # {"sent": 50, "received": 50, "loss_percent": 0.0, "rtt_ms": {"min", "median", ...}}

``lab.py`` re-exports these for the probes; the lab itself (namespaces, echo servers, the
edge relay) lives there.
"""

from __future__ import annotations

import contextlib
import http.client
import select
import socket
import statistics
import struct
import time
import urllib.parse
from collections.abc import Sequence
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.nl import NetlinkError, in_netns

__all__ = ["measure_http", "measure_tcp", "measure_udp", "netns_socket", "stats"]


class NetnsHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is created in network namespace ``netns``."""

    def __init__(self, host: str, port: int, netns: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._netns = netns
        self.connect_ms: list[float] = []

    def connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = netns_socket(self._netns, family, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        started = time.perf_counter()
        try:
            sock.connect((self.host, self.port))
        except OSError:
            sock.close()
            raise
        self.connect_ms.append((time.perf_counter() - started) * 1000)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.sock = sock


def measure_http(
    url: str, count: int, interval_ms: float, netns: str, timeout_ms: float = 5000.0
) -> dict[str, Any]:
    """``count`` GET requests to ``url`` on one keep-alive connection (reopened when closed).

    Any HTTP answer counts as a round trip (a 401 from an API without a token is one); an error
    or a timeout counts in ``errors``. Latency is from the request sent to the whole answer read.
    """
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "http" or not parts.hostname:
        raise ActivityFailed(f"url must be an http:// URL with a host, got {url!r}")
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    conn = NetnsHTTPConnection(parts.hostname, parts.port or 80, netns, timeout_ms / 1000)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    errors: list[str] = []
    try:
        for number in range(count):
            if number and interval_ms:
                time.sleep(interval_ms / 1000)
            started = time.perf_counter()
            try:
                conn.request("GET", path, headers={"Accept": "application/json"})
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException) as error:
                errors.append(f"{type(error).__name__}: {error}")
                conn.close()
                continue
            latencies.append((time.perf_counter() - started) * 1000)
            statuses[str(response.status)] = statuses.get(str(response.status), 0) + 1
    finally:
        conn.close()
    return {
        "url": url,
        "requests": count,
        "answered": len(latencies),
        "errors": len(errors),
        "error_samples": errors[:3],
        "statuses": statuses,
        "connects": len(conn.connect_ms),
        "connect_ms": stats(conn.connect_ms),
        "latency_ms": stats(latencies),
    }


def stats(values: list[float]) -> dict[str, float]:
    """min, mean, median, p95, max and stdev of ``values``, in ms to 3 decimals ({} if none)."""
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


def netns_socket(netns: str, family: int, kind: int) -> socket.socket:
    """A socket created in network namespace ``netns`` (ActivityFailed naming a missing one)."""
    from chaosgenesys.network.arguments import resolve_netns

    resolve_netns(netns)  # a file that is not a network namespace is refused, named
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
    rtts = udp_round_trips(address, port, count, interval_ms, size, netns, timeout_ms)
    received = len(rtts)
    return {
        "address": address,
        "port": port,
        "sent": count,
        "received": received,
        "loss_percent": round(100.0 * (count - received) / count, 3) if count else 0.0,
        "rtt_ms": stats(rtts),
    }


def udp_round_trips(
    address: str,
    port: int,
    count: int,
    interval_ms: float,
    size: int,
    netns: str,
    timeout_ms: float = 1000.0,
) -> list[float]:
    """The round-trip times (ms) of the echoes of ``count`` datagrams, in arrival order (a lost
    datagram has none): what :func:`measure_udp` summarises."""
    targets = [(address, port)]
    return udp_round_trips_together(targets, count, interval_ms, size, netns, timeout_ms)[0]


def udp_round_trips_together(
    targets: Sequence[tuple[str, int]],
    count: int,
    interval_ms: float,
    size: int,
    netns: str,
    timeout_ms: float = 1000.0,
) -> list[list[float]]:
    """:func:`udp_round_trips` to each ``(address, port)`` of ``targets`` at once: every
    ``interval_ms`` one datagram to each, in turn, from one thread, so that what holds up the
    measuring process holds up every target's figures alike (a control measured beside the
    traffic under test, say). One list of round trips (ms) a target, in the order given::

        under_test, control = udp_round_trips_together(
            [("10.200.0.2", 20000), ("10.200.0.2", 5000)], 400, 3, 64, "lab-a"
        )
    """
    socks: list[socket.socket] = []
    sent: list[dict[int, float]] = [{} for _ in targets]
    rtts: list[list[float]] = [[] for _ in targets]
    payload = b"\0" * max(0, size - 12)
    try:
        for address, port in targets:
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            sock = netns_socket(netns, family, socket.SOCK_DGRAM)
            socks.append(sock)
            sock.setblocking(False)
            sock.connect((address, port))
        index = {sock: i for i, sock in enumerate(socks)}
        start = time.perf_counter()
        deadline = None
        seq = 0
        while True:
            now = time.perf_counter()
            if seq < count and now >= start + seq * interval_ms / 1000:
                for i, sock in enumerate(socks):
                    with contextlib.suppress(BlockingIOError, ConnectionRefusedError):
                        sent[i][seq] = time.perf_counter()
                        sock.send(struct.pack("!Id", seq, sent[i][seq]) + payload)
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
            readable, _, _ = select.select(socks, [], [], max(0.0, wait))
            for sock in readable:
                i = index[sock]
                while True:
                    try:
                        data = sock.recv(65535)
                    except (BlockingIOError, ConnectionRefusedError):
                        break
                    if len(data) >= 12:
                        number, stamp = struct.unpack_from("!Id", data)
                        if sent[i].pop(number, None) is not None:
                            rtts[i].append((time.perf_counter() - stamp) * 1000)
            if deadline is not None and not any(sent):
                break
    finally:
        for sock in socks:
            sock.close()
    return rtts


def measure_tcp(address: str, port: int, count: int, size: int, netns: str) -> dict[str, Any]:
    """Connect to a TCP echo server, then ``count`` request/echo round trips."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    sock = netns_socket(netns, family, socket.SOCK_STREAM)
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
        "rtt_ms": stats(rtts),
    }
