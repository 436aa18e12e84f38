"""The ``chaosgenesys`` command, run as a user runs it."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
CLI = str(Path(sys.executable).with_name("chaosgenesys"))


def test_sandbox_command_serves_the_seed_and_stops_on_sigterm() -> None:
    process = subprocess.Popen(
        [CLI, "sandbox", "--seed", "examples/seed.yaml", "--port", "0", "--json"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        details = json.loads(process.stdout.readline())
        assert details["url"].startswith("http://127.0.0.1:")
        assert details["client_id"] == "chaos-client"
        ids = {user["id"] for user in details["users"]}
        assert "0b6b3c5e-0000-4000-8000-000000000001" in ids
        assert details["queues"][0]["id"] == "7c1d2a90-0000-4000-8000-0000000000aa"
        # The API really answers there.
        token = requests.post(
            details["url"] + "/oauth/token",
            auth=("chaos-client", "chaos-secret"),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        assert token.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    assert "chaos-secret" not in out + err


def test_sandbox_command_prints_a_readable_summary() -> None:
    process = subprocess.Popen(
        [CLI, "sandbox", "--seed", "examples/seed.yaml", "--port", "0"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        lines = [process.stdout.readline()]
        assert lines[0].startswith("chaosgenesys sandbox listening on http://127.0.0.1:")
        while not lines[-1].startswith("Press Ctrl+C"):
            lines.append(process.stdout.readline())
            assert lines[-1], "the summary ended early: " + "".join(lines)
    finally:
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    assert process.returncode == 0, err
    summary = "".join(lines)
    assert "chaos-client" in summary
    assert "0b6b3c5e-0000-4000-8000-000000000001" in summary
    assert "chaos-secret" not in summary + err


def test_bad_seed_is_reported_by_name_without_a_traceback(tmp_path: Path) -> None:
    seed = tmp_path / "seed.yaml"
    seed.write_text("users:\n  - id: u1\n    presense: On Queue\n")
    result = subprocess.run(
        [CLI, "sandbox", "--seed", str(seed), "--port", "0"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "presense" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("argument", ["--duration", "--ready-allowance"])
@pytest.mark.parametrize("value", ["-1", "nan", "soon"])
def test_a_bad_agent_duration_is_refused_by_name(argument: str, value: str) -> None:
    result = subprocess.run(
        [CLI, "agent", "--user", "u1", argument, value], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2, result.stderr
    assert argument in result.stderr and value in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_port_is_refused() -> None:
    result = subprocess.run(
        [CLI, "sandbox", "--port", "70000"], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 2
    assert "70000" in result.stderr
