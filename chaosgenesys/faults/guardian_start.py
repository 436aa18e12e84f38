"""Starting the guardian of a registry directory, once: is one running, is one starting, start one.

The registry calls :func:`ensure_guardian` holding its lock whenever it records a fault; the
guardian itself (``chaosgenesys.faults.guardian``) takes ``guardian.lock`` and writes its pid
there. ``chaosgenesys status`` shows :func:`guardian_pid`::

    from chaosgenesys.faults import guardian_start

    guardian_start.guardian_pid(directory)   # pid, 0 while starting, None when none runs
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import site
import subprocess
import sys
import time
from pathlib import Path

from chaosgenesys import processes

__all__ = [
    "GUARDIAN_LOCK",
    "GUARDIAN_LOG",
    "GUARDIAN_LOG_LIMIT",
    "GUARDIAN_MODULE",
    "GUARDIAN_SPAWN",
    "GUARDIAN_START_TIMEOUT",
    "ensure_guardian",
    "guardian_environment",
    "guardian_pid",
    "guardian_starting",
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

#: Guardian processes this process started, per directory (reaped when they exit, so no
#: zombies pile up; one still starting is not started again).
_SPAWNED: dict[str, list[subprocess.Popen[bytes]]] = {}


def guardian_pid(directory: Path | str) -> int | None:
    """The pid of the guardian of ``directory`` (0 if it is starting), None if none runs."""
    try:
        fd = os.open(f"{os.fspath(directory)}/{GUARDIAN_LOCK}", os.O_RDONLY | os.O_CLOEXEC)
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


def ensure_guardian(directory: Path | str) -> None:
    """Start a guardian for ``directory`` unless one runs or starts (called holding the
    registry lock).

    A guardian writes its pid into ``guardian.lock`` while it holds it and ``exited <pid>``
    when it lets go (under the registry lock, once the registry is empty). The last guardian
    started is named in ``guardian.spawn``: while it is alive, younger than
    :data:`GUARDIAN_START_TIMEOUT`, holds no lock and has not written ``exited <its pid>``,
    it is still starting (it will take the lock and see this record), so none is added.
    """
    spawned = _SPAWNED.setdefault(os.fspath(directory), [])
    if spawned:
        spawned[:] = [process for process in spawned if process.poll() is None]
    if guardian_pid(directory) is not None or guardian_starting(directory):
        return
    directory = Path(directory)
    if not sys.executable:
        raise OSError("no Python interpreter path (sys.executable is empty)")
    log_path = directory / GUARDIAN_LOG
    with contextlib.suppress(OSError):
        if log_path.stat().st_size > GUARDIAN_LOG_LIMIT:
            os.replace(log_path, log_path.with_name(GUARDIAN_LOG + ".1"))
    log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        process = processes.spawn_module(
            GUARDIAN_MODULE, log, stdin=subprocess.DEVNULL, env=guardian_environment(),
            args=["--dir", str(directory)],
        )
    finally:
        os.close(log)
    spawned.append(process)
    start = processes.start_time(process.pid)
    with contextlib.suppress(OSError):
        (directory / GUARDIAN_SPAWN).write_text(
            f"{process.pid} {start if start is not None else '-'} {time.time():.3f}\n"
        )
    logger.debug("fault guardian started for %s: pid %d", directory, process.pid)


def guardian_starting(directory: Path | str) -> bool:
    """Whether the guardian last started for ``directory`` is alive and still starting."""
    try:
        directory = Path(directory)
        pid_text, start_text, spawned_text = (directory / GUARDIAN_SPAWN).read_text().split()
        pid, spawned_at = int(pid_text), float(spawned_text)
        start = None if start_text == "-" else int(start_text)
    except (OSError, ValueError):
        return False
    try:
        last = (directory / GUARDIAN_LOCK).read_text(errors="replace").split()
    except OSError:
        last = []
    if last == ["exited", str(pid)] or time.time() - spawned_at > GUARDIAN_START_TIMEOUT:
        return False
    return processes.alive(pid, start)


def guardian_environment() -> dict[str, str]:
    """This environment, with ``PYTHONPATH`` holding this process's own ``sys.path`` entries.

    The guardian must import the reverters this process can import (a test module, a script's
    folder), so every ``sys.path`` folder that is not the interpreter's own goes first.
    """
    own = {os.path.realpath(path) for path in _interpreter_paths()}
    paths: list[str] = []
    for entry in sys.path:
        path = os.path.abspath(entry or os.getcwd())
        if os.path.isdir(path) and os.path.realpath(path) not in own and path not in paths:
            paths.append(path)
    environment = dict(os.environ)
    if paths:
        environment["PYTHONPATH"] = os.pathsep.join(paths)
    return environment


def _interpreter_paths() -> list[str]:
    """The folders the interpreter puts on ``sys.path`` by itself (its standard library, its C
    modules and its site-packages, the user's included): every Python it starts has them, and
    put first by ``PYTHONPATH`` a site-packages package would shadow the standard library.

    Read from where ``os`` was loaded and from :mod:`site`, not from
    :mod:`sysconfig`, whose first ``get_paths()`` took 2 ms of a process's first fault."""
    stdlib = os.path.dirname(os.__file__)
    paths = [stdlib, os.path.join(stdlib, "lib-dynload")]
    with contextlib.suppress(AttributeError):
        paths += site.getsitepackages()
    with contextlib.suppress(AttributeError):
        paths.append(site.getusersitepackages())
    return paths
