"""Every experiment block in README.md and docs/ validates, and the whole experiments that can
run on the embedded sandbox run and hold.

A newcomer copies these blocks first. Whole experiments go through ``chaos validate`` as a user
runs it; an activity, a control or a configuration fragment is put in the smallest experiment
that holds it and validated the way ``chaos validate`` does (chaoslib's
``ensure_experiment_is_valid``, with the verdict control declared so the types of chaosgenesys
arguments are checked too).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
CHAOS = str(Path(sys.executable).with_name("chaos"))
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
FENCE = re.compile(r"^```(json|yaml|yml)\n(.*?)^```", re.M | re.S)
VERDICT = {
    "name": "chaosgenesys-verdict",
    "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"},
}
NOOP = {
    "type": "probe",
    "name": "noop",
    "provider": {"type": "python", "module": "chaosgenesys.faults.probes", "func": "active_faults"},
}


@dataclass
class Block:
    page: str
    line: int
    data: Any

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def _parse(lang: str, body: str) -> Any:
    try:
        return json.loads(body) if lang == "json" else yaml.safe_load(body)
    except (ValueError, yaml.YAMLError):
        pass
    if lang == "json":
        try:  # a fragment of an experiment: "configuration": {...}, "secrets": {...}
            return json.loads("{" + body + "}")
        except ValueError:
            pass
    return None


def _blocks() -> list[Block]:
    blocks = []
    for page in PAGES:
        text = page.read_text(encoding="utf-8")
        for match in FENCE.finditer(text):
            data = _parse(match.group(1), match.group(2))
            line = text[: match.start()].count("\n") + 1
            blocks.append(Block(str(page.relative_to(ROOT)), line, data))
    return blocks


BLOCKS = _blocks()


def _is_experiment(data: Any) -> bool:
    return isinstance(data, dict) and "method" in data and "title" in data


def _is_activity(data: Any) -> bool:
    return isinstance(data, dict) and data.get("type") in {"action", "probe"} and "provider" in data


def _is_control(data: Any) -> bool:
    return (
        isinstance(data, dict)
        and set(data) >= {"name", "provider"}
        and str((data.get("provider") or {}).get("module", "")).startswith("chaosgenesys.controls")
    )


def _is_fragment(data: Any) -> bool:
    """A piece of an experiment: its configuration, secrets or controls."""
    return (
        isinstance(data, dict)
        and bool(data)
        and set(data) <= {"configuration", "secrets", "controls"}
    )


def _smallest_experiment(data: Any) -> dict[str, Any]:
    experiment: dict[str, Any] = {
        "title": "documentation block",
        "description": "the smallest experiment that holds the block",
        "controls": [VERDICT],
        "method": [NOOP],
    }
    if _is_activity(data) and "tolerance" in data:
        # where a tolerance is read: chaoslib checks it (a JSONPath that parses) only there
        experiment["steady-state-hypothesis"] = {"title": "the block's check", "probes": [data]}
    elif _is_activity(data):
        experiment["method"] = [data]
    elif _is_control(data):
        experiment["controls"] = [data, VERDICT]
    else:
        experiment.update(data)
        experiment["controls"] = [*data.get("controls", []), VERDICT]
    return experiment


def _env_keys(data: Any) -> set[str]:
    """Environment variables the block's secrets or configuration read (``{"type": "env"}``)."""
    if isinstance(data, dict):
        if data.get("type") == "env" and isinstance(data.get("key"), str):
            return {data["key"]}
        return set().union(*(_env_keys(value) for value in data.values()))
    if isinstance(data, list):
        return set().union(*(_env_keys(value) for value in data))
    return set()


def _with_env(data: Any) -> dict[str, str]:
    """What the user has exported when they run the block: a value for every env key."""
    return {key: "set-by-the-user" for key in _env_keys(data)}


def _chaos(
    *args: str, tmp_path: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [CHAOS, "--no-version-check", "--log-file", str(tmp_path / "chaos.log"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime"), **(env or {})},
    )


EXPERIMENTS = [pytest.param(b, id=b.id) for b in BLOCKS if _is_experiment(b.data)]
PIECES = [
    pytest.param(b, id=b.id)
    for b in BLOCKS
    if not _is_experiment(b.data)
    and (_is_activity(b.data) or _is_control(b.data) or _is_fragment(b.data))
]


def test_the_docs_hold_experiment_blocks_of_every_kind() -> None:
    # The extraction itself can fail: it must find what the pages are known to hold.
    assert any(p.id.startswith("README.md") for p in EXPERIMENTS)
    assert len([p for p in PIECES if _is_activity(p.values[0].data)]) >= 30
    assert [p for p in PIECES if _is_control(p.values[0].data)]
    assert [p for p in PIECES if _is_fragment(p.values[0].data)]


@pytest.mark.parametrize("block", EXPERIMENTS)
def test_a_whole_experiment_validates(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(block.data))
    done = _chaos("validate", str(path), tmp_path=tmp_path, env=_with_env(block.data))
    assert done.returncode == 0, f"{block.id}: {done.stdout}{done.stderr}"


@pytest.mark.parametrize("block", PIECES)
def test_a_piece_of_an_experiment_validates(block: Block, monkeypatch: pytest.MonkeyPatch) -> None:
    from chaoslib.experiment import ensure_experiment_is_valid

    for key, value in _with_env(block.data).items():
        monkeypatch.setenv(key, value)
    ensure_experiment_is_valid(_smallest_experiment(block.data))


def test_wrong_blocks_would_be_caught() -> None:
    """The check above can fail: a misspelt function, argument or type is refused."""
    from chaoslib.exceptions import ChaosException
    from chaoslib.experiment import ensure_experiment_is_valid

    good = {
        "type": "action",
        "name": "slow",
        "provider": {
            "type": "python",
            "module": "chaosgenesys.sandbox.actions",
            "func": "inject_api_fault",
            "arguments": {"path_pattern": "^/oauth", "delay_ms": 5000},
        },
    }
    ensure_experiment_is_valid(_smallest_experiment(good))
    for change in (
        {"func": "inject_api_faults"},
        {"arguments": {"path_pattern": "^/oauth", "delay": 5000}},
        {"arguments": {"path_pattern": "^/oauth", "delay_ms": "5s"}},
    ):
        bad = {**good, "provider": {**good["provider"], **change}}
        with pytest.raises(ChaosException):
            ensure_experiment_is_valid(_smallest_experiment(bad))


def test_the_readme_first_experiment_runs_and_holds(tmp_path: Path) -> None:
    [block] = [p.values[0] for p in EXPERIMENTS if p.values[0].page == "README.md"]
    path = tmp_path / "experiment.json"
    path.write_text(json.dumps(block.data))
    journal_path = tmp_path / "journal.json"
    done = _chaos("run", "--journal-path", str(journal_path), str(path), tmp_path=tmp_path)
    journal = json.loads(journal_path.read_text())
    log = (tmp_path / "chaos.log").read_text()
    assert done.returncode == 0, log[-4000:]
    assert journal["status"] == "completed" and journal["deviated"] is False
    # It is about agents: a synthetic desktop ran through the fault.
    names = [run["activity"]["name"] for run in journal["run"]]
    assert any(run["activity"]["provider"].get("func") == "start_agents" for run in journal["run"])
    assert names
