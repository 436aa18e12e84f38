"""tc messages as iproute2's ``tc`` packs them: qdiscs (htb, tbf, netem, ingress), classes, u32.

Units, from ``/proc/net/psched`` of every kernel since 2.6.35: one psched tick is 64 ns, and the
kernel reads times in ``tc_*_qopt`` structs as ticks. netem's delay and jitter are also sent as
64-bit nanoseconds (``TCA_NETEM_LATENCY64`` / ``JITTER64``), which the kernel prefers; rates are
bytes per second, with the 64-bit attribute when they do not fit in 32 bits; probabilities are
fractions of 2**32 - 1 (``tc``'s ``get_percent``).
"""

import math
import socket
import struct
from collections.abc import Sequence
from dataclasses import dataclass, field

from chaosgenesys.network.nl import (
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_EXCL,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    Attr,
    Message,
    attr,
    nla,
)

__all__ = [
    "ETH_P_ALL",
    "ETH_P_IP",
    "ETH_P_IPV6",
    "TC_H_INGRESS",
    "TC_H_ROOT",
    "U32Key",
    "del_class",
    "del_filters",
    "del_qdisc",
    "handle",
    "htb_class",
    "htb_root",
    "ingress_qdisc",
    "mirred_filter",
    "prob",
    "qdisc",
    "show_handle",
    "tbf_options",
    "tcmsg",
    "u32_filter",
]

RTM_NEWQDISC, RTM_DELQDISC, RTM_GETQDISC = 36, 37, 38
RTM_NEWTCLASS, RTM_DELTCLASS, RTM_GETTCLASS = 40, 41, 42
RTM_NEWTFILTER, RTM_DELTFILTER, RTM_GETTFILTER = 44, 45, 46
TCA_KIND, TCA_OPTIONS = 1, 2
TC_H_ROOT = 0xFFFFFFFF
TC_H_INGRESS = 0xFFFFFFF1
ETH_P_ALL, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0800, 0x86DD
TICK_NS = 64
TC_LINKLAYER_ETHERNET = 1

_TCMSG = struct.Struct("=BxxxiIII")
_RATESPEC = struct.Struct("=BBHhHI")
#: ``struct tc_u32_sel`` without its keys: flags, offshift, nkeys, offmask, off, offoff,
#: hoff, hmask.
_U32_SEL = struct.Struct("=BBBxHHhhI")
#: A whole u32 filter request but its keys, in one struct (a batch has one per filter):
#: tcmsg (family, ifindex, handle, parent, info), TCA_KIND "u32", TCA_OPTIONS {
#: TCA_U32_CLASSID u32, TCA_U32_SEL { tc_u32_sel, then the keys } }. Every part is a multiple
#: of 4 bytes, so no attribute needs padding.
_U32_FILTER = struct.Struct("=BxxxiIII" + "HH4s" + "HH" + "HHI" + "HH" + _U32_SEL.format[1:])
_TCMSG_SIZE = _TCMSG.size
#: ``struct tc_u32_key``: mask and value in network byte order (passed through ``htonl``),
#: then off and offmask in host order.
_U32_KEY = struct.Struct("=IIii")
TC_U32_TERMINAL = 1
TCA_U32_CLASSID, TCA_U32_SEL = 1, 5
_U32_KIND = nla(TCA_KIND, b"u32\0")
_HTB_KIND = nla(TCA_KIND, b"htb\0")
U32_MAX = 0xFFFFFFFF
_NEW = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL
_REPLACE = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
_DEL = NLM_F_REQUEST | NLM_F_ACK


def handle(major: int, minor: int = 0) -> int:
    """``major:minor`` as the kernel's 32-bit handle."""
    return ((major & 0xFFFF) << 16) | (minor & 0xFFFF)


def show_handle(value: int) -> str:
    """A handle as ``tc`` prints it (``c4a0:10``, ``root``, ``ingress``)."""
    if value == TC_H_ROOT:
        return "root"
    if value == TC_H_INGRESS:
        return "ffff:fff1"
    major, minor = value >> 16, value & 0xFFFF
    return f"{major:x}:{minor:x}" if minor else f"{major:x}:"


def tcmsg(ifindex: int, handle_: int = 0, parent: int = 0, info: int = 0) -> bytes:
    """The fixed ``struct tcmsg`` header (AF_UNSPEC)."""
    return _TCMSG.pack(0, ifindex, handle_, parent, info)


def prob(percent: float) -> int:
    """A percentage as the kernel's u32 probability (``tc``'s ``get_percent``)."""
    return min(U32_MAX, max(0, math.floor(percent / 100.0 * U32_MAX + 0.5)))


def _ratespec(rate: int) -> bytes:
    return _RATESPEC.pack(0, TC_LINKLAYER_ETHERNET, 0, -1, 0, min(rate, U32_MAX))


def _ticks(ns: float) -> int:
    return min(U32_MAX, max(1, math.ceil(ns / TICK_NS)))


def burst_ticks(rate: int, burst: int) -> int:
    """The time to send ``burst`` bytes at ``rate`` bytes/s, in psched ticks."""
    return _ticks(burst * 1e9 / rate)


def _packed(attrs: Sequence[Attr] | bytes) -> bytes:
    return attrs if isinstance(attrs, bytes) else b"".join([a.pack() for a in attrs])


def qdisc(
    ifindex: int,
    kind: str,
    handle_: int,
    parent: int,
    options: Sequence[Attr] | bytes | None,
    describe: str,
    *,
    replace: bool = False,
) -> Message:
    """``RTM_NEWQDISC``: create (exclusively) or replace a qdisc."""
    attrs = nla(TCA_KIND, kind.encode() + b"\0")
    if options is not None:
        attrs += nla(TCA_OPTIONS, _packed(options))
    return Message(
        RTM_NEWQDISC,
        _REPLACE if replace else _NEW,
        tcmsg(ifindex, handle_, parent),
        attrs,
        describe,
    )


def del_qdisc(ifindex: int, parent: int, describe: str, ignore: tuple[int, ...] = ()) -> Message:
    """``RTM_DELQDISC`` of the qdisc at ``parent`` (``TC_H_ROOT`` restores the default)."""
    return Message(RTM_DELQDISC, _DEL, tcmsg(ifindex, 0, parent), [], describe, ignore)


def htb_root(ifindex: int, handle_: int, default_minor: int, describe: str) -> Message:
    """A root htb qdisc (r2q 10, version 3) whose unclassified packets go to ``default_minor``."""
    glob = struct.pack("=IIIII", 3, 10, default_minor, 0, 0)
    return qdisc(ifindex, "htb", handle_, TC_H_ROOT, [Attr(2, glob)], describe, replace=True)


def htb_class(
    ifindex: int, classid: int, parent: int, rate: int, describe: str, *, burst: int = 0
) -> Message:
    """An htb class with ``rate`` = ``ceil`` (bytes per second); 64-bit rates when needed."""
    mtu = 1600
    burst = max(burst, rate // 100, 2 * mtu)  # 10 ms at rate, at least two full frames
    buffer = burst_ticks(rate, burst)
    quantum = max(mtu, min(200_000, rate // 10))
    opt = _ratespec(rate) + _ratespec(rate) + struct.pack("=IIIII", buffer, buffer, quantum, 0, 0)
    options = nla(1, opt)  # TCA_HTB_PARMS
    if rate > U32_MAX:  # TCA_HTB_RATE64, TCA_HTB_CEIL64
        options += nla(6, struct.pack("=Q", rate)) + nla(7, struct.pack("=Q", rate))
    return Message(
        RTM_NEWTCLASS,
        _NEW,
        tcmsg(ifindex, classid, parent),
        _HTB_KIND + nla(TCA_OPTIONS, options),
        describe,
    )


def del_class(ifindex: int, classid: int, describe: str) -> Message:
    """``RTM_DELTCLASS`` (gone already counts as done)."""
    return Message(RTM_DELTCLASS, _DEL, tcmsg(ifindex, classid, 0), [], describe, (2, 22))


def tbf_options(rate: int, burst: int, limit: int) -> list[Attr]:
    """tbf: ``rate`` bytes/s, bucket ``burst`` bytes, queue ``limit`` bytes."""
    opt = _ratespec(rate) + _RATESPEC.pack(0, 0, 0, 0, 0, 0)
    opt += struct.pack("=III", limit, burst_ticks(rate, burst), 0)
    options = [Attr(1, opt), attr(6, burst)]
    if rate > U32_MAX:
        options.append(attr(4, rate, "=Q"))
    return options


def ingress_qdisc(ifindex: int, describe: str) -> Message:
    """The ``ingress`` qdisc (handle ffff:)."""
    return qdisc(ifindex, "ingress", handle(0xFFFF), TC_H_INGRESS, [], describe)


@dataclass(slots=True)
class U32Key:
    """One 32-bit word to match: ``(word at off) & mask == value`` (host-order ints).

    Its packed form is computed once, when it is made (a target's filters share their keys, a
    batch packs each one many times): do not change a key after making it.
    """

    value: int
    mask: int
    off: int
    #: ``struct tc_u32_key``: mask, then value (both network order), off, offmask.
    packed: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        mask = self.mask
        self.packed = _U32_KEY.pack(
            socket.htonl(mask), socket.htonl(self.value & mask), self.off, 0
        )

    def pack(self) -> bytes:
        return self.packed


_MATCH_ALL = U32Key(0, 0, 0)


def _filter_info(prio: int, protocol: int) -> int:
    return (prio << 16) | socket.htons(protocol)


def _u32_sel(keys: Sequence[U32Key]) -> bytes:
    keys = keys or (_MATCH_ALL,)
    head = _U32_SEL.pack(TC_U32_TERMINAL, 0, len(keys), 0, 0, 0, 0, 0)  # one selector
    return head + b"".join([k.packed for k in keys])


def u32_filter(
    ifindex: int,
    parent: int,
    prio: int,
    protocol: int,
    node: int,
    keys: Sequence[U32Key],
    classid: int,
    describe: str,
) -> Message:
    """A u32 filter: every key must match (one selector: the keys are AND'ed), then ``classid``."""
    keys = keys or (_MATCH_ALL,)
    sel_len = 4 + _U32_SEL.size + 16 * len(keys)
    head = _U32_FILTER.pack(
        *(0, ifindex, node, parent, _filter_info(prio, protocol)),  # tcmsg
        *(8, TCA_KIND, b"u32\0"),
        *(4 + 8 + sel_len, TCA_OPTIONS),
        *(8, TCA_U32_CLASSID, classid),
        *(sel_len, TCA_U32_SEL),
        *(TC_U32_TERMINAL, 0, len(keys), 0, 0, 0, 0, 0),  # tc_u32_sel: one selector
    )
    attrs = head[_TCMSG_SIZE:] + b"".join([k.packed for k in keys])
    return Message(RTM_NEWTFILTER, _NEW, head[:_TCMSG_SIZE], attrs, describe)


def mirred_filter(ifindex: int, prio: int, target_ifindex: int, describe: str) -> Message:
    """Every packet arriving on ``ifindex`` redirected to the egress of ``target_ifindex``."""
    # struct tc_mirred: tc_gen (index, capab, action, refcnt, bindcnt) + eaction + ifindex.
    parms = struct.pack("=IIiiiii", 0, 0, 4, 0, 0, 1, target_ifindex)  # TC_ACT_STOLEN, EGRESS_REDIR
    action = Attr(1, [attr(1, "mirred"), Attr(2, [Attr(2, parms)])])
    options = [Attr(5, _u32_sel([])), Attr(7, [action])]
    return Message(
        RTM_NEWTFILTER,
        _NEW,
        tcmsg(ifindex, 0, handle(0xFFFF), _filter_info(prio, ETH_P_ALL)),
        [attr(TCA_KIND, "u32"), Attr(TCA_OPTIONS, options)],
        describe,
    )


def del_filters(ifindex: int, parent: int, prio: int, describe: str) -> Message:
    """Delete every filter of one priority under ``parent`` (gone already counts as done)."""
    return Message(
        RTM_DELTFILTER,
        _DEL,
        tcmsg(ifindex, 0, parent, _filter_info(prio, 0)),
        [],
        describe,
        (2, 22),
    )
