"""The sandbox control starts one sandbox per experiment and always stops it."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest
import requests
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.controls import sandbox as control
from chaosgenesys.users import probes

ROOT = Path(__file__).resolve().parent.parent
AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"


def _port_is_open(url: str) -> bool:
    host, port = url.removeprefix("http://").split(":")
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, int(port))) == 0


def test_control_points_configuration_at_a_running_sandbox_and_stops_it() -> None:
    configuration: dict[str, Any] = {"genesys_api_url": "https://api.mypurecloud.ie"}
    control.configure_control(
        configuration=configuration, secrets={}, seed=str(ROOT / "examples/seed.yaml")
    )
    try:
        url = configuration["genesys_api_url"]
        assert url.startswith("http://127.0.0.1:")
        assert configuration["genesys_login_url"] == url
        # An activity with no secrets at all reaches the sandbox with the seeded client.
        assert probes.presence_is(AGENT_1, "On Queue", configuration=configuration) is True
    finally:
        control.after_experiment_control(context={}, state={})
    assert control.running_sandbox() is None
    assert not _port_is_open(url)
    control.cleanup_control()  # idempotent


def test_cleanup_control_stops_a_sandbox_left_by_an_interrupted_run() -> None:
    configuration: dict[str, Any] = {}
    control.configure_control(configuration=configuration, secrets={}, seed={"users": []})
    url = configuration["genesys_api_url"]
    assert requests.get(url + "/sandbox/v1/state", timeout=5).status_code == 200
    control.cleanup_control()
    assert control.running_sandbox() is None
    assert not _port_is_open(url)


def test_bad_port_is_refused_before_anything_starts() -> None:
    with pytest.raises(ActivityFailed, match="port"):
        control.configure_control(configuration={}, secrets={}, port=-1)
    assert control.running_sandbox() is None


def test_bad_seed_names_the_key() -> None:
    with pytest.raises(Exception, match="presense"):
        control.configure_control(
            configuration={}, secrets={}, seed={"users": [{"id": "u", "presense": "Away"}]}
        )
    assert control.running_sandbox() is None


def test_a_sandbox_that_cannot_start_stops_chaos_run_before_any_activity(tmp_path: Path) -> None:
    # chaoslib only logs (at debug level) what configure_control raises, and runs on.
    import json
    import subprocess
    import sys

    experiment = {
        "title": "a bad seed",
        "description": "the sandbox must refuse it and the run must not go on without it",
        "controls": [
            {
                "name": "genesys-sandbox",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.sandbox",
                    "arguments": {"seed": {"users": [{"id": "u", "presense": "Away"}]}},
                },
            }
        ],
        "method": [
            {
                "type": "probe",
                "name": "would-fail-without-a-sandbox",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.users.probes",
                    "func": "get_presence",
                    "arguments": {"user_id": "u"},
                },
            }
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    log, journal = tmp_path / "chaostoolkit.log", tmp_path / "journal.json"
    chaos = str(Path(sys.executable).with_name("chaos"))
    result = subprocess.run(
        [chaos, "--no-version-check", "--log-file", str(log), "run", "--journal-path",
         str(journal), str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    outcome = json.loads(journal.read_text())
    assert outcome["status"] == "interrupted"
    assert outcome["run"] == []
    text = log.read_text()
    assert "the Genesys sandbox did not start" in text and "presense" in text


def _validated(arguments: dict[str, Any], tmp_path: Path) -> Any:
    """``chaos validate`` of the smallest experiment with the control and ``arguments``."""
    import json
    import subprocess
    import sys

    experiment = {
        "title": "validate the sandbox control",
        "description": "its arguments are checked before any run",
        "configuration": {"grace": 1},
        "controls": [
            {
                "name": "genesys-sandbox",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.controls.sandbox",
                    "arguments": arguments,
                },
            }
        ],
        "method": [
            {
                "type": "probe",
                "name": "faults",
                "provider": {
                    "type": "python",
                    "module": "chaosgenesys.faults.probes",
                    "func": "active_faults",
                },
            }
        ],
    }
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(experiment))
    chaos = str(Path(sys.executable).with_name("chaos"))
    return subprocess.run(
        [chaos, "--no-version-check", "--log-file", str(tmp_path / "log"), "validate", str(path)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"session_grace_seconds": "two"}, "session_grace_seconds must be a number, got 'two'"),
        ({"heartbeat_interval": 0}, "heartbeat_interval must be greater than 0"),
        ({"renew_on_queue": "yes"}, "renew_on_queue must be true or false"),
        ({"port": 70000}, "port must be at most 65535"),
        ({"agents": "0b6b3c5e"}, "agents must be a list of user ids"),
        ({"seed": "examples/no-such-seed.yaml"}, "seed 'examples/no-such-seed.yaml' is not a file"),
        ({"session_grace": 1}, "unknown argument(s) session_grace"),
    ],
)
def test_chaos_validate_names_a_bad_control_argument(
    arguments: dict[str, Any], named: str, tmp_path: Path
) -> None:
    done = _validated({"seed": "examples/seed.yaml", **arguments}, tmp_path)
    assert done.returncode != 0
    assert named in done.stdout + done.stderr + (tmp_path / "log").read_text()


def test_chaos_validate_takes_the_control_s_good_and_substituted_arguments(
    tmp_path: Path,
) -> None:
    done = _validated(
        {"seed": "examples/seed.yaml", "heartbeat_interval": 1.0,
         "session_grace_seconds": "${grace}", "agents": ["${agent_1}"],
         "agent_options": {"ping_interval": 1}},
        tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
