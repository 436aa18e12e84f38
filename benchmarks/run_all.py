"""Run every benchmark, one after the other, and summarise their verdicts.

``.venv/bin/python benchmarks/run_all.py [--quick]``: each benchmark runs as its own process
(with ``--quick`` when given), its table is printed as it comes, and a summary follows: per
benchmark, how many figures PASS, MISS or have no goal, or that it could not measure. Exits 0
whatever the figures say (benchmarks report, they do not fail the build), 1 if a benchmark could
not run at all.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
#: Every script beside this one, except helpers (``_*.py``): a new benchmark needs no registration.
BENCHMARKS = sorted(
    p.name for p in HERE.glob("*.py") if not p.name.startswith("_") and p.name != "run_all.py"
)
#: No benchmark may run longer than this (they finish in a few minutes at most).
TIMEOUT = 900


def run_one(name: str, quick: bool) -> tuple[int, dict[str, Any] | None, float]:
    """Run one benchmark with ``--json``; echo its output; return (exit code, figures, seconds)."""
    command = [sys.executable, str(HERE / name), "--json"] + (["--quick"] if quick else [])
    started = time.monotonic()
    try:
        completed = subprocess.run(
            command, cwd=HERE.parent, capture_output=True, text=True, timeout=TIMEOUT
        )
    except subprocess.TimeoutExpired:
        print(f"{name}: still running after {TIMEOUT} s, stopped", file=sys.stderr)
        return 1, None, time.monotonic() - started
    elapsed = time.monotonic() - started
    result: dict[str, Any] | None = None
    for line in completed.stdout.splitlines():
        if line.startswith('{"benchmark"'):
            result = json.loads(line)
        else:
            print(line)
    if completed.stderr.strip():
        print(completed.stderr.rstrip(), file=sys.stderr)
    sys.stdout.flush()
    return completed.returncode, result, elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="pass --quick to every benchmark")
    args = parser.parse_args()
    summary: list[str] = []
    failed = False
    for name in BENCHMARKS:
        code, result, elapsed = run_one(name, args.quick)
        if code != 0 or result is None:
            failed = True
            summary.append(f"{name:<24} could not measure (exit {code}, {elapsed:.0f} s)")
            continue
        verdicts = [figure["verdict"] for figure in result["figures"]]
        misses = [f["name"] for f in result["figures"] if f["verdict"] == "MISS"]
        line = (
            f"{name:<24} {verdicts.count('PASS')} PASS, {verdicts.count('MISS')} MISS, "
            f"{verdicts.count('info')} info ({elapsed:.0f} s)"
        )
        if misses:
            line += "; MISS: " + "; ".join(misses)
        summary.append(line)
    print("\n== summary ==")
    for line in summary:
        print(line)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
