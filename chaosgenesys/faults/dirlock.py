"""The registry directory's lock: an ``flock`` on ``registry.lock`` that every change holds,
reentrant within one process (so a reverter may call back into the registry), threads taking
turns. The test network's makers take turns on one too (``network/lab_hold.py``).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults.record import FaultRecord

__all__ = ["LOCK_FILE", "DirLock", "dir_lock"]

LOCK_FILE = "registry.lock"


class DirLock:
    """``flock`` on ``registry.lock`` (or the file ``path``), reentrant within the process
    (threads take turns). ``what`` names it and ``hint`` says what may hold it, in the error
    after a timeout; ``flags`` are added to those it is opened with."""

    def __init__(
        self,
        path: Path,
        what: str = "the fault registry lock",
        hint: str = "(a reverter that hangs?); see guardian.log there",
        flags: int = 0,
    ) -> None:
        self.path = path
        self.what = what
        self.hint = hint
        self.flags = flags
        self.mutex = threading.RLock()
        self.depth = 0
        self.fd: int | None = None
        #: The thread holding the lock, None when no one does.
        self.owner: int | None = None
        #: The faults whose reverter runs right now in this process, by id (a reverter may
        #: call revert() for its own fault: the outer call forgets it).
        self.reverting: dict[str, FaultRecord] = {}

    def held_here(self) -> bool:
        """Whether the calling thread holds the lock already (a reentrant call)."""
        return self.owner == threading.get_ident()

    @contextlib.contextmanager
    def hold(self, timeout: float) -> Iterator[DirLock]:
        if not self.mutex.acquire(timeout=timeout):
            raise ActivityFailed(
                f"{self.what} {self.path} is busy in this process for over {timeout:.0f} s"
            )
        try:
            if self.depth == 0:
                self.fd = self._flock(timeout)
                self.owner = threading.get_ident()
            self.depth += 1
            try:
                yield self
            finally:
                self.depth -= 1
                if self.depth == 0:
                    self.owner = None
                    if self.fd is not None:
                        os.close(self.fd)  # releases the flock
                        self.fd = None
        finally:
            self.mutex.release()

    def _flock(self, timeout: float) -> int:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | self.flags, 0o600)
        deadline = time.monotonic() + timeout
        pause = 0.002
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return fd
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise ActivityFailed(
                        f"{self.what} {self.path} has been held by another process for over "
                        f"{timeout:.0f} s {self.hint}"
                    ) from None
                time.sleep(pause)
                pause = min(pause * 2, 0.05)
            except BaseException:
                os.close(fd)
                raise


_LOCKS: dict[str, DirLock] = {}
_LOCKS_GUARD = threading.Lock()


def dir_lock(directory: Path | str) -> DirLock:
    """The lock of registry ``directory`` (one object per directory in this process)."""
    key = os.fspath(directory)
    with _LOCKS_GUARD:
        lock = _LOCKS.get(key)
        if lock is None:
            lock = _LOCKS[key] = DirLock(Path(key) / LOCK_FILE)
        return lock
