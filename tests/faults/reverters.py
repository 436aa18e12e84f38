"""Reverters of the fault registry tests: real files stand for real faults.

A "fault" here is a marker file; reverting it removes the file (idempotently) after, when the
spec names a ``log``, appending the revert time and pid to it, so tests can tell when and where
the reverter ran.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from chaosgenesys.faults.registry import FaultRecord


def remove_marker(fault: FaultRecord) -> None:
    """Log ``<time> <pid>`` to ``spec["log"]``, then remove ``spec["path"]`` (missing is fine):
    in that order, so that a test which sees the marker gone finds the line written."""
    log = fault.spec.get("log")
    if log:
        with open(log, "a", encoding="utf-8") as handle:
            handle.write(f"{time.time():.6f} {os.getpid()}\n")
    Path(fault.spec["path"]).unlink(missing_ok=True)


def fail(fault: FaultRecord) -> None:
    """Always fails, unless the file ``spec["heal"]`` exists (then removes the marker)."""
    heal = fault.spec.get("heal")
    if heal and Path(heal).exists():
        remove_marker(fault)
        return
    raise RuntimeError(f"the test reverter refuses to revert {fault.spec.get('path')}")


def revert_again(fault: FaultRecord) -> None:
    """Calls back into the registry for its own fault (as a stop_proxy activity might)."""
    from chaosgenesys.faults.registry import Registry

    Registry(fault.spec["dir"]).revert(fault.id)
    remove_marker(fault)
