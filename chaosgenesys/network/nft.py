"""Packet loss and blackholes through nftables, for kernels without sch_netem.

One ``netdev`` table per fault (``chaosgenesys_<token>``) with a chain on the interface's
``egress`` and/or ``ingress`` hook, so that only that interface's packets are seen, forwarded ones
included, and a drop looks like loss on the wire (the sender gets no EPERM, unlike a drop in the
``output`` hook). Reverting is deleting the table.

The ruleset is nftables' JSON (``libnftables-json(5)``), run through ``libnftables.so.1`` with
ctypes in this process (no fork, 1-2 ms), else through ``nft -j -f -``. pyroute2 0.9.7 is not
used for nftables: its ``nftables`` module has no rule builder, every expression (payload
offsets, ``numgen``, set elements, the ``meta protocol`` dependencies the nft evaluator adds)
would have to be assembled by hand, and JSON through libnftables is the interface the nftables
project documents and keeps stable. :func:`run` is the one way the package drives nftables: the
reject windows of ``chaosgenesys.sockets.reject`` go through it too.
"""

import ctypes
import ctypes.util
import ipaddress
import json
import os
import shutil
import subprocess
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network.nl import in_netns
from chaosgenesys.network.targeting import Target

__all__ = [
    "MISSING",
    "available",
    "command",
    "delete_table",
    "list_tables",
    "ruleset",
    "run",
    "table_exists",
]

_NFT_CTX_OUTPUT_JSON = 1 << 4
#: What to do when nftables is missing.
MISSING = (
    "nftables is missing: install the nftables package (libnftables.so.1 and the nft command: "
    "apt-get install nftables, or run scripts/bootstrap)"
)
_lib_lock = threading.Lock()
_lib: Any = None


def _library() -> Any:
    global _lib
    with _lib_lock:
        if _lib is None:
            name = ctypes.util.find_library("nftables") or "libnftables.so.1"
            try:
                lib = ctypes.CDLL(name)
            except OSError:
                _lib = False
                return _lib
            lib.nft_ctx_new.restype = ctypes.c_void_p
            lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
            lib.nft_ctx_free.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_output_set_flags.argtypes = [ctypes.c_void_p, ctypes.c_uint]
            lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
            lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
            lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
            lib.nft_run_cmd_from_buffer.restype = ctypes.c_int
            _lib = lib
        return _lib


def command() -> str | None:
    """The ``nft`` executable (PATH, then /usr/sbin and /sbin), None when it is missing."""
    return shutil.which("nft") or next(
        (p for p in ("/usr/sbin/nft", "/sbin/nft") if os.access(p, os.X_OK)), None
    )


def available() -> bool:
    """Whether nftables can be driven here: libnftables.so.1 or the ``nft`` command."""
    return bool(_library()) or command() is not None


def run(
    document: dict[str, Any] | str, netns: str | None = None, *, json_output: bool = True
) -> tuple[int, str, str]:
    """Run one JSON command document (or nft text) in network namespace ``netns`` (a name or
    a path; None or ``""``: this thread's), as one transaction.

    Returns ``(rc, output, error)``; the output is JSON unless ``json_output`` is false.
    Raises ``ActivityFailed`` when neither libnftables nor ``nft`` is installed.
    """
    text = document if isinstance(document, str) else json.dumps(document)
    with in_netns(netns):
        lib = _library()
        if lib:
            ctx = lib.nft_ctx_new(0)
            try:
                lib.nft_ctx_buffer_output(ctx)
                lib.nft_ctx_buffer_error(ctx)
                if json_output:
                    lib.nft_ctx_output_set_flags(ctx, _NFT_CTX_OUTPUT_JSON)
                rc = lib.nft_run_cmd_from_buffer(ctx, text.encode())
                out = (lib.nft_ctx_get_output_buffer(ctx) or b"").decode(errors="replace")
                err = (lib.nft_ctx_get_error_buffer(ctx) or b"").decode(errors="replace")
                return int(rc), out, err
            finally:
                lib.nft_ctx_free(ctx)
        nft = command()
        if nft is None:
            raise ActivityFailed(MISSING)
        flags = ["-j"] if json_output or not isinstance(document, str) else []
        done = subprocess.run(
            [nft, *flags, "-f", "-"], input=text, capture_output=True, text=True, timeout=30
        )
        return done.returncode, done.stdout, done.stderr


def _match(left: dict[str, Any], right: Any, op: str = "==") -> dict[str, Any]:
    return {"match": {"op": op, "left": left, "right": right}}


def _addresses(networks: list[str]) -> dict[str, Any]:
    items: list[Any] = []
    for text in networks:
        net = ipaddress.ip_network(text)
        if net.prefixlen == net.max_prefixlen:
            items.append(str(net.network_address))
        else:
            items.append({"prefix": {"addr": str(net.network_address), "len": net.prefixlen}})
    return {"set": items}


def _rules(target: Target, ingress: bool, verdict: list[dict[str, Any]]) -> list[list[Any]]:
    field = "saddr" if ingress else "daddr"
    port_field = "sport" if ingress else "dport"
    l4: list[dict[str, Any]] = []
    if target.protocol:
        l4.append(_match({"meta": {"key": "l4proto"}}, target.protocol))
    elif target.ports:
        l4.append(_match({"meta": {"key": "l4proto"}}, {"set": ["tcp", "udp"]}))
    if target.ports:
        ports: list[Any] = [a if a == b else {"range": [a, b]} for a, b in target.ports]
        l4.append(_match({"payload": {"protocol": "th", "field": port_field}}, {"set": ports}))
    rules: list[list[Any]] = []
    if not target.networks:
        rules.append([_match({"meta": {"key": "protocol"}}, {"set": ["ip", "ip6"]}), *l4, *verdict])
        return rules
    for version, proto in ((4, "ip"), (6, "ip6")):
        nets = [n for n in target.networks if ipaddress.ip_network(n).version == version]
        if not nets:
            continue
        if any(ipaddress.ip_network(n).prefixlen == 0 for n in nets):
            head = [_match({"meta": {"key": "protocol"}}, proto)]
        else:
            head = [_match({"payload": {"protocol": proto, "field": field}}, _addresses(nets))]
        rules.append([*head, *l4, *verdict])
    return rules


def ruleset(
    table: str, interface: str, direction: str, target: Target, loss_percent: float
) -> dict[str, Any]:
    """The JSON document that creates the fault's table (``loss_percent`` 100 = blackhole)."""
    verdict: list[dict[str, Any]] = []
    if loss_percent < 100:
        threshold = round(loss_percent * 100)  # 0.01 % steps
        verdict.append(
            _match({"numgen": {"mode": "random", "mod": 10000, "offset": 0}}, threshold, "<")
        )
    verdict += [{"counter": None}, {"drop": None}]
    commands: list[dict[str, Any]] = [{"add": {"table": {"family": "netdev", "name": table}}}]
    for hook in ("egress", "ingress"):
        if direction not in (hook, "both"):
            continue
        chain = f"{hook}_drop"
        commands.append(
            {
                "add": {
                    "chain": {
                        "family": "netdev",
                        "table": table,
                        "name": chain,
                        "type": "filter",
                        "hook": hook,
                        "dev": interface,
                        "prio": -300,
                        "policy": "accept",
                    }
                }
            }
        )
        for expr in _rules(target, hook == "ingress", verdict):
            commands.append(
                {
                    "add": {
                        "rule": {"family": "netdev", "table": table, "chain": chain, "expr": expr}
                    }
                }
            )
    return {"nftables": commands}


def table_exists(table: str) -> bool:
    """Whether the netdev table exists in the current namespace."""
    rc, out, _err = run({"nftables": [{"list": {"table": {"family": "netdev", "name": table}}}]})
    return rc == 0 and bool(out)


def delete_table(table: str) -> None:
    """Delete the table (idempotent)."""
    if not table_exists(table):
        return
    rc, _out, err = run({"nftables": [{"delete": {"table": {"family": "netdev", "name": table}}}]})
    if rc != 0 and table_exists(table):
        raise ActivityFailed(f"deleting nftables table netdev {table} failed: {err.strip()}")


def list_tables() -> list[str]:
    """Names of the chaosgenesys netdev tables in the current namespace."""
    rc, out, _err = run({"nftables": [{"list": {"tables": {"family": "netdev"}}}]})
    if rc != 0 or not out:
        return []
    names: list[str] = []
    for item in json.loads(out).get("nftables", []):
        table = item.get("table") if isinstance(item, dict) else None
        if isinstance(table, dict) and str(table.get("name", "")).startswith("chaosgenesys_"):
            names.append(str(table["name"]))
    return names
