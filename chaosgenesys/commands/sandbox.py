"""``chaosgenesys sandbox``: serve the embedded Genesys Cloud sandbox until interrupted."""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from typing import Any

from chaosgenesys.commands.arguments import non_negative_int, port, positive_float

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``sandbox`` sub-command to the ``chaosgenesys`` parser."""
    sandbox = commands.add_parser(
        "sandbox",
        help="serve the embedded Genesys Cloud sandbox until interrupted",
        description="Serve the embedded Genesys Cloud sandbox (OAuth, users, presence, "
        "routing, conversations, queues, notifications) on one loopback port.",
    )
    sandbox.add_argument("--seed", metavar="FILE", help="seed file (YAML or JSON)")
    sandbox.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default %(default)s)"
    )
    sandbox.add_argument(
        "--port",
        type=port,
        default=8765,
        help="port to bind, 0 for a free one (default %(default)s)",
    )
    sandbox.add_argument(
        "--heartbeat-interval",
        type=positive_float,
        default=30.0,
        metavar="SECONDS",
        help="notification heartbeat interval (default %(default)s)",
    )
    sandbox.add_argument(
        "--rate-limit",
        type=non_negative_int,
        default=300,
        metavar="PER_MINUTE",
        help="API requests per minute per token, 0 for no limit (default %(default)s)",
    )
    sandbox.add_argument(
        "--json", action="store_true", help="print the connection details as one JSON line"
    )
    sandbox.set_defaults(handler=_serve_sandbox)


def _serve_sandbox(args: argparse.Namespace) -> int:
    from chaosgenesys.sandbox import Sandbox

    try:
        sandbox = Sandbox(
            seed=args.seed,
            host=args.host,
            port=args.port,
            heartbeat_interval=args.heartbeat_interval,
            rate_limit_per_minute=args.rate_limit,
        )
        sandbox.start()
    except Exception as error:  # a bad seed or a port in use: say it, no traceback
        print(f"chaosgenesys sandbox: {error}", file=sys.stderr)
        return 1

    stop = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stop.set())
    try:
        details = _connection_details(sandbox)
        if args.json:
            print(json.dumps(details), flush=True)
        else:
            print(_describe(details), flush=True)
        stop.wait()
    finally:
        sandbox.stop()
    return 0


def _connection_details(sandbox: Any) -> dict[str, Any]:
    snapshot = sandbox.snapshot()
    return {
        "url": sandbox.url,
        "client_id": sandbox.client_id,
        "users": [
            {"id": user["id"], "name": user.get("name"), "presence": user.get("presence")}
            for user in snapshot.get("users", [])
        ],
        "queues": [
            {"id": queue["id"], "name": queue.get("name"), "members": queue.get("members", [])}
            for queue in snapshot.get("queues", [])
        ],
    }


def _describe(details: dict[str, Any]) -> str:
    lines = [
        f"chaosgenesys sandbox listening on {details['url']}",
        f"  OAuth client id: {details['client_id']} (secret: as in the seed, not printed)",
        "  users:",
        *(f"    {u['id']}  {u['name']}  ({u['presence']})" for u in details["users"]),
        "  queues:",
        *(f"    {q['id']}  {q['name']}  members: {len(q['members'])}" for q in details["queues"]),
        "  experiment configuration:",
        f'    "genesys_api_url": "{details["url"]}", "genesys_login_url": "{details["url"]}"',
        "  admin surface: " + details["url"] + "/sandbox/v1/state",
        "Press Ctrl+C to stop.",
    ]
    return "\n".join(lines)
