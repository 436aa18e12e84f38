"""Actions over the fault registry: revert everything that this run (or every run) applied.

Meant as a rollback (and as a last resort in any experiment): it reverts every fault the run
recorded in the registry, network qdiscs and nftables rules, running proxies and the rest,
newest first, and goes on past a fault whose reverter fails. A run is the ``chaos run`` process
and every process it started: another run's faults in the same registry directory are left
alone unless ``scope`` is ``all``.
"""

import logging
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_text

__all__ = ["revert_all"]

logger = logging.getLogger("chaostoolkit")


def revert_all(
    kind: str = "",
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> list[dict[str, Any]]:
    """Revert every fault this run recorded, or only those of one ``kind`` (``netem``,
    ``proxy``, ...).

    ``scope`` says whose faults: ``run`` (the default) those recorded by this process or by a
    process it started (agents, proxies, commands); ``all`` every run's, as ``chaosgenesys
    cleanup`` does: use it only when no other run shares the registry directory. A fault given
    up after repeated failed reverts is listed as failed, not retried (``chaosgenesys cleanup
    --retry`` retries it).

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

    Every run's faults (no other run may be going on)::

        {"type": "action", "name": "revert-every-run-s-faults",
         "provider": {"type": "python", "module": "chaosgenesys.faults.actions",
                      "func": "revert_all", "arguments": {"scope": "all"}}}
    """
    require_text("kind", kind, allow_empty=True)
    from chaosgenesys.faults import registry

    scope = registry.check_scope(scope)
    results = registry.revert_all(kind.strip() or None, scope=scope)
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
