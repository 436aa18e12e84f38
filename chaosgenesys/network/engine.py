"""Fault trees on an interface: plan, record, apply in one netlink batch, revert.

The tree (egress, or on the IFB device that ingress traffic is redirected to)::

    root htb c4a0: default 1           the interface's original root qdisc is saved first
     ├─ class c4a0:1  unlimited        untargeted traffic (default class)
     ├─ class c4a0:10 <rate>           fault A: leaf netem (c010:) or tbf (c010:)
     │    u32 filters prio 32 (IPv4) and 33 (IPv6): protocol AND port block AND address
     └─ class c4a0:11 ...              fault B on the same interface
    ingress ffff: + u32 "match all" -> mirred egress redirect to cgifb<ifindex>   (ingress only)

The tree's layout and the kernel reads are ``tc_state``, its netlink messages ``tc_tree``; this
module plans, records, applies and reverts. nftables faults (loss without netem, blackhole) are
``nft_faults``.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network import tc
from chaosgenesys.network.nl import (
    Attr,
    Message,
    NetlinkError,
    RtSocket,
    has_net_admin,
    in_netns,
    parse_attrs,
)
from chaosgenesys.network.reverters import TC_REVERTER
from chaosgenesys.network.targeting import Target
from chaosgenesys.network.tc_state import (
    FIRST_MINOR,
    LAST_MINOR,
    MIRRED_PRIO,
    ROOT_MAJOR,
    Qdisc,
    classes,
    fault_minors,
    filter_prios,
    interface_index,
    netns_context,
    qdiscs,
    root_qdisc,
)
from chaosgenesys.network.tc_tree import (
    Leaf,
    del_link_message,
    ifb_name,
    link_message,
    restore_message,
    tree_messages,
)

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.faults.registry import FaultRecord

__all__ = [
    "REVERTER",
    "NoNetem",
    "apply_tc",
    "check_capability",
    "resolve_interface",
    "revert",
    "revert_spec",
]

REVERTER = TC_REVERTER
RTM_GETROUTE = 26


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


class NoNetem(ActivityFailed):  # type: ignore[misc]
    """The kernel has no sch_netem: the fault was refused and nothing was left applied."""


def _failure(error: NetlinkError, what: str, messages: Sequence[Message]) -> ActivityFailed:
    step = messages[error.index].describe if 0 <= error.index < len(messages) else ""
    detail = f"{error.strerror}" + (f" at `{step}`" if step else "")
    if error.errno == errno.EPERM:
        return ActivityFailed(f"{what}: the kernel refused ({detail}); CAP_NET_ADMIN is needed")
    if "qdisc kind is unknown" in (error.message or "") or (
        error.errno == errno.ENOENT and step.startswith("tc qdisc add") and " netem " in step
    ):
        return NoNetem(
            f"{what}: this kernel has no sch_netem ({detail}). Load it with `modprobe sch_netem` "
            "(package linux-modules-extra on Ubuntu, kernel-modules-extra on Fedora), or use a "
            "kernel built with CONFIG_NET_SCH_NETEM; packet loss without netem: "
            "add_packet_loss(method='nftables'), bandwidth: throttle_bandwidth"
        )
    return ActivityFailed(f"{what}: the kernel refused ({detail}); nothing was left applied")


# -- interfaces, routes ------------------------------------------------------------------------


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
        index = interface_index(interface)
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


#: Qdiscs whose classes carry configuration (tbf and netem have one internal class: fine).
_CLASSFUL = {"htb", "hfsc", "drr", "qfq", "cbq", "prio", "ets", "mq", "mqprio", "taprio", "multiq"}


def _original_of(root: Qdisc | None, sock: RtSocket, ifindex: int, name: str) -> dict[str, Any]:
    """What to put back: the kernel default (handle 0) or a classless qdisc someone configured."""
    if root is None or root.handle >> 16 == 0:
        return {"default": True, "kind": root.kind if root else ""}
    if root.kind in _CLASSFUL and classes(sock, ifindex):
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
    with netns_context(netns):
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
            with store.undone_on_failure(fault.id):
                try:
                    if ifb and ifb.get("create"):
                        # Planned with a placeholder index: plan again now the device exists.
                        sock.batch([link_message(ifb["name"])])
                        messages = _plan(
                            sock, kind, what, leaf, target, device, ifindex, direction, duration,
                            netns,
                        )[1]
                    started = time.perf_counter()
                    sock.batch(messages)
                    plan["apply_ms"] = round((time.perf_counter() - started) * 1000, 3)
                except NetlinkError as error:
                    raise _failure(error, what, messages) from None
            plan["dry_run"] = False
            plan["applied"] = True
            return plan


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
        ifb_index = interface_index(name)
        ifb = {"name": name, "create": not ifb_index}
        places.append((name, ifb_index or _IFB_PLACEHOLDER, True, bool(ifb_index)))
    roots = [root_qdisc(sock, index) if exists else None for _n, index, _i, exists in places]
    for (_name, index, _ingress, _exists), root in zip(places, roots, strict=True):
        # Classes matter only under our own root: any other root is replaced with its classes.
        if root is not None and root.handle == tc.handle(ROOT_MAJOR):
            minors_taken |= fault_minors(sock, index)
    minor = next((m for m in range(FIRST_MINOR, LAST_MINOR + 1) if m not in minors_taken), 0)
    if not minor:
        raise ActivityFailed(f"interface {device!r} already carries {LAST_MINOR} faults")
    for (name, index, ingress, exists), root in zip(places, roots, strict=True):
        ours = root is not None and root.handle == tc.handle(ROOT_MAJOR)
        if ours:
            original = _inherited_original(netns, name)
        else:
            original = _original_of(root, sock, index, name) if exists else {"default": True}
        messages += tree_messages(
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
            (q for q in qdiscs(sock, ifindex) if q.parent == tc.TC_H_INGRESS), None
        )
        ifb["created_ingress"] = ingress_root is None
        if ingress_root is None:
            messages.append(tc.ingress_qdisc(ifindex, f"tc qdisc add dev {device} ingress"))
        if ingress_root is None or MIRRED_PRIO not in filter_prios(
            sock, ifindex, tc.handle(0xFFFF)
        ):
            messages.append(
                tc.mirred_filter(
                    ifindex,
                    MIRRED_PRIO,
                    interface_index(ifb["name"]) or _IFB_PLACEHOLDER,
                    f"tc filter add dev {device} parent ffff: protocol all prio {MIRRED_PRIO} "
                    f"u32 match u32 0 0 action mirred egress redirect dev {ifb['name']}",
                )
            )
    description = target.describe(what, device, netns, direction)
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
                index = interface_index(str(part["name"]))
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
    present = qdiscs(sock, ifindex)
    root = next((q for q in present if q.parent == tc.TC_H_ROOT), None)
    if root is None or root.handle != tc.handle(ROOT_MAJOR):
        return  # our tree is gone (reverted already, or replaced by someone else)
    others = {
        q.parent & 0xFFFF
        for q in present
        if q.parent >> 16 == ROOT_MAJOR and (q.parent & 0xFFFF) >= FIRST_MINOR
    } - {minor}
    if not others:
        sock.batch([restore_message(ifindex, device, original)])
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
    ifb_index = interface_index(name)
    if ifb_index:
        root = root_qdisc(sock, ifb_index)
        if root is not None and root.handle == tc.handle(ROOT_MAJOR):
            return  # other ingress faults still use it
    index = interface_index(interface)
    messages: list[Message] = []
    if index:
        messages.append(
            tc.del_filters(index, tc.handle(0xFFFF), MIRRED_PRIO, f"tc filter del dev {interface}")
        )
    if ifb_index:
        messages.append(del_link_message(name, ifb_index))
    sock.batch(messages, stop_on_error=False)
    if index and ifb.get("created_ingress"):
        remaining = filter_prios(sock, index, tc.handle(0xFFFF))
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


def new_token() -> str:
    """A short random token (nftables table names)."""
    return _secrets.token_hex(4)


def revert_nft(fault: "FaultRecord") -> None:
    """The nftables faults' reverter as records written before ``nft_faults`` existed name it."""
    from chaosgenesys.network.nft_faults import revert_nft as revert_table

    revert_table(fault)
