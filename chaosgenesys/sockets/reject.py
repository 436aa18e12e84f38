"""Reject windows: an nftables table of ours that answers new TCP connections with a reset.

Each window is one table, ``inet chaosgenesys_reject_<id>``, with base chains on the ``output``
and ``forward`` hooks (egress: connections this host or the namespaces it routes open towards the
destinations) and/or ``input`` (ingress: connections the destinations open to our ``ports``).
A rule matches a SYN without ACK (a connection attempt; no conntrack needed, so established
connections are untouched) and answers ``reject with tcp reset``: the connecting side's
``connect()`` fails at once with ``ECONNREFUSED``. Reverting deletes the table, which nothing
else shares, so other tables and rules of the host are never touched.

The table is applied as nftables JSON through :func:`chaosgenesys.network.nft.run`
(libnftables in this process, else ``nft -j -f -``) inside the namespace: one atomic
transaction, compiled by nftables itself. pyroute2 0.9.7's nftables support has no rule
expression encoder (payload offsets, registers, reject), so using it would mean hand-encoding
every expression; nftables is the package that scripts/bootstrap installs.
"""

import os
from typing import Any

from chaosgenesys.network import nft
from chaosgenesys.network.arguments import Network
from chaosgenesys.sockets.targets import Target

__all__ = [
    "TABLE_PREFIX",
    "NftError",
    "apply",
    "delete",
    "require_nftables",
    "revert",
    "ruleset",
    "table_json",
]

#: Every table of ours starts with this; nothing else is ever created, changed or deleted.
TABLE_PREFIX = "chaosgenesys_reject_"
FAMILY = "inet"
HOOKS = {"egress": ("output", "forward"), "ingress": ("input",)}


class NftError(RuntimeError):
    """``nft`` failed; the message is its own error output."""


def require_nftables() -> None:
    """NftError saying how to install nftables when it is missing."""
    if not nft.available():
        raise NftError(nft.MISSING)


def _nft(document: dict[str, Any] | str, netns: str | None, json_output: bool = True) -> str:
    rc, out, err = nft.run(document, netns, json_output=json_output)
    if rc != 0:
        raise NftError(err.strip() or out.strip() or f"nftables answered {rc}")
    return out


def _addresses(version: int, networks: tuple[Network, ...]) -> list[dict[str, Any]]:
    return [
        {"prefix": {"addr": str(n.network_address), "len": n.prefixlen}}
        for n in networks
        if n.version == version
    ]


def _match(left: dict[str, Any], op: str, right: Any) -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _rules(target: Target, direction: str, chain: str) -> list[dict[str, Any]]:
    """The rules of one chain.

    One rule per IP version when destinations or exclusions name addresses (an ``ip``/``ip6``
    address match implies that version), a single rule for both versions otherwise.
    """
    field = "daddr" if direction == "egress" else "saddr"
    versions: tuple[int | None, ...] = (4, 6) if target.destinations or target.exclude else (None,)
    rules: list[dict[str, Any]] = []
    for version in versions:
        expr: list[dict[str, Any]] = []
        if version is not None:
            protocol = "ip" if version == 4 else "ip6"
            address = {"payload": {"protocol": protocol, "field": field}}
            wanted = _addresses(version, target.destinations)
            unwanted = _addresses(version, target.exclude)
            if target.destinations and not wanted:
                continue  # no destination of this IP version: nothing of it is targeted
            expr.append(_match({"meta": {"key": "nfproto"}}, "==", f"ipv{version}"))
            if wanted:
                expr.append(_match(address, "==", {"set": wanted}))
            if unwanted:
                expr.append(_match(address, "!=", {"set": unwanted}))
        expr.append(_match({"meta": {"key": "l4proto"}}, "==", "tcp"))
        if target.ports:
            ports = [lo if lo == hi else {"range": [lo, hi]} for lo, hi in target.ports]
            expr.append(
                _match({"payload": {"protocol": "tcp", "field": "dport"}}, "==", {"set": ports})
            )
        flags = {"&": [{"payload": {"protocol": "tcp", "field": "flags"}}, ["syn", "ack"]]}
        expr.append(_match(flags, "==", "syn"))
        expr.append({"counter": {"packets": 0, "bytes": 0}})
        expr.append({"reject": {"type": "tcp reset"}})
        rules.append(
            {"add": {"rule": {"family": FAMILY, "table": "", "chain": chain, "expr": expr}}}
        )
    return rules


def table_json(table: str, target: Target, direction: str) -> dict[str, Any]:
    """The whole ``nft -j`` document that creates the table (nothing is applied)."""
    if not table.startswith(TABLE_PREFIX):
        raise ValueError(f"table {table!r} is not one of ours ({TABLE_PREFIX}*)")
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": FAMILY, "name": table}}}]
    directions = ("egress", "ingress") if direction == "both" else (direction,)
    for way in directions:
        for hook in HOOKS[way]:
            chain = f"{way}_{hook}"
            commands.append(
                {
                    "add": {
                        "chain": {
                            "family": FAMILY,
                            "table": table,
                            "name": chain,
                            "type": "filter",
                            "hook": hook,
                            "prio": -10,
                            "policy": "accept",
                        }
                    }
                }
            )
            for rule in _rules(target, way, chain):
                rule["add"]["rule"]["table"] = table
                commands.append(rule)
    return {"nftables": [{"metainfo": {"json_schema_version": 1}}, *commands]}


def apply(table: str, target: Target, direction: str, netns: str | None) -> dict[str, Any]:
    """Create the table in one transaction; -> the document applied."""
    document = table_json(table, target, direction)
    _nft(document, netns)
    return document


def delete(table: str, netns: str | None) -> bool:
    """Delete our table; -> False when it was not there (already reverted). Idempotent."""
    if not table.startswith(TABLE_PREFIX):
        raise ValueError(f"table {table!r} is not one of ours ({TABLE_PREFIX}*)")
    if netns is not None and not os.path.exists(netns):
        return False  # the namespace is gone, and its tables with it
    document = {"nftables": [{"delete": {"table": {"family": FAMILY, "name": table}}}]}
    try:
        _nft(document, netns)
    except NftError as error:
        if "No such file or directory" in str(error):
            return False
        raise
    return True


def ruleset(netns: str | None = None) -> str:
    """``nft list ruleset`` of a namespace, as text."""
    return _nft("list ruleset", netns, json_output=False)


def revert(fault: Any) -> None:
    """Fault registry reverter: delete the window's table (``fault.spec``: table, netns)."""
    spec: dict[str, Any] = dict(fault.spec)
    delete(str(spec["table"]), spec.get("netns_path") or None)
