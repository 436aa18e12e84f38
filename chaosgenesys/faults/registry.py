"""The one fault registry: each fault recorded before it is applied, forgotten after its revert.

A fault that outlives the Python call that made it (a qdisc, an nftables table, a running proxy)
is a file in the registry directory from just before it exists until just after it is gone::

    from chaosgenesys.faults import registry

    fault = registry.record(
        kind="netem",
        description="netem delay 200ms on veth0 to 34.195.0.0/16",
        reverter="chaosgenesys.network.engine:revert",   # def revert(fault: FaultRecord) -> None
        spec={"interface": "veth0", "netns": None},      # JSON: all the reverter needs
        duration=30.0,                                   # or None
    )
    with registry.undone_on_failure(fault.id):           # nothing half-applied
        apply_the_fault()
        registry.update(fault.id, spec={**fault.spec, "pid": 1234})
    ...
    registry.revert(fault.id)                            # True if it was recorded

Storage: one JSON file per fault, ``<id>.json``, in :func:`registry_dir` (the
``CHAOSGENESYS_RUNTIME_DIR`` environment variable, else ``/run/chaosgenesys`` when writable,
else ``$XDG_RUNTIME_DIR/chaosgenesys``, else ``/tmp/chaosgenesys-<uid>``). Files are written
atomically (a temporary file renamed over the record; no fsync, see docs/faults.md); every
change holds an ``flock`` on ``registry.lock`` (reentrant within one process, so a reverter may
call back into the registry). :func:`record` makes sure the guardian
(``chaosgenesys.faults.guardian``) runs for the directory: it reverts a fault at its deadline or
when its owner process is gone.

A record file that cannot be read is reported (:meth:`Registry.scan`, ``chaosgenesys status``,
:func:`revert_all`), never fatal.

**One run never touches another.** Many runs share one directory (the default for root). A
fault belongs to the *run* of a process P when P recorded it or a descendant of P did: each
record carries its owner's identity (``owner_pid``, ``owner_start``) and, in ``ancestors``, the
identities (pid and start time) of every process above the owner when it recorded, so a fault
recorded by a child that P started (an agent, a proxy, a command run by a process activity)
stays P's after that child is gone. :func:`mine` lists the faults of the caller's run and
:func:`revert_all` reverts only those by default (``scope="run"``); reverting every run's faults
is the explicit ``scope="all"`` (``chaosgenesys cleanup``). The guardian is not a run: it reverts
any fault whose deadline passed or whose owner is gone.

**A revert that keeps failing.** Each failed revert is counted in the record (``failures``,
``last_error``). After :data:`MAX_REVERT_ATTEMPTS` failures the record is *given up*
(``given_up`` is set): it stays listed (``chaosgenesys status``, ``active_faults``) with its
reason, the guardian no longer retries it (and exits when only such records remain), and
:func:`revert_all` lists it as failed without calling its reverter again unless asked
(``retry_given_up=True``, ``chaosgenesys cleanup --retry``). :func:`revert` by id always tries.

**What lives here and what beside it.** This module is the registry's operations (record,
update, revert, revert_all, the reads) and the same for the default directory, one concern
whose parts share the lock and the run rules above; the record and its id are in
``record.py``, its file in ``record_files.py``, the checks of what it is given in
``record_checks.py``, the directory's lock in ``dirlock.py``, where the directory is in
``location.py`` and the guardian's start in ``guardian_start.py``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys import processes
from chaosgenesys.faults.dirlock import dir_lock
from chaosgenesys.faults.guardian_start import ensure_guardian, guardian_pid, guardian_starting
from chaosgenesys.faults.location import ENV_DIR, registry_dir
from chaosgenesys.faults.record import (
    CorruptRecord,
    FaultRecord,
    UnreadableRecord,
    check_id,
    is_fault_id,
    new_id,
)
from chaosgenesys.faults.record_checks import (
    SCOPES,
    check_deadline,
    check_duration,
    check_reverter,
    check_scope,
    check_spec,
    check_text,
    resolve_reverter,
)
from chaosgenesys.faults.record_files import (
    RECORD_SUFFIX,
    prepare_directory,
    read_record,
    record_file,
    record_path,
    unlink_record,
    write_record,
)

__all__ = [
    "ENV_DIR",
    "MAX_REVERT_ATTEMPTS",
    "SCOPES",
    "CorruptRecord",
    "FaultRecord",
    "Registry",
    "UnreadableRecord",
    "active",
    "ancestry",
    "check_scope",
    "forget",
    "get",
    "is_fault_id",
    "mine",
    "process_alive",
    "process_start_time",
    "record",
    "registry_dir",
    "revert",
    "revert_all",
    "run_owner",
    "scan",
    "undone_on_failure",
    "update",
]

logger = logging.getLogger("chaostoolkit")

#: How long a registry operation waits for another process's lock before it gives up.
LOCK_TIMEOUT = 30.0
#: Failed reverts of one fault after which it is given up (listed as failed, no longer retried
#: by the guardian or by :func:`revert_all`).
MAX_REVERT_ATTEMPTS = 5


# -- processes ---------------------------------------------------------------------------------


def run_owner() -> tuple[int, int | None]:
    """``(pid, start time)`` of this process: the process whose run :func:`mine` means."""
    return os.getpid(), processes.own_start_time()


def ancestry(pid: int | None = None) -> list[tuple[int, int | None]]:
    """``(pid, start time)`` of every process above ``pid`` (default: this one, read once per
    process: ``chaosgenesys.processes.own_ancestry``), parent first, up to pid 1. Empty without
    ``/proc``."""
    return processes.own_ancestry() if pid is None else processes.ancestry(pid)


#: Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot), or None.
process_start_time = processes.start_time
#: Whether a process runs and is the one that started then (a zombie, or a record made before
#: the last boot, names no live process).
process_alive = processes.alive


# -- the registry ------------------------------------------------------------------------------


class Registry:
    """The registry in one directory; the module-level functions use :func:`registry_dir`."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).absolute() if directory is not None else registry_dir()
        #: The directory as a string: the paths of every call are joined from it.
        self.where = str(self.directory)

    def __repr__(self) -> str:
        return f"Registry({str(self.directory)!r})"

    # -- storage -------------------------------------------------------------------------------

    def path_of(self, fault_id: str) -> Path:
        """The record file of a fault."""
        return record_path(self.where, fault_id)

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the registry lock (reentrant in this process); creates the directory."""
        lock = dir_lock(self.where)
        if not lock.held_here():
            # not when held already by this thread: the outer call prepared it
            prepare_directory(self.where)
        with lock.hold(timeout):
            yield

    # -- reading -------------------------------------------------------------------------------

    def scan(self) -> tuple[list[FaultRecord], list[CorruptRecord]]:
        """Every record (oldest first) and every record file that could not be read."""
        faults: list[FaultRecord] = []
        corrupt: list[CorruptRecord] = []
        try:
            names = os.listdir(self.where)
        except FileNotFoundError:
            return faults, corrupt
        except OSError as error:
            raise ActivityFailed(
                f"cannot read the fault registry directory {self.directory}: {error}"
            ) from error
        for name in sorted(names):
            if not name.endswith(RECORD_SUFFIX) or name.startswith("."):
                continue
            path = f"{self.where}/{name}"
            try:
                faults.append(read_record(path))
            except FileNotFoundError:
                continue  # reverted while we listed
            except (OSError, ValueError) as error:
                corrupt.append(CorruptRecord(name[: -len(RECORD_SUFFIX)], path, str(error)))
        faults.sort(key=lambda fault: (fault.created_at, fault.id))
        return faults, corrupt

    def active(self, kind: str | None = None, scope: str = "all") -> list[FaultRecord]:
        """The recorded faults, oldest first, of one kind or all (unreadable files skipped);
        with ``scope="run"`` only those of this process's run (:meth:`mine`)."""
        scope = check_scope(scope)
        owner = run_owner()
        faults, _ = self.scan()
        return [
            fault
            for fault in faults
            if (kind is None or fault.kind == kind)
            and (scope == "all" or fault.belongs_to(owner))
        ]

    def mine(self, kind: str | None = None) -> list[FaultRecord]:
        """The recorded faults of this process's run: recorded by this process or by a process
        it started (directly or not), oldest first."""
        return self.active(kind, scope="run")

    def get(self, fault_id: str) -> FaultRecord | None:
        """One record, None if it is not recorded; ActivityFailed if its file is unreadable."""
        path = record_file(self.where, check_id(fault_id))
        try:
            return read_record(path)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise UnreadableRecord(
                f"fault {fault_id}: its record {path} is unreadable: {error}"
            ) from error

    # -- changing ------------------------------------------------------------------------------

    def record(
        self,
        kind: str,
        description: str,
        reverter: str,
        spec: dict[str, Any],
        duration: float | None = None,
    ) -> FaultRecord:
        """Record a fault about to be applied; returns its record once it is on disk.

        The reverter is imported now, so a typo fails here, before anything is applied.
        A guardian runs for the directory when this returns.
        """
        kind = check_text("kind", kind)
        description = check_text("description", description, empty=True)
        check_reverter(reverter)
        spec = check_spec(spec)
        seconds = check_duration(duration)
        now = time.time()
        pid = os.getpid()
        fault = FaultRecord(
            id=new_id(kind),
            kind=kind,
            description=description,
            reverter=reverter,
            spec=spec,
            owner_pid=pid,
            owner_start=processes.own_start_time(),
            created_at=now,
            deadline=None if seconds is None else now + seconds,
            ancestors=tuple(ancestry()),
        )
        with self.locked():
            write_record(self.where, fault)
            try:
                ensure_guardian(self.where)
            except OSError as error:
                unlink_record(self.where, fault.id)
                raise ActivityFailed(
                    f"cannot start the fault guardian for {self.directory} "
                    f"({type(error).__name__}: {error}); the fault was not applied"
                ) from error
        logger.debug("fault %s recorded: %s (%s)", fault.id, description, kind)
        return fault

    @contextlib.contextmanager
    def undone_on_failure(self, fault_id: str) -> Iterator[None]:
        """Revert fault ``fault_id`` if the block raises, then let the block's error go on:
        record, then apply inside the block, and nothing is left half-applied::

            fault = store.record(kind="x", description="...", reverter="m:revert", spec={})
            with store.undone_on_failure(fault.id):
                apply_it()

        A revert that fails too is counted in the record (the guardian and ``chaosgenesys
        cleanup`` retry it); the error that propagates is the block's, which says what went
        wrong in the first place."""
        try:
            yield
        except BaseException:
            with contextlib.suppress(ActivityFailed):
                self.revert(fault_id)
            raise

    def update(
        self,
        fault_id: str,
        spec: dict[str, Any] | None = None,
        description: str | None = None,
        deadline: float | None = None,
    ) -> FaultRecord:
        """Replace the spec, description and/or deadline (epoch seconds) of a recorded fault;
        returns the new record. A fault whose duration runs from when it was in force (a
        browser fault takes a while to apply) moves its deadline once it is."""
        check_id(fault_id)
        new_spec = None if spec is None else check_spec(spec)
        if description is not None:
            check_text("description", description, empty=True)
        if deadline is not None:
            check_deadline(deadline)
        with self.locked():
            fault = self.get(fault_id)
            if fault is None:
                raise ActivityFailed(f"fault {fault_id} is not recorded (already reverted?)")
            changes: dict[str, Any] = {}
            if new_spec is not None:
                changes["spec"] = new_spec
            if description is not None:
                changes["description"] = description
            if deadline is not None:
                changes["deadline"] = float(deadline)
            fault = dataclasses.replace(fault, **changes)
            write_record(self.where, fault)
        return fault

    def revert(self, fault_id: str) -> bool:
        """Call the fault's reverter, then forget it. True if it was recorded, False if not.

        Idempotent. A reverter that raises → ActivityFailed naming the fault; the record stays,
        with the failure counted in it (``failures``, ``last_error``), so that ``chaosgenesys
        cleanup`` (or the guardian) can retry; after :data:`MAX_REVERT_ATTEMPTS` failures it is
        given up (``given_up``). Called by id, it tries even a given-up record.
        """
        return self.revert_if(fault_id) is not None

    def revert_if(
        self, fault_id: str, accept: Callable[[FaultRecord], bool] | None = None
    ) -> FaultRecord | None:
        """:meth:`revert`, for a record that ``accept`` (if given) accepts; the record reverted,
        or None when there was none or it was not accepted. The record is read once, under
        the lock (a caller that filters by kind or place need not read it before)."""
        check_id(fault_id)
        if not os.path.isdir(self.where):
            return None
        lock = dir_lock(self.where)
        with self.locked():
            reverting = lock.reverting.get(fault_id)
            if reverting is not None:
                # called back from its own reverter: the outer call forgets it
                return reverting
            fault = self.get(fault_id)
            if fault is None or (accept is not None and not accept(fault)):
                return None
            lock.reverting[fault_id] = fault
            try:
                resolve_reverter(fault.reverter)(fault)
            except Exception as error:
                detail = (
                    str(error)
                    if isinstance(error, ActivityFailed)
                    else (f"{type(error).__name__}: {error}")
                )
                failed = self._count_failure(fault, detail)
                if failed.given_up:
                    what = (
                        f"the fault stays recorded as given up after {failed.failures} failed "
                        "attempts: check it by hand, then `chaosgenesys cleanup --retry` or "
                        f"`chaosgenesys cleanup --forget {fault.id}`"
                    )
                else:
                    what = (
                        f"the fault stays recorded (attempt {failed.failures} of "
                        f"{MAX_REVERT_ATTEMPTS}), `chaosgenesys cleanup` retries"
                    )
                raise ActivityFailed(
                    f"reverting fault {fault.id} ({fault.kind}: {fault.description}) with "
                    f"{fault.reverter} failed: {detail}; {what}"
                ) from error
            finally:
                lock.reverting.pop(fault_id, None)
            unlink_record(self.where, fault_id)
        logger.debug("fault %s reverted: %s", fault.id, fault.description)
        return fault

    def _count_failure(self, fault: FaultRecord, error: str) -> FaultRecord:
        """Count one failed revert in the record (called holding the lock); the new record."""
        try:
            current = self.get(fault.id) or fault
        except ActivityFailed:
            current = fault
        failures = current.failures + 1
        updated = dataclasses.replace(
            current,
            failures=failures,
            last_error=error if len(error) <= 2000 else error[:1997] + "...",
            given_up=current.given_up or failures >= MAX_REVERT_ATTEMPTS,
        )
        with contextlib.suppress(OSError):
            write_record(self.where, updated)
        return updated

    def revert_all(
        self, kind: str | None = None, scope: str = "run", retry_given_up: bool = False
    ) -> list[dict[str, Any]]:
        """Revert the faults of this process's run (of one kind), newest first, going on past
        failures; with ``scope="all"``, every run's faults.

        One entry per fault: ``id``, ``kind``, ``description`` and ``status`` (``reverted``;
        ``gone`` when another process reverted it first; ``failed``, with ``error``). A given-up
        record (see :data:`MAX_REVERT_ATTEMPTS`) is listed as ``failed`` with its last error and
        ``given_up: true``, without calling its reverter again unless ``retry_given_up``. With
        ``scope="all"`` and without ``kind``, unreadable record files are listed as ``failed``
        too (they are left in place; their owner cannot be told, so ``run`` skips them).
        """
        scope = check_scope(scope)
        owner = run_owner()
        faults, corrupt = self.scan()
        results: list[dict[str, Any]] = []
        for fault in reversed(faults):
            if kind is not None and fault.kind != kind:
                continue
            if scope == "run" and not fault.belongs_to(owner):
                continue
            entry: dict[str, Any] = {
                "id": fault.id,
                "kind": fault.kind,
                "description": fault.description,
            }
            if fault.given_up and not retry_given_up:
                entry["status"] = "failed"
                entry["given_up"] = True
                entry["error"] = (
                    f"fault {fault.id} ({fault.kind}: {fault.description}) was given up after "
                    f"{fault.failures} failed reverts, the last: {fault.last_error}; check it by "
                    "hand, then `chaosgenesys cleanup --retry` or `chaosgenesys cleanup "
                    f"--forget {fault.id}`"
                )
                results.append(entry)
                continue
            try:
                entry["status"] = "reverted" if self.revert(fault.id) else "gone"
            except ActivityFailed as error:
                entry["status"] = "failed"
                entry["error"] = str(error)
                logger.error("%s", error)
            results.append(entry)
        if kind is None and scope == "all":
            for bad in corrupt:
                results.append(
                    {
                        "id": bad.id,
                        "kind": None,
                        "description": None,
                        "status": "failed",
                        "error": f"unreadable record {bad.path} ({bad.error}): check what it "
                        "applied by hand, then delete the file",
                    }
                )
        return results

    def forget(self, fault_id: str) -> bool:
        """Drop a record without reverting (also an unreadable one); True if it was there."""
        check_id(fault_id)
        if not os.path.isdir(self.where):
            return False
        with self.locked():
            return unlink_record(self.where, fault_id)

    # -- the guardian (chaosgenesys.faults.guardian_start) -------------------------------------

    def guardian_pid(self) -> int | None:
        """The pid of the guardian of this directory (0 if it is starting), None if none runs."""
        return guardian_pid(self.where)

    def guardian_starting(self) -> bool:
        """Whether the guardian last started for this directory is alive and still starting."""
        return guardian_starting(self.where)


# -- the default registry ----------------------------------------------------------------------

def record(
    kind: str,
    description: str,
    reverter: str,
    spec: dict[str, Any],
    duration: float | None = None,
) -> FaultRecord:
    """:meth:`Registry.record` in :func:`registry_dir`."""
    return Registry().record(kind, description, reverter, spec, duration)


def undone_on_failure(fault_id: str) -> contextlib.AbstractContextManager[None]:
    """:meth:`Registry.undone_on_failure` in :func:`registry_dir`."""
    return Registry().undone_on_failure(fault_id)


def update(
    fault_id: str,
    spec: dict[str, Any] | None = None,
    description: str | None = None,
    deadline: float | None = None,
) -> FaultRecord:
    """:meth:`Registry.update` in :func:`registry_dir`."""
    return Registry().update(fault_id, spec=spec, description=description, deadline=deadline)


def revert(fault_id: str) -> bool:
    """:meth:`Registry.revert` in :func:`registry_dir`."""
    return Registry().revert(fault_id)


def revert_all(
    kind: str | None = None, scope: str = "run", retry_given_up: bool = False
) -> list[dict[str, Any]]:
    """:meth:`Registry.revert_all` in :func:`registry_dir` (default: this run's faults only)."""
    return Registry().revert_all(kind, scope=scope, retry_given_up=retry_given_up)


def active(kind: str | None = None, scope: str = "all") -> list[FaultRecord]:
    """:meth:`Registry.active` in :func:`registry_dir`."""
    return Registry().active(kind, scope=scope)


def mine(kind: str | None = None) -> list[FaultRecord]:
    """:meth:`Registry.mine` in :func:`registry_dir`: the faults of this process's run."""
    return Registry().mine(kind)


def get(fault_id: str) -> FaultRecord | None:
    """:meth:`Registry.get` in :func:`registry_dir`."""
    return Registry().get(fault_id)


def scan() -> tuple[list[FaultRecord], list[CorruptRecord]]:
    """:meth:`Registry.scan` in :func:`registry_dir`."""
    return Registry().scan()


def forget(fault_id: str) -> bool:
    """:meth:`Registry.forget` in :func:`registry_dir`."""
    return Registry().forget(fault_id)
