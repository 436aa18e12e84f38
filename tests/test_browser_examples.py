"""The browser examples hold with the reference web desktop in headless Chromium and deviate
when the fault is made longer than the desktop's libraries can ride out: the probes read the
real browser and catch it (issue 10: no naive desktop, the real one broken harder).

Both runs of each example are real ``chaos run`` processes from the repository root, in
parallel, each with its own runtime directory; afterwards no observer, fault holder or Chromium
of theirs is left, and no secret or token reached their journal, log or runtime files.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CHAOS = str(Path(sys.executable).with_name("chaos"))
TOKEN_MARKERS = re.compile(r"access_token=|Bearer\s+[A-Za-z0-9]|eyJ[A-Za-z0-9_-]{10,}\.")


def _start(folder: Path, example: str, extra: list[str]) -> subprocess.Popen[str]:
    folder.mkdir()
    env = dict(os.environ, CHAOSGENESYS_RUNTIME_DIR=str(folder / "runtime"))
    for name in ("GENESYSCLOUD_OAUTHCLIENT_ID", "GENESYSCLOUD_OAUTHCLIENT_SECRET"):
        env.pop(name, None)
    command = [CHAOS, "--no-version-check", "--log-file", str(folder / "chaos.log"), "run",
               "--journal-path", str(folder / "journal.json"), *extra, example]
    return subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def _deviating_probe(journal: dict[str, Any]) -> str | None:
    for phase in ("before", "after"):
        for probe in (journal["steady_states"].get(phase) or {}).get("probes") or []:
            if probe.get("tolerance_met") is False:
                return f"{phase}:{probe['activity']['name']}"
    return None


def _output(journal: dict[str, Any], activity: str) -> dict[str, Any]:
    (run,) = [r for r in journal["run"] if r["activity"]["name"] == activity]
    output: dict[str, Any] = run["output"]
    return output


def _run_pair(
    tmp_path: Path, example: str, harder: list[str]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``example`` as it is and broken harder, in parallel; both journals, once every
    process of theirs is gone and no secret or token reached their files."""
    browsers_before = set(_leftovers("chaosgenesys-observer-"))
    holds = _start(tmp_path / "holds", example, [])
    longer = _start(tmp_path / "harder", example, harder)
    outputs = {}
    for name, process in (("holds", holds), ("harder", longer)):
        try:
            outputs[name], _ = process.communicate(timeout=150)
        except subprocess.TimeoutExpired:
            process.kill()
            raise AssertionError(f"the {name} run is still running after 150 s") from None
    journals = {n: json.loads((tmp_path / n / "journal.json").read_text()) for n in outputs}
    ok = journals["holds"]
    assert holds.returncode == 0, outputs["holds"][-3000:]
    assert ok["status"] == "completed" and ok["deviated"] is False, _deviating_probe(ok)
    assert journals["harder"]["deviated"] is True, outputs["harder"][-3000:]

    deadline = time.monotonic() + 10
    while (
        left := set(_leftovers(str(tmp_path)) + _leftovers("chaosgenesys-observer-"))
        - browsers_before
    ) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left, left
    for path in tmp_path.rglob("*"):
        if path.is_file() and not path.name.endswith(".lock"):
            text = path.read_text(errors="replace")
            assert "chaos-secret" not in text, path
            assert TOKEN_MARKERS.search(text) is None, path
    return journals["holds"], journals["harder"]


def test_browser_example_holds_and_a_longer_outage_is_caught(tmp_path: Path) -> None:
    ok, bad = _run_pair(
        tmp_path, "examples/browser-websocket-close.json", ["--var", "refuse_seconds:int=20"]
    )
    (refused,) = [r for r in ok["run"] if r["activity"]["name"].startswith("streaming-handsh")]
    assert refused["output"]["reaches_libraries"] is True
    seen = _output(ok, "the-browser-saw-the-outage")
    # The library's own backoff: a try at 2 s refused, the next 4 s later.
    assert seen["reconnects"] == 1 and 5500 <= seen["reconnect_max_ms"] <= 9000, seen
    assert seen["websocket_errors"] >= 1 and seen["ui"]["connection"] == "connected"

    assert _deviating_probe(bad) == "after:desktop-shows-connected"
    assert _output(bad, "the-browser-saw-the-outage")["disconnected_now"] is True


def test_token_expiry_example_holds_and_a_renewal_past_expiry_is_caught(tmp_path: Path) -> None:
    ok, bad = _run_pair(
        tmp_path, "examples/browser-token-expiry.json", ["--var", "oauth_delay_ms:int=25000"]
    )
    (waited,) = [r for r in ok["run"] if r["activity"]["name"].startswith("wait-until")]
    assert 16 <= waited["output"]["seconds_left"] <= 17.5, waited["output"]
    seen = _output(ok, "the-browser-saw-the-renewal")
    assert seen["tokens_obtained"] == 2 and seen["api_unauthorized"] == 0, seen
    # the renewal went through the held token request (5 s)
    assert seen["ui"]["connection"] == "connected"

    assert _deviating_probe(bad) == "after:desktop-answered-the-call"
    late = _output(bad, "the-browser-saw-the-renewal")
    assert late["api_unauthorized"] >= 1 and late["tokens_obtained"] == 1, late


def _leftovers(word: str) -> list[str]:
    """Command lines of running processes that name ``word`` (a run's folder, a profile)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                argv = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ")
            except OSError:
                continue
            if word.encode() in argv:
                found.append(f"{entry}: {argv[:160].decode(errors='replace')}")
    return found
