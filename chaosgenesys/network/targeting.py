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
from dataclasses import dataclass, field
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


def _canonical_network(item: str) -> Network | None:
    """``item`` as a network when it is an address or CIDR written canonically, else None.

    The fast path of :func:`resolve`: the C address parser, used only when the address reads
    back exactly as written (so :func:`ipaddress.ip_network` would read the same value);
    anything else (leading zeros, netmasks, scopes, host names) goes the :mod:`ipaddress` way.
    """
    address, slash, prefix = item.partition("/")
    family, bits = (socket.AF_INET6, 128) if ":" in address else (socket.AF_INET, 32)
    try:
        packed = socket.inet_pton(family, address)
    except OSError:
        return None
    if socket.inet_ntop(family, packed) != address:
        return None
    if not slash:
        length = bits
    elif prefix.isascii() and prefix.isdigit() and int(prefix) <= bits:
        length = int(prefix)
    else:
        return None
    kind = ipaddress.IPv6Network if family == socket.AF_INET6 else ipaddress.IPv4Network
    return kind((int.from_bytes(packed), length), strict=False)


def _order(net: Network) -> tuple[int, int, int]:
    return net.version, int(net.network_address), net.prefixlen


def resolve(name: str, value: Any, *, required: bool) -> list[Network]:
    """CIDRs, addresses and host names -> networks (a host name gives all its A/AAAA records)."""
    return _resolve_items(name, value, _items(name, value), required=required)


def _resolve_items(name: str, value: Any, items: list[str], *, required: bool) -> list[Network]:
    networks: list[Network] = []
    for item in items:
        literal = _canonical_network(item)
        if literal is not None:
            networks.append(literal)
            continue
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
    return sorted(set(networks), key=_order)


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
    return sorted(result, key=_order)


@dataclass(frozen=True)
class Target:
    """What one fault matches. ``networks`` empty = every address of both families."""

    destinations: tuple[str, ...]
    exclude: tuple[str, ...]
    networks: tuple[str, ...]
    protocol: str
    ports: tuple[tuple[int, int], ...]
    #: ``networks`` as :mod:`ipaddress` objects, as :func:`target` computed them (parsed from
    #: ``networks`` when empty), so that building the filters does not parse them again.
    parsed: tuple[Network, ...] = field(default=(), compare=False, repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "destinations": list(self.destinations),
            "exclude": list(self.exclude),
            "networks": list(self.networks),
            "protocol": self.protocol,
            "ports": [f"{a}" if a == b else f"{a}-{b}" for a, b in self.ports],
        }

    def _networks(self) -> list[tuple[Network, str]]:
        """Each network with its text (``str`` of the network, as ``tc`` would print it)."""
        if self.parsed and len(self.parsed) == len(self.networks):
            return list(zip(self.parsed, self.networks, strict=True))
        parsed = [ipaddress.ip_network(t) for t in self.networks]
        return [(net, str(net)) for net in parsed]

    def first_address(self) -> str:
        """The first destination address (for the route lookup of the default interface)."""
        networks = self._networks()
        if not networks:
            return ""
        net = networks[0][0]
        return str(net.network_address if net.prefixlen == net.max_prefixlen else net[1])

    def families(self) -> list[int]:
        """The IP versions the target covers."""
        if not self.networks:
            return [4, 6]
        return sorted({net.version for net, _text in self._networks()})

    def u32_matches(self, ingress: bool) -> list[tuple[int, list[U32Key], str]]:
        """``(ethertype, keys, description)`` for each u32 filter the target needs.

        The keys of one filter, in this order: (IPv4) a 20-byte header, the protocol, the
        address, the port block. Each key is built once and shared by the filters that use it.
        """
        protocols = [self.protocol] if self.protocol else (["tcp", "udp"] if self.ports else [""])
        blocks: list[tuple[int, int] | None] = [
            b for first, last in self.ports for b in port_blocks(first, last)
        ] or [None]
        count = (len(self.networks) or 2) * len(protocols) * len(blocks)
        if count > _MAX_MATCHES:
            raise ActivityFailed(
                f"the target needs {count} filters (more than {_MAX_MATCHES}): use fewer "
                f"destinations, exclusions or port ranges"
            )
        networks = self._networks()
        matches: list[tuple[int, list[U32Key], str]] = []
        for version in self.families():
            ethertype = ETH_P_IP if version == 4 else ETH_P_IPV6
            nets: list[tuple[Network, str] | None] = (
                [n for n in networks if n[0].version == version] if networks else [None]
            )
            heads = [_head_match(version, proto, blocks[0] is not None) for proto in protocols]
            ports = [_port_match(version, block, ingress) for block in blocks]
            for net in nets:
                address_keys, address_text = _address_match(version, net, ingress)
                for head_keys, head_text in heads:
                    for port_keys, port_text in ports:
                        matches.append(
                            (
                                ethertype,
                                [*head_keys, *address_keys, *port_keys],
                                head_text + address_text + port_text,
                            )
                        )
        return matches


#: Keys of one part of a match, and their description (after a space when not the first part).
_Match = tuple[tuple[U32Key, ...], str]
_IHL_5 = U32Key(0x05000000, 0x0F000000, 0)  # IPv4: a 20-byte header (no options)
_NO_MATCH: _Match = ((), "")


def _head_match(version: int, proto: str, has_ports: bool) -> _Match:
    """The words before the address: the header length (IPv4) and the protocol."""
    if version == 4:
        ihl = (_IHL_5,) if proto or has_ports else ()  # so that the ports are where u32 reads
        if proto:
            return (*ihl, U32Key(PROTOCOLS[proto] << 16, 0x00FF0000, 8)), (
                f"ip protocol {PROTOCOLS[proto]}"
            )
        return ihl, "ip"
    if proto:
        return (U32Key(PROTOCOLS[proto] << 8, 0x0000FF00, 4),), f"ip6 protocol {PROTOCOLS[proto]}"
    return (), "ip6"


def _address_match(version: int, net: tuple[Network, str] | None, ingress: bool) -> _Match:
    """The source (ingress) or destination (egress) address under its prefix mask."""
    if net is None or not net[0].prefixlen:
        return _NO_MATCH
    network, text = net
    words = f" {'src' if ingress else 'dst'} {text}"
    value = int(network.network_address)
    if version == 4:
        mask = (0xFFFFFFFF << (32 - network.prefixlen)) & 0xFFFFFFFF
        return (U32Key(value, mask, 12 if ingress else 16),), words
    base = 8 if ingress else 24
    keys = []
    for word in range(4):
        bits = min(32, max(0, network.prefixlen - 32 * word))
        if not bits:
            break
        mask = (0xFFFFFFFF << (32 - bits)) & 0xFFFFFFFF
        part = (value >> (96 - 32 * word)) & 0xFFFFFFFF
        keys.append(U32Key(part, mask, base + 4 * word))
    return tuple(keys), words


def _port_match(version: int, block: tuple[int, int] | None, ingress: bool) -> _Match:
    """The source (ingress) or destination (egress) port block of the first transport word."""
    if block is None:
        return _NO_MATCH
    value, mask = block
    port_off = 20 if version == 4 else 40
    words = f" {'sport' if ingress else 'dport'} {value} 0x{mask:04x}"
    # Source port is the high half of the first transport word, destination the low half.
    if ingress:
        return (U32Key(value << 16, mask << 16, port_off),), words
    return (U32Key(value, mask, port_off),), words


def target(destinations: Any, exclude: Any, protocol: Any, ports: Any) -> Target:
    """Check and resolve the shared targeting arguments."""
    proto = parse_protocol(protocol)
    port_ranges = parse_ports(ports)
    wanted_items = _items("destinations", destinations)
    wanted = _resolve_items("destinations", destinations, wanted_items, required=True)
    excluded_items = _items("exclude", exclude)
    excluded = _resolve_items("exclude", exclude, excluded_items, required=True)
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
        destinations=tuple(wanted_items),
        exclude=tuple(excluded_items),
        networks=tuple(str(n) for n in remaining),
        protocol=proto,
        ports=tuple(port_ranges),
        parsed=tuple(remaining),
    )
