"""Our fault tree's layout, and reading tc state back from the kernel.

The constants say where a fault lives in the tree that ``engine`` builds (its docstring draws
it); the readers dump qdiscs, classes and filters over netlink, for planning a fault, reverting
it, and :func:`kernel_view` (``network.probes``). Nothing here changes the kernel.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network import tc
from chaosgenesys.network.nl import NetlinkError, RtSocket, in_netns, parse_attrs

__all__ = [
    "DEFAULT_MINOR",
    "FIRST_MINOR",
    "LAST_MINOR",
    "MIRRED_PRIO",
    "ROOT_MAJOR",
    "Qdisc",
    "classes",
    "decode_netem",
    "fault_minors",
    "filter_prios",
    "interface_index",
    "kernel_view",
    "netns_context",
    "netns_interfaces",
    "qdiscs",
    "root_qdisc",
]

#: Our root qdisc's major (``c4a0:``) and the minors under it: the default class, then one
#: class per fault from FIRST_MINOR to LAST_MINOR.
ROOT_MAJOR = 0xC4A0
DEFAULT_MINOR = 1
FIRST_MINOR = 0x10
LAST_MINOR = 0x3FF
#: The priority of the ingress redirect filter (ingress faults, on the IFB device).
MIRRED_PRIO = 0xC4A


@contextlib.contextmanager
def netns_context(netns: str) -> Iterator[None]:
    """:func:`in_netns` with ActivityFailed for a namespace that does not exist."""
    try:
        context = in_netns(netns)
        context.__enter__()
    except NetlinkError as error:
        raise ActivityFailed(f"netns {netns!r} does not exist: {error.strerror}") from None
    try:
        yield
    finally:
        context.__exit__(None, None, None)


def interface_index(name: str) -> int:
    """The index of interface ``name`` in the current namespace, 0 when there is none."""
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


@dataclass
class Qdisc:
    """One qdisc as the kernel dumps it (``options``: its raw TCA_OPTIONS)."""

    kind: str
    handle: int
    parent: int
    options: bytes


def qdiscs(sock: RtSocket, ifindex: int) -> list[Qdisc]:
    """The qdiscs of interface ``ifindex`` (one dump)."""
    found: list[Qdisc] = []
    for reply in sock.dump(tc.RTM_GETQDISC, tc.tcmsg(ifindex)):
        _fam, index, handle_, parent, _info = struct.unpack("=BxxxiIII", reply.header)
        if index != ifindex:
            continue
        attrs = parse_attrs(reply.attrs)
        kind = attrs.get(tc.TCA_KIND, b"").rstrip(b"\0").decode()
        found.append(Qdisc(kind, handle_, parent, attrs.get(tc.TCA_OPTIONS, b"")))
    return found


def root_qdisc(sock: RtSocket, ifindex: int) -> Qdisc | None:
    """The interface's root qdisc (None: none, the kernel's default is not listed)."""
    return next((q for q in qdiscs(sock, ifindex) if q.parent == tc.TC_H_ROOT), None)


def classes(sock: RtSocket, ifindex: int) -> list[int]:
    """The handles of the interface's classes (one dump)."""
    return [
        struct.unpack("=BxxxiIII", r.header)[2]
        for r in sock.dump(tc.RTM_GETTCLASS, tc.tcmsg(ifindex))
    ]


def fault_minors(sock: RtSocket, ifindex: int) -> set[int]:
    """The minors of the fault classes under our root (each fault has its own)."""
    return {
        h & 0xFFFF
        for h in classes(sock, ifindex)
        if h >> 16 == ROOT_MAJOR and (h & 0xFFFF) >= FIRST_MINOR
    }


def filter_prios(sock: RtSocket, ifindex: int, parent: int) -> set[int]:
    """The priorities of the filters under ``parent``."""
    prios: set[int] = set()
    for reply in sock.dump(tc.RTM_GETTFILTER, tc.tcmsg(ifindex, 0, parent)):
        prios.add(struct.unpack("=BxxxiIII", reply.header)[4] >> 16)
    return prios


def netns_interfaces() -> list[tuple[str, int]]:
    """Every interface of the current namespace."""
    return [(name, index) for index, name in socket.if_nameindex()]


def decode_netem(options: bytes) -> dict[str, Any]:
    """A netem qdisc's options as figures (delay, jitter, loss, ...)."""
    if len(options) < 24:
        return {}
    latency, limit, loss, gap, duplicate, jitter = struct.unpack_from("=IIIIII", options)
    scale = 100.0 / tc.U32_MAX
    out: dict[str, Any] = {
        "delay_ms": latency * 64 / 1e6,
        "jitter_ms": jitter * 64 / 1e6,
        "limit": limit,
        "loss_percent": round(loss * scale, 4),
        "duplicate_percent": round(duplicate * scale, 4),
        "gap": gap,
    }
    attrs = parse_attrs(options, 24)
    if 10 in attrs:
        out["delay_ms"] = struct.unpack("=q", attrs[10])[0] / 1e6
    if 11 in attrs:
        out["jitter_ms"] = struct.unpack("=q", attrs[11])[0] / 1e6
    if 4 in attrs:
        out["corrupt_percent"] = round(struct.unpack_from("=I", attrs[4])[0] * scale, 4)
    if 3 in attrs:
        out["reorder_percent"] = round(struct.unpack_from("=I", attrs[3])[0] * scale, 4)
    if 6 in attrs:
        out["rate_bytes"] = struct.unpack_from("=I", attrs[6])[0]
    if 5 in attrs:
        ge = parse_attrs(attrs[5]).get(2)
        if ge:
            p, r, h, k1 = struct.unpack("=IIII", ge)
            out["gilbert_elliott"] = {
                "p": round(p * scale, 4),
                "r": round(r * scale, 4),
                "loss_bad": round(100 - h * scale, 4),
                "loss_good": round(k1 * scale, 4),
            }
    return out


def kernel_view(interface: str, netns: str) -> dict[str, Any]:
    """qdiscs, classes and filters count of an interface (or all), as the kernel has them."""
    with netns_context(netns), RtSocket() as sock:
        if interface:
            index = interface_index(interface)
            if not index:
                raise ActivityFailed(f"interface {interface!r} does not exist")
            names = [(interface, index)]
        else:
            names = [(n, i) for i, n in socket.if_nameindex()]
        view: dict[str, Any] = {}
        for name, index in names:
            dumped = qdiscs(sock, index)
            shown = []
            for q in dumped:
                entry: dict[str, Any] = {
                    "kind": q.kind,
                    "handle": tc.show_handle(q.handle),
                    "parent": tc.show_handle(q.parent),
                }
                if q.kind == "netem":
                    entry["netem"] = decode_netem(q.options)
                shown.append(entry)
            ours = fault_minors(sock, index)
            view[name] = {
                "qdiscs": shown,
                "chaosgenesys_tree": any(
                    q.handle == tc.handle(ROOT_MAJOR) and q.parent == tc.TC_H_ROOT
                    for q in dumped
                ),
                "fault_classes": sorted(tc.show_handle(tc.handle(ROOT_MAJOR, m)) for m in ours),
            }
        return view
