"""The ``chaosgenesys`` command.

``chaosgenesys sandbox --seed examples/seed.yaml --port 8765`` serves the embedded Genesys Cloud
sandbox until interrupted and prints what an experiment needs to reach it: the base URL, the
seeded OAuth client id (never its secret) and the ids of the seeded users and queues.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from chaosgenesys import __version__

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``chaosgenesys`` console script; returns the exit code."""
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    handler: Any = args.handler
    return int(handler(args))


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="chaosgenesys",
        description="Chaos engineering for the Genesys Cloud agent desktop.",
    )
    parser.add_argument("--version", action="version", version=f"chaosgenesys {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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
        type=_port,
        default=8765,
        help="port to bind, 0 for a free one (default %(default)s)",
    )
    sandbox.add_argument(
        "--heartbeat-interval",
        type=_positive_float,
        default=30.0,
        metavar="SECONDS",
        help="notification heartbeat interval (default %(default)s)",
    )
    sandbox.add_argument(
        "--rate-limit",
        type=_non_negative_int,
        default=300,
        metavar="PER_MINUTE",
        help="API requests per minute per token, 0 for no limit (default %(default)s)",
    )
    sandbox.add_argument(
        "--json", action="store_true", help="print the connection details as one JSON line"
    )
    sandbox.set_defaults(handler=_serve_sandbox)
    return parser


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


def _port(value: str) -> int:
    port = _non_negative_int(value)
    if port > 65535:
        raise argparse.ArgumentTypeError(f"port must be 0-65535, got {value}")
    return port


def _non_negative_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {value}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {value}")
    return number


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
