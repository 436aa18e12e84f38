"""How long ``chaosgenesys report`` takes on the journal of a 10-minute run with 50 agents.

Issue 11's goal: **at most 3 s**. A real journal first: ``examples/websocket-close.json`` run
with ``chaos run`` (a synthetic desktop, an external observer, the kill switch, about 15 s).
Then that journal grown to the goal's size, as a 10-minute run with 50 agents would leave it:
its desktop's socket timeline (reconnects, off-queue stretches) copied to 50 desktops over 10
minutes, its observer's presence timeline to 50 users, a latency bucket per second per source.
What a user runs, ``chaosgenesys report`` (a new process each time), N times, beside its anchor
``chaosgenesys verdict`` on the same journal (the process start and the journal read without
the drawing); and ``write_report`` N times in a warm process after one warm-up (the first call
pays matplotlib's import, reported apart).

    .venv/bin/python benchmarks/report_render.py [--quick] [--json]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from _common import ROOT, VENV_BIN, BenchmarkError, Figure, median, parse_args, report, run_main

AGENT = "0b6b3c5e-0000-4000-8000-000000000001"


def _real_journal(folder: Path) -> Path:
    journal = folder / "journal.json"
    done = subprocess.run(
        [str(VENV_BIN / "chaos"), "--no-version-check", "--log-file", str(folder / "log"),
         "run", "--journal-path", str(journal), "examples/websocket-close.json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(folder / "runtime")},
    )
    if done.returncode != 0 or not journal.exists():
        raise BenchmarkError(f"the example did not run: {done.stdout[-800:]}{done.stderr[-800:]}")
    return journal


def _grown(journal: dict[str, Any], agents: int = 50, seconds: int = 600) -> dict[str, Any]:
    from chaosgenesys.results.journal import parse_time

    start = parse_time(journal["start"])
    if start is None:
        raise BenchmarkError("the journal has no start time")
    journal["duration"] = float(seconds)
    journal["end"] = datetime.fromtimestamp(start + seconds, UTC).isoformat()
    verdict = next(e for e in journal["experiment"]["extensions"]
                   if e["name"] == "chaosgenesys-verdict")
    desktops = verdict["desktops"]
    one = desktops["synthetic"][AGENT]
    rounds = seconds // 60
    grown = {}
    for index in range(agents):
        shifted = dict(one)
        shifted["recent_reconnects"] = [[at + 60 * k + index, ms]
                                        for at, ms in one["recent_reconnects"]
                                        for k in range(rounds)]
        shifted["off_queue_stretches"] = [[a + 60 * k + index, (b or a + 5) + 60 * k + index]
                                          for a, b in one["off_queue_stretches"]
                                          for k in range(rounds)]
        grown[f"{AGENT[:-3]}{index:03d}"] = shifted
    desktops["synthetic"] = grown
    for source, points in desktops["api_latency"]["sources"].items():
        desktops["api_latency"]["sources"][source] = [
            [int(start) + second, points[second % len(points)][1] * (1 + second % 7), 3, 0]
            for second in range(seconds)
        ]
    watch = next(r for r in journal["run"]
                 if r["activity"]["provider"].get("func") == "watch_events")
    seen = watch["output"]["users"][AGENT]
    watch["output"]["users"] = {f"{AGENT[:-3]}{index:03d}": seen for index in range(agents)}
    return journal


def _body() -> None:
    args = parse_args(__doc__.splitlines()[0], sys.argv[1:])
    rounds = 3 if args.quick else 7
    from chaosgenesys.results.journal import load_journal

    with tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-") as tmp:
        folder = Path(tmp)
        journal = _grown(load_journal(_real_journal(folder)))
        begun = time.perf_counter()
        from chaosgenesys.results.report import write_report

        write_report(journal, folder / "warm.html")
        first = time.perf_counter() - begun
        timings = []
        for index in range(rounds):
            begun = time.perf_counter()
            write_report(journal, folder / f"report-{index}.html")
            timings.append(time.perf_counter() - begun)
        command = str(VENV_BIN / "chaosgenesys")
        saved = folder / "grown.json"
        saved.write_text(json.dumps(journal))
        cold, anchor = [], []
        for index in range(rounds):  # what a user runs: a new process each time
            begun = time.perf_counter()
            done = subprocess.run([command, "report", str(saved), "-o",
                                   str(folder / f"cmd-{index}.html")],
                                  capture_output=True, text=True, timeout=120)
            cold.append(time.perf_counter() - begun)
            if done.returncode != 0:
                raise BenchmarkError(f"chaosgenesys report failed: {done.stderr[-800:]}")
            begun = time.perf_counter()
            subprocess.run([command, "verdict", str(saved)], capture_output=True, text=True,
                           timeout=120)
            anchor.append(time.perf_counter() - begun)
        size = (folder / "report-0.html").stat().st_size
        png = (folder / "report-0.png").stat().st_size
    report(
        "chaosgenesys report: a 10-minute run with 50 agents",
        [
            Figure("chaosgenesys report (the command, a new process), median", median(cold),
                   "s", "<= 3 s", median(cold) <= 3.0),
            Figure("chaosgenesys verdict on the same journal (anchor: start-up, reading)",
                   median(anchor), "s"),
            Figure("report written in a warm process (HTML + PNG), median", median(timings),
                   "s"),
            Figure("report written, slowest", max(timings), "s"),
            Figure("first report in a process (matplotlib's import included)", first, "s"),
            Figure("HTML size", round(size / 1024), "KiB"),
            Figure("PNG size", round(png / 1024), "KiB"),
        ],
        [f"{rounds} rounds after one warm-up; the journal of a real run of "
         "examples/websocket-close.json grown to 50 desktops over 10 minutes"],
        as_json=args.json,
    )


if __name__ == "__main__":
    sys.exit(run_main(_body))
