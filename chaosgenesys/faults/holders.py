"""The detached processes that hold a fault (a proxy, a browser fault's holder): how one starts.

Its pid and start time go into the fault's record before it is handed its configuration (JSON on
stdin, which it reads first), so from the moment it could act on the fault, the record names it
and a revert (the caller's, the guardian's, ``chaosgenesys cleanup``) can stop it::

    fault = registry.record(kind="x", description="...", reverter="m:revert", spec=spec)
    with registry.undone_on_failure(fault.id), open(log_path, "wb") as log:
        process, spec = holders.start_holder(fault.id, spec, "chaosgenesys.proxy.server", log,
                                             config)
"""

from __future__ import annotations

import json
import subprocess
from typing import IO, Any

from chaosgenesys import processes
from chaosgenesys.faults import registry

__all__ = ["start_holder"]


def start_holder(
    fault_id: str, spec: dict[str, Any], module: str, log: IO[bytes], config: dict[str, Any]
) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    """Start ``python -m module`` (its output to ``log``) for fault ``fault_id``, record its pid
    and start time in the fault's spec, then hand it ``config``. Returns the process and the
    spec as recorded."""
    process = processes.spawn_module(module, log)
    spec = {**spec, "pid": process.pid, "pid_start": processes.start_time(process.pid)}
    registry.update(fault_id, spec=spec)
    assert process.stdin is not None
    process.stdin.write(json.dumps(config).encode())
    process.stdin.close()
    return process, spec
