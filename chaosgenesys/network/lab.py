"""A two-namespace test network with echo servers, and the probes that measure through it.

``create(name)`` makes network namespaces ``<name>-a`` and ``<name>-b`` joined by a veth pair
(``veth-a`` 10.200.0.1/24 + fd42::1/64, ``veth-b`` 10.200.0.2/24 + fd42::2/64) and starts UDP
and TCP echo servers in ``<name>-b`` (threads of this process). Faults go on ``veth-a`` in
``<name>-a``; :func:`measure_udp` / :func:`measure_tcp` measure from there. ``delete(name)`` stops
the servers and deletes both namespaces (the veth pair goes with them). Examples and tests use it
so that nothing touches the host's own interfaces. The namespaces outlive the process that made
them, so a lab is recorded in the fault registry (kind ``test-network``) before it is created,
like a fault: if its process dies, however it dies, the guardian deletes the namespaces, and
``chaosgenesys cleanup`` / ``revert_all`` delete them too.

``start_edge(name, port, target)`` adds a "Genesys Cloud edge" to the lab: a TCP relay listening
on ``port`` in ``<name>-b`` (10.200.0.2 and fd42::2) that forwards every connection to ``target``
(``(host, port)``) reached from the namespace of the calling process, typically the embedded
sandbox on the host's loopback. A client in ``<name>-a`` (the workstation: a synthetic agent)
then talks to the sandbox through ``veth-a``, where faults apply, and its TCP connection ends at
the edge as it ends at Genesys Cloud's load balancers; the sandbox itself, and the probes that
read it from this process, stay on loopback, untouched. :func:`measure_http` times HTTP round
trips through it from a namespace.
"""

import contextlib
import http.client
import os
import select
import socket
import statistics
import struct
import subprocess
import threading
import time
import urllib.parse
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.nl import NetlinkError, in_netns

__all__ = [
    "ADDRESS_A",
    "ADDRESS_B",
    "KIND",
    "create",
    "delete",
    "measure_http",
    "measure_tcp",
    "measure_udp",
    "revert",
    "start_edge",
]

#: The fault registry's kind and reverter for a lab.
KIND = "test-network"
REVERTER = "chaosgenesys.network.lab:revert"

ADDRESS_A, ADDRESS_B = "10.200.0.1", "10.200.0.2"
ADDRESS6_A, ADDRESS6_B = "fd42::1", "fd42::2"
_servers: dict[str, list[socket.socket]] = {}
#: Live relayed connections of each lab's edge (both ends), closed by :func:`delete`.
_relayed: dict[str, set[socket.socket]] = {}
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
    from chaosgenesys.faults import registry

    ns_a, ns_b = f"{name}-a", f"{name}-b"
    delete(name)  # a lab of that name left by a run that died
    registry.record(
        kind=KIND,
        description=f"test network {name}: namespaces {ns_a} and {ns_b}",
        reverter=REVERTER,
        spec={"name": name},
    )
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
    try:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("::", port))
    except OSError:
        sock.close()
        raise
    return sock


def start_edge(name: str, port: int, target: tuple[str, int]) -> dict[str, Any]:
    """Relay TCP ``port`` of ``<name>-b`` (every address) to ``target`` (see the module doc).

    The listening socket lives in ``<name>-b``; the connections to ``target`` are opened in the
    caller's namespace. Half-closes are passed on; an error on one side resets the other (a
    zero-linger close), as a load balancer does. :func:`delete` stops it with the lab.
    """
    ns_b = f"{name}-b"
    with _lock:
        if name not in _servers:
            raise ActivityFailed(f"no test network {name!r} in this process: create it first")
    try:
        listener = _bound_dual(ns_b, port)
        listener.listen(128)
    except OSError as error:
        raise ActivityFailed(
            f"the edge cannot listen on port {port} in {ns_b}: {error.strerror}"
        ) from None
    with _lock:
        _servers.setdefault(name, []).append(listener)
        _relayed.setdefault(name, set())
    threading.Thread(
        target=_edge_accept, args=(name, listener, target), name=f"cg-edge-{name}", daemon=True
    ).start()
    return {
        "name": name,
        "netns": ns_b,
        "port": port,
        "addresses": [ADDRESS_B, ADDRESS6_B],
        "url": f"http://{ADDRESS_B}:{port}",
        "target": f"{target[0]}:{target[1]}",
    }


def _edge_accept(name: str, listener: socket.socket, target: tuple[str, int]) -> None:
    with contextlib.suppress(OSError):
        while True:
            client, _peer = listener.accept()
            threading.Thread(target=_edge_connect, args=(name, client, target), daemon=True).start()


def _edge_connect(name: str, client: socket.socket, target: tuple[str, int]) -> None:
    try:
        upstream = socket.create_connection(target, timeout=10)
    except OSError:
        _abort(client)
        client.close()
        return
    upstream.settimeout(None)
    pair = (client, upstream)
    with _lock:
        live = _relayed.get(name)
        if live is not None:
            live.update(pair)
    if live is None:  # the lab is being deleted
        for sock in pair:
            _abort(sock)
            sock.close()
        return
    for sock in pair:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    other = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    other.start()
    _pump(client, upstream)
    other.join()
    with _lock:
        _relayed.get(name, set()).difference_update(pair)
    for sock in pair:
        sock.close()


def _pump(source: socket.socket, sink: socket.socket) -> None:
    """Copy ``source`` to ``sink`` until EOF (passed on as a half-close) or an error (reset)."""
    try:
        while data := source.recv(65536):
            sink.sendall(data)
    except OSError:
        _abort(source)
        _abort(sink)
        return
    with contextlib.suppress(OSError):
        sink.shutdown(socket.SHUT_WR)


def _abort(sock: socket.socket) -> None:
    """Zero linger time (the close that follows sends an RST, as a failing edge does) and wake
    up a thread blocked reading it (``SHUT_RD`` sends nothing)."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)


class _NetnsHTTPConnection(http.client.HTTPConnection):
    """An HTTP connection whose socket is created in network namespace ``netns``."""

    def __init__(self, host: str, port: int, netns: str, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self._netns = netns
        self.connect_ms: list[float] = []

    def connect(self) -> None:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = _client(self._netns, family, socket.SOCK_STREAM)
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
    conn = _NetnsHTTPConnection(parts.hostname, parts.port or 80, netns, timeout_ms / 1000)
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
        "connect_ms": _stats(conn.connect_ms),
        "latency_ms": _stats(latencies),
    }


def delete(name: str) -> dict[str, Any]:
    """Stop the echo servers, delete both namespaces and forget the lab's record (idempotent)."""
    from chaosgenesys.faults import registry

    existed = [ns for ns in (f"{name}-a", f"{name}-b") if os.path.exists(f"/run/netns/{ns}")]
    for fault in registry.active(kind=KIND):
        if fault.spec.get("name") == name:
            registry.revert(fault.id)
    _teardown(name)
    return {"name": name, "deleted": existed}


def revert(fault: Any) -> None:
    """The fault registry's reverter: tear the lab ``fault.spec["name"]`` down, from any
    process (the servers are threads of the process that made it, gone with it)."""
    _teardown(str(fault.spec["name"]))


def _teardown(name: str) -> None:
    with _lock:
        sockets = _servers.pop(name, []) + list(_relayed.pop(name, set()))
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    for ns in (f"{name}-a", f"{name}-b"):
        if os.path.exists(f"/run/netns/{ns}"):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)


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
