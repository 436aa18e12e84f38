"""Actions over the fault registry: revert everything that chaosgenesys applied.

Meant as a rollback (and as a last resort in any experiment): it reverts every fault recorded in
the registry, network qdiscs and nftables rules, running proxies and the rest, whoever applied
them, newest first, and goes on past a fault whose reverter fails.
"""

import logging
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_text

__all__ = ["revert_all"]

logger = logging.getLogger("chaostoolkit")


def revert_all(
    kind: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> list[dict[str, Any]]:
    """Revert every recorded fault, or only those of one ``kind`` (``netem``, ``proxy``, ...).

    Returns one entry per fault, newest first: ``{"id", "kind", "description", "status"}`` with
    status ``reverted`` (or ``gone`` when another process, such as the guardian, reverted it
    first). Every fault is attempted; if any reverter failed, the action then fails with
    ``ActivityFailed`` listing each failure (those faults stay recorded: ``chaosgenesys
    cleanup`` retries them).

    ```json
    {"type": "action", "name": "revert-every-fault",
     "provider": {"type": "python", "module": "chaosgenesys.faults.actions",
                  "func": "revert_all"}}
    ```
    """
    require_text("kind", kind, allow_empty=True)
    from chaosgenesys.faults import registry

    results = registry.revert_all(kind.strip() or None)
    failed = [entry for entry in results if entry["status"] == "failed"]
    for entry in results:
        if entry["status"] != "failed":
            logger.info("fault %s %s: %s", entry["id"], entry["status"], entry["description"])
    if failed:
        raise ActivityFailed(
            f"{len(failed)} of {len(results)} faults could not be reverted: "
            + "; ".join(str(entry["error"]) for entry in failed)
        )
    return results
