"""The guardian: a detached process that reverts faults whose run can no longer revert them.

``python -m chaosgenesys.faults.guardian --dir DIR`` (started by ``registry.record()``, in its
own session so that a Ctrl+C or a SIGTERM sent to the ``chaos run`` process group does not reach
it). One runs per registry directory: it holds an ``flock`` on ``guardian.lock`` (and writes its
pid there); a second one exits at once. Every ``--interval`` seconds it reads the registry and
reverts each fault

- whose deadline (``duration`` after it was recorded) has passed, or
- whose owner process is gone (no such pid, a zombie, or a pid reused by a process that started
  at another time).

A reverter that fails is retried with a growing pause (1, 2, 4 ... 60 s) and logged each time,
until the record is given up (``registry.MAX_REVERT_ATTEMPTS`` failed reverts, whoever tried
them): then it stays listed as failed, with its reason, and the guardian leaves it alone. When
the registry has held nothing but given-up records for ``--grace`` seconds the guardian exits;
the check and the release of ``guardian.lock`` happen under the registry lock, so a fault
recorded meanwhile always has a guardian. Everything it does goes to ``guardian.log`` in the
directory.

The guardian is no run's: it reverts whatever is due, whoever recorded it.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults.guardian_start import GUARDIAN_LOCK
from chaosgenesys.faults.registry import FaultRecord, Registry

__all__ = ["Guardian", "due", "main"]

logger = logging.getLogger("chaosgenesys.guardian")

#: A starting guardian waits this long for ``guardian.lock`` (a ``status`` may probe it).
LOCK_WAIT = 1.0
MAX_RETRY_PAUSE = 60.0


def due(fault: FaultRecord, now: float) -> str | None:
    """Why the guardian must revert this fault now, or None (never for a given-up record)."""
    if fault.given_up:
        return None
    if fault.deadline is not None and now >= fault.deadline:
        return "its deadline passed"
    if not fault.owner_alive():
        return f"its owner process {fault.owner_pid} is gone"
    return None


class Guardian:
    """The polling loop over one registry directory (holding ``guardian.lock`` already)."""

    def __init__(
        self, registry: Registry, lock_fd: int, interval: float = 0.1, grace: float = 2.0
    ) -> None:
        self.registry = registry
        self.lock_fd: int | None = lock_fd
        self.interval = interval
        self.grace = grace
        self.failures: dict[str, int] = {}
        self.retry_at: dict[str, float] = {}
        self.reported_corrupt: set[str] = set()

    def run(self) -> None:
        """Poll until the registry has held only given-up records (or none) for ``grace``
        seconds, or its folder is gone."""
        empty_since: float | None = None
        while True:
            if not self.registry.directory.is_dir():
                logger.info("registry directory %s is gone: exiting", self.registry.directory)
                return
            faults, corrupt = self.registry.scan()
            for bad in corrupt:
                if bad.path not in self.reported_corrupt:
                    self.reported_corrupt.add(bad.path)
                    logger.error("unreadable record %s: %s (left in place)", bad.path, bad.error)
            now = time.time()
            for fault in faults:
                self.check(fault, now)
            if any(not fault.given_up for fault in faults):
                empty_since = None
            else:
                empty_since = now if empty_since is None else empty_since
                if now - empty_since >= self.grace and self.release_if_empty():
                    left = [fault.id for fault in faults]
                    if left:
                        logger.error(
                            "only given-up records left (%s): exiting; see `chaosgenesys "
                            "status`", ", ".join(left)
                        )
                    else:
                        logger.info("registry empty: exiting")
                    return
            time.sleep(self.interval)

    def check(self, fault: FaultRecord, now: float) -> None:
        """Revert one fault if it is due and not waiting for a retry."""
        reason = due(fault, now)
        if reason is None or self.retry_at.get(fault.id, 0.0) > now:
            return
        try:
            reverted = self.registry.revert(fault.id)
        except ActivityFailed as error:
            count = self.failures.get(fault.id, 0) + 1
            pause = min(MAX_RETRY_PAUSE, 2.0 ** (count - 1))
            self.failures[fault.id] = count
            self.retry_at[fault.id] = time.time() + pause
            given_up = any(
                record.id == fault.id and record.given_up for record in self.registry.active()
            )
            if given_up:
                logger.error("%s (given up: not retried)", error)
            else:
                logger.error("%s (attempt %d; next in %.0f s)", error, count, pause)
            return
        self.failures.pop(fault.id, None)
        self.retry_at.pop(fault.id, None)
        if reverted:
            late = now - fault.deadline if fault.deadline is not None else None
            logger.info(
                "reverted %s (%s: %s) because %s%s",
                fault.id,
                fault.kind,
                fault.description,
                reason,
                f" ({late:.3f} s ago)" if late is not None and late >= 0 else "",
            )

    def release_if_empty(self) -> bool:
        """Under the registry lock: if no fault is recorded but given-up ones, give up
        ``guardian.lock``."""
        with self.registry.locked():
            faults, _ = self.registry.scan()
            if any(not fault.given_up for fault in faults):
                return False
            self.release()
            return True

    def release(self) -> None:
        if self.lock_fd is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(self.lock_fd, 0)
                os.pwrite(self.lock_fd, f"exited {os.getpid()}\n".encode(), 0)
            os.close(self.lock_fd)
            self.lock_fd = None


def acquire(directory: Path, wait: float = LOCK_WAIT) -> int | None:
    """``guardian.lock`` held (with our pid written in it), or None if another guardian has it."""
    fd = os.open(directory / GUARDIAN_LOCK, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    deadline = time.monotonic() + wait
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            if time.monotonic() >= deadline:
                os.close(fd)
                return None
            time.sleep(0.02)
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m chaosgenesys.faults.guardian",
        description="Revert recorded faults at their deadline or when their owner is gone.",
    )
    parser.add_argument("--dir", required=True, help="the fault registry directory")
    parser.add_argument("--interval", type=float, default=0.1, help="poll interval, seconds")
    parser.add_argument(
        "--grace", type=float, default=2.0, help="exit after the registry was empty this long"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.INFO,
        format=f"%(asctime)s guardian[{os.getpid()}] %(levelname)s %(message)s",
    )
    for ignored in (signal.SIGINT, signal.SIGHUP):
        signal.signal(ignored, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, _stop)

    registry = Registry(args.dir)
    directory = registry.directory
    if not directory.is_dir():
        logger.error("no registry directory %s", directory)
        return 1
    lock_fd = acquire(directory)
    if lock_fd is None:
        return 0  # another guardian watches this directory
    guardian = Guardian(registry, lock_fd, interval=args.interval, grace=args.grace)
    logger.info("watching %s", directory)
    try:
        guardian.run()
    except SystemExit as stop:
        logger.info("stopped by signal (exit %s)", stop.code)
        raise
    except Exception:
        logger.exception("guardian crashed")
        return 1
    finally:
        guardian.release()
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
