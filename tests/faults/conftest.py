"""Fault registry tests: a private registry directory per test, and no guardian left behind.

Every test gets its own ``CHAOSGENESYS_RUNTIME_DIR``. After the test, any guardian watching that
directory is stopped (SIGTERM, by pid) and the test fails if one is still running then. Markers
(files) stand for faults: ``tests.faults.reverters`` removes them.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from chaosgenesys.faults.registry import ENV_DIR
from tests import polling


def wait_for(condition: Callable[[], object], timeout: float, step: float = 0.01) -> float:
    """:func:`tests.polling.wait_for` every 10 ms (the seconds waited measure the guardian)."""
    return polling.wait_for(condition, timeout, step)


ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
CLI = str(Path(sys.executable).with_name("chaosgenesys"))
REMOVE = "tests.faults.reverters:remove_marker"
FAIL = "tests.faults.reverters:fail"


def guardians(directory: Path) -> list[int]:
    """Pids of running (not zombie) guardian processes watching ``directory``."""
    found = []
    wanted = str(directory)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            argv = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        words = [word.decode(errors="replace") for word in argv]
        if "chaosgenesys.faults.guardian" in words and wanted in words and state != "Z":
            found.append(int(entry))
    return found


def reap_children() -> None:
    """Collect exited children of this process (guardians it started) so none stay zombies."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def stop_guardians(directory: Path) -> None:
    for pid in guardians(directory):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 5
    while guardians(directory) and time.monotonic() < deadline:
        time.sleep(0.02)
    reap_children()


@pytest.fixture
def runtime_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh registry directory in ``CHAOSGENESYS_RUNTIME_DIR``; guardians stopped after."""
    directory = tmp_path / "registry"
    monkeypatch.setenv(ENV_DIR, str(directory))
    try:
        yield directory
    finally:
        stop_guardians(directory)
        left = guardians(directory)
        assert not left, f"guardian processes left running: {left}"


@pytest.fixture
def marker(tmp_path: Path) -> Callable[[str], Path]:
    """``marker("a")`` creates the file ``a`` (a stand-in fault) and returns its path."""

    def make(name: str) -> Path:
        path = tmp_path / f"marker-{name}"
        path.write_text(name)
        return path

    return make


@pytest.fixture(scope="session", autouse=True)
def _no_guardian_survives(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """After the whole run, no guardian of any of this run's directories still runs. A guardian
    whose owner (a ``chaos run`` of the last tests) has just ended is still reverting (stopping
    desktops, which revoke their tokens) and then keeps a 2 s grace: up to 30 s are given."""
    yield
    base = tmp_path_factory.getbasetemp()
    deadline = time.monotonic() + 30.0
    while True:
        left = [pid for pid in _all_guardians() if str(base) in _cmdline(pid)]
        if not left or time.monotonic() >= deadline:
            break
        time.sleep(0.2)
    seen = {pid: _cmdline(pid) for pid in left}
    for pid in left:
        os.kill(pid, signal.SIGTERM)
    assert not left, f"guardians survived the test run: {seen}"


def _all_guardians() -> list[int]:
    return [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and "chaosgenesys.faults.guardian" in _cmdline(int(entry))
    ]


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""
