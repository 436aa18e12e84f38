"""The ``chaosgenesys`` command.

``chaosgenesys sandbox --seed examples/seed.yaml --port 8765`` serves the embedded Genesys Cloud
sandbox until interrupted and prints what an experiment needs to reach it: the base URL, the
seeded OAuth client id (never its secret) and the ids of the seeded users and queues.
``chaosgenesys proxy --rules rules.json`` runs the fault-injecting proxy in front of a real
desktop until interrupted, and stops it (and forgets its fault record) on Ctrl+C.
Each sub-command lives in its own module under ``chaosgenesys.commands``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from typing import Any

from chaosgenesys import __version__
from chaosgenesys.commands import COMMAND_MODULES

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
    for module in COMMAND_MODULES:
        importlib.import_module(module).register(commands)
    return parser


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
