"""The netlink messages of a fault tree (drawn in ``engine``'s docstring): our root and default
class, a fault's class, leaf and u32 filters, the original root put back, the IFB device.

Building only: nothing here talks to the kernel (``engine`` sends them, ``tc_state`` reads back).
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chaosgenesys.network import tc
from chaosgenesys.network.nl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REQUEST,
    Attr,
    Message,
    attr,
)
from chaosgenesys.network.targeting import Target
from chaosgenesys.network.tc_state import DEFAULT_MINOR, ROOT_MAJOR

__all__ = [
    "UNLIMITED",
    "Leaf",
    "del_link_message",
    "ifb_name",
    "link_message",
    "restore_message",
    "tree_messages",
]

UNLIMITED = 12_500_000_000  # 100 Gbit/s in bytes per second
RTM_NEWLINK, RTM_DELLINK = 16, 17
IFF_UP = 1


@dataclass(frozen=True)
class Leaf:
    """What the fault's class holds: ``kind`` (netem, tbf), its options, the class rate."""

    kind: str
    options: bytes | Sequence[Attr]
    class_rate: int
    describe: str



def restore_message(ifindex: int, device: str, original: dict[str, Any]) -> Message:
    """Put the interface's original root back (or delete ours: the kernel's default returns)."""
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


def tree_messages(
    ifindex: int,
    device: str,
    minor: int,
    leaf: Leaf,
    target: Target,
    *,
    with_root: bool,
    ingress: bool,
) -> list[Message]:
    """The fault's class, leaf and filters (``with_root``: our root and default class first)."""
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


def link_message(name: str) -> Message:
    """Create IFB device ``name``, up."""
    header = struct.pack("=BxHiII", 0, 0, 0, IFF_UP, IFF_UP)
    return Message(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        header,
        [attr(3, name), Attr(18, [attr(1, "ifb")])],
        f"ip link add {name} up type ifb",
    )


def del_link_message(name: str, ifindex: int) -> Message:
    """Delete device ``name`` (gone already is fine)."""
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
