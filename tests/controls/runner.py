"""Run ``chaos run`` on an experiment written to a temporary folder, as a user does."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).with_name("chaos"))


@dataclass
class ChaosRun:
    """What one ``chaos run`` left: exit code, journal, log text and wall time."""

    returncode: int
    journal: dict[str, Any]
    log: str
    output: str
    seconds: float

    def activities(self) -> list[str]:
        """Names of the method activities that ran, in order."""
        return [run["activity"]["name"] for run in self.journal.get("run") or []]

    def extension(self, name: str) -> dict[str, Any]:
        """The journal's ``experiment.extensions`` entry named ``name``."""
        for entry in self.journal["experiment"].get("extensions") or []:
            if entry.get("name") == name:
                return dict(entry)
        raise AssertionError(f"no {name!r} extension in the journal: {self.log[-3000:]}")


def action(name: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
    """A Python action of an experiment, for the tests that write their experiments."""
    return {"type": "action", "name": name,
            "provider": {"type": "python", "module": module, "func": func,
                         "arguments": arguments}}


def chaos_run(experiment: dict[str, Any], tmp_path: Path, runtime: Path) -> ChaosRun:
    """``chaos run`` from the repository root with a log file and a runtime dir in ``tmp_path``."""
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment, indent=1), encoding="utf-8")
    journal_path = tmp_path / "journal.json"
    log_path = tmp_path / "chaostoolkit.log"
    env = {
        **os.environ,
        "CHAOSGENESYS_RUNTIME_DIR": str(runtime),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    start = time.monotonic()
    result = subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "--log-file",
            str(log_path),
            "run",
            "--journal-path",
            str(journal_path),
            str(path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    seconds = time.monotonic() - start
    log = log_path.read_text(encoding="utf-8") if log_path.exists() else ""
    assert journal_path.exists(), result.stdout + result.stderr + log
    return ChaosRun(
        returncode=result.returncode,
        journal=json.loads(journal_path.read_text(encoding="utf-8")),
        log=log,
        output=result.stdout + result.stderr,
        seconds=seconds,
    )
