"""Network faults made of an nftables table (packet loss without netem, blackhole): plan,
record, apply, revert. The rules themselves are written by :mod:`chaosgenesys.network.nft`.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.engine import (
    check_capability,
    new_token,
    resolve_interface,
)
from chaosgenesys.network.nl import NetlinkError, RtSocket, in_netns
from chaosgenesys.network.reverters import LEGACY_NFT_REVERTER, NFT_REVERTER
from chaosgenesys.network.targeting import Target
from chaosgenesys.network.tc_state import netns_context

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.faults.registry import FaultRecord

__all__ = ["LEGACY_NFT_REVERTER", "NFT_REVERTER", "apply_nft", "revert_nft"]


# The registry's reverter of these faults, and the same as records written before this module
# existed name it (``engine`` keeps a shim): ``reverters.py``.


def apply_nft(
    *,
    kind: str,
    what: str,
    loss_percent: float,
    target: Target,
    interface: str,
    direction: str,
    duration: float,
    netns: str,
    dry_run: bool,
) -> dict[str, Any]:
    """Plan, record and apply an nftables drop (``loss_percent`` 100: blackhole)."""
    from chaosgenesys.faults import registry
    from chaosgenesys.network import nft

    if not dry_run:
        check_capability()
    with netns_context(netns), RtSocket() as sock:
        device, _index = resolve_interface(sock, interface, target, netns)
        table = f"chaosgenesys_{new_token()}"
        document = nft.ruleset(table, device, direction, target, loss_percent)
        description = target.describe(what, device, netns, direction)
        plan: dict[str, Any] = {
            "kind": kind,
            "description": description,
            "interface": device,
            "netns": netns,
            "direction": direction,
            "duration": duration,
            "target": target.to_dict(),
            "nftables_table": f"netdev {table}",
            "nftables": document,
            "spec": {"netns": netns, "interface": device, "table": table},
        }
        if dry_run:
            plan.update(dry_run=True, applied=False)
            return plan
        fault = registry.record(
            kind=kind,
            description=description,
            reverter=NFT_REVERTER,
            spec=plan["spec"],
            duration=duration or None,
        )
        plan["fault_id"] = fault.id
        with registry.undone_on_failure(fault.id):
            started = time.perf_counter()
            rc, _out, err = nft.run(document)
            plan["apply_ms"] = round((time.perf_counter() - started) * 1000, 3)
            if rc != 0:
                hint = ""
                if "egress" in err or "Operation not supported" in err:
                    hint = (
                        " (the netdev egress hook needs Linux 5.16+ with CONFIG_NETFILTER_EGRESS)"
                    )
                if "Operation not permitted" in err:
                    hint = " (CAP_NET_ADMIN is needed)"
                raise ActivityFailed(f"{what}: nftables refused the rules{hint}: {err.strip()}")
        plan.update(dry_run=False, applied=True)
        return plan


def revert_nft(fault: FaultRecord) -> None:
    """The registry's reverter for nftables faults: delete the table (idempotent)."""
    from chaosgenesys.network import nft

    netns = str(fault.spec.get("netns") or "")
    try:
        context = in_netns(netns)
        context.__enter__()
    except NetlinkError:
        return
    try:
        nft.delete_table(str(fault.spec["table"]))
    finally:
        context.__exit__(None, None, None)
