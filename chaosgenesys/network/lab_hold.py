"""Which process holds a test network on this machine: an ``flock`` on its first namespace.

A lab's namespaces belong to the machine, not to one fault registry: two pipelines on one
runner, each with a registry of its own (``CHAOSGENESYS_RUNTIME_DIR``), never see each other's
records. So the process that makes lab ``<name>`` holds an exclusive ``flock`` on
``/run/netns/<name>-a`` (the namespace's own inode) for as long as it has the lab, and the
kernel lets go when that process dies, however it dies. Making or deleting a lab takes an
exclusive ``flock`` on ``/run/chaosgenesys-labs.lock`` while it checks, clears a leftover
and creates (or deletes) the namespaces, so two makers of one name never interleave, and a
guardian reverting a dead run's lab never deletes the one another process has made since under
the same name::

    from chaosgenesys.network import lab_hold

    with lab_hold.creating():
        if not lab_hold.held_here(name) and lab_hold.holder(f"{name}-a") is not None:
            ...  # another live process has it: refuse
        ...  # clear a leftover, `ip netns add`
        lab_hold.hold(name, f"{name}-a")
    lab_hold.release(name)  # when the lab is deleted
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
from collections.abc import Iterator
from pathlib import Path

from chaosgenesys.faults.dirlock import DirLock

__all__ = [
    "CREATING_TIMEOUT",
    "MAKERS_LOCK",
    "NETNS_DIR",
    "creating",
    "held_here",
    "hold",
    "holder",
    "release",
]

NETNS_DIR = "/run/netns"
#: The machine-wide lock of lab makers, in a folder only root can write (no planted symlink).
#: Not ``/run/netns`` itself: ``ip netns add`` flocks that directory while it works, and would
#: wait for a maker holding it.
MAKERS_LOCK = "/run/chaosgenesys-labs.lock"
#: How long a maker waits for another maker on this machine before it gives up.
CREATING_TIMEOUT = 30.0

_held: dict[str, int] = {}  # lab name -> the open, flocked namespace file of this process
_lock = threading.Lock()
_MAKERS = DirLock(
    Path(MAKERS_LOCK),
    what="the lock of test-network makers",
    hint="(a process making or deleting a test network); try again once it is done",
    flags=os.O_NOFOLLOW,
)


@contextlib.contextmanager
def creating(timeout: float = CREATING_TIMEOUT) -> Iterator[None]:
    """Hold the machine-wide lock of lab makers (an ``flock`` on :data:`MAKERS_LOCK`, the
    registry's own kind of lock: reentrant in this process, its threads take turns)."""
    with contextlib.ExitStack() as stack:
        # not root (the file cannot be opened): this process can make no namespace, `ip netns
        # add` says so, and there is none to delete
        with contextlib.suppress(OSError):
            stack.enter_context(_MAKERS.hold(timeout))
        yield


def held_here(name: str) -> bool:
    """Whether this process holds lab ``name``."""
    with _lock:
        return name in _held


def holder(netns: str) -> int | None:
    """The pid of the other live process holding namespace ``netns`` (0 when its pid cannot
    be read), None when nobody holds it or it does not exist. Call it inside
    :func:`creating`; a namespace this process holds reads as held (see :func:`held_here`)."""
    try:
        fd = os.open(f"{NETNS_DIR}/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return _flock_owner(os.fstat(fd).st_ino)
        return None
    finally:
        os.close(fd)  # lets go of the probe's own lock


def hold(name: str, netns: str) -> None:
    """Hold lab ``name`` by its namespace ``netns`` until :func:`release` or this process ends."""
    fd = os.open(f"{NETNS_DIR}/{netns}", os.O_RDONLY | os.O_CLOEXEC)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BaseException:
        os.close(fd)
        raise
    with _lock:
        previous = _held.pop(name, None)
        _held[name] = fd
    if previous is not None:
        os.close(previous)


def release(name: str) -> None:
    """Let go of lab ``name`` (nothing when this process does not hold it)."""
    with _lock:
        fd = _held.pop(name, None)
    if fd is not None:
        os.close(fd)


def _flock_owner(inode: int) -> int:
    """The pid ``/proc/locks`` names for an ``flock`` on ``inode``, 0 when none is listed.

    A line reads ``1: FLOCK  ADVISORY  WRITE 4242 00:04:4026532281 0 EOF``."""
    try:
        with open("/proc/locks", encoding="ascii", errors="replace") as locks:
            for line in locks:
                fields = line.split()
                if len(fields) >= 6 and fields[1] == "FLOCK" and fields[5].endswith(f":{inode}"):
                    return int(fields[4]) if fields[4].isdigit() else 0
    except OSError:
        pass
    return 0
