"""Probes over the fault registry: what chaosgenesys has applied and not yet reverted."""

import time
from typing import Any

from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_text

__all__ = ["active_faults"]


def active_faults(
    kind: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> list[dict[str, Any]]:
    """Every fault recorded in the registry, oldest first, or only those of one ``kind``.

        Each entry is the record (``id``, ``kind``, ``description``, ``reverter``, ``spec``,
        ``owner_pid``, ``owner_start``, ``created_at``, ``deadline``) plus ``owner_alive``,
        ``remaining`` (seconds to the deadline, or null) and ``corrupt: false``. A record file that
        cannot be read is listed too (without ``kind``) as ``{"id", "path", "error", "corrupt":
        true}``. A steady state of "no fault left behind" is the tolerance ``[[]]`` (the value is
    one of: an empty list):

        ```json
        {"type": "probe", "name": "no-fault-left-behind", "tolerance": [[]],
         "provider": {"type": "python", "module": "chaosgenesys.faults.probes",
                      "func": "active_faults"}}
        ```
    """
    require_text("kind", kind, allow_empty=True)
    from chaosgenesys.faults import registry

    wanted = kind.strip() or None
    faults, corrupt = registry.scan()
    now = time.time()
    found: list[dict[str, Any]] = []
    for fault in faults:
        if wanted is not None and fault.kind != wanted:
            continue
        entry = fault.to_dict()
        entry["owner_alive"] = fault.owner_alive()
        entry["remaining"] = fault.remaining(now)
        entry["corrupt"] = False
        found.append(entry)
    if wanted is None:
        found.extend({**bad.to_dict(), "corrupt": True} for bad in corrupt)
    return found
