"""A network-lab control with bad arguments stops ``chaos run`` before any activity.

Chaos Toolkit only logs (at DEBUG) what a control's ``configure_control`` raises, and runs on:
the run used to complete without its lab, measuring nothing. The control keeps the reason and
its ``before_experiment_control`` interrupts the run, as the sandbox control does.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
CHAOS = str(Path(sys.executable).with_name("chaos"))


def _run(tmp_path: Path, arguments: dict[str, Any]) -> tuple[int, dict[str, Any], str]:
    experiment = {
        "title": "a lab with bad arguments",
        "description": "the lab control must refuse them and the run must not go on without it",
        "controls": [
            {
                "name": "network-lab",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.network.control",
                    "arguments": arguments,
                },
            }
        ],
        "method": [
            {
                "type": "probe",
                "name": "runs-only-with-a-lab",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.network.probes",
                    "func": "list_faults",
                },
            }
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    log, journal = tmp_path / "chaostoolkit.log", tmp_path / "journal.json"
    env = {**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")}
    result = subprocess.run(
        [CHAOS, "--no-version-check", "--log-file", str(log), "run", "--journal-path",
         str(journal), str(path)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return result.returncode, json.loads(journal.read_text()), log.read_text()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"name": "Bad_Name"}, "name must be 1-12 lower-case letters/digits, got 'Bad_Name'"),
        (
            {"name": "cgbadports", "udp_ports": ["abc"]},
            "udp_ports must hold port numbers (1-65535), got 'abc' at index 0",
        ),
        ({"name": "cgbadedge", "edge_port": 70000}, "edge_port must be a port number"),
    ],
)
def test_bad_lab_arguments_interrupt_the_run(
    tmp_path: Path, arguments: dict[str, Any], message: str
) -> None:
    code, journal, log = _run(tmp_path, arguments)
    assert code != 0
    assert journal["status"] == "interrupted"
    assert journal["run"] == []
    assert "the network lab was not created" in log
    assert message in log
    name = str(arguments["name"])
    assert not Path(f"/run/netns/{name}-a").exists()
    assert not Path(f"/run/netns/{name}-b").exists()
