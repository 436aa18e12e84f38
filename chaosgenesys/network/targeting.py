"""The shared targeting arguments turned into match keys: u32 selectors (and nftables rules).

The arguments themselves (``destinations``, ``exclude``, ``protocol``, ``ports``, ``direction``)
are checked and resolved by :mod:`chaosgenesys.network.arguments`, as for the socket actions.
Egress matches the destination address and port of a packet; ingress (on the IFB device the
interface's incoming packets are redirected to) matches the source address and port, i.e. the
same remote endpoints.

A port range becomes aligned power-of-two blocks (value/mask pairs), the networks minus the
excluded ones become a list of CIDRs, and each (network, protocol, port block) becomes one u32
selector whose keys are AND'ed: protocol AND port AND address, never OR'ed.
"""

import ipaddress
from dataclasses import dataclass, field
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.arguments import (
    PROTOCOLS,
    Network,
    parse_destinations,
    parse_ports,
    parse_protocol,
)
from chaosgenesys.network.tc import ETH_P_IP, ETH_P_IPV6, U32Key

__all__ = [
    "Target",
    "port_blocks",
    "target",
]

_MAX_MATCHES = 4000


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

    def describe(self, what: str, device: str, netns: str | None, direction: str) -> str:
        """A fault's description: ``what`` on the device (and namespace), its direction, then
        what it targets (destinations, protocol, ports), as ``chaosgenesys status`` lists it."""
        where = f" (netns {netns})" if netns else ""
        description = f"{what} on {device}{where} {direction}"
        if self.destinations:
            description += f" to {', '.join(self.destinations)}"
        if self.ports:
            description += f" {self.protocol or 'tcp+udp'} ports " + ",".join(
                self.to_dict()["ports"]
            )
        elif self.protocol:
            description += f" {self.protocol}"
        return description

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
    resolved = parse_destinations(destinations, exclude)
    return Target(
        destinations=resolved.named,
        exclude=resolved.excluded_named,
        networks=tuple(str(n) for n in resolved.remaining),
        protocol=proto,
        ports=tuple(port_ranges),
        parsed=resolved.remaining,
    )
