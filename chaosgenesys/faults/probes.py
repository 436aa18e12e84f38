"""Probes over the fault registry: what this run (or every run) applied and not yet reverted."""

import time
from typing import Any

from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_text

__all__ = ["active_faults"]


def active_faults(
    kind: str = "",
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> list[dict[str, Any]]:
    """The faults this run recorded and has not reverted, oldest first, or only those of one
    ``kind``; with ``scope`` ``all``, every run's (as ``chaosgenesys status`` lists them).

    A run is this process and every process it started (agents, proxies, commands), so a
    concurrent run's faults in the same registry directory never change this run's verdict.
    Each entry is the record (``id``, ``kind``, ``description``, ``reverter``, ``spec``,
    ``owner_pid``, ``owner_start``, ``created_at``, ``deadline``, ``ancestors``, and
    ``failures``, ``last_error``, ``given_up`` for a fault whose reverts failed) plus
    ``owner_alive``, ``remaining`` (seconds to the deadline, or null) and ``corrupt: false``.
    With ``scope`` ``all`` (and without ``kind``), a record file that cannot be read is listed
    too as ``{"id", "path", "error", "corrupt": true}``. A steady state of "no fault left
    behind" is the tolerance ``[[]]`` (the value is one of: an empty list):

    ```json
    {"type": "probe", "name": "no-fault-left-behind", "tolerance": [[]],
     "provider": {"type": "python", "module": "chaosgenesys.faults.probes",
                  "func": "active_faults"}}
    ```
    """
    require_text("kind", kind, allow_empty=True)
    from chaosgenesys.faults import registry

    scope = registry.check_scope(scope)
    owner = registry.run_owner()
    wanted = kind.strip() or None
    faults, corrupt = registry.scan()
    now = time.time()
    found: list[dict[str, Any]] = []
    for fault in faults:
        if wanted is not None and fault.kind != wanted:
            continue
        if scope == "run" and not fault.belongs_to(owner):
            continue
        entry = fault.to_dict()
        entry["owner_alive"] = fault.owner_alive()
        entry["remaining"] = fault.remaining(now)
        entry["corrupt"] = False
        found.append(entry)
    if wanted is None and scope == "all":
        found.extend({**bad.to_dict(), "corrupt": True} for bad in corrupt)
    return found
