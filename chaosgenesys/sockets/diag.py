"""TCP sockets through sock_diag netlink: list them, and destroy them (``SOCK_DESTROY``).

Destroying an established TCP socket makes the kernel send a real RST to the peer and fail the
local owner's next call with ``ECONNABORTED``, exactly as ``ss -K`` does. The messages are packed
here with :mod:`struct` and sent on one raw ``NETLINK_SOCK_DIAG`` socket: one dump per address
family, then every ``SOCK_DESTROY`` request of a batch in a single ``send()`` and their
acknowledgements read back. pyroute2's ``DiagSocket`` sends one message per call through its
event loop, about 20 times slower for 200 sockets; it is not used.

The kernel needs ``CONFIG_INET_DIAG_DESTROY`` (Debian and most distribution kernels have it) and
the caller ``CAP_NET_ADMIN`` in the namespace of the sockets.
"""

import contextlib
import errno
import functools
import os
import socket
import struct
from collections.abc import Callable, Iterator
from typing import NamedTuple

from chaosgenesys.network.nl import in_netns

__all__ = [
    "DiagError",
    "TcpSocket",
    "destroy",
    "errno_name",
    "list_tcp",
    "session",
    "socket_inodes",
]

NETLINK_SOCK_DIAG = 4
TCPDIAG_GETSOCK = 18  # the original inet_diag request: dumps both families in one walk
SOCK_DIAG_BY_FAMILY = 20
SOCK_DESTROY = 21
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP = 0x300
NETLINK_CAP_ACK = 10
SO_RCVBUFFORCE = 33
INET_DIAG_REQ_BYTECODE = 1
INET_DIAG_BC_JMP = 1
INET_DIAG_BC_D_GE = 4
INET_DIAG_BC_D_LE = 5

TCP_STATES = {
    1: "ESTABLISHED",
    2: "SYN_SENT",
    3: "SYN_RECV",
    4: "FIN_WAIT1",
    5: "FIN_WAIT2",
    6: "TIME_WAIT",
    7: "CLOSE",
    8: "CLOSE_WAIT",
    9: "LAST_ACK",
    10: "LISTEN",
    11: "CLOSING",
}
TCP_ESTABLISHED = 1

_NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, sequence, port id
_NLATTR = struct.Struct("=HH")  # length, type
_BC_OP = struct.Struct("=BBH")  # inet_diag_bc_op: code, yes, no
_COMPAT_REQ = struct.Struct("=BBBB")  # inet_diag_req: family, src len, dst len, extensions
_REQ_HEAD = struct.Struct("=BBBxI")  # family, protocol, extensions, pad, states
# inet_diag_msg: family, state, (timer, retransmits), source and destination port (network
# order), source, destination, (interface, cookie, expires, receive and send queues), uid, inode
_MSG = struct.Struct("=BB2xHH16s16s24xII")
_ntohs = socket.ntohs
_SOCKID_SIZE = 48  # ports, two addresses, interface, cookie
_REQUEST_SIZE = _NLMSGHDR.size + _REQ_HEAD.size + _SOCKID_SIZE
#: Requests sent in one ``send()``; their acknowledgements (36 bytes each with
#: ``NETLINK_CAP_ACK``) must fit the receive buffer.
BATCH = 256


class DiagError(OSError):
    """The kernel refused a sock_diag request (``errno`` says why)."""


class TcpSocket(NamedTuple):
    """A TCP socket as sock_diag reports it; ``sockid`` is the kernel's key (with its cookie)."""

    family: int
    state: int
    local_raw: bytes  # 16 bytes as the kernel gives them (IPv4: the first 4)
    local_port: int
    remote_raw: bytes
    remote_port: int
    uid: int
    inode: int
    sockid: bytes

    @property
    def local_address(self) -> str:
        return _address(self.family, self.local_raw)

    @property
    def remote_address(self) -> str:
        return _address(self.family, self.remote_raw)

    @property
    def local(self) -> str:
        return _endpoint(self.local_address, self.local_port)

    @property
    def remote(self) -> str:
        return _endpoint(self.remote_address, self.remote_port)

    def to_dict(self) -> dict[str, object]:
        return {
            "family": "ipv4" if self.family == socket.AF_INET else "ipv6",
            "state": TCP_STATES.get(self.state, str(self.state)),
            "local": self.local,
            "remote": self.remote,
            "uid": self.uid,
            "inode": self.inode,
        }


def _endpoint(address: str, port: int) -> str:
    return f"[{address}]:{port}" if ":" in address else f"{address}:{port}"


def socket_inodes(pid: int) -> set[int]:
    """Inodes of the sockets process ``pid`` holds open (from ``/proc/PID/fd``)."""
    inodes: set[int] = set()
    directory = f"/proc/{pid}/fd"
    for name in os.listdir(directory):
        try:
            link = os.readlink(os.path.join(directory, name))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(int(link[8:-1]))
    return inodes


def _open() -> socket.socket:
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_SOCK_DIAG
    )
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 22)
    except OSError:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
    with contextlib.suppress(OSError):
        sock.setsockopt(270, NETLINK_CAP_ACK, 1)  # SOL_NETLINK: short acknowledgements
    sock.settimeout(10.0)
    sock.bind((0, 0))
    return sock


def _messages(data: memoryview) -> Iterator[tuple[int, int, int, memoryview]]:
    """(type, flags, sequence, payload) of every netlink message in a buffer."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, flags, sequence, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size:
            break
        yield kind, flags, sequence, data[offset + _NLMSGHDR.size : offset + length]
        offset += (length + 3) & ~3


@functools.lru_cache(maxsize=4096)
def _address(family: int, raw: bytes) -> str:
    if family == socket.AF_INET:
        return socket.inet_ntop(socket.AF_INET, raw[:4])
    return socket.inet_ntop(socket.AF_INET6, raw)


def _port_bytecode(ports: tuple[tuple[int, int], ...]) -> bytes:
    """An ``INET_DIAG_REQ_BYTECODE`` program: remote port in any of the inclusive ``ports``.

    As ``ss`` compiles an OR: per range ``D_GE low`` then ``D_LE high`` (8 bytes each, the port
    in the second half), a ``JMP`` to the end (accept) between ranges. Every ``yes`` falls
    through to the next op (the kernel's audit wants each jump target on that chain); a failed
    test jumps to the next range, or past the end + 4 (reject) after the last.
    """
    length = 16 * len(ports) + 4 * (len(ports) - 1)
    program = bytearray()
    for index, (low, high) in enumerate(ports):
        last = index == len(ports) - 1
        position = len(program)
        miss = (length - position + 4) if last else 20  # from GE: next range or reject
        program += _BC_OP.pack(INET_DIAG_BC_D_GE, 8, miss) + _BC_OP.pack(0, 0, low)
        program += _BC_OP.pack(INET_DIAG_BC_D_LE, 8, miss - 8) + _BC_OP.pack(0, 0, high)
        if not last:
            program += _BC_OP.pack(INET_DIAG_BC_JMP, 4, length - len(program))
    return bytes(program)


def _parse(payload: memoryview) -> TcpSocket:
    family, state, sport, dport, src, dst, uid, inode = _MSG.unpack_from(payload)
    return TcpSocket(
        family,
        state,
        src,
        _ntohs(sport),
        dst,
        _ntohs(dport),
        uid,
        inode,
        bytes(payload[4 : 4 + _SOCKID_SIZE]),
    )


def _dump(sock: socket.socket, request: bytes, buffer: memoryview) -> list[TcpSocket]:
    sock.send(request)
    found: list[TcpSocket] = []
    while True:
        size = sock.recv_into(buffer)
        for kind, _flags, _seq, payload in _messages(buffer[:size]):
            if kind == NLMSG_DONE:
                return found
            if kind == NLMSG_ERROR:
                code = -struct.unpack_from("=i", payload)[0]
                if code:
                    raise DiagError(code, f"sock_diag dump: {os.strerror(code)}")
                return found
            if kind in (SOCK_DIAG_BY_FAMILY, TCPDIAG_GETSOCK):
                found.append(_parse(payload))


def _request(kind: int, body: bytes, bytecode: bytes) -> bytes:
    attribute = b""
    if bytecode:
        attribute = _NLATTR.pack(_NLATTR.size + len(bytecode), INET_DIAG_REQ_BYTECODE) + bytecode
    header = _NLMSGHDR.pack(
        _NLMSGHDR.size + len(body) + len(attribute), kind, NLM_F_REQUEST | NLM_F_DUMP, 1, 0
    )
    return header + body + attribute


@contextlib.contextmanager
def session(netns: str | None = None) -> Iterator[socket.socket]:
    """One sock_diag socket in the namespace ``netns`` (None: this thread's), closed after."""
    with in_netns(netns):
        sock = _open()
    with sock:
        yield sock


def list_tcp(
    netns: str | None = None,
    states: tuple[int, ...] = (TCP_ESTABLISHED,),
    families: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6),
    predicate: Callable[[TcpSocket], bool] | None = None,
    remote_ports: tuple[tuple[int, int], ...] = (),
    sock: socket.socket | None = None,
) -> list[TcpSocket]:
    """TCP sockets of the namespace ``netns`` in ``states`` (only those ``predicate`` keeps).

    ``remote_ports`` (inclusive ranges) is given to the kernel as a filter program, so that a
    busy host does not copy every socket out. Both address families come from one
    walk of the kernel's connection table (the ``TCPDIAG_GETSOCK`` dump, whose family is
    "any"): each walk of that table costs about 2 ms on a large machine, whatever it finds.
    ``sock``: a socket from :func:`session` (then ``netns`` is not used).
    """
    if sock is None:
        with session(netns) as own:
            return list_tcp(netns, states, families, predicate, remote_ports, own)
    mask = 0
    for state in states:
        mask |= 1 << state
    bytecode = _port_bytecode(remote_ports) if remote_ports else b""
    buffer = memoryview(bytearray(1 << 16))
    try:
        compat = _COMPAT_REQ.pack(0, 0, 0, 0) + bytes(_SOCKID_SIZE) + struct.pack("=II", mask, 0)
        found = _dump(sock, _request(TCPDIAG_GETSOCK, compat, bytecode), buffer)
        if len(families) < 2:
            found = [s for s in found if s.family in families]
    except DiagError:
        found = []
        for family in families:  # a kernel without the compatibility dump
            body = _REQ_HEAD.pack(family, socket.IPPROTO_TCP, 0, mask) + bytes(_SOCKID_SIZE)
            found.extend(_dump(sock, _request(SOCK_DIAG_BY_FAMILY, body, bytecode), buffer))
    if predicate is not None:
        found = [s for s in found if predicate(s)]
    return found


def destroy(
    sockets: list[TcpSocket], netns: str | None = None, sock: socket.socket | None = None
) -> dict[int, int]:
    """``SOCK_DESTROY`` every socket; -> {index in ``sockets``: errno (0 when destroyed)}.

    ``ENOENT`` means the socket closed on its own in the meantime. The requests go out in
    batches of :data:`BATCH`, each batch in one ``send()``; the kernel handles them in order
    and answers only failures, plus an acknowledgement of the last request of the batch, so
    one ``recv()`` usually reads the whole outcome. ``sock``: a socket from :func:`session`.
    """
    results: dict[int, int] = {}
    if not sockets:
        return results
    if sock is None:
        with session(netns) as own:
            return destroy(sockets, netns, own)
    buffer = memoryview(bytearray(1 << 16))
    head = _REQ_HEAD.pack
    for start in range(0, len(sockets), BATCH):
        chunk = sockets[start : start + BATCH]
        last = start + len(chunk)  # sequence numbers are 1-based indices
        parts: list[bytes] = []
        for sequence, target in enumerate(chunk, start=start + 1):
            flags = NLM_F_REQUEST | (NLM_F_ACK if sequence == last else 0)
            parts.append(_NLMSGHDR.pack(_REQUEST_SIZE, SOCK_DESTROY, flags, sequence, 0))
            parts.append(head(target.family, socket.IPPROTO_TCP, 0, 0xFFFFFFFF))
            parts.append(target.sockid)
        sock.send(b"".join(parts))
        done = False
        while not done:
            size = sock.recv_into(buffer)
            for kind, _flags, sequence, payload in _messages(buffer[:size]):
                if kind != NLMSG_ERROR or not start < sequence <= last:
                    continue
                results[sequence - 1] = -struct.unpack_from("=i", payload)[0]
                done = done or sequence == last
        for index in range(start, last):
            results.setdefault(index, 0)
    return results


def errno_name(code: int) -> str:
    """``errno.ENOENT`` -> ``"ENOENT"`` (the number when it has no name)."""
    return errno.errorcode.get(code, str(code))
