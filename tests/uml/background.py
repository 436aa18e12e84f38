"""The user-mode-linux run of the netem tests, started as soon as the session has collected
``tests/uml/test_netem_in_uml.py`` so that it runs while the host runs the rest of the suite
(about 75 s of wall time otherwise spent waiting at the end of the run).

``tests/uml/netem_plugin.py`` calls :func:`start` from ``pytest_collection_modifyitems``; the
test calls :func:`result`, which waits for the background run, or runs it there and then when
nothing started it (a session that selected only that test, or started elsewhere).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RUNNER = ROOT / "scripts" / "uml-run"
#: Whole run inside UML: boot (about 2 s), imports over hostfs, then the tests.
UML_TIMEOUT = 900
#: Set in the processes this module starts: they never start a run of their own.
CHILD = "CHAOSGENESYS_UML_CHILD"
TEST = "tests/uml/test_netem_in_uml.py::test_netem_tests_pass_inside_user_mode_linux"


@dataclass
class Outcome:
    expected: list[str]
    run: subprocess.CompletedProcess[str]
    elapsed: float
    junit: Path
    background: bool


_lock = threading.Lock()
_thread: threading.Thread | None = None
_outcome: Outcome | None = None
_error: BaseException | None = None


def uml_missing() -> str | None:
    """What is not installed for a UML run (``None``: nothing)."""
    if shutil.which("linux.uml") is None:
        return "linux.uml (package user-mode-linux)"
    if not Path("/bin/busybox").exists():
        return "/bin/busybox (package busybox-static)"
    return None


def _environment() -> dict[str, str]:
    return {**os.environ, CHILD: "1"}


def _netem_tests() -> list[str]:
    """Node ids of the netem-marked tests, as the host collects them."""
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-m", "netem",
         "-p", "no:cacheprovider", "--color=no", "tests"],
        cwd=ROOT, capture_output=True, text=True, timeout=300, env=_environment(),
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-4000:]
    return [line for line in result.stdout.splitlines() if "::" in line]


def _run(background: bool) -> Outcome:
    expected = _netem_tests()
    files = sorted({node.split("::", 1)[0] for node in expected})
    results = Path(tempfile.mkdtemp(prefix="chaosgenesys-uml-"))
    junit = results / "junit.xml"
    started = time.monotonic()
    run = subprocess.run(
        [str(RUNNER), "--timeout", str(UML_TIMEOUT), "--bind", str(results), "--",
         sys.executable, "-m", "pytest", "-m", "netem", "-p", "no:cacheprovider", "--color=no",
         "-q", "-rfEs", f"--junitxml={junit}", *files],
        cwd=ROOT, capture_output=True, text=True, timeout=UML_TIMEOUT + 60,
        env=_environment(),
    )
    return Outcome(expected, run, time.monotonic() - started, junit, background)


def _background() -> None:
    global _outcome, _error
    try:
        outcome = _run(background=True)
    except BaseException as error:  # handed to the test, which fails with it
        with _lock:
            _error = error
        return
    with _lock:
        _outcome = outcome


def start() -> bool:
    """Start the run in the background (once per session); False when it cannot run here."""
    global _thread
    if os.environ.get(CHILD) or uml_missing() is not None or os.geteuid() != 0:
        return False
    with _lock:
        if _thread is None:
            _thread = threading.Thread(target=_background, name="uml-netem", daemon=True)
            _thread.start()
    return True


def result() -> Outcome:
    """The run's outcome: the background run's, waited for, or one run now."""
    with _lock:
        thread = _thread
    if thread is None:
        return _run(background=False)
    thread.join(timeout=UML_TIMEOUT + 120)
    with _lock:
        if _error is not None:
            raise _error
        assert _outcome is not None, "the background UML run did not finish in time"
        return _outcome
