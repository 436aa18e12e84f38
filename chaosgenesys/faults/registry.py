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
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import importlib
import json
import logging
import math
import os
import stat
import subprocess
import sys
import sysconfig
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys import processes
from chaosgenesys.faults.dirlock import dir_lock
from chaosgenesys.faults.location import ENV_DIR, registry_dir
from chaosgenesys.faults.record import (
    REVERTER_PATTERN,
    CorruptRecord,
    FaultRecord,
    UnreadableRecord,
    check_id,
    is_fault_id,
    new_id,
)
from chaosgenesys.shown import show

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

GUARDIAN_LOCK = "guardian.lock"
GUARDIAN_LOG = "guardian.log"
GUARDIAN_SPAWN = "guardian.spawn"
#: A guardian that has not taken ``guardian.lock`` this long after its start is not waited for.
GUARDIAN_START_TIMEOUT = 5.0
#: ``guardian.log`` is moved to ``guardian.log.1`` when a guardian starts and it is bigger.
GUARDIAN_LOG_LIMIT = 1_000_000
GUARDIAN_MODULE = "chaosgenesys.faults.guardian"
RECORD_SUFFIX = ".json"
FORMAT_VERSION = 1
#: How long a registry operation waits for another process's lock before it gives up.
LOCK_TIMEOUT = 30.0
#: Failed reverts of one fault after which it is given up (listed as failed, no longer retried
#: by the guardian or by :func:`revert_all`).
MAX_REVERT_ATTEMPTS = 5
#: ``scope`` values: ``run``, the faults of the caller's run; ``all``, every run's.
SCOPES = ("run", "all")

#: Guardian processes this process started, per directory (reaped when they exit, so no
#: zombies pile up; one still starting is not started again).
_SPAWNED: dict[str, list[subprocess.Popen[bytes]]] = {}


# -- processes ---------------------------------------------------------------------------------


def run_owner() -> tuple[int, int | None]:
    """``(pid, start time)`` of this process: the process whose run :func:`mine` means."""
    return os.getpid(), processes.own_start_time()


#: This process's ancestry, read once per process (keyed by pid: a forked child reads its own).
_OWN_ANCESTRY: dict[int, list[tuple[int, int | None]]] = {}


def ancestry(pid: int | None = None) -> list[tuple[int, int | None]]:
    """``(pid, start time)`` of every process above ``pid`` (default: this one), parent first,
    up to pid 1. Empty without ``/proc``.

    This process's own is read once: the processes above it are fixed when it starts, and one
    that dies later stays in the list, where it can name no live run (a run is a pid with its
    start time), while the run it belonged to keeps its faults."""
    if pid is None:
        me = os.getpid()
        own = _OWN_ANCESTRY.get(me)
        if own is None:
            own = _OWN_ANCESTRY[me] = processes.ancestry(me)
        return list(own)
    return processes.ancestry(pid)


def check_scope(scope: Any, name: str = "scope") -> str:
    """``scope`` as one of :data:`SCOPES`; ``ActivityFailed`` naming ``name`` otherwise."""
    if not isinstance(scope, str) or scope.strip().lower() not in SCOPES:
        raise ActivityFailed(
            f"{name} must be one of {', '.join(repr(s) for s in SCOPES)} (the faults of this "
            f"run, or every run's), got {show(scope)}"
        )
    return scope.strip().lower()


def process_start_time(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot), or None."""
    return processes.start_time(pid)


def process_alive(pid: int, start: int | None, created_at: float | None = None) -> bool:
    """Whether process ``pid`` runs and is the one that started at ``start`` (clock ticks).

    A zombie is dead. A record made before the last boot has no live owner, whatever its pid.
    Without ``/proc`` (not Linux) only the pid is checked (``chaosgenesys.processes.alive``).
    """
    return processes.alive(pid, start, created_at)


# -- argument checks ---------------------------------------------------------------------------


def _check_text(name: str, value: Any, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise ActivityFailed(f"{name} must be a non-empty string, got {show(value)}")
    return value


def _check_reverter(reverter: Any) -> Callable[[FaultRecord], object]:
    if not isinstance(reverter, str) or not REVERTER_PATTERN.match(reverter):
        raise ActivityFailed(
            f"reverter must be 'module:function' (e.g. 'chaosgenesys.network.engine:revert'), "
            f"got {show(reverter)}"
        )
    return _resolve_reverter(reverter)


def _resolve_reverter(reverter: str) -> Callable[[FaultRecord], object]:
    module_name, _, function = reverter.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ActivityFailed(
            f"reverter {reverter!r}: cannot import module {module_name!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    func = getattr(module, function, None)
    if not callable(func):
        raise ActivityFailed(
            f"reverter {reverter!r}: module {module_name!r} has no function {function!r}"
        )
    resolved: Callable[[FaultRecord], object] = func
    return resolved


def _check_spec(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise ActivityFailed(f"spec must be a JSON object (a dict), got {show(spec)}")
    try:
        text = json.dumps(spec, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ActivityFailed(
            f"spec must be JSON-serialisable ({error}), got {show(spec)}"
        ) from None
    copy: dict[str, Any] = json.loads(text)
    return copy


def _check_duration(duration: Any) -> float | None:
    if duration is None:
        return None
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise ActivityFailed(f"duration must be a number of seconds > 0 or None, got {duration!r}")
    return float(duration)


# -- the registry ------------------------------------------------------------------------------


class Registry:
    """The registry in one directory; the module-level functions use :func:`registry_dir`."""

    def __init__(self, directory: Path | str | None = None) -> None:
        self.directory = Path(directory).absolute() if directory is not None else registry_dir()

    def __repr__(self) -> str:
        return f"Registry({str(self.directory)!r})"

    # -- storage -------------------------------------------------------------------------------

    def path_of(self, fault_id: str) -> Path:
        """The record file of a fault."""
        return self.directory / f"{fault_id}{RECORD_SUFFIX}"

    @contextlib.contextmanager
    def locked(self, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
        """Hold the registry lock (reentrant in this process); creates the directory."""
        lock = dir_lock(self.directory)
        if not lock.held_here():
            self._prepare()  # held already by this thread: the outer call prepared it
        with lock.hold(timeout):
            yield

    def _prepare(self) -> None:
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # The /tmp fallback lives in a folder everyone can write: no symlink, ours only.
            shared_tmp = self.directory == Path(f"/tmp/chaosgenesys-{os.getuid()}")
            info = os.lstat(self.directory) if shared_tmp else os.stat(self.directory)
        except OSError as error:
            raise ActivityFailed(
                f"cannot create the fault registry directory {self.directory}: {error}; "
                f"set {ENV_DIR} to a writable directory"
            ) from error
        if not stat.S_ISDIR(info.st_mode):
            raise ActivityFailed(f"the fault registry path {self.directory} is not a directory")
        if shared_tmp and info.st_uid != os.getuid():
            raise ActivityFailed(
                f"the fault registry directory {self.directory} belongs to uid {info.st_uid}, "
                f"not to this user ({os.getuid()}); set {ENV_DIR} to a directory of yours"
            )

    def _write(self, fault: FaultRecord) -> None:
        """Write the record atomically: a temporary file renamed over the record, so a reader
        sees the old record or the new one, never half of one. No fsync: docs/faults.md,
        "Why no fsync", says why the page cache is the durability a record needs."""
        # one line, by the C encoder (indent would take the pure-Python one, 10x slower);
        # `chaosgenesys status --json` shows records readably
        data = json.dumps({"version": FORMAT_VERSION, **fault.to_dict()}, sort_keys=True)
        final = self.path_of(fault.id)
        temporary = self.directory / f".{fault.id}.{os.getpid()}.{threading.get_ident()}.tmp"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            try:
                view = memoryview((data + "\n").encode("utf-8"))
                while view:
                    view = view[os.write(fd, view):]
            finally:
                os.close(fd)
            os.replace(temporary, final)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise

    def _unlink(self, fault_id: str) -> bool:
        try:
            os.unlink(self.path_of(fault_id))
        except FileNotFoundError:
            return False
        return True

    def _read(self, path: Path) -> FaultRecord:
        """A record file; FileNotFoundError when it is gone, ValueError when it is corrupt."""
        raw = path.read_bytes()
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"not JSON: {error}") from None
        fault = FaultRecord.from_dict(data)
        if f"{fault.id}{RECORD_SUFFIX}" != path.name:
            raise ValueError(f"holds fault {fault.id!r}, not {path.stem!r}")
        return fault

    # -- reading -------------------------------------------------------------------------------

    def scan(self) -> tuple[list[FaultRecord], list[CorruptRecord]]:
        """Every record (oldest first) and every record file that could not be read."""
        faults: list[FaultRecord] = []
        corrupt: list[CorruptRecord] = []
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return faults, corrupt
        except OSError as error:
            raise ActivityFailed(
                f"cannot read the fault registry directory {self.directory}: {error}"
            ) from error
        for name in sorted(names):
            if not name.endswith(RECORD_SUFFIX) or name.startswith("."):
                continue
            path = self.directory / name
            try:
                faults.append(self._read(path))
            except FileNotFoundError:
                continue  # reverted while we listed
            except (OSError, ValueError) as error:
                corrupt.append(CorruptRecord(name[: -len(RECORD_SUFFIX)], str(path), str(error)))
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
        path = self.path_of(check_id(fault_id))
        try:
            return self._read(path)
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
        kind = _check_text("kind", kind)
        description = _check_text("description", description, empty=True)
        _check_reverter(reverter)
        spec = _check_spec(spec)
        seconds = _check_duration(duration)
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
            self._write(fault)
            try:
                self._ensure_guardian()
            except OSError as error:
                self._unlink(fault.id)
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
        new_spec = None if spec is None else _check_spec(spec)
        if description is not None:
            _check_text("description", description, empty=True)
        if deadline is not None and (
            isinstance(deadline, bool) or not isinstance(deadline, int | float)
            or not math.isfinite(deadline)
        ):
            raise ActivityFailed(f"deadline must be epoch seconds, got {deadline!r}")
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
            self._write(fault)
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
        if not self.directory.is_dir():
            return None
        lock = dir_lock(self.directory)
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
                _resolve_reverter(fault.reverter)(fault)
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
            self._unlink(fault_id)
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
            self._write(updated)
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
        if not self.directory.is_dir():
            return False
        with self.locked():
            return self._unlink(fault_id)

    # -- the guardian --------------------------------------------------------------------------

    def guardian_pid(self) -> int | None:
        """The pid of the guardian of this directory (0 if it is starting), None if none runs."""
        try:
            fd = os.open(self.directory / GUARDIAN_LOCK, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                content = os.pread(fd, 64, 0).decode("ascii", "replace").strip()
                return int(content) if content.isdigit() else 0
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def _ensure_guardian(self) -> None:
        """Start a guardian unless one runs or starts (called holding the registry lock).

        A guardian writes its pid into ``guardian.lock`` while it holds it and ``exited <pid>``
        when it lets go (under the registry lock, once the registry is empty). The last guardian
        started is named in ``guardian.spawn``: while it is alive, younger than
        :data:`GUARDIAN_START_TIMEOUT`, holds no lock and has not written ``exited <its pid>``,
        it is still starting (it will take the lock and see this record), so none is added.
        """
        spawned = _SPAWNED.setdefault(str(self.directory), [])
        spawned[:] = [process for process in spawned if process.poll() is None]
        if self.guardian_pid() is not None or self.guardian_starting():
            return
        if not sys.executable:
            raise OSError("no Python interpreter path (sys.executable is empty)")
        log_path = self.directory / GUARDIAN_LOG
        with contextlib.suppress(OSError):
            if log_path.stat().st_size > GUARDIAN_LOG_LIMIT:
                os.replace(log_path, log_path.with_name(GUARDIAN_LOG + ".1"))
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", GUARDIAN_MODULE, "--dir", str(self.directory)],
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                close_fds=True,
                start_new_session=True,
                cwd="/",
                env=_guardian_environment(),
            )
        finally:
            os.close(log)
        spawned.append(process)
        start = process_start_time(process.pid)
        with contextlib.suppress(OSError):
            (self.directory / GUARDIAN_SPAWN).write_text(
                f"{process.pid} {start if start is not None else '-'} {time.time():.3f}\n"
            )
        logger.debug("fault guardian started for %s: pid %d", self.directory, process.pid)

    def guardian_starting(self) -> bool:
        """Whether the guardian last started for this directory is alive and still starting."""
        try:
            pid_text, start_text, spawned_text = (
                (self.directory / GUARDIAN_SPAWN).read_text().split()
            )
            pid, spawned_at = int(pid_text), float(spawned_text)
            start = None if start_text == "-" else int(start_text)
        except (OSError, ValueError):
            return False
        try:
            last = (self.directory / GUARDIAN_LOCK).read_text(errors="replace").split()
        except OSError:
            last = []
        if last == ["exited", str(pid)] or time.time() - spawned_at > GUARDIAN_START_TIMEOUT:
            return False
        return process_alive(pid, start)


def _guardian_environment() -> dict[str, str]:
    """This environment, with ``PYTHONPATH`` holding this process's own ``sys.path`` entries.

    The guardian must import the reverters this process can import (a test module, a script's
    folder), so every ``sys.path`` folder that is not the interpreter's own goes first.
    """
    own = {
        os.path.realpath(path)
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (path := sysconfig.get_paths().get(key))
    }
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if os.path.isdir(path) and os.path.realpath(path) not in own and path not in paths:
            paths.append(path)
    environment = dict(os.environ)
    if paths:
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


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
