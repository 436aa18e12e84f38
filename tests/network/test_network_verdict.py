"""``examples/network-latency-loss.yaml`` on this machine's kernel: its verdict matches what the
kernel could do.

Without sch_netem (this project's machines) the injection fails, nothing is degraded and the
hypothesis holds: Chaos Toolkit alone calls that ``completed``, exit 0. With the verdict control
the run ends ``failed``, exit 1, naming the action that never applied and why. On a kernel that
has netem the same run applies the fault and the verdict control leaves it alone. Either way
the test runs and asserts: no skip.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.network.conftest import netem_available

ROOT = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).with_name("chaos"))


@pytest.mark.timeout(240)
def test_the_netem_example_fails_where_netem_cannot_apply(tmp_path: Path) -> None:
    lab = "v" + os.urandom(4).hex()
    journal_path = tmp_path / "journal.json"
    log = tmp_path / "chaostoolkit.log"
    done = subprocess.run(
        [CHAOS, "--no-version-check", "--log-file", str(log), "run",
         "--journal-path", str(journal_path), "--var", f"lab_name={lab}",
         "examples/network-latency-loss.yaml"],
        cwd=ROOT, capture_output=True, text=True, timeout=200,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")},
    )  # fmt: skip
    journal = json.loads(journal_path.read_text())
    text = log.read_text()
    name = "degrade-the-link-to-genesys"
    [degrade] = [r for r in journal["run"] if r["activity"]["name"] == name]
    verdict = next(
        e for e in journal["experiment"]["extensions"] if e["name"] == "chaosgenesys-verdict"
    )
    if netem_available():
        assert degrade["status"] == "succeeded", text[-3000:]
        assert not [a for a in verdict["failed_actions"] if a["name"] == name]
        return
    assert degrade["status"] == "failed"
    assert done.returncode == 1, text[-3000:]
    assert journal["status"] == "failed"
    failed = {a["name"]: a for a in verdict["failed_actions"]}
    assert name in failed, verdict
    assert "sch_netem" in failed[name]["error"]
    assert "the run FAILED" in text
    assert not Path(f"/run/netns/{lab}-a").exists()
