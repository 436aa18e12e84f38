"""What a new Python process has loaded once it imported some modules: for the tests that keep a
heavy library out of an import (what a probe, an activity or a process started for one pays)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_by(modules: list[str], libraries: tuple[str, ...]) -> list[str]:
    """The modules of ``libraries`` (each a package or module name: itself and what is below
    it) that a new interpreter has loaded after ``import`` of each of ``modules``, sorted."""
    code = (
        f"import json, sys; import {', '.join(modules)}; "
        f"libraries = {list(libraries)!r}; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if any(m == l or m.startswith(l + '.') for l in libraries))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True,
        timeout=60,
    )
    found: list[str] = json.loads(out.stdout.strip().splitlines()[-1])
    return found
