"""``chaosgenesys proxy``: the fault-injecting proxy in front of a real desktop, until Ctrl+C.

Starts the same proxy as ``chaosgenesys.proxy.actions.start_proxy`` (mitmproxy in its own
process, recorded in the fault registry before it starts), loads rules from files (the proxy's own
JSON/YAML rule format with ``--rules``, Fiddler AutoResponder exports with ``--fiddler``), prints
how to point a desktop at it, and serves until Ctrl+C or SIGTERM; then it stops the proxy and
removes its record. If this command is killed outright, the guardian stops the proxy when it
sees its owner gone (or ``chaosgenesys cleanup`` does). Rules can be added and cleared while it
runs with the proxy actions (``add_rules``, ``clear_rules``, ``name`` as given here).

Exit codes: 0 after Ctrl+C/SIGTERM, 1 when the proxy cannot start, a rule file is refused or
the proxy process dies while serving, 2 for bad command-line arguments.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from chaosgenesys.commands.arguments import port

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``proxy`` sub-command to the ``chaosgenesys`` parser."""
    proxy = commands.add_parser(
        "proxy",
        help="run the fault-injecting proxy in front of a desktop until interrupted",
        description="Run the fault-injecting proxy (mitmproxy with chaosgenesys rules) until "
        "Ctrl+C, with rules from files; print how to point a desktop at it. On exit the proxy "
        "is stopped and its fault record removed.",
    )
    proxy.add_argument("--name", default="desktop", help="proxy name (default %(default)s)")
    proxy.add_argument(
        "--port",
        type=port,
        default=8080,
        help="port to listen on, 0 for a free one (default %(default)s)",
    )
    proxy.add_argument(
        "--listen-host", default="127.0.0.1", help="address to listen on (default %(default)s)"
    )
    proxy.add_argument(
        "--mode",
        default="regular",
        help="regular (an HTTP(S) forward proxy, default), reverse:URL (in front of one host, "
        "e.g. reverse:http://127.0.0.1:8765), upstream:URL (chained to another proxy) or socks5",
    )
    proxy.add_argument(
        "--rules",
        action="append",
        default=[],
        metavar="FILE",
        help="rules in the proxy's own format (docs/proxy.md): a JSON or YAML list of rule "
        'objects, or {"rules": [...]}; may be repeated',
    )
    proxy.add_argument(
        "--fiddler",
        action="append",
        default=[],
        metavar="FILE",
        help="Fiddler AutoResponder rules (.farx export or JSON); may be repeated",
    )
    proxy.add_argument(
        "--confdir", default="", help="mitmproxy's folder, with its CA (default ~/.mitmproxy)"
    )
    proxy.add_argument(
        "--ignore-host",
        action="append",
        default=[],
        metavar="REGEX",
        help="hosts passed through untouched (no interception, no rules); may be repeated",
    )
    proxy.add_argument(
        "--no-verify-upstream",
        action="store_true",
        help="do not verify the upstream servers' certificates",
    )
    proxy.add_argument(
        "--upstream-ca", default="", metavar="FILE", help="a PEM bundle of CAs to trust upstream"
    )
    proxy.add_argument(
        "--json", action="store_true", help="print the connection details as one JSON line"
    )
    proxy.set_defaults(handler=_serve_proxy)


def _fail(message: str) -> int:
    print(f"chaosgenesys proxy: {message}", file=sys.stderr, flush=True)
    return 1


def _read_rules(path: str) -> list[dict[str, Any]]:
    """The rule objects of a ``--rules`` file, each checked; ValueError names file and rule."""
    from chaosgenesys.proxy.rules import RuleError, parse_rule

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
    except OSError as error:
        raise ValueError(f"--rules {path!r} cannot be read: {error.strerror or error}") from None
    try:
        if path.endswith((".yaml", ".yml")):
            import yaml

            loaded = yaml.safe_load(text)
        else:
            loaded = json.loads(text)
    except ValueError as error:  # yaml.YAMLError is not a ValueError: caught below
        raise ValueError(f"--rules {path!r} is not valid JSON: {error}") from None
    except Exception as error:
        raise ValueError(f"--rules {path!r} is not valid YAML: {error}") from None
    if isinstance(loaded, dict) and "rules" in loaded:
        loaded = loaded["rules"]
    if not isinstance(loaded, list) or not loaded:
        raise ValueError(
            f'--rules {path!r} must hold a non-empty list of rule objects (or {{"rules": [...]}})'
        )
    for index, rule in enumerate(loaded):
        try:
            parse_rule(rule)
        except RuleError as error:
            raise ValueError(f"--rules {path!r}: rules[{index}]: {error}") from None
    return [dict(rule) for rule in loaded]


def _read_fiddler(path: str) -> list[dict[str, Any]]:
    """The rules of a ``--fiddler`` file, converted to the proxy's format and checked."""
    from chaosgenesys.proxy.fiddler import from_fiddler, read_fiddler_file
    from chaosgenesys.proxy.rules import RuleError

    try:
        converted = from_fiddler(read_fiddler_file(path))
    except RuleError as error:
        raise ValueError(f"--fiddler {path!r}: {error}") from None
    if not converted:
        raise ValueError(f"--fiddler {path!r} holds no enabled rule")
    return converted


def _serve_proxy(args: argparse.Namespace) -> int:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.proxy import actions, control

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):  # before anything starts: never orphaned
        signal.signal(signum, lambda *_: stop.set())
    rules: list[dict[str, Any]] = []
    try:
        for path in args.rules:
            rules += _read_rules(path)
        for path in args.fiddler:
            rules += _read_fiddler(path)
    except ValueError as error:
        return _fail(str(error))
    try:
        info = actions.start_proxy(
            name=args.name,
            port=args.port,
            mode=args.mode,
            listen_host=args.listen_host,
            confdir=args.confdir,
            ignore_hosts=list(args.ignore_host),
            verify_upstream=not args.no_verify_upstream,
            upstream_ca=args.upstream_ca,
        )
    except ActivityFailed as error:
        return _fail(str(error))
    code = 0
    try:
        added = actions.add_rules(rules, name=args.name)["added"] if rules else []
        details = _details(info, args, added)
        print(json.dumps(details) if args.json else _describe(details), flush=True)
        while not stop.wait(0.5):
            fault = control.find(args.name)
            if fault is None or not control.alive(fault.spec):
                code = _fail(f"the proxy {args.name!r} stopped by itself")
                break
    except ActivityFailed as error:
        code = _fail(str(error))
    finally:
        final = actions.stop_proxy(args.name)
    stats = final.get("stats") or {}
    if stats and not args.json:
        print(
            f"chaosgenesys proxy {args.name!r} stopped: {stats.get('requests', 0)} request(s), "
            f"{stats.get('faulted_requests', 0)} faulted; its fault record is removed",
            flush=True,
        )
    return code


def _details(info: dict[str, Any], args: argparse.Namespace, added: list[Any]) -> dict[str, Any]:
    mode = str(info["mode"])
    tls_upstream = mode.startswith(("reverse:https", "reverse:wss"))
    intercepts = not mode.startswith("reverse:") or tls_upstream
    return {
        "name": info["name"],
        "mode": mode,
        "proxy_url": info["proxy_url"],
        "port": info["port"],
        "listen_host": info["listen_host"],
        "tls_interception": intercepts,
        "ca_cert": info["ca_cert"] if intercepts else None,
        "pid": info["pid"],
        "fault_id": info["fault_id"],
        "rules": [_summary(rule) for rule in added],
    }


def _summary(rule: dict[str, Any]) -> dict[str, Any]:
    keys = ("id", "action", "method", "host", "path", "url", "status", "delay_ms")
    return {key: rule[key] for key in keys if rule.get(key) not in (None, "")}


def _describe(details: dict[str, Any]) -> str:
    url, mode, name = details["proxy_url"], details["mode"], details["name"]
    address = url.removeprefix("http://")
    lines = [
        f"chaosgenesys proxy {name!r} ({mode}) listening on {url}",
        "  point the desktop at it:",
    ]
    if mode.startswith("reverse:"):
        lines += [
            f"    use {url} as the API base URL (genesys_api_url) instead of "
            f"{mode.removeprefix('reverse:')}",
        ]
    elif mode == "socks5":
        lines += [f"    set the SOCKS5 proxy of the browser or the OS to {address}"]
    else:
        lines += [
            f"    set the HTTP and HTTPS proxy of the browser or the OS to {address}",
            f"    (Chrome or Edge: --proxy-server={url}; the Genesys Cloud desktop app: "
            "its proxy setting, or the OS's)",
        ]
    if details["tls_interception"]:
        lines += [
            "  TLS interception is on: trust mitmproxy's CA on the desktop's machine:",
            f"    {details['ca_cert']}",
            "    (or browse to http://mitm.it through the proxy); --ignore-host REGEX "
            "passes a host through untouched",
        ]
    if details["rules"]:
        lines.append(f"  rules ({len(details['rules'])}):")
        for rule in details["rules"]:
            what = ", ".join(f"{k} {v}" for k, v in rule.items() if k != "id")
            lines.append(f"    {rule['id']}: {what}")
    else:
        lines.append("  no rules yet: requests pass through unchanged")
    lines += [
        f"  change rules while it runs: chaosgenesys.proxy.actions add_rules / clear_rules "
        f"with name {name!r}",
        f"  fault record {details['fault_id']}: if this command is killed, the guardian (or "
        "`chaosgenesys cleanup`) stops the proxy",
        "Press Ctrl+C to stop (the proxy is stopped and its record removed).",
    ]
    return "\n".join(lines)
