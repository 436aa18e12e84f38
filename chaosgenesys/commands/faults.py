"""``chaosgenesys status`` and ``chaosgenesys cleanup``: the fault registry from the shell.

``status`` lists every fault recorded and not yet reverted (with its owner process, the time
left to its deadline and, for a fault whose reverts failed, how often and why) and any
unreadable record file; ``cleanup`` reverts them all, every run's (or one kind), newest first,
and exits 1 if any could not be reverted. A fault given up after repeated failed reverts is not
retried unless ``--retry``; ``--forget ID`` drops a record without reverting it (once it has
been checked by hand).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``status`` and ``cleanup`` sub-commands to the ``chaosgenesys`` parser."""
    status = commands.add_parser(
        "status",
        help="list the faults recorded and not yet reverted",
        description="List every fault in the registry: id, kind, owner process (alive or "
        "gone), time left to its deadline, description; and any unreadable record file.",
    )
    _common(status)
    status.add_argument("--json", action="store_true", help="print one JSON document")
    status.set_defaults(handler=_status)

    cleanup = commands.add_parser(
        "cleanup",
        help="revert every recorded fault",
        description="Revert every recorded fault (newest first), whichever run recorded it, or "
        "only those of one kind. Exits 1 if any fault could not be reverted (it stays "
        "recorded). A fault given up after repeated failed reverts is listed, not retried, "
        "unless --retry.",
    )
    _common(cleanup)
    cleanup.add_argument(
        "--kind",
        help="only faults of this kind (netem, throttle, nft-loss, blackhole, nft-reject, "
        "proxy, agents, test-network, browser-fault, browser-observer: the kinds "
        "`chaosgenesys status` lists)",
    )
    cleanup.add_argument(
        "--retry", action="store_true", help="retry faults given up after failed reverts too"
    )
    cleanup.add_argument(
        "--forget",
        metavar="ID",
        action="append",
        default=[],
        help="drop this record without reverting it (after checking the fault by hand); "
        "repeatable",
    )
    cleanup.add_argument("--json", action="store_true", help="print the results as JSON")
    cleanup.set_defaults(handler=_cleanup)


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help="registry directory (default: $CHAOSGENESYS_RUNTIME_DIR, /run/chaosgenesys, "
        "$XDG_RUNTIME_DIR/chaosgenesys or /tmp/chaosgenesys-<uid>)",
    )


def _status(args: argparse.Namespace) -> int:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.faults.registry import Registry

    registry = Registry(args.dir)
    try:
        faults, corrupt = registry.scan()
        guardian = registry.guardian_pid() if registry.directory.is_dir() else None
    except ActivityFailed as error:
        print(f"chaosgenesys status: {error}", file=sys.stderr)
        return 1
    now = time.time()
    rows = []
    for fault in faults:
        entry = fault.to_dict()
        entry["owner_alive"] = fault.owner_alive()
        entry["remaining"] = fault.remaining(now)
        rows.append(entry)
    if args.json:
        print(
            json.dumps(
                {
                    "directory": str(registry.directory),
                    "guardian_pid": guardian,
                    "faults": rows,
                    "corrupt": [bad.to_dict() for bad in corrupt],
                }
            )
        )
        return 0
    print(f"registry: {registry.directory}")
    if guardian is None and registry.guardian_starting():
        guardian = 0
    if guardian is None:
        if not rows:
            note = " (none needed)"
        elif all(entry["given_up"] for entry in rows):
            note = " (only given-up faults left: check them by hand, then cleanup --forget ID)"
        else:
            note = " (faults are not watched: run cleanup)"
        print(f"guardian: not running{note}")
    else:
        print(f"guardian: pid {guardian}" if guardian else "guardian: starting")
    if not rows and not corrupt:
        print("no active faults")
        return 0
    table = [("ID", "KIND", "OWNER", "DEADLINE", "DESCRIPTION")]
    for entry in rows:
        owner = f"{entry['owner_pid']} {'alive' if entry['owner_alive'] else 'gone'}"
        description = entry["description"]
        if entry["given_up"]:
            description += (
                f" [FAILED: given up after {entry['failures']} failed reverts: "
                f"{entry['last_error']}]"
            )
        elif entry["failures"]:
            description += f" [revert failed {entry['failures']} time(s): {entry['last_error']}]"
        deadline = _deadline(entry["remaining"])
        table.append((entry["id"], entry["kind"], owner, deadline, description))
    for bad in corrupt:
        table.append((bad.id, "?", "?", "?", f"UNREADABLE {bad.path}: {bad.error}"))
    widths = [max(len(str(row[column])) for row in table) for column in range(4)]
    for row in table:
        cells = [str(cell).ljust(width) for cell, width in zip(row[:4], widths, strict=True)]
        print("  ".join([*cells, str(row[4])]).rstrip())
    return 0


def _deadline(remaining: float | None) -> str:
    if remaining is None:
        return "none"
    if remaining < 0:
        return f"overdue {-remaining:.1f} s"
    return f"in {remaining:.1f} s"


def _cleanup(args: argparse.Namespace) -> int:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.faults.registry import Registry

    registry = Registry(args.dir)
    try:
        for fault_id in args.forget:
            forgotten = registry.forget(fault_id)
            print(f"{'forgotten' if forgotten else 'not recorded'} {fault_id}")
        if args.forget:
            return 0
        results = registry.revert_all(args.kind or None, scope="all", retry_given_up=args.retry)
    except ActivityFailed as error:
        print(f"chaosgenesys cleanup: {error}", file=sys.stderr)
        return 1
    failed = [entry for entry in results if entry["status"] == "failed"]
    if args.json:
        print(json.dumps({"directory": str(registry.directory), "results": results}))
        return 1 if failed else 0
    if not results:
        print("nothing to clean up" + (f" (kind {args.kind})" if args.kind else ""))
        return 0
    for entry in results:
        if entry["status"] == "failed":
            print(f"FAILED    {entry['id']}: {entry['error']}", file=sys.stderr)
        else:
            label = "reverted" if entry["status"] == "reverted" else "gone"
            print(f"{label:<9} {entry['id']}  {entry['kind']}  {entry['description']}")
    done = len(results) - len(failed)
    summary = f"{done} of {len(results)} faults reverted"
    if failed:
        print(f"{summary}; {len(failed)} failed and stay recorded", file=sys.stderr)
        return 1
    print(summary)
    return 0
