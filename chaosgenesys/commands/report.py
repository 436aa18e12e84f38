"""``chaosgenesys report journal.json [-o report.html]``: a run at a glance, for a person.

Writes one self-contained HTML file (its CSS and the timeline as SVG inline: it opens offline)
and the timeline as a PNG next to it (``report.png`` for ``report.html``: a CI artifact, a chat
message). The timeline shows the faults' windows, the protocol's phases, the steady-state checks
before and after, each agent's presence and routing status and its desktop's WebSocket, and the
API latency against the kill switch's p99 limit; the verdict is ``chaosgenesys verdict``'s.
docs/report.md says what each part comes from. Needs matplotlib (``chaosgenesys[report]``).

Exit code: 0 when the report was written, 1 when it could not be (the output's folder missing
or not writable, matplotlib missing), 2 when the file is not a journal.
"""

from __future__ import annotations

import sys
from typing import Any

__all__ = ["register"]


def register(commands: Any) -> None:
    """Add the ``report`` sub-command to the ``chaosgenesys`` parser."""
    parser = commands.add_parser(
        "report",
        help="a run's report: one offline HTML file with its timeline, and a PNG",
        description="Write a run's report from the journal chaos run wrote: one HTML file that "
        "opens offline (the timeline inline as SVG: faults, protocol phases, steady-state "
        "checks, each agent's presence, routing status and WebSocket, the API latency against "
        "the kill switch's p99 limit; the verdict) and the timeline as a PNG next to it. "
        "Exits 0 when written, 1 when it could not be written, 2 when the file is not a "
        "journal.",
    )
    parser.add_argument("journal", help="the journal (chaos run --journal-path)")
    parser.add_argument("-o", "--output", default="report.html",
                        help="the HTML file to write (default: report.html); the PNG goes "
                        "next to it with the same name and .png")
    parser.set_defaults(handler=_report)


def _report(args: Any) -> int:
    from chaosgenesys.results.journal import JournalError, load_journal
    from chaosgenesys.results.report import ReportError, write_report

    try:
        journal = load_journal(args.journal)
    except JournalError as error:
        print(f"chaosgenesys report: {error}", file=sys.stderr)
        return 2
    try:
        written = write_report(journal, args.output)
    except ReportError as error:
        print(f"chaosgenesys report: {error}", file=sys.stderr)
        return 1
    print(f"{'PASSED' if written['passed'] else 'FAILED'}: report {written['html']}, "
          f"timeline {written['png']} ({written['seconds']} s)")
    for item in written["missing"]:
        print(f"  not in the journal: {item}")
    return 0
