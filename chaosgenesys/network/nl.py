"""A small rtnetlink client: packed messages, sent in batches on one socket.

pyroute2 0.9.7 spends most of a tc call encoding messages and running a per-call event loop
(13-18 ms for a tree that one raw socket sends in 0.2 ms), and its netem encoder is wrong in
three ways (``rate=`` leaks into a top-level ``TCA_RATE``, delay units are microseconds,
``replace`` keeps old attributes). So the tc messages are packed here with :mod:`struct`, exactly
as iproute2's ``tc`` packs them, sent as one buffer on one ``NETLINK_ROUTE`` socket with
``NLM_F_ACK`` on each, and every acknowledgement is read back (with the kernel's extended ack
message, e.g. "Specified qdisc kind is unknown").

Nothing here imports pyroute2; the tests decode our messages with pyroute2's parsers and compare
them with what ``tc -j`` reads back from the kernel.
"""

import contextlib
import errno
import os
import socket
import struct
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

__all__ = [
    "NLM_F_ACK",
    "NLM_F_CREATE",
    "NLM_F_DUMP",
    "NLM_F_EXCL",
    "NLM_F_REPLACE",
    "NLM_F_REQUEST",
    "Attr",
    "Message",
    "NetlinkError",
    "Reply",
    "RtSocket",
    "attr",
    "has_net_admin",
    "in_netns",
    "nla",
    "parse_attrs",
]

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CREATE = 0x400
NLM_F_ACK_TLVS = 0x200  # in the flags of an NLMSG_ERROR answer
NETLINK_EXT_ACK = 11
NETLINK_CAP_ACK = 10
SOL_NETLINK = 270
NLMSGERR_ATTR_MSG = 1

_HDR = struct.Struct("=IHHII")
_NLA = struct.Struct("=HH")
#: Receive buffer. The kernel sends dumps in datagrams of at most 32 KiB and acks much smaller;
#: a buffer of 128 KiB or more would be allocated with mmap on every call (about 20 us each).
_RECV_SIZE = 1 << 16


class NetlinkError(OSError):
    """The kernel refused a message: ``errno``, its ``strerror``, the extended ack message."""

    def __init__(self, code: int, message: str = "", index: int = -1) -> None:
        self.message = message
        self.index = index
        text = os.strerror(code)
        if message:
            text = f"{text}: {message}"
        super().__init__(code, text)


def _align(length: int) -> int:
    return (length + 3) & ~3


#: NUL padding after a payload of ``len % 4`` bytes, up to the 4-byte boundary.
_PAD = (b"", b"\0\0\0", b"\0\0", b"\0")


def nla(kind: int, payload: bytes) -> bytes:
    """One packed netlink attribute: ``struct nlattr`` (length, type), ``payload``, padding."""
    return _NLA.pack(4 + len(payload), kind) + payload + _PAD[len(payload) & 3]


@dataclass(slots=True)
class Attr:
    """One netlink attribute: ``type`` and its payload (bytes or nested attributes)."""

    type: int
    value: "bytes | Sequence[Attr]"

    def pack(self) -> bytes:
        value = self.value
        if isinstance(value, bytes | bytearray):
            return nla(self.type, bytes(value))
        return nla(self.type, b"".join([a.pack() for a in value]))


def attr(kind: int, value: "bytes | str | int | Sequence[Attr]", fmt: str = "") -> Attr:
    """An attribute: bytes, a string (NUL-terminated), an int (``fmt``, default u32), nests."""
    if isinstance(value, str):
        return Attr(kind, value.encode() + b"\0")
    if isinstance(value, int):
        return Attr(kind, struct.pack(fmt or "=I", value))
    return Attr(kind, value)


@dataclass(slots=True)
class Message:
    """A netlink request: type, flags, fixed header bytes (e.g. a tcmsg) and attributes.

    ``attrs`` is a sequence of :class:`Attr`, or their packed bytes (what :func:`nla` returns,
    concatenated): the tc builders pack directly, which is most of what a large batch costs.
    """

    type: int
    flags: int
    header: bytes
    attrs: "Sequence[Attr] | bytes" = field(default_factory=list)
    #: What the message does, as the ``tc`` command line that does the same (for plans and errors).
    describe: str = ""
    #: Errnos that count as success (e.g. ENOENT when deleting something already gone).
    ignore: tuple[int, ...] = ()

    def body(self) -> bytes:
        """The fixed header and the packed attributes: everything after ``struct nlmsghdr``."""
        attrs = self.attrs
        if isinstance(attrs, bytes | bytearray):
            return self.header + attrs
        return self.header + b"".join([a.pack() for a in attrs])

    def pack(self, seq: int, flags: int | None = None) -> bytes:
        """The whole message with sequence number ``seq`` (and ``flags`` instead of its own)."""
        body = self.body()
        return (
            _HDR.pack(16 + len(body), self.type, self.flags if flags is None else flags, seq, 0)
            + body
        )


@dataclass
class Reply:
    """One message of a dump: type, fixed header bytes, attribute payload bytes."""

    type: int
    header: bytes
    attrs: bytes


def parse_attrs(data: bytes, offset: int = 0) -> dict[int, bytes]:
    """Top-level attributes of ``data`` from ``offset``: type (without flags) -> payload."""
    found: dict[int, bytes] = {}
    end = len(data)
    while offset + 4 <= end:
        length, kind = _NLA.unpack_from(data, offset)
        if length < 4:
            break
        found[kind & 0x3FFF] = data[offset + 4 : offset + length]
        offset += _align(length)
    return found


#: The capability bit network and socket faults need.
CAP_NET_ADMIN = 12


def has_net_admin() -> bool:
    """Whether this process has CAP_NET_ADMIN in its effective capability set."""
    try:
        with open("/proc/self/status", "rb") as status:  # one read, no text decoding
            text = status.read()
        start = text.index(b"\nCapEff:") + 8
        return bool(int(text[start : text.index(b"\n", start)], 16) & (1 << CAP_NET_ADMIN))
    except (OSError, ValueError):
        pass
    return os.geteuid() == 0


_ns_lock = threading.RLock()


@contextlib.contextmanager
def in_netns(netns: str | None) -> Iterator[None]:
    """Run the block in network namespace ``netns`` (a name under /run/netns or a path).

    Only the calling thread moves (network namespaces are per thread); it moves back at the end.
    Sockets created inside, and processes started from it, stay in that namespace. ``""`` or
    ``None`` means the current namespace. A namespace that does not exist raises
    :class:`NetlinkError` (``ENOENT``).
    """
    if not netns:
        yield
        return
    path = netns if "/" in netns else f"/run/netns/{netns}"
    with _ns_lock:
        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        try:
            try:
                target = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                raise NetlinkError(errno.ENOENT, f"network namespace {netns!r} not found") from None
            try:
                os.setns(target, os.CLONE_NEWNET)
            finally:
                os.close(target)
            try:
                yield
            finally:
                os.setns(own, os.CLONE_NEWNET)
        finally:
            os.close(own)


class RtSocket:
    """One ``NETLINK_ROUTE`` socket; :meth:`batch` sends many requests in one ``send``."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def _recv(self) -> bytes:
        """One datagram from the kernel (a truncated one is an error, never silently cut)."""
        data, _ancillary, flags, _address = self.sock.recvmsg(_RECV_SIZE)
        if flags & socket.MSG_TRUNC:
            raise NetlinkError(errno.EMSGSIZE, f"netlink answer larger than {_RECV_SIZE} bytes")
        return data

    def __enter__(self) -> "RtSocket":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def batch(self, messages: Sequence[Message], *, stop_on_error: bool = True) -> list[int]:
        """Send every message and wait until the kernel has processed all of them.

        Only the last message of each send asks for an acknowledgement (``NLM_F_ACK``); the
        kernel answers every refused message with an error anyway, in order, so when the last
        acknowledgement arrives every error has. Returns the errno of each message (0 = done or
        an ignored errno). With ``stop_on_error`` the first refusal raises :class:`NetlinkError`
        (``index`` = which message); the kernel has then carried out the messages before it, and
        the ones after it too (a caller reverts). Sends are chunks of at most 48 KiB.
        """
        if not messages:
            return []
        codes = [0] * len(messages)
        texts = [""] * len(messages)
        start = 0
        while start < len(messages):
            end, size = start, 0
            while end < len(messages) and (end == start or size < 48 * 1024):
                size += 16 + len(messages[end].header) + 64
                end += 1
            self._send_chunk(messages, start, end, codes, texts)
            start = end
        failure: NetlinkError | None = None
        for index, message in enumerate(messages):
            if codes[index] in message.ignore:
                codes[index] = 0
            if codes[index] and failure is None:
                failure = NetlinkError(codes[index], texts[index], index)
        if failure is not None and stop_on_error:
            raise failure
        return codes

    def _send_chunk(
        self,
        messages: Sequence[Message],
        start: int,
        end: int,
        codes: list[int],
        texts: list[str],
    ) -> None:
        first = self.seq + 1
        # One buffer for the whole chunk; only its last message asks for an acknowledgement.
        buffer = bytearray()
        pack_header = _HDR.pack
        for index in range(start, end):
            self.seq += 1
            message = messages[index]
            body = message.body()
            flags = message.flags if index == end - 1 else message.flags & ~NLM_F_ACK
            buffer += pack_header(16 + len(body), message.type, flags, self.seq, 0)
            buffer += body
        last = self.seq
        self.sock.send(buffer)
        while True:
            data = self._recv()
            offset = 0
            done = False
            while offset + 16 <= len(data):
                length, kind, flags, seq, _pid = _HDR.unpack_from(data, offset)
                if length < 16:
                    break
                if kind == NLMSG_ERROR and first <= seq <= last:
                    index = start + seq - first
                    (code,) = struct.unpack_from("=i", data, offset + 16)
                    codes[index] = -code
                    if code and flags & NLM_F_ACK_TLVS:
                        # With NETLINK_CAP_ACK the echoed request is its header only (16 bytes).
                        orig_len = _HDR.unpack_from(data, offset + 20)[0]
                        skip = 16 if flags & 0x100 else orig_len
                        tlvs = parse_attrs(data[offset + 20 + _align(skip) : offset + length])
                        texts[index] = (
                            tlvs.get(NLMSGERR_ATTR_MSG, b"").rstrip(b"\0").decode(errors="replace")
                        )
                    if seq == last:
                        done = True
                offset += _align(length)
            if done:
                return

    def dump(self, kind: int, header: bytes, attrs: Sequence[Attr] = ()) -> list[Reply]:
        """A ``NLM_F_DUMP`` request: every answer message until ``NLMSG_DONE``."""
        self.seq += 1
        seq = self.seq
        request = Message(kind, NLM_F_REQUEST | NLM_F_DUMP, header, list(attrs))
        self.sock.send(request.pack(seq))
        replies: list[Reply] = []
        header_len = len(header)
        while True:
            data = self._recv()
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                if length < 16:
                    return replies
                if mseq == seq:
                    if mtype == NLMSG_DONE:
                        return replies
                    if mtype == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + 16)
                        if code:
                            raise NetlinkError(-code)
                        return replies
                    body = data[offset + 16 : offset + length]
                    replies.append(Reply(mtype, body[:header_len], body[_align(header_len) :]))
                offset += _align(length)

    def request(self, kind: int, header: bytes, attrs: Sequence[Attr] = ()) -> Reply:
        """One request answered by one message (e.g. ``RTM_GETROUTE`` for one destination)."""
        self.seq += 1
        seq = self.seq
        self.sock.send(Message(kind, NLM_F_REQUEST, header, list(attrs)).pack(seq))
        header_len = len(header)
        while True:
            data = self._recv()
            offset = 0
            while offset + 16 <= len(data):
                length, mtype, _flags, mseq, _pid = _HDR.unpack_from(data, offset)
                if length < 16:
                    break
                if mseq == seq:
                    if mtype == NLMSG_ERROR:
                        (code,) = struct.unpack_from("=i", data, offset + 16)
                        if code:
                            raise NetlinkError(-code)
                    else:
                        body = data[offset + 16 : offset + length]
                        return Reply(mtype, body[:header_len], body[_align(header_len) :])
                offset += _align(length)
