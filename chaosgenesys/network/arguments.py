"""The targeting arguments every network and socket action shares, checked and resolved.

``destinations`` (CIDRs, addresses, host names: every A and AAAA record, a name that resolves to
nothing is refused; empty = all traffic), ``exclude`` (the same kinds, subtracted from the
destinations), ``protocol`` (``tcp``, ``udp`` or ``""``), ``ports`` (``"443"``,
``"16384-32768"``, integers, a list or comma-separated string of them), ``direction``
(``egress``, ``ingress``, ``both``) and ``netns`` (a name under ``/run/netns`` or the path of a
namespace file such as ``/proc/PID/ns/net``). Every helper raises
:class:`~chaoslib.exceptions.ActivityFailed` naming the argument and the value it got.

What the arguments become is up to the engine: u32 selectors and nftables rules
(:mod:`chaosgenesys.network.targeting`), sock_diag filters and nftables sets
(:mod:`chaosgenesys.sockets.targets`). Only the standard library is used here (no netlink, no
tc, no pyroute2): importing the activities stays cheap.
"""

import functools
import ipaddress
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.shown import show

__all__ = [
    "DIRECTIONS",
    "PROTOCOLS",
    "Destinations",
    "Network",
    "parse_destinations",
    "parse_direction",
    "parse_networks",
    "parse_ports",
    "parse_protocol",
    "resolve_netns",
]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
PROTOCOLS = {"tcp": 6, "udp": 17}
DIRECTIONS = ("egress", "ingress", "both")
_EVERYTHING: tuple[Network, ...] = (
    ipaddress.IPv4Network("0.0.0.0/0"),
    ipaddress.IPv6Network("::/0"),
)
_NETWORKS_ARE = "CIDRs, addresses or host names"
_PORTS_ARE = "port numbers or ranges such as '443' or '16384-32768'"


def _items(name: str, value: Any, what: str, *, ints: bool = False) -> list[str]:
    """None, ``""``, one value, a comma-separated string or a list of them -> stripped items.

    In a list, every item must be a non-empty string (or, with ``ints``, an integer).
    """
    if value is None:
        return []
    if ints and isinstance(value, int) and not isinstance(value, bool):
        return [str(value)]
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list | tuple):
        raise ActivityFailed(
            f"{name} must be a string or a list of strings, "
            f"got {type(value).__name__} {show(value)}"
        )
    items: list[str] = []
    for index, item in enumerate(value):
        if ints and isinstance(item, int) and not isinstance(item, bool):
            items.append(str(item))
        elif isinstance(item, str) and (text := item.strip()):
            if "," in text:
                items.extend(part.strip() for part in text.split(",") if part.strip())
            else:
                items.append(text)
        else:
            raise ActivityFailed(f"{name} must hold {what}, got {show(item)} at index {index}")
    return items


def parse_protocol(value: Any) -> str:
    """``tcp``, ``udp`` or ``""`` (both, or anything when no port is given)."""
    if value is None:
        return ""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "any", "all"):
        return ""
    if isinstance(value, str) and value.strip().lower() in PROTOCOLS:
        return value.strip().lower()
    raise ActivityFailed(f"protocol must be 'tcp', 'udp' or '' (any), got {show(value)}")


def parse_direction(value: Any) -> str:
    """``egress``, ``ingress`` or ``both`` (any case)."""
    if isinstance(value, str) and value.strip().lower() in DIRECTIONS:
        return value.strip().lower()
    raise ActivityFailed(f"direction must be one of 'egress', 'ingress', 'both', got {show(value)}")


def parse_ports(value: Any, name: str = "ports") -> list[tuple[int, int]]:
    """``"443"``, ``"16384-32768"``, ``[443, "8000-8080"]`` -> sorted, merged ``(first, last)``."""
    ranges: list[tuple[int, int]] = []
    for item in _items(name, value, _PORTS_ARE, ints=True):
        first_text, dash, last_text = item.partition("-")
        try:
            first = int(first_text)
            last = int(last_text) if dash else first
        except ValueError:
            raise ActivityFailed(f"{name} must be {_PORTS_ARE}, got {item!r}") from None
        if not (0 < first <= 65535 and 0 < last <= 65535):
            raise ActivityFailed(f"{name} must be between 1 and 65535, got {item!r}")
        if last < first:
            raise ActivityFailed(
                f"{name}: a port range must go from low to high, got {item!r} ({first} > {last})"
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


def resolve_netns(value: Any, name: str = "netns") -> str | None:
    """``""``/None -> None (this process's namespace); a name or a path -> the namespace file.

    The file must be a network namespace (``/etc/passwd`` or ``/proc/self/ns/uts`` is refused,
    naming ``name`` and the value), so nothing is recorded or applied for a bad ``netns``.
    """
    if value is None:
        return None
    if not isinstance(value, str):
        raise ActivityFailed(f"{name} must be a namespace name or path, got {show(value)}")
    text = value.strip()
    if not text:
        return None
    path = text if "/" in text else os.path.join("/run/netns", text)
    if not os.path.exists(path):
        raise ActivityFailed(
            f"{name} {text!r} does not exist ({path} is missing; "
            f"'ip netns list' shows the named ones)"
        )
    _require_network_namespace(name, text, path)
    return path


#: ``ioctl(fd, NS_GET_NSTYPE)`` (linux/nsfs.h, ``_IO(0xb7, 0x3)``, Linux 4.11+): the
#: ``CLONE_NEW*`` type of a namespace file; ENOTTY for a file that is not a namespace.
NS_GET_NSTYPE = 0xB703
_NS_TYPES = {
    0x00020000: "mount",
    0x02000000: "cgroup",
    0x04000000: "uts",
    0x08000000: "ipc",
    0x10000000: "user",
    0x20000000: "pid",
    0x00000080: "time",
}


def _require_network_namespace(name: str, text: str, path: str) -> None:
    """ActivityFailed unless ``path`` is a network namespace file (nsfs, type CLONE_NEWNET).

    A namespace file is a regular file of the nsfs file system; only regular files are opened
    (never a device, FIFO or socket), read-only, and asked their type with NS_GET_NSTYPE.
    """
    import fcntl
    import stat

    not_one = f"{name} {text!r} is not a network namespace"
    hint = "give a name under /run/netns ('ip netns list') or a path such as /proc/PID/ns/net"
    try:
        mode = os.stat(path).st_mode
    except OSError as error:
        raise ActivityFailed(f"{not_one} ({path}: {error.strerror}); {hint}") from None
    if not stat.S_ISREG(mode):
        raise ActivityFailed(f"{not_one} ({path} is not a namespace file); {hint}")
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOCTTY)
    except OSError as error:
        raise ActivityFailed(
            f"{name} {text!r}: cannot open {path}: {error.strerror}; {hint}"
        ) from None
    try:
        kind = fcntl.ioctl(fd, NS_GET_NSTYPE)
    except OSError:
        raise ActivityFailed(f"{not_one} ({path} is not a namespace file); {hint}") from None
    finally:
        os.close(fd)
    if kind != os.CLONE_NEWNET:
        what = _NS_TYPES.get(kind, f"type {kind:#x}")
        raise ActivityFailed(f"{not_one} ({path} is a {what} namespace); {hint}")


def _canonical_network(item: str) -> Network | None:
    """``item`` as a network when it is an address or CIDR written canonically, else None.

    The fast path of :func:`parse_networks`: the C address parser, used only when the address
    reads back exactly as written (so :func:`ipaddress.ip_network` would read the same value);
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


def _looks_like_address(text: str) -> bool:
    """Colons, slashes, or only digits and dots: meant as an address or CIDR, not a host name."""
    if ":" in text or "/" in text:
        return True
    return all(ch.isdigit() or ch == "." for ch in text)


def _resolve(name: str, host: str) -> list[Network]:
    """Every A and AAAA record of ``host`` as /32 and /128 networks."""
    try:
        answers = socket.getaddrinfo(host, None, proto=socket.IPPROTO_TCP)
    except (socket.gaierror, UnicodeError) as error:
        raise ActivityFailed(
            f"{name} names {host!r}, which does not resolve to any address: {error}"
        ) from None
    addresses = {
        str(sockaddr[0]).split("%", 1)[0]
        for family, _, _, _, sockaddr in answers
        if family in (socket.AF_INET, socket.AF_INET6)
    }
    if not addresses:
        raise ActivityFailed(f"{name} names {host!r}, which resolves to no IPv4 or IPv6 address")
    return [ipaddress.ip_network(address) for address in addresses]


def _order(net: Network) -> tuple[int, int, int]:
    return net.version, int(net.network_address), net.prefixlen


def _parse_items(name: str, value: Any, items: list[str]) -> list[Network]:
    networks: list[Network] = []
    for item in items:
        literal = _canonical_network(item)
        if literal is not None:
            networks.append(literal)
        elif _looks_like_address(item):
            try:
                networks.append(ipaddress.ip_network(item, strict=False))
            except ValueError as error:
                raise ActivityFailed(
                    f"{name} must hold valid CIDRs or addresses, got {item!r}: {error}"
                ) from None
        else:
            networks.extend(_resolve(name, item))
    if not items and value not in (None, "", [], ()):
        raise ActivityFailed(f"{name} resolves to nothing: {show(value)}")
    return sorted(set(networks), key=_order)


def parse_networks(value: Any, name: str = "destinations") -> list[Network]:
    """CIDRs, addresses and host names -> sorted, distinct networks (a CIDR's host bits are
    ignored; a host name gives all its A/AAAA records). A value that is not empty but names
    nothing (``","``) is refused."""
    return _parse_items(name, value, _items(name, value, _NETWORKS_ARE))


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


def _covered(net: Network, excluded: Sequence[Network]) -> bool:
    """Whether the union of ``excluded`` holds all of ``net``."""
    inside: list[Network] = []
    for ex in excluded:
        if ex.version != net.version:
            continue
        if ex.supernet_of(net):  # type: ignore[arg-type]
            return True
        if ex.subnet_of(net):  # type: ignore[arg-type]
            inside.append(ex)
    return list(ipaddress.collapse_addresses(inside)) == [net]  # type: ignore[type-var]


@dataclass(frozen=True)
class Destinations:
    """``destinations`` and ``exclude``, checked and resolved.

    ``named``/``excluded_named``: the items as given; ``wanted``/``excluded``: their networks,
    sorted and distinct. Something is always left once ``excluded`` is taken away.
    """

    named: tuple[str, ...]
    excluded_named: tuple[str, ...]
    wanted: tuple[Network, ...]
    excluded: tuple[Network, ...]

    @functools.cached_property
    def remaining(self) -> tuple[Network, ...]:
        """``wanted`` (everything when empty) minus ``excluded``, as sorted disjoint CIDRs;
        empty when nothing is named or excluded (= all traffic)."""
        if not self.excluded:
            return self.wanted
        return tuple(_subtract(self.wanted or _EVERYTHING, self.excluded))


def parse_destinations(destinations: Any, exclude: Any) -> Destinations:
    """Check and resolve ``destinations`` and ``exclude``; an exclusion of everything is refused."""
    named = _items("destinations", destinations, _NETWORKS_ARE)
    wanted = _parse_items("destinations", destinations, named)
    excluded_named = _items("exclude", exclude, _NETWORKS_ARE)
    excluded = _parse_items("exclude", exclude, excluded_named)
    if excluded and all(_covered(net, excluded) for net in wanted or _EVERYTHING):
        raise ActivityFailed(
            f"exclude removes every destination: destinations={show(destinations)}, "
            f"exclude={show(exclude)}"
        )
    return Destinations(
        named=tuple(named),
        excluded_named=tuple(excluded_named),
        wanted=tuple(wanted),
        excluded=tuple(excluded),
    )
