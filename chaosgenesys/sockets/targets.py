"""The socket actions' targets: which remote ends a reset, a reject window or a probe is about.

The targeting arguments (``destinations``, ``exclude``, ``ports``, ``direction``, ``netns``) are
checked and resolved by :mod:`chaosgenesys.network.arguments`, as for the network actions; this
module adds what is specific to sockets: one of ``destinations`` or ``ports`` is required, and a
:class:`Target` matches the remote ends sock_diag reports (and feeds the nftables sets of
:mod:`chaosgenesys.sockets.reject`).

Only the standard library is used here: importing the activities stays cheap.
"""

import functools
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.arguments import Network, parse_destinations, parse_ports

__all__ = ["Target", "parse_target"]


def _address_int(address: str) -> tuple[int, int]:
    """(IP version, address as an integer); an IPv4-mapped IPv6 address is IPv4."""
    if ":" not in address:
        return 4, int.from_bytes(socket.inet_pton(socket.AF_INET, address))
    value = int.from_bytes(socket.inet_pton(socket.AF_INET6, address.split("%", 1)[0]))
    if value >> 32 == 0xFFFF:
        return 4, value & 0xFFFFFFFF
    return 6, value


def _within(version: int, value: int, networks: list[tuple[int, int, int]]) -> bool:
    return any(v == version and value & mask == net for v, net, mask in networks)


@dataclass(frozen=True)
class Target:
    """Which remote ends a socket action is about: networks minus excludes, and port ranges.

    An empty ``destinations`` means every address; empty ``ports`` means every port.
    """

    destinations: tuple[Network, ...] = ()
    exclude: tuple[Network, ...] = ()
    ports: tuple[tuple[int, int], ...] = ()

    def matches(self, address: str, port: int) -> bool:
        """Whether a remote ``address``/``port`` is targeted (IPv4-mapped IPv6 counts as IPv4)."""
        if self.ports and not any(low <= port <= high for low, high in self.ports):
            return False
        version, value = _address_int(address)
        if self.destinations and not _within(version, value, self._masks[0]):
            return False
        return not _within(version, value, self._masks[1])

    def matches_raw(self, family: int, raw: bytes, port: int) -> bool:
        """:meth:`matches` for an address as sock_diag gives it (16 bytes, IPv4 in the first 4)."""
        return self.raw_matcher(family, raw, port)

    @functools.cached_property
    def raw_matcher(self) -> Callable[[int, bytes, int], bool]:
        """A closure doing :meth:`matches_raw` with everything it can precomputed (hot path)."""
        ports = self.ports
        wanted: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        unwanted: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for version, net, mask in self._masks[0]:
            wanted[version].append((net, mask))
        for version, net, mask in self._masks[1]:
            unwanted[version].append((net, mask))
        any_destination = not self.destinations
        from_bytes = int.from_bytes
        af_inet = socket.AF_INET

        def match(family: int, raw: bytes, port: int) -> bool:
            if ports:
                for low, high in ports:
                    if low <= port <= high:
                        break
                else:
                    return False
            if family == af_inet:
                version, value = 4, from_bytes(raw[:4])
            else:
                version, value = 6, from_bytes(raw)
                if value >> 32 == 0xFFFF:
                    version, value = 4, value & 0xFFFFFFFF
            if not any_destination:
                for net, mask in wanted[version]:
                    if value & mask == net:
                        break
                else:
                    return False
            excluded = unwanted[version]
            return not excluded or all(value & mask != net for net, mask in excluded)

        return match

    @functools.cached_property
    def _masks(self) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """(version, network as int, netmask as int) of the destinations and the excludes."""
        return (
            [(n.version, int(n.network_address), int(n.netmask)) for n in self.destinations],
            [(n.version, int(n.network_address), int(n.netmask)) for n in self.exclude],
        )

    def families(self) -> tuple[int, ...]:
        """The IP versions the target can match (4, 6 or both)."""
        if not self.destinations:
            return (4, 6)
        return tuple(v for v in (4, 6) if any(n.version == v for n in self.destinations))

    def to_dict(self) -> dict[str, Any]:
        return {
            "destinations": [str(n) for n in self.destinations],
            "exclude": [str(n) for n in self.exclude],
            "ports": [f"{lo}" if lo == hi else f"{lo}-{hi}" for lo, hi in self.ports],
        }


def parse_target(destinations: Any, ports: Any, exclude: Any) -> Target:
    """Check and resolve the three targeting arguments; one of destinations or ports is needed."""
    resolved = parse_destinations(destinations, exclude)
    port_ranges = parse_ports(ports)
    if not resolved.wanted and not port_ranges:
        raise ActivityFailed(
            "destinations and ports are both empty: refusing to target every TCP connection "
            "(name destinations or ports; for really everything use "
            "destinations ['0.0.0.0/0', '::/0'])"
        )
    return Target(resolved.wanted, resolved.excluded, tuple(port_ranges))
