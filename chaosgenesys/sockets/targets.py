"""The socket actions' targeting arguments, checked before anything changes.

``destinations`` and ``exclude`` are CIDRs, addresses or host names (every A and AAAA record;
a name that resolves to nothing is refused), IPv4 and IPv6. ``ports`` are ``"443"``,
``"16384-32768"``, integers, comma-separated strings or lists of these. ``netns`` is the name
of a network namespace (``ip netns add NAME``, i.e. ``/run/netns/NAME``) or the path of a
namespace file (``/proc/PID/ns/net``). Every helper raises
:class:`~chaoslib.exceptions.ActivityFailed` naming the argument and the value it got.

Only the standard library is used here: importing the activities stays cheap.
"""

import functools
import ipaddress
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

__all__ = [
    "IPNetwork",
    "Target",
    "parse_networks",
    "parse_ports",
    "parse_target",
    "resolve_netns",
]

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _items(name: str, value: Any) -> list[Any]:
    """None, one value, a comma-separated string or a list -> a list of stripped items."""
    if value is None:
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, int) and not isinstance(value, bool):
        return [value]
    if isinstance(value, list | tuple):
        items: list[Any] = []
        for item in value:
            if isinstance(item, str):
                items.extend(part.strip() for part in item.split(",") if part.strip())
            else:
                items.append(item)
        return items
    raise ActivityFailed(
        f"{name} must be a string or a list of strings, got {type(value).__name__} {_show(value)}"
    )


def _resolve(name: str, host: str) -> list[IPNetwork]:
    """Every A and AAAA record of ``host`` as /32 and /128 networks."""
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise ActivityFailed(
            f"{name} must be CIDRs, addresses or host names that resolve, got {host!r}: {error}"
        ) from None
    networks: list[IPNetwork] = []
    for family, _, _, _, sockaddr in answers:
        if family in (socket.AF_INET, socket.AF_INET6):
            address = str(sockaddr[0]).split("%", 1)[0]
            network = ipaddress.ip_network(address)
            if network not in networks:
                networks.append(network)
    if not networks:
        raise ActivityFailed(f"{name}: host name {host!r} resolves to no IPv4 or IPv6 address")
    return networks


def _looks_like_address(text: str) -> bool:
    """Digits, dots, colons, slashes and hex: meant as an address or CIDR, not a host name."""
    if ":" in text or "/" in text:
        return True
    return all(ch.isdigit() or ch == "." for ch in text)


def parse_networks(name: str, value: Any) -> list[IPNetwork]:
    """CIDRs, addresses and host names -> networks (host bits of a CIDR are ignored)."""
    networks: list[IPNetwork] = []
    for item in _items(name, value):
        if not isinstance(item, str):
            raise ActivityFailed(
                f"{name} must hold CIDRs, addresses or host names, got {_show(item)}"
            )
        if _looks_like_address(item):
            try:
                found: list[IPNetwork] = [ipaddress.ip_network(item, strict=False)]
            except ValueError as error:
                raise ActivityFailed(
                    f"{name} must hold valid CIDRs or addresses, got {item!r}: {error}"
                ) from None
        else:
            found = _resolve(name, item)
        for network in found:
            if network not in networks:
                networks.append(network)
    return networks


def parse_ports(name: str, value: Any) -> list[tuple[int, int]]:
    """``"443"``, ``"16384-32768"``, ``443`` or lists of them -> sorted, merged inclusive ranges."""
    ranges: list[tuple[int, int]] = []
    for item in _items(name, value):
        if isinstance(item, bool) or not isinstance(item, int | str):
            raise ActivityFailed(
                f"{name} must hold ports or ranges such as '443' or '16384-32768', "
                f"got {_show(item)}"
            )
        text = str(item).strip()
        low_text, dash, high_text = text.partition("-")
        try:
            low = int(low_text)
            high = int(high_text) if dash else low
        except ValueError:
            raise ActivityFailed(
                f"{name} must hold ports or ranges such as '443' or '16384-32768', got {text!r}"
            ) from None
        if not (1 <= low <= 65535 and 1 <= high <= 65535):
            raise ActivityFailed(f"{name}: ports are 1 to 65535, got {text!r}")
        if low > high:
            raise ActivityFailed(
                f"{name}: a port range must go from low to high, got {text!r} ({low} > {high})"
            )
        ranges.append((low, high))
    merged: list[tuple[int, int]] = []
    for low, high in sorted(ranges):
        if merged and low <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(high, merged[-1][1]))
        else:
            merged.append((low, high))
    return merged


def resolve_netns(name: str, value: Any) -> str | None:
    """``""``/None -> None (this process's namespace); a name or a path -> the namespace file."""
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ActivityFailed(f"{name} must be a namespace name or path, got {_show(value)}")
    path = value if "/" in value else os.path.join("/run/netns", value)
    if not os.path.exists(path):
        raise ActivityFailed(
            f"{name}: no network namespace {value!r} ({path} does not exist; "
            f"'ip netns list' shows the named ones)"
        )
    return path


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

    destinations: tuple[IPNetwork, ...] = ()
    exclude: tuple[IPNetwork, ...] = ()
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
    nets = parse_networks("destinations", destinations)
    port_ranges = parse_ports("ports", ports)
    excluded = parse_networks("exclude", exclude)
    if not nets and not port_ranges:
        raise ActivityFailed(
            "destinations and ports are both empty: refusing to target every TCP connection "
            "(name destinations or ports; for really everything use "
            "destinations ['0.0.0.0/0', '::/0'])"
        )
    return Target(tuple(nets), tuple(excluded), tuple(port_ranges))
