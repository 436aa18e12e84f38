"""Every example experiment validates and runs with ``chaos run`` against the embedded sandbox.

These run the real ``chaos`` command in a subprocess, exactly as a user does, and read the
journal it writes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted(
    p
    for p in (ROOT / "examples").iterdir()
    if p.suffix in {".json", ".yaml", ".yml"} and p.name != "seed.yaml"
)
CHAOS = str(Path(sys.executable).with_name("chaos"))


def _tags(path: Path) -> list[str]:
    text = path.read_text()
    experiment = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    return list(experiment.get("tags", []))


#: Examples tagged ``netem`` need sch_netem: on a kernel without it they run inside
#: user-mode-linux through tests/uml/test_netem_in_uml.py, which fails unless they ran.
CASES = [
    pytest.param(p, id=p.name, marks=[pytest.mark.netem] if "netem" in _tags(p) else [])
    for p in EXAMPLES
]

#: Examples that tests/test_agent_examples.py and tests/test_browser_examples.py run both ways
#: (holding, and deviating with the naive desktop or broken harder): their holding run is
#: checked there with :func:`check_held`, not run a second time here.
RUN_BOTH_WAYS = {
    "protocol.yaml",
    "token-refresh-race.yaml",
    "presence-loop.yaml",
    "websocket-close.json",
    "token-expiry.yaml",
    "wrapup-persistence.yaml",
    "browser-websocket-close.json",
    "browser-token-expiry.json",
    "browser-presence-loop.json",
    "browser-wrapup-persistence.json",
}
RUN_CASES = [case for case in CASES if case.values[0].name not in RUN_BOTH_WAYS]


def _chaos(*args: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    # A fault registry and agent runs of this run only: another run on the machine (another
    # test session) cannot answer this one's agent_summary or revert its faults.
    env = {**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")}
    return subprocess.run(
        [CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaostoolkit.log"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
    )


def _method_probes_off_tolerance(journal: dict[str, Any]) -> list[str]:
    """Method probes whose tolerance did not hold (Chaos Toolkit only records them)."""
    from chaoslib.hypothesis import within_tolerance

    configuration = journal["experiment"].get("configuration") or {}
    missed = []
    for run in journal["run"]:
        activity = run["activity"]
        if activity.get("type") != "probe" or "tolerance" not in activity:
            continue
        if not within_tolerance(activity["tolerance"], run.get("output"), configuration):
            missed.append(f"{activity['name']}: {json.dumps(run.get('output'))[:600]}")
    return missed


def test_there_are_json_and_yaml_examples() -> None:
    suffixes = {p.suffix for p in EXAMPLES}
    assert ".json" in suffixes
    assert {".yaml", ".yml"} & suffixes


@pytest.mark.parametrize("experiment", CASES)
def test_example_validates(experiment: Path, tmp_path: Path) -> None:
    result = _chaos("validate", str(experiment), tmp_path=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_example_run_both_ways_exists() -> None:
    assert {p.name for p in EXAMPLES} >= RUN_BOTH_WAYS


#: How many examples run at once: they mostly wait on the desktops' timers and their pauses.
AT_ONCE = 2


@pytest.fixture(scope="module")
def held_runs(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[Path, tuple[Path, Future[subprocess.CompletedProcess[str]]]]]:
    """Every example this session runs with ``test_example_runs_and_holds``, started
    :data:`AT_ONCE` at a time as soon as the first of those tests asks (each in its own folder
    and runtime dir), so their waits overlap instead of adding up."""
    from tests.uml.netem_plugin import in_uml

    selected = [
        item.callspec.params["experiment"]
        for item in request.session.items
        if getattr(item, "originalname", "") == "test_example_runs_and_holds"
        and not any(mark.name == "skip" for mark in item.iter_markers())
    ]
    pool = ThreadPoolExecutor(max_workers=1 if in_uml() else AT_ONCE)
    started = {}
    for experiment in selected:
        folder = tmp_path_factory.mktemp(experiment.stem)
        journal = folder / "journal.json"
        started[experiment] = (folder, pool.submit(
            _chaos, "run", "--journal-path", str(journal), str(experiment), tmp_path=folder))
    yield started
    pool.shutdown(wait=True, cancel_futures=True)


@pytest.mark.parametrize("experiment", RUN_CASES)
def test_example_runs_and_holds(
    experiment: Path,
    held_runs: dict[Path, tuple[Path, Future[subprocess.CompletedProcess[str]]]],
) -> None:
    folder, future = held_runs[experiment]
    result = future.result(timeout=300)
    check_held(experiment, folder / "journal.json", folder / "chaostoolkit.log",
               result.returncode, result.stdout + result.stderr)


def check_held(
    experiment: Path, journal_path: Path, log_path: Path, returncode: int, output: str
) -> None:
    """A run of ``experiment`` that must hold did: exit 0, completed, not deviated, every
    activity and rollback succeeded, the declared safety nets watched and never pulled, the
    network faults measured, no secret in the journal or the log."""
    journal: dict[str, Any] = json.loads(journal_path.read_text())
    log = log_path.read_text()
    assert returncode == 0, output + log
    assert journal["status"] == "completed", log
    assert journal["deviated"] is False, log
    failed = [run["activity"]["name"] for run in journal["run"] if run["status"] != "succeeded"]
    assert failed == [], log
    rollbacks = [run for run in journal["rollbacks"] if run["status"] != "succeeded"]
    assert rollbacks == [], log
    after = journal["steady_states"]["after"]
    assert after is not None and after["steady_state_met"] is True
    declared = {c["provider"]["module"] for c in journal["experiment"].get("controls", [])}
    extensions = {e["name"]: e for e in journal["experiment"].get("extensions", [])}
    if "chaosgenesys.controls.killswitch" in declared:
        # Armed for the whole run, watched, and never pulled on an example that holds.
        switch = extensions["chaosgenesys-killswitch"]
        assert switch["tripped"] is False and switch["checks"] > 0, switch
    if "chaosgenesys.controls.tokens" in declared:
        # every token the run obtained revoked at its end, and proved dead
        tokens = extensions["chaosgenesys-tokens"]
        assert tokens["revoked"] >= 1 and tokens["still_working"] == 0, tokens
        assert tokens["problems"] == [], tokens
    if "chaosgenesys.controls.safeguard" in declared:
        guard = extensions["chaosgenesys-safeguard"]
        assert guard["refused"] is None and guard["last_check"]["isolated"] is True, guard
    if "network" in _tags(experiment):
        # The network examples measure the fault itself in their method (delay, loss, the
        # untargeted traffic): those tolerances must hold too, or the fault did not happen.
        assert _method_probes_off_tolerance(journal) == [], log
    # No secret ever reaches the journal or the log.
    for text in (journal_path.read_text(), log):
        assert "chaos-secret" not in text
        assert "access_token" not in text
