"""Two network namespaces joined by a veth pair, made for one test and deleted after it.

``client`` and ``server`` namespaces, ``10.254.N.1`` / ``10.254.N.2`` and ``fd42:6367:N::1`` /
``::2``, loopback up in both. Nothing of the host (interfaces, routes, firewall) is touched:
every name is unique to the test and everything is deleted in teardown, even after a failure
(deleting a namespace deletes its veth end, the other end and every nftables table in it).
Sockets are made inside a namespace with :func:`chaosgenesys.network.nl.in_netns`.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import secrets
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from chaosgenesys.network.nl import in_netns

__all__ = ["Pair", "connect", "make_pair", "needs_root", "serve"]

needs_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="network namespaces need root (CI runs the tests as root)"
)


def _ip(*args: str) -> None:
    result = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    if result.returncode != 0:
        raise RuntimeError(f"ip {' '.join(args)}: {result.stderr.strip()}")


@dataclass(frozen=True)
class Pair:
    client: str  # namespace names
    server: str
    client_v4: str
    server_v4: str
    client_v6: str
    server_v6: str
    client_dev: str  # the veth end in each namespace
    server_dev: str

    @property
    def client_path(self) -> str:
        return f"/run/netns/{self.client}"

    @property
    def server_path(self) -> str:
        return f"/run/netns/{self.server}"


@contextlib.contextmanager
def make_pair() -> Iterator[Pair]:
    token = secrets.token_hex(3)
    subnet = int(token[:2], 16)
    pair = Pair(
        client=f"cgs-c-{token}",
        server=f"cgs-s-{token}",
        client_v4=f"10.254.{subnet}.1",
        server_v4=f"10.254.{subnet}.2",
        # written as the kernel and ipaddress write them (subnet 0 is fd42:6367::1, not
        # fd42:6367:0::1), so a test may compare them with the addresses a probe reports
        client_v6=str(ipaddress.IPv6Address(f"fd42:6367:{subnet:x}::1")),
        server_v6=str(ipaddress.IPv6Address(f"fd42:6367:{subnet:x}::2")),
        client_dev=f"cgs{token}a",
        server_dev=f"cgs{token}b",
    )
    made: list[str] = []
    try:
        for ns in (pair.client, pair.server):
            _ip("netns", "add", ns)
            made.append(ns)
            _ip("-n", ns, "link", "set", "lo", "up")
        _ip(
            "-n",
            pair.client,
            "link",
            "add",
            pair.client_dev,
            "type",
            "veth",
            "peer",
            "name",
            pair.server_dev,
            "netns",
            pair.server,
        )
        for ns, dev, v4, v6 in (
            (pair.client, pair.client_dev, pair.client_v4, pair.client_v6),
            (pair.server, pair.server_dev, pair.server_v4, pair.server_v6),
        ):
            _ip("-n", ns, "addr", "add", f"{v4}/24", "dev", dev)
            _ip("-n", ns, "addr", "add", f"{v6}/64", "dev", dev, "nodad")
            _ip("-n", ns, "link", "set", dev, "up")
        yield pair
    finally:
        for ns in made:
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=30)


def serve(netns: str, address: str, backlog: int = 512) -> socket.socket:
    """A listening TCP socket on a free port of ``address`` inside ``netns`` (``::``: v4 too)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with in_netns(netns):
        return socket.create_server(
            (address, 0), family=family, backlog=backlog, dualstack_ipv6=address == "::"
        )


def connect(
    netns: str, server: socket.socket, address: str, timeout: float = 5.0
) -> tuple[socket.socket, socket.socket]:
    """(client side, server side) of a new connection from ``netns`` to ``server``."""
    port = server.getsockname()[1]
    with in_netns(netns):
        client = socket.create_connection((address, port), timeout=timeout)
    accepted, _ = server.accept()
    accepted.settimeout(timeout)
    return client, accepted
