"""Another run, for the tests of "one run never touches another".

:func:`other_run` starts a Python process that is no descendant of the test process (it is
double-forked and waits until it has been re-parented before it records), records a fault in
the test's registry and stays alive: the fault of a concurrent, independent run sharing the
registry directory, as a second ``chaos run`` started from another shell would leave.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.faults.conftest import CLI, ROOT

#: The start of another run's script: it double-forks and goes on only once it is no longer
#: below the test process (re-parented), in a session of its own; ``json``, ``os``, ``sys`` and
#: ``time`` imported.
DETACH = """
import json, os, sys, time
launcher = os.getpid()
if os.fork() > 0:
    os._exit(0)
os.setsid()
while os.getppid() == launcher:
    time.sleep(0.005)
"""

OTHER = DETACH + """
from chaosgenesys.faults import registry
fault = registry.record(sys.argv[1], "another run's fault", sys.argv[2], json.loads(sys.argv[3]))
print(fault.id, os.getpid(), flush=True)
time.sleep(120)
"""


@dataclass
class OtherRun:
    """The independent process and the fault it recorded."""

    pid: int
    fault_id: str


@contextlib.contextmanager
def other_run(kind: str, reverter: str, spec: dict[str, Any]) -> Iterator[OtherRun]:
    """Start the other run (in ``CHAOSGENESYS_RUNTIME_DIR``); stop it (by pid) after."""
    with other_process(OTHER, kind, reverter, json.dumps(spec)) as run:
        yield run


@contextlib.contextmanager
def other_process(script: str, *args: str) -> Iterator[OtherRun]:
    """Run ``script`` (which double-forks, prints ``<id> <pid>`` and stays) as the other run;
    SIGKILL it (by pid) after."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    }
    launcher = subprocess.Popen(
        [sys.executable, "-c", script, *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert launcher.stdout is not None
    line = launcher.stdout.readline().split()
    launcher.wait(timeout=30)
    launcher.stdout.close()
    assert len(line) == 2, "the other run did not start"
    run = OtherRun(pid=int(line[1]), fault_id=line[0])
    try:
        yield run
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(run.pid, signal.SIGKILL)


def is_descendant(pid: int, ancestor: int) -> bool:
    """Whether ``ancestor`` is above ``pid`` now (``/proc``)."""
    current = pid
    while current > 1:
        try:
            text = Path(f"/proc/{current}/stat").read_text()
        except OSError:
            return False
        current = int(text[text.rindex(")") + 2 :].split()[1])
        if current == ancestor:
            return True
    return False


def cli(*args: str, directory: Path) -> subprocess.CompletedProcess[str]:
    """``chaosgenesys ARGS`` on the registry ``directory`` (the test reverters importable)."""
    path = os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p)
    return subprocess.run(
        [CLI, *args],
        cwd=ROOT,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(directory), "PYTHONPATH": path},
        capture_output=True,
        text=True,
        timeout=30,
    )
