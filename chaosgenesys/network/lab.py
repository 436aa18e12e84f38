"""A two-namespace test network with echo servers, and an edge relay to the sandbox (the
measurements through it are ``lab_measure.py``, re-exported here).

``create(name)`` makes network namespaces ``<name>-a`` and ``<name>-b`` joined by a veth pair
(``veth-a`` 10.200.0.1/24 + fd42::1/64, ``veth-b`` 10.200.0.2/24 + fd42::2/64) and starts UDP
and TCP echo servers in ``<name>-b`` (threads of this process). Faults go on ``veth-a`` in
``<name>-a``; :func:`measure_udp` / :func:`measure_tcp` measure from there. ``delete(name)`` stops
the servers and deletes both namespaces (the veth pair goes with them). Examples and tests use it
so that nothing touches the host's own interfaces. The namespaces outlive the process that made
them, so a lab is recorded in the fault registry (kind ``test-network``) before it is created,
like a fault: if its process dies, however it dies, the guardian deletes the namespaces, and
``chaosgenesys cleanup`` / ``revert_all`` delete them too. A name that another live process holds
(``lab_hold.py``: an ``flock`` on its namespace, machine-wide, whatever the registry) is refused
(``ActivityFailed``), not taken over; a lab left by a process that died, or made earlier by this
one, is deleted and made again.

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
import os
import socket
import struct
import subprocess
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network import lab_hold
from chaosgenesys.network.lab_measure import measure_http as measure_http
from chaosgenesys.network.lab_measure import measure_tcp as measure_tcp
from chaosgenesys.network.lab_measure import measure_udp as measure_udp
from chaosgenesys.network.nl import in_netns

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
    # Checked, cleared and created under the machine's lock of lab makers: of two processes
    # making one name at once, the second sees the first's hold and stops, changing nothing.
    with lab_hold.creating():
        _refuse_if_held(name, "give this one another name, or stop that run first")
        delete(name)  # a lab of that name left by a process that died, or made earlier here
        registry.record(
            kind=KIND,
            description=f"test network {name}: namespaces {ns_a} and {ns_b}",
            reverter=REVERTER,
            spec={"name": name},
        )
        try:
            _ip("netns", "add", ns_a)
            lab_hold.hold(name, ns_a)
            _ip("netns", "add", ns_b)
        except BaseException:
            delete(name)
            raise
    try:
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


def delete(name: str) -> dict[str, Any]:
    """Stop the echo servers, delete both namespaces and forget the lab's record (idempotent).

    ActivityFailed, and nothing deleted, when another live process holds the lab."""
    from chaosgenesys.faults import registry

    with lab_hold.creating():
        _refuse_if_held(name, "not deleted; stop that run first (its end deletes it)")
        existed = [ns for ns in (f"{name}-a", f"{name}-b") if os.path.exists(f"/run/netns/{ns}")]
        for fault in registry.active(kind=KIND):
            if fault.spec.get("name") == name:
                registry.revert(fault.id)
        _teardown(name)
    return {"name": name, "deleted": existed}


def revert(fault: Any) -> None:
    """The fault registry's reverter: tear the lab ``fault.spec["name"]`` down, from any
    process (the servers are threads of the process that made it, gone with it). A lab of that
    name that another process has made since (it holds it; the record's maker is dead) is
    that process's, and stays."""
    _teardown(str(fault.spec["name"]), maker=int(fault.owner_pid))


def _refuse_if_held(name: str, refused: str) -> None:
    """ActivityFailed ending with ``refused`` when another live process holds lab ``name``."""
    holder = None if lab_hold.held_here(name) else lab_hold.holder(f"{name}-a")
    if holder is not None:
        pid = f" ({holder})" if holder else ""  # 0: /proc/locks did not say whose
        raise ActivityFailed(f"test network {name!r} is in use by another process{pid}: {refused}")


def _teardown(name: str, maker: int | None = None) -> None:
    with lab_hold.creating():
        lab_hold.release(name)
        with _lock:
            sockets = _servers.pop(name, []) + list(_relayed.pop(name, set()))
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        holder = lab_hold.holder(f"{name}-a")
        if holder is not None and holder != maker:
            return  # held by a process other than the one that made this lab: its own lab
        for ns in (f"{name}-a", f"{name}-b"):
            if os.path.exists(f"/run/netns/{ns}"):
                subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=10)
