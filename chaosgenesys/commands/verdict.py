"""``chaosgenesys verdict journal.json``: the verdict of a run in a few lines (or ``--json``).

Reads any Chaos Toolkit journal; with chaosgenesys' controls declared it also has the
desktops' figures, the faults' windows, the protocol's phases and the controls' decisions.
Exit code: 0 when the run completed without deviating, 1 when it did not, 2 when the file is
not a journal.
"""

from __future__ import annotations

import json
import sys
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``verdict`` sub-command to the ``chaosgenesys`` parser."""
    parser = commands.add_parser(
        "verdict",
        help="the verdict of a run, read from its journal",
        description="Print the verdict of a run from the journal chaos run wrote: status, the "
        "probes that deviated with what they observed, failed actions, each fault's window, "
        "the desktops' figures, the protocol's phases, the controls' decisions. Exits 0 when "
        "the run completed without deviating, 1 otherwise, 2 when the file is not a journal.",
    )
    parser.add_argument("journal", help="the journal (chaos run --journal-path)")
    parser.add_argument("--json", action="store_true", help="print one JSON document")
    parser.set_defaults(handler=_verdict)


def _verdict(args: Any) -> int:
    from chaosgenesys.results.journal import JournalError, load_journal
    from chaosgenesys.results.verdict import render, summarize

    try:
        journal = load_journal(args.journal)
    except JournalError as error:
        print(f"chaosgenesys verdict: {error}", file=sys.stderr)
        return 2
    summary = summarize(journal)
    print(json.dumps(summary, indent=1, default=str) if args.json else render(summary))
    return 0 if summary["passed"] else 1
