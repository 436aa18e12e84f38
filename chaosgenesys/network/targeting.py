"""The targeting arguments every network action shares, checked and turned into match keys.

``destinations`` (CIDRs, addresses, host names: every A and AAAA record; empty = all traffic),
``exclude`` (the same kinds, subtracted from the destinations), ``protocol`` (``tcp``, ``udp`` or
``""``), ``ports`` (``"443"``, ``"16384-32768"``, a list or comma-separated string of them),
``direction`` (``egress``, ``ingress``, ``both``). Egress matches the destination address and
port of a packet; ingress (on the IFB device the interface's incoming packets are redirected to)
matches the source address and port, i.e. the same remote endpoints.

A port range becomes aligned power-of-two blocks (value/mask pairs), the networks minus the
excluded ones become a list of CIDRs, and each (network, protocol, port block) becomes one u32
selector whose keys are AND'ed: protocol AND port AND address, never OR'ed.
"""

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.tc import ETH_P_IP, ETH_P_IPV6, U32Key

__all__ = [
    "Network",
    "Target",
    "parse_direction",
    "parse_ports",
    "parse_protocol",
    "port_blocks",
    "resolve",
    "target",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PROTOCOLS = {"tcp": 6, "udp": 17}
DIRECTIONS = ("egress", "ingress", "both")
_MAX_MATCHES = 4000


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."


def _items(name: str, value: Any) -> list[str]:
    if value is None or value == "":
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list | tuple):
        out: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, int) and not isinstance(item, bool):
                item = str(item)
            if not isinstance(item, str) or not item.strip():
                raise ActivityFailed(
                    f"{name} must be a list of non-empty strings, "
                    f"got {_show(item)} at index {index}"
                )
            out.append(item.strip())
        return out
    raise ActivityFailed(f"{name} must be a string or a list of strings, got {_show(value)}")


def parse_protocol(value: Any) -> str:
    """``tcp``, ``udp`` or ``""`` (both, or anything when no port is given)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "any", "all"):
        return ""
    if isinstance(value, str) and value.strip().lower() in PROTOCOLS:
        return value.strip().lower()
    raise ActivityFailed(f"protocol must be 'tcp', 'udp' or '' (any), got {_show(value)}")


def parse_direction(value: Any) -> str:
    """``egress``, ``ingress`` or ``both``."""
    if isinstance(value, str) and value.strip().lower() in DIRECTIONS:
        return value.strip().lower()
    raise ActivityFailed(f"direction must be 'egress', 'ingress' or 'both', got {_show(value)}")


def parse_ports(value: Any) -> list[tuple[int, int]]:
    """``"443"``, ``"16384-32768"``, ``[443, "8000-8080"]`` -> sorted, merged ``(first, last)``."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    ranges: list[tuple[int, int]] = []
    for item in _items("ports", value):
        first_text, sep, last_text = item.partition("-")
        try:
            first = int(first_text)
            last = int(last_text) if sep else first
        except ValueError:
            raise ActivityFailed(
                f"ports must be port numbers or ranges such as '443' or '16384-32768', got {item!r}"
            ) from None
        if not (0 < first <= 65535 and 0 < last <= 65535):
            raise ActivityFailed(f"ports must be between 1 and 65535, got {item!r}")
        if last < first:
            raise ActivityFailed(
                f"ports range {item!r} ends before it starts (the range must be first-last "
                f"with first <= last)"
            )
        ranges.append((first, last))
    ranges.sort()
    merged: list[tuple[int, int]] = []
    for first, last in ranges:
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return merged


def port_blocks(first: int, last: int) -> list[tuple[int, int]]:
    """A port range as aligned power-of-two blocks ``(value, mask)``: 16384-32768 ->
    ``[(16384, 0xC000), (32768, 0xFFFF)]``."""
    blocks: list[tuple[int, int]] = []
    port = first
    while port <= last:
        size = port & -port if port else 1 << 16
        while size > 1 and port + size - 1 > last:
            size >>= 1
        blocks.append((port, 0xFFFF & ~(size - 1)))
        port += size
    return blocks


def resolve(name: str, value: Any, *, required: bool) -> list[Network]:
    """CIDRs, addresses and host names -> networks (a host name gives all its A/AAAA records)."""
    networks: list[Network] = []
    for item in _items(name, value):
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
            continue
        except ValueError:
            pass
        looks_numeric = all(ch in "0123456789./:abcdefABCDEF" for ch in item)
        if "/" in item or looks_numeric:
            raise ActivityFailed(f"{name} has an invalid address or CIDR: {item!r}")
        try:
            infos = socket.getaddrinfo(item, None, proto=socket.IPPROTO_TCP)
        except (socket.gaierror, UnicodeError) as error:
            raise ActivityFailed(
                f"{name} names {item!r}, which does not resolve to any address: {error}"
            ) from None
        addresses = sorted({str(info[4][0]).split("%")[0] for info in infos})
        if not addresses:
            raise ActivityFailed(f"{name} names {item!r}, which resolves to no address")
        networks.extend(ipaddress.ip_network(a) for a in addresses)
    if required and not networks and value not in (None, "", []):
        raise ActivityFailed(f"{name} resolves to nothing: {_show(value)}")
    return sorted(set(networks), key=lambda n: (n.version, n.network_address, n.prefixlen))


def _subtract(networks: Sequence[Network], excluded: Sequence[Network]) -> list[Network]:
    result = list(networks)
    for ex in excluded:
        nxt: list[Network] = []
        for net in result:
            if net.version != ex.version or not net.overlaps(ex):
                nxt.append(net)
            elif ex.supernet_of(net):  # type: ignore[arg-type]
                continue
            else:
                nxt.extend(net.address_exclude(ex))  # type: ignore[arg-type]
        result = nxt
    return sorted(result, key=lambda n: (n.version, n.network_address, n.prefixlen))


@dataclass(frozen=True)
class Target:
    """What one fault matches. ``networks`` empty = every address of both families."""

    destinations: tuple[str, ...]
    exclude: tuple[str, ...]
    networks: tuple[str, ...]
    protocol: str
    ports: tuple[tuple[int, int], ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "destinations": list(self.destinations),
            "exclude": list(self.exclude),
            "networks": list(self.networks),
            "protocol": self.protocol,
            "ports": [f"{a}" if a == b else f"{a}-{b}" for a, b in self.ports],
        }

    def first_address(self) -> str:
        """The first destination address (for the route lookup of the default interface)."""
        for text in self.networks:
            net = ipaddress.ip_network(text)
            return str(net.network_address if net.prefixlen == net.max_prefixlen else net[1])
        return ""

    def families(self) -> list[int]:
        """The IP versions the target covers."""
        if not self.networks:
            return [4, 6]
        return sorted({ipaddress.ip_network(n).version for n in self.networks})

    def u32_matches(self, ingress: bool) -> list[tuple[int, list[U32Key], str]]:
        """``(ethertype, keys, description)`` for each u32 filter the target needs."""
        protocols = [self.protocol] if self.protocol else (["tcp", "udp"] if self.ports else [""])
        blocks: list[tuple[int, int] | None] = [
            b for first, last in self.ports for b in port_blocks(first, last)
        ] or [None]
        matches: list[tuple[int, list[U32Key], str]] = []
        parsed = [ipaddress.ip_network(t) for t in self.networks]
        for version in self.families():
            nets: list[Network | None] = (
                [n for n in parsed if n.version == version] if parsed else [None]
            )
            for net in nets:
                for proto in protocols:
                    for block in blocks:
                        keys, text = _keys(version, net, proto, block, ingress)
                        ethertype = ETH_P_IP if version == 4 else ETH_P_IPV6
                        matches.append((ethertype, keys, text))
        if len(matches) > _MAX_MATCHES:
            raise ActivityFailed(
                f"the target needs {len(matches)} filters (more than {_MAX_MATCHES}): use fewer "
                f"destinations, exclusions or port ranges"
            )
        return matches


def _keys(
    version: int, net: Network | None, proto: str, block: tuple[int, int] | None, ingress: bool
) -> tuple[list[U32Key], str]:
    keys: list[U32Key] = []
    words: list[str] = [f"ip{'' if version == 4 else '6'}"]
    if version == 4:
        if proto or block:
            # A 20-byte header (no options) so that the ports are where u32 reads them.
            keys.append(U32Key(0x05000000, 0x0F000000, 0))
        if proto:
            keys.append(U32Key(PROTOCOLS[proto] << 16, 0x00FF0000, 8))
            words.append(f"protocol {PROTOCOLS[proto]}")
        if net is not None and net.prefixlen:
            mask = (0xFFFFFFFF << (32 - net.prefixlen)) & 0xFFFFFFFF
            keys.append(U32Key(int(net.network_address), mask, 12 if ingress else 16))
            words.append(f"{'src' if ingress else 'dst'} {net}")
        port_off = 20
    else:
        if proto:
            keys.append(U32Key(PROTOCOLS[proto] << 8, 0x0000FF00, 4))
            words.append(f"protocol {PROTOCOLS[proto]}")
        if net is not None and net.prefixlen:
            base = 8 if ingress else 24
            value = int(net.network_address)
            for word in range(4):
                bits = min(32, max(0, net.prefixlen - 32 * word))
                if not bits:
                    break
                mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
                part = (value >> (96 - 32 * word)) & 0xFFFFFFFF
                keys.append(U32Key(part, mask, base + 4 * word))
            words.append(f"{'src' if ingress else 'dst'} {net}")
        port_off = 40
    if block is not None:
        value, mask = block
        # Source port is the high half of the first transport word, destination the low half.
        if ingress:
            keys.append(U32Key(value << 16, mask << 16, port_off))
        else:
            keys.append(U32Key(value, mask, port_off))
        words.append(f"{'sport' if ingress else 'dport'} {value} 0x{mask:04x}")
    return keys, " ".join(words)


def target(destinations: Any, exclude: Any, protocol: Any, ports: Any) -> Target:
    """Check and resolve the shared targeting arguments."""
    proto = parse_protocol(protocol)
    port_ranges = parse_ports(ports)
    wanted = resolve("destinations", destinations, required=True)
    excluded = resolve("exclude", exclude, required=True)
    base: list[Network] = wanted or [
        ipaddress.ip_network("0.0.0.0/0"),
        ipaddress.ip_network("::/0"),
    ]
    remaining = _subtract(base, excluded) if excluded else list(wanted)
    if (wanted or excluded) and not remaining:
        raise ActivityFailed(
            f"exclude removes every destination: destinations={_show(destinations)}, "
            f"exclude={_show(exclude)}"
        )
    return Target(
        destinations=tuple(_items("destinations", destinations)),
        exclude=tuple(_items("exclude", exclude)),
        networks=tuple(str(n) for n in remaining),
        protocol=proto,
        ports=tuple(port_ranges),
    )
