"""Fault trees on an interface: plan, record, apply in one netlink batch, revert.

The tree (egress, or on the IFB device that ingress traffic is redirected to)::

    root htb c4a0: default 1           the interface's original root qdisc is saved first
     ├─ class c4a0:1  unlimited        untargeted traffic (default class)
     ├─ class c4a0:10 <rate>           fault A: leaf netem (c010:) or tbf (c010:)
     │    u32 filters prio 32 (IPv4) and 33 (IPv6): protocol AND port block AND address
     └─ class c4a0:11 ...              fault B on the same interface
    ingress ffff: + u32 "match all" -> mirred egress redirect to cgifb<ifindex>   (ingress only)

A fault is recorded in the fault registry (``chaosgenesys.faults.registry``) before anything
changes, with everything :func:`revert` needs (the original root qdisc as kind, handle and raw
options). Reverting the last fault of an interface restores that root qdisc (or deletes ours, so
that the kernel attaches its default again); reverting any other deletes its filters and class.
"""

import contextlib
import errno
import ipaddress
import os
import secrets as _secrets
import socket
import struct
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network import tc
from chaosgenesys.network.nl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    Attr,
    Message,
    NetlinkError,
    RtSocket,
    attr,
    has_net_admin,
    in_netns,
    parse_attrs,
)
from chaosgenesys.network.targeting import Target

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.faults.registry import FaultRecord

__all__ = [
    "DEFAULT_MINOR",
    "REVERTER",
    "ROOT_MAJOR",
    "Leaf",
    "apply_tc",
    "check_capability",
    "kernel_view",
    "netns_interfaces",
    "resolve_interface",
    "revert",
    "revert_spec",
]

ROOT_MAJOR = 0xC4A0
DEFAULT_MINOR = 1
FIRST_MINOR = 0x10
LAST_MINOR = 0x3FF
MIRRED_PRIO = 0xC4A
UNLIMITED = 12_500_000_000  # 100 Gbit/s in bytes per second
REVERTER = "chaosgenesys.network.engine:revert"
RTM_NEWLINK, RTM_DELLINK, RTM_GETROUTE = 16, 17, 26
IFF_UP = 1


@dataclass(frozen=True)
class Leaf:
    """What the fault's class holds: ``kind`` (netem, tbf), its options, the class rate."""

    kind: str
    options: "bytes | Sequence[Attr]"
    class_rate: int
    describe: str


# -- capability and errors ----------------------------------------------------------------------


#: The process (pid) whose CAP_NET_ADMIN was found: read once, as a process rarely drops it
#: (and if it did, the kernel's EPERM still ends the call with a clear error, nothing applied).
_capable_pid = 0


def check_capability(what: str = "network faults") -> None:
    """CAP_NET_ADMIN in the effective set, or ActivityFailed saying how to get it."""
    global _capable_pid
    if _capable_pid == os.getpid():
        return
    if has_net_admin():
        _capable_pid = os.getpid()
    else:
        raise ActivityFailed(
            f"{what} needs CAP_NET_ADMIN, which this process lacks: run chaos as root (sudo), "
            "grant the capability (`sudo setcap cap_net_admin+ep $(readlink -f "
            ".venv/bin/python)`), or in a container add it (--cap-add NET_ADMIN)"
        )


def _failure(error: NetlinkError, what: str, messages: Sequence[Message]) -> ActivityFailed:
    step = messages[error.index].describe if 0 <= error.index < len(messages) else ""
    detail = f"{error.strerror}" + (f" at `{step}`" if step else "")
    if error.errno == errno.EPERM:
        return ActivityFailed(f"{what}: the kernel refused ({detail}); CAP_NET_ADMIN is needed")
    if "qdisc kind is unknown" in (error.message or "") or (
        error.errno == errno.ENOENT and step.startswith("tc qdisc add") and " netem " in step
    ):
        return ActivityFailed(
            f"{what}: this kernel has no sch_netem ({detail}). Load it with `modprobe sch_netem` "
            "(package linux-modules-extra on Ubuntu, kernel-modules-extra on Fedora), or use a "
            "kernel built with CONFIG_NET_SCH_NETEM; packet loss without netem: "
            "add_packet_loss(method='nftables'), bandwidth: throttle_bandwidth"
        )
    return ActivityFailed(f"{what}: the kernel refused ({detail}); nothing was left applied")


# -- interfaces, routes, state ------------------------------------------------------------------


def _ifindex(name: str) -> int:
    try:
        return socket.if_nametoindex(name)
    except OSError:
        return 0


def _route_oif(sock: RtSocket, address: str) -> int:
    ip = ipaddress.ip_address(address)
    family = socket.AF_INET if ip.version == 4 else socket.AF_INET6
    header = struct.pack("=BBBBBBBBI", family, ip.max_prefixlen, 0, 0, 0, 0, 0, 0, 0)
    try:
        reply = sock.request(RTM_GETROUTE, header, [Attr(1, ip.packed)])
    except NetlinkError:
        return 0
    oif = parse_attrs(reply.attrs).get(4)
    return struct.unpack("=I", oif)[0] if oif else 0


def resolve_interface(
    sock: RtSocket, interface: str, target: Target, netns: str
) -> tuple[str, int]:
    """``(name, ifindex)`` of ``interface``, or of the one routing to the first destination."""
    where = f" in network namespace {netns!r}" if netns else ""
    if interface:
        index = _ifindex(interface)
        if not index:
            raise ActivityFailed(f"interface {interface!r} does not exist{where}")
        return interface, index
    probes = [target.first_address()] if target.networks else ["1.1.1.1", "2606:4700::1111"]
    for address in probes:
        if not address:
            continue
        index = _route_oif(sock, address)
        if index:
            return socket.if_indextoname(index), index
    raise ActivityFailed(
        f"interface is empty and no route{where} leads to {probes[0]!r}: name the interface"
    )


@dataclass
class _Qdisc:
    kind: str
    handle: int
    parent: int
    options: bytes


def _qdiscs(sock: RtSocket, ifindex: int) -> list[_Qdisc]:
    found: list[_Qdisc] = []
    for reply in sock.dump(tc.RTM_GETQDISC, tc.tcmsg(ifindex)):
        _fam, index, handle_, parent, _info = struct.unpack("=BxxxiIII", reply.header)
        if index != ifindex:
            continue
        attrs = parse_attrs(reply.attrs)
        kind = attrs.get(tc.TCA_KIND, b"").rstrip(b"\0").decode()
        found.append(_Qdisc(kind, handle_, parent, attrs.get(tc.TCA_OPTIONS, b"")))
    return found


def _root(sock: RtSocket, ifindex: int) -> _Qdisc | None:
    return next((q for q in _qdiscs(sock, ifindex) if q.parent == tc.TC_H_ROOT), None)


def _classes(sock: RtSocket, ifindex: int) -> list[int]:
    return [
        struct.unpack("=BxxxiIII", r.header)[2]
        for r in sock.dump(tc.RTM_GETTCLASS, tc.tcmsg(ifindex))
    ]


def _fault_minors(sock: RtSocket, ifindex: int) -> set[int]:
    return {
        h & 0xFFFF
        for h in _classes(sock, ifindex)
        if h >> 16 == ROOT_MAJOR and (h & 0xFFFF) >= FIRST_MINOR
    }


def _filter_prios(sock: RtSocket, ifindex: int, parent: int) -> set[int]:
    prios: set[int] = set()
    for reply in sock.dump(tc.RTM_GETTFILTER, tc.tcmsg(ifindex, 0, parent)):
        prios.add(struct.unpack("=BxxxiIII", reply.header)[4] >> 16)
    return prios


#: Qdiscs whose classes carry configuration (tbf and netem have one internal class: fine).
_CLASSFUL = {"htb", "hfsc", "drr", "qfq", "cbq", "prio", "ets", "mq", "mqprio", "taprio", "multiq"}


def _original_of(root: _Qdisc | None, sock: RtSocket, ifindex: int, name: str) -> dict[str, Any]:
    """What to put back: the kernel default (handle 0) or a classless qdisc someone configured."""
    if root is None or root.handle >> 16 == 0:
        return {"default": True, "kind": root.kind if root else ""}
    if root.kind in _CLASSFUL and _classes(sock, ifindex):
        raise ActivityFailed(
            f"interface {name!r} has a classful root qdisc ({root.kind} "
            f"{tc.show_handle(root.handle)} with classes); chaosgenesys will not replace a "
            "tree it cannot restore: remove it first or choose another interface"
        )
    return {
        "default": False,
        "kind": root.kind,
        "handle": root.handle,
        "options": root.options.hex(),
    }


def _inherited_original(netns: str, device: str) -> dict[str, Any]:
    """The original root that an active fault on the same device recorded."""
    from chaosgenesys.faults import registry

    for fault in registry.active():
        spec = fault.spec
        if fault.reverter != REVERTER or spec.get("netns", "") != netns:
            continue
        for part in spec.get("devices", []):
            if part.get("name") == device and isinstance(part.get("original_root"), dict):
                original: dict[str, Any] = part["original_root"]
                return original
    return {"default": True, "kind": ""}


# -- building -----------------------------------------------------------------------------------


def _restore_message(ifindex: int, device: str, original: dict[str, Any]) -> Message:
    if original.get("default", True):
        return tc.del_qdisc(
            ifindex, tc.TC_H_ROOT, f"tc qdisc del dev {device} root", (errno.ENOENT, errno.EINVAL)
        )
    kind = str(original["kind"])
    handle_ = int(original["handle"])
    return tc.qdisc(
        ifindex,
        kind,
        handle_,
        tc.TC_H_ROOT,
        bytes.fromhex(str(original.get("options", ""))),
        f"tc qdisc replace dev {device} root handle {tc.show_handle(handle_)} {kind} (original)",
        replace=True,
    )


def _tree_messages(
    ifindex: int,
    device: str,
    minor: int,
    leaf: Leaf,
    target: Target,
    *,
    with_root: bool,
    ingress: bool,
) -> list[Message]:
    root = tc.handle(ROOT_MAJOR)
    classid = tc.handle(ROOT_MAJOR, minor)
    leaf_handle = tc.handle(0xC000 | minor)
    messages: list[Message] = []
    if with_root:
        messages.append(
            tc.htb_root(
                ifindex,
                root,
                DEFAULT_MINOR,
                f"tc qdisc replace dev {device} root handle c4a0: htb default {DEFAULT_MINOR}",
            )
        )
        messages.append(
            tc.htb_class(
                ifindex,
                tc.handle(ROOT_MAJOR, DEFAULT_MINOR),
                root,
                UNLIMITED,
                f"tc class add dev {device} parent c4a0: classid c4a0:1 htb rate 100gbit",
            )
        )
    messages.append(
        tc.htb_class(
            ifindex,
            classid,
            root,
            leaf.class_rate,
            f"tc class add dev {device} parent c4a0: classid {tc.show_handle(classid)} htb "
            f"rate {leaf.class_rate * 8}bit",
        )
    )
    messages.append(
        tc.qdisc(
            ifindex,
            leaf.kind,
            leaf_handle,
            classid,
            leaf.options,
            f"tc qdisc add dev {device} parent {tc.show_handle(classid)} handle "
            f"{tc.show_handle(leaf_handle)} {leaf.describe}",
        )
    )
    nodes: dict[int, int] = {}
    flowid = tc.show_handle(classid)
    for ethertype, keys, text in target.u32_matches(ingress):
        ipv4 = ethertype == tc.ETH_P_IP
        prio = 2 * minor + (0 if ipv4 else 1)
        node = nodes[prio] = nodes.get(prio, 0) + 1
        messages.append(
            tc.u32_filter(
                ifindex,
                root,
                prio,
                ethertype,
                node,
                keys,
                classid,
                f"tc filter add dev {device} parent c4a0: protocol {'ip' if ipv4 else 'ipv6'} "
                f"prio {prio} handle ::{node:x} u32 match {text} flowid {flowid}",
            )
        )
    return messages


def _link_message(name: str) -> Message:
    header = struct.pack("=BxHiII", 0, 0, 0, IFF_UP, IFF_UP)
    return Message(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        header,
        [attr(3, name), Attr(18, [attr(1, "ifb")])],
        f"ip link add {name} up type ifb",
    )


def _del_link(name: str, ifindex: int) -> Message:
    header = struct.pack("=BxHiII", 0, 0, ifindex, 0, 0)
    return Message(
        RTM_DELLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        header,
        [],
        f"ip link del {name}",
        (errno.ENODEV, errno.ENOENT),
    )


def ifb_name(ifindex: int) -> str:
    """The IFB device that receives interface ``ifindex``'s incoming packets."""
    return f"cgifb{ifindex}"


# -- apply --------------------------------------------------------------------------------------


def apply_tc(
    *,
    kind: str,
    what: str,
    leaf: Leaf,
    target: Target,
    interface: str,
    direction: str,
    duration: float,
    netns: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Plan, record and apply one tc fault; the plan (with the fault id) is returned."""
    from chaosgenesys.faults import registry

    if not dry_run:
        check_capability()
    try:
        context = in_netns(netns)
        context.__enter__()
    except NetlinkError as error:
        raise ActivityFailed(f"netns {netns!r} does not exist: {error.strerror}") from None
    try:
        store = registry.Registry()  # one for the call: it resolves its directory once
        lock: contextlib.AbstractContextManager[None] = (
            contextlib.nullcontext() if dry_run else store.locked()
        )
        with lock, RtSocket() as sock:
            device, ifindex = resolve_interface(sock, interface, target, netns)
            plan, messages, ifb = _plan(
                sock, kind, what, leaf, target, device, ifindex, direction, duration, netns
            )
            if dry_run:
                plan["dry_run"] = True
                plan["applied"] = False
                return plan
            fault = store.record(
                kind=kind,
                description=plan["description"],
                reverter=REVERTER,
                spec=plan["spec"],
                duration=duration or None,
            )
            plan["fault_id"] = fault.id
            try:
                if ifb and ifb.get("create"):
                    # Planned with a placeholder index: plan again now that the device exists.
                    sock.batch([_link_message(ifb["name"])])
                    messages = _plan(
                        sock, kind, what, leaf, target, device, ifindex, direction, duration, netns
                    )[1]
                started = time.perf_counter()
                sock.batch(messages)
                plan["apply_ms"] = round((time.perf_counter() - started) * 1000, 3)
            except NetlinkError as error:
                with contextlib.suppress(ActivityFailed):
                    store.revert(fault.id)
                raise _failure(error, what, messages) from None
            except BaseException:
                with contextlib.suppress(ActivityFailed):
                    store.revert(fault.id)
                raise
            plan["dry_run"] = False
            plan["applied"] = True
            return plan
    finally:
        context.__exit__(None, None, None)


_IFB_PLACEHOLDER = -7


def _plan(
    sock: RtSocket,
    kind: str,
    what: str,
    leaf: Leaf,
    target: Target,
    device: str,
    ifindex: int,
    direction: str,
    duration: float,
    netns: str,
) -> tuple[dict[str, Any], list[Message], dict[str, Any] | None]:
    messages: list[Message] = []
    devices: list[dict[str, Any]] = []
    ifb: dict[str, Any] | None = None
    minors_taken: set[int] = set()
    places: list[tuple[str, int, bool, bool]] = []  # (name, index, ingress, exists)
    if direction in ("egress", "both"):
        places.append((device, ifindex, False, True))
    if direction in ("ingress", "both"):
        name = ifb_name(ifindex)
        ifb_index = _ifindex(name)
        ifb = {"name": name, "create": not ifb_index}
        places.append((name, ifb_index or _IFB_PLACEHOLDER, True, bool(ifb_index)))
    roots = [_root(sock, index) if exists else None for _name, index, _ingress, exists in places]
    for (_name, index, _ingress, _exists), root in zip(places, roots, strict=True):
        # Classes matter only under our own root: any other root is replaced with its classes.
        if root is not None and root.handle == tc.handle(ROOT_MAJOR):
            minors_taken |= _fault_minors(sock, index)
    minor = next((m for m in range(FIRST_MINOR, LAST_MINOR + 1) if m not in minors_taken), 0)
    if not minor:
        raise ActivityFailed(f"interface {device!r} already carries {LAST_MINOR} faults")
    for (name, index, ingress, exists), root in zip(places, roots, strict=True):
        ours = root is not None and root.handle == tc.handle(ROOT_MAJOR)
        if ours:
            original = _inherited_original(netns, name)
        else:
            original = _original_of(root, sock, index, name) if exists else {"default": True}
        messages += _tree_messages(
            index, name, minor, leaf, target, with_root=not ours, ingress=ingress
        )
        devices.append(
            {
                "name": name,
                "role": "ifb" if ingress else "egress",
                "original_root": original,
                "created_root": not ours,
            }
        )
    if ifb is not None:
        ingress_root = next(
            (q for q in _qdiscs(sock, ifindex) if q.parent == tc.TC_H_INGRESS), None
        )
        ifb["created_ingress"] = ingress_root is None
        if ingress_root is None:
            messages.append(tc.ingress_qdisc(ifindex, f"tc qdisc add dev {device} ingress"))
        if ingress_root is None or MIRRED_PRIO not in _filter_prios(
            sock, ifindex, tc.handle(0xFFFF)
        ):
            messages.append(
                tc.mirred_filter(
                    ifindex,
                    MIRRED_PRIO,
                    _ifindex(ifb["name"]) or _IFB_PLACEHOLDER,
                    f"tc filter add dev {device} parent ffff: protocol all prio {MIRRED_PRIO} "
                    f"u32 match u32 0 0 action mirred egress redirect dev {ifb['name']}",
                )
            )
    where = f" (netns {netns})" if netns else ""
    description = f"{what} on {device}{where} {direction}"
    if target.destinations:
        description += f" to {', '.join(target.destinations)}"
    if target.protocol or target.ports:
        description += (
            f" {target.protocol or 'tcp+udp'} ports " + ",".join(target.to_dict()["ports"])
            if target.ports
            else f" {target.protocol}"
        )
    spec = {
        "netns": netns,
        "interface": device,
        "direction": direction,
        "minor": minor,
        "devices": devices,
        "ifb": ({k: v for k, v in ifb.items() if k != "create"} if ifb else None),
        "target": target.to_dict(),
        "leaf": leaf.describe,
    }
    plan = {
        "kind": kind,
        "description": description,
        "interface": device,
        "netns": netns,
        "direction": direction,
        "duration": duration,
        "target": target.to_dict(),
        "class": tc.show_handle(tc.handle(ROOT_MAJOR, minor)),
        "commands": ([f"ip link add {ifb['name']} up type ifb"] if ifb and ifb["create"] else [])
        + [m.describe for m in messages],
        "messages": len(messages),
        "spec": spec,
    }
    return plan, messages, ifb


# -- revert -------------------------------------------------------------------------------------


def revert(fault: "FaultRecord") -> None:
    """The registry's reverter for tc faults (idempotent; works from ``fault.spec`` alone)."""
    revert_spec(fault.spec)


def revert_spec(spec: dict[str, Any]) -> None:
    """Undo one fault: its filters and class, or the whole tree when it was the last one."""
    netns = str(spec.get("netns") or "")
    try:
        context = in_netns(netns)
        context.__enter__()
    except NetlinkError:
        return  # the namespace is gone, and everything in it
    try:
        with RtSocket() as sock:
            minor = int(spec["minor"])
            ifb = spec.get("ifb") or None
            for part in spec.get("devices", []):
                index = _ifindex(str(part["name"]))
                if index:
                    _revert_device(sock, index, str(part["name"]), minor, part["original_root"])
            if ifb:
                _revert_ifb(sock, str(spec["interface"]), ifb)
    finally:
        context.__exit__(None, None, None)


def _revert_device(
    sock: RtSocket, ifindex: int, device: str, minor: int, original: dict[str, Any]
) -> None:
    # One dump: the root, and the leaves of every fault class (parent c4a0:<minor>).
    qdiscs = _qdiscs(sock, ifindex)
    root = next((q for q in qdiscs if q.parent == tc.TC_H_ROOT), None)
    if root is None or root.handle != tc.handle(ROOT_MAJOR):
        return  # our tree is gone (reverted already, or replaced by someone else)
    others = {
        q.parent & 0xFFFF
        for q in qdiscs
        if q.parent >> 16 == ROOT_MAJOR and (q.parent & 0xFFFF) >= FIRST_MINOR
    } - {minor}
    if not others:
        sock.batch([_restore_message(ifindex, device, original)])
        return
    root_handle = tc.handle(ROOT_MAJOR)
    sock.batch(
        [
            tc.del_filters(
                ifindex, root_handle, 2 * minor, f"tc filter del dev {device} prio {2 * minor}"
            ),
            tc.del_filters(
                ifindex,
                root_handle,
                2 * minor + 1,
                f"tc filter del dev {device} prio {2 * minor + 1}",
            ),
            tc.del_class(ifindex, tc.handle(ROOT_MAJOR, minor), f"tc class del dev {device}"),
        ]
    )


def _revert_ifb(sock: RtSocket, interface: str, ifb: dict[str, Any]) -> None:
    name = str(ifb["name"])
    ifb_index = _ifindex(name)
    if ifb_index:
        root = _root(sock, ifb_index)
        if root is not None and root.handle == tc.handle(ROOT_MAJOR):
            return  # other ingress faults still use it
    index = _ifindex(interface)
    messages: list[Message] = []
    if index:
        messages.append(
            tc.del_filters(index, tc.handle(0xFFFF), MIRRED_PRIO, f"tc filter del dev {interface}")
        )
    if ifb_index:
        messages.append(_del_link(name, ifb_index))
    sock.batch(messages, stop_on_error=False)
    if index and ifb.get("created_ingress"):
        remaining = _filter_prios(sock, index, tc.handle(0xFFFF))
        if not remaining:
            sock.batch(
                [
                    tc.del_qdisc(
                        index,
                        tc.TC_H_INGRESS,
                        f"tc qdisc del dev {interface} ingress",
                        (errno.ENOENT, errno.EINVAL),
                    )
                ],
                stop_on_error=False,
            )


# -- reading ------------------------------------------------------------------------------------


def netns_interfaces() -> list[tuple[str, int]]:
    """Every interface of the current namespace."""
    return [(name, index) for index, name in socket.if_nameindex()]


def _decode_netem(options: bytes) -> dict[str, Any]:
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
    try:
        context = in_netns(netns)
        context.__enter__()
    except NetlinkError as error:
        raise ActivityFailed(f"netns {netns!r} does not exist: {error.strerror}") from None
    try:
        with RtSocket() as sock:
            if interface:
                index = _ifindex(interface)
                if not index:
                    raise ActivityFailed(f"interface {interface!r} does not exist")
                names = [(interface, index)]
            else:
                names = [(n, i) for i, n in socket.if_nameindex()]
            view: dict[str, Any] = {}
            for name, index in names:
                qdiscs = []
                for q in _qdiscs(sock, index):
                    entry: dict[str, Any] = {
                        "kind": q.kind,
                        "handle": tc.show_handle(q.handle),
                        "parent": tc.show_handle(q.parent),
                    }
                    if q.kind == "netem":
                        entry["netem"] = _decode_netem(q.options)
                    qdiscs.append(entry)
                ours = _fault_minors(sock, index)
                view[name] = {
                    "qdiscs": qdiscs,
                    "chaosgenesys_tree": any(
                        q.handle == tc.handle(ROOT_MAJOR) and q.parent == tc.TC_H_ROOT
                        for q in _qdiscs(sock, index)
                    ),
                    "fault_classes": sorted(tc.show_handle(tc.handle(ROOT_MAJOR, m)) for m in ours),
                }
            return view
    finally:
        context.__exit__(None, None, None)


def new_token() -> str:
    """A short random token (nftables table names)."""
    return _secrets.token_hex(4)


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


# -- nftables faults ----------------------------------------------------------------------------

NFT_REVERTER = "chaosgenesys.network.engine:revert_nft"


def apply_nft(
    *,
    kind: str,
    what: str,
    loss_percent: float,
    target: Target,
    interface: str,
    direction: str,
    duration: float,
    netns: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Plan, record and apply an nftables drop (``loss_percent`` 100: blackhole)."""
    from chaosgenesys.faults import registry
    from chaosgenesys.network import nft

    if not dry_run:
        check_capability()
    with netns_context(netns), RtSocket() as sock:
        device, _index = resolve_interface(sock, interface, target, netns)
        table = f"chaosgenesys_{new_token()}"
        document = nft.ruleset(table, device, direction, target, loss_percent)
        where = f" (netns {netns})" if netns else ""
        description = f"{what} on {device}{where} {direction}"
        if target.destinations:
            description += f" to {', '.join(target.destinations)}"
        plan: dict[str, Any] = {
            "kind": kind,
            "description": description,
            "interface": device,
            "netns": netns,
            "direction": direction,
            "duration": duration,
            "target": target.to_dict(),
            "nftables_table": f"netdev {table}",
            "nftables": document,
            "spec": {"netns": netns, "interface": device, "table": table},
        }
        if dry_run:
            plan.update(dry_run=True, applied=False)
            return plan
        fault = registry.record(
            kind=kind,
            description=description,
            reverter=NFT_REVERTER,
            spec=plan["spec"],
            duration=duration or None,
        )
        plan["fault_id"] = fault.id
        try:
            started = time.perf_counter()
            rc, _out, err = nft.run(document)
            plan["apply_ms"] = round((time.perf_counter() - started) * 1000, 3)
        except BaseException:
            with contextlib.suppress(ActivityFailed):
                registry.revert(fault.id)
            raise
        if rc != 0:
            with contextlib.suppress(ActivityFailed):
                registry.revert(fault.id)
            hint = ""
            if "egress" in err or "Operation not supported" in err:
                hint = " (the netdev egress hook needs Linux 5.16+ with CONFIG_NETFILTER_EGRESS)"
            if "Operation not permitted" in err:
                hint = " (CAP_NET_ADMIN is needed)"
            raise ActivityFailed(f"{what}: nftables refused the rules{hint}: {err.strip()}")
        plan.update(dry_run=False, applied=True)
        return plan


def revert_nft(fault: "FaultRecord") -> None:
    """The registry's reverter for nftables faults: delete the table (idempotent)."""
    from chaosgenesys.network import nft

    netns = str(fault.spec.get("netns") or "")
    try:
        context = in_netns(netns)
        context.__enter__()
    except NetlinkError:
        return
    try:
        nft.delete_table(str(fault.spec["table"]))
    finally:
        context.__exit__(None, None, None)
