"""``chaosgenesys doctor``: can the faults of this package run on this machine?

Prints one line per check (``ok``, ``FAIL`` with the reason and how to get it, or ``--`` when a
prerequisite failed) and exits 0 only when every selected check passed: a pipeline puts
``chaosgenesys doctor --only network`` in front of an experiment that needs network faults.
The network and socket checks apply each kind of fault for real in throwaway namespaces and
revert it (see :mod:`chaosgenesys.doctor`); they need root.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``doctor`` sub-command to the ``chaosgenesys`` parser."""
    from chaosgenesys.doctor import GROUPS

    doctor = commands.add_parser(
        "doctor",
        help="check what this machine can run (exit 1 if a selected check fails)",
        description="Check the Python environment, mitmproxy and, as root, every kind of "
        "network and socket fault (applied and reverted in throwaway network namespaces). "
        "Exits 0 when every selected check passed, 1 otherwise.",
    )
    doctor.add_argument(
        "--only",
        action="append",
        choices=GROUPS,
        metavar="GROUP",
        help=f"run only this group of checks (repeatable; groups: {', '.join(GROUPS)})",
    )
    doctor.add_argument("--json", action="store_true", help="print one JSON document")
    doctor.set_defaults(handler=_doctor)


_STATUS = {True: "ok", False: "FAIL", None: "--"}


def _doctor(arguments: argparse.Namespace) -> int:
    from chaosgenesys.doctor import GROUPS, run_checks

    checks = run_checks(arguments.only or GROUPS)
    passed = all(check.ok for check in checks)
    if arguments.json:
        print(json.dumps({"ok": passed, "checks": [c.to_dict() for c in checks]}, indent=1))
        return 0 if passed else 1
    width = max(len(check.name) for check in checks)
    group = ""
    for check in checks:
        if check.group != group:
            group = check.group
            print(f"{group}:")
        print(f"  {_STATUS[check.ok]:<4}  {check.name:<{width}}  {check.detail}")
        if not check.ok:
            print(f"  {'':<4}  {'':<{width}}  (needed for: {check.needed_for})")
    failed = sum(1 for check in checks if not check.ok)
    print(
        "every check passed"
        if passed
        else f"{failed} of {len(checks)} check(s) did not pass: what needs them will not run here"
    )
    return 0 if passed else 1
