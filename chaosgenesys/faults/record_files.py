"""The registry's record files: one JSON file per fault, ``<id>.json``, written atomically.

A reader sees the old record or the new one, never half of one; nothing here locks (the
registry holds its directory's lock around every change)::

    from chaosgenesys.faults import record_files

    record_files.write_record(directory, fault)
    record_files.read_record(record_files.record_path(directory, fault.id))
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
import threading
from pathlib import Path

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults.location import ENV_DIR
from chaosgenesys.faults.record import FaultRecord

__all__ = [
    "FORMAT_VERSION",
    "RECORD_SUFFIX",
    "prepare_directory",
    "read_record",
    "record_file",
    "record_path",
    "unlink_record",
    "write_record",
]

RECORD_SUFFIX = ".json"
FORMAT_VERSION = 1


# The registry works with its paths as strings: a fault's inject and revert go through here a
# dozen times, and each pathlib object made, joined or turned back into a string costs more
# than the system call it is for.


def record_path(directory: Path | str, fault_id: str) -> Path:
    """The record file of a fault."""
    return Path(record_file(os.fspath(directory), fault_id))


def record_file(directory: str, fault_id: str) -> str:
    """:func:`record_path` as a string, from the directory as a string."""
    return f"{directory}/{fault_id}{RECORD_SUFFIX}"


def prepare_directory(directory: Path | str) -> None:
    """Create the registry directory (mode 0700); ActivityFailed when it cannot be ours."""
    directory = os.fspath(directory)
    # The /tmp fallback lives in a folder everyone can write: no symlink, ours only.
    shared_tmp = directory == f"/tmp/chaosgenesys-{os.getuid()}"
    look = os.lstat if shared_tmp else os.stat
    try:
        try:
            info = look(directory)  # one stat when it is there (every call but the first)
        except FileNotFoundError:
            os.makedirs(directory, mode=0o700, exist_ok=True)
            info = look(directory)
    except OSError as error:
        raise ActivityFailed(
            f"cannot create the fault registry directory {directory}: {error}; "
            f"set {ENV_DIR} to a writable directory"
        ) from error
    if not stat.S_ISDIR(info.st_mode):
        raise ActivityFailed(f"the fault registry path {directory} is not a directory")
    if shared_tmp and info.st_uid != os.getuid():
        raise ActivityFailed(
            f"the fault registry directory {directory} belongs to uid {info.st_uid}, "
            f"not to this user ({os.getuid()}); set {ENV_DIR} to a directory of yours"
        )


def write_record(directory: Path | str, fault: FaultRecord) -> None:
    """Write the record atomically: a temporary file renamed over the record, so a reader
    sees the old record or the new one, never half of one. No fsync: docs/faults.md,
    "Why no fsync", says why the page cache is the durability a record needs."""
    # one line, by the C encoder (indent would take the pure-Python one, 10x slower);
    # `chaosgenesys status --json` shows records readably
    data = json.dumps({"version": FORMAT_VERSION, **fault.to_dict(copy=False)}, sort_keys=True)
    directory = os.fspath(directory)
    final = record_file(directory, fault.id)
    temporary = f"{directory}/.{fault.id}.{os.getpid()}.{threading.get_ident()}.tmp"
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


def unlink_record(directory: Path | str, fault_id: str) -> bool:
    """Remove a record file; False when it was not there."""
    try:
        os.unlink(record_file(os.fspath(directory), fault_id))
    except FileNotFoundError:
        return False
    return True


def read_record(path: Path | str) -> FaultRecord:
    """A record file; FileNotFoundError when it is gone, ValueError when it is corrupt."""
    raw = _read_file(os.fspath(path))
    try:
        data = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"not JSON: {error}") from None
    fault = FaultRecord.from_dict(data)
    name = os.path.basename(path)
    if f"{fault.id}{RECORD_SUFFIX}" != name:
        raise ValueError(f"holds fault {fault.id!r}, not {name.removesuffix(RECORD_SUFFIX)!r}")
    return fault


def _read_file(path: str) -> bytes:
    """The whole file, read with plain system calls (no buffered file object)."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)
