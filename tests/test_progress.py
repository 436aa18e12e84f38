"""Progress lines of long waits: written in a terminal (or when asked), never in a CI log, and
never from the activities' own code paths when off. Real waits against a real sandbox."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from chaosgenesys.progress import Progress, enabled
from chaosgenesys.protocol import phases
from chaosgenesys.protocol.probes import time_to_recover
from chaosgenesys.users.actions import set_presence
from tests.conftest import AGENT_1


@pytest.mark.parametrize(
    ("mode", "ci", "expected"),
    [("always", "1", True), ("never", "", False), ("auto", "1", False), ("auto", "", False)],
)
def test_when_progress_is_written(
    mode: str, ci: str, expected: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pytest's standard error is not a terminal: "auto" stays quiet here, as in CI
    monkeypatch.setenv("CHAOSGENESYS_PROGRESS", mode)
    monkeypatch.setenv("CI", ci)
    assert enabled() is expected


def test_a_long_wait_writes_a_line_every_few_seconds(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("CHAOSGENESYS_PROGRESS", "always")
    caplog.set_level(logging.INFO, logger="chaostoolkit")
    progress = Progress("waiting", total=12.0, every=0.3)
    progress.sleep(1.0, lambda: "2 call(s) so far")
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("waiting: ")]
    assert 2 <= len(lines) <= 4, lines
    assert lines[0].endswith(" s of 12 s (2%): 2 call(s) so far") or "of 12 s" in lines[0]
    # a short wait says nothing, an open-ended one does
    assert Progress("short", total=3.0, every=0.01).tick() is False
    quiet = Progress("off", every=0.0)
    monkeypatch.setenv("CHAOSGENESYS_PROGRESS", "never")
    assert Progress("off", every=0.0).tick() is False and quiet.lines == 0


def test_time_to_recover_says_who_it_waits_for(
    configuration: Any, secrets: Any, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    monkeypatch.setenv("CHAOSGENESYS_PROGRESS", "always")
    monkeypatch.setenv("CHAOSGENESYS_PROGRESS_EVERY", "0.4")
    caplog.set_level(logging.INFO, logger="chaostoolkit")
    phases.end()
    set_presence(AGENT_1, "Away", configuration, secrets)
    back = threading.Timer(1.5, set_presence, args=(AGENT_1, "On Queue", configuration, secrets))
    back.start()
    try:
        result = time_to_recover([AGENT_1], timeout=10, interval=0.2,
                                 configuration=configuration, secrets=secrets)
    finally:
        back.join()
        phases.end()
    assert result["recovered"] is True
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("time to recover: ")]
    assert lines, [r.getMessage() for r in caplog.records]
    assert f"1 agent(s) not back ({AGENT_1}: the API shows presence Away)" in lines[0]


def test_chaos_toolkits_own_pauses_get_progress_lines(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import time

    from chaosgenesys.progress import unwatch_pauses, watch_pauses

    monkeypatch.setenv("CHAOSGENESYS_PROGRESS", "always")
    monkeypatch.setenv("CHAOSGENESYS_PROGRESS_EVERY", "0.3")
    caplog.set_level(logging.INFO, logger="chaostoolkit")
    chaostoolkit = logging.getLogger("chaostoolkit")
    watcher = watch_pauses()
    assert watch_pauses() is watcher  # attached once
    try:
        chaostoolkit.info("Pausing after activity for 12s...")  # what chaoslib logs, then sleeps
        time.sleep(1.2)
    finally:
        unwatch_pauses()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pause: ")]
    assert 2 <= len(lines) <= 5, lines
    assert "of 12 s" in lines[0], lines
    time.sleep(0.5)
    after = [r.getMessage() for r in caplog.records if r.getMessage().startswith("pause: ")]
    assert after == lines  # the run ended: no more lines
    assert not [f for f in chaostoolkit.filters if type(f).__name__ == "PauseProgress"]
