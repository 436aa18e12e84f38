"""Process identity from ``/proc``: which process a pid is now, and whether it is the one we knew;
and how the extension starts the detached processes it later tells that way (:func:`spawn_module`).

A pid is reused; a pid with its start time (field 22 of ``/proc/<pid>/stat``, clock ticks since
boot) is not. The fault registry (a fault's owner), the agents' and observers' run records and
the processes they stop all tell "still the process we started" this way, so it is written once,
here. Everything reads ``/proc/<pid>/stat`` once per question; nothing that reads raises for a
process that is gone (it is ``None`` or ``False``)::

    from chaosgenesys import processes

    me = os.getpid(), processes.start_time(os.getpid())
    ...
    if processes.alive(pid, start):          # the same process, not a zombie
        ...
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from typing import IO

__all__ = [
    "ProcStat",
    "alive",
    "ancestry",
    "boot_time",
    "own_ancestry",
    "own_start_time",
    "spawn_module",
    "start_time",
    "stat",
]


@dataclass(frozen=True)
class ProcStat:
    """What ``/proc/<pid>/stat`` says of a process: its state letter (``R``, ``S``, ``Z``...),
    its parent's pid, its process group and its start time (clock ticks since boot)."""

    state: str
    ppid: int
    pgrp: int
    start: int

    @property
    def dead(self) -> bool:
        """A zombie (exited, not reaped) or a dying task: gone for every purpose here."""
        return self.state in ("Z", "X", "x")


def stat(pid: int) -> ProcStat | None:
    """One read of ``/proc/<pid>/stat``; None when there is no such process (or no /proc)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read().decode("ascii", "replace")
        # The command name (field 2) is in parentheses and may hold spaces or ')'.
        fields = text[text.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state), [1] field 4 (ppid), [2] field 5 (pgrp), [19] field 22
        return ProcStat(fields[0], int(fields[1]), int(fields[2]), int(fields[19]))
    except (OSError, ValueError, IndexError):
        return None


def start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot), or None."""
    found = stat(pid)
    return None if found is None else found.start


_own: tuple[int, int | None] = (0, None)


def own_start_time() -> int | None:
    """:func:`start_time` of this process, read once per process (a fork reads its own)."""
    global _own
    pid = os.getpid()
    if _own[0] != pid:
        _own = (pid, start_time(pid))
    return _own[1]


def boot_time() -> float | None:
    """When this machine booted (epoch seconds, ``btime`` of ``/proc/stat``), or None."""
    try:
        with open("/proc/stat", "rb") as handle:
            for line in handle:
                if line.startswith(b"btime "):
                    return float(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return None


def alive(pid: int, start: int | None = None, created_at: float | None = None) -> bool:
    """Whether process ``pid`` runs and, when ``start`` is given, is the one that started then.

    A zombie is dead. With ``created_at`` (epoch seconds of a record naming the process), a
    record made before the last boot names no live process, whatever its pid. Without ``/proc``
    (not Linux) only the pid is checked.
    """
    if pid <= 0:
        return False
    found = stat(pid)
    if found is None:
        if os.path.exists("/proc/self/stat"):
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    if found.dead:
        return False
    if start is not None and found.start != start:
        return False
    if created_at is not None:
        booted = boot_time()
        if booted is not None and created_at < booted:
            return False
    return True


def ancestry(pid: int) -> list[tuple[int, int | None]]:
    """``(pid, start time)`` of every process above ``pid``, parent first, up to pid 1; one
    read per process. Empty without ``/proc``."""
    chain: list[tuple[int, int | None]] = []
    seen = {pid}
    own = stat(pid)
    parent = None if own is None else own.ppid
    while len(chain) < 256:
        if parent is None or parent <= 0 or parent in seen:
            break
        found = stat(parent)  # its start time and, for the next step, its parent
        if found is None:
            break
        chain.append((parent, found.start))
        seen.add(parent)
        parent = found.ppid
    return chain


#: This process's ancestry, read once per process (keyed by pid: a forked child reads its own).
_OWN_ANCESTRY: dict[int, list[tuple[int, int | None]]] = {}


def own_ancestry() -> list[tuple[int, int | None]]:
    """:func:`ancestry` of this process, read once: the processes above it are fixed when it
    starts, and one that dies later stays in the list, where it can name no live run (a run is
    a pid with its start time), while the run it belonged to keeps its faults."""
    me = os.getpid()
    own = _OWN_ANCESTRY.get(me)
    if own is None:
        own = _OWN_ANCESTRY[me] = ancestry(me)
    return list(own)


def spawn_module(
    module: str,
    log: int | IO[bytes],
    *,
    args: Sequence[str] = (),
    stdin: int = subprocess.PIPE,
    env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    """Start ``python -m module *args`` detached from this process: its own session (no signal of
    this terminal reaches it), ``/`` as its folder (it holds no mount busy), no inherited file
    but ``log`` for its output and ``stdin`` (a pipe by default, for the configuration it reads
    first). How the extension starts its guardian, proxies and browser fault holders."""
    return subprocess.Popen(
        [sys.executable, "-m", module, *args],
        stdin=stdin,
        stdout=log,
        stderr=log,
        close_fds=True,
        start_new_session=True,
        cwd="/",
        env=env,
    )
