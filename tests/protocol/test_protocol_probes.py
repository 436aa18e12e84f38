"""The protocol probes against a real sandbox: baseline, fault window, time to recover.

The calls measured are real HTTP calls to the sandbox (the probes' own bulk reads and the
tests' reads through the platform client); the fault is the sandbox's own delay; presence is
changed through the API, as a supervisor would. Desktops' figures are covered by the example
(``examples/protocol.yaml``, run both ways by ``tests/test_agent_examples.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.protocol import phases
from chaosgenesys.protocol.probes import (
    compare_with_baseline,
    measure_baseline,
    protocol_figures,
    recovery_within,
    time_to_recover,
)
from chaosgenesys.sandbox.actions import clear_sandbox_faults, inject_api_fault
from chaosgenesys.users.actions import set_presence
from chaosgenesys.users.probes import get_presence
from tests.conftest import AGENT_1, AGENT_2


@pytest.fixture(autouse=True)
def fresh_protocol() -> Iterator[None]:
    phases.end()
    yield
    phases.end()


def test_baseline_measures_the_reads_it_makes(configuration: Any, secrets: Any) -> None:
    figures = measure_baseline(1.2, [AGENT_1, AGENT_2], 0.2, configuration, secrets)
    api = figures["api"]
    assert figures["phase"] == "baseline"
    assert 1.2 <= figures["seconds"] < 3
    # one bulk read at the start and about every 0.2 s after: at least 4 real calls
    assert api["by_source"]["tooling"] >= 4
    assert api["calls"] >= 4
    assert api["errors"] == 0 and api["error_rate"] == 0.0
    assert 0 < api["p50_ms"] <= api["p99_ms"] <= api["max_ms"]
    assert figures["sample_failures"] == 0


def test_the_fault_window_is_compared_with_the_baseline(
    configuration: Any, secrets: Any
) -> None:
    measure_baseline(0.8, [AGENT_1], 0.2, configuration, secrets)
    admin = configuration
    inject_api_fault("/presences/purecloud", delay_ms=400, method="GET",
                     configuration=admin, secrets=secrets)
    for _ in range(3):
        get_presence(AGENT_1, configuration, secrets)
    strict = compare_with_baseline("api_p99_ms", "injection", 3, 50, configuration, secrets)
    assert strict["holds"] is False
    assert strict["observed"] >= 400  # the delay measured, not assumed
    assert strict["baseline"] < 200
    assert strict["limit"] == pytest.approx(strict["baseline"] * 3 + 50, abs=0.01)
    assert strict["phase_calls"] >= 3 and "above" in strict["reason"]
    lenient = compare_with_baseline("api_p99_ms", "injection", 3, 1000, configuration, secrets)
    assert lenient["holds"] is True
    errors = compare_with_baseline("api_error_rate", "injection", 1, 0.05,
                                   configuration, secrets)
    assert errors["holds"] is True and errors["observed"] == 0.0
    clear_sandbox_faults(configuration=admin, secrets=secrets)


def test_a_slow_call_answered_after_the_removal_counts_in_the_fault_window(
    configuration: Any, secrets: Any
) -> None:
    measure_baseline(0.5, [AGENT_1], 0.2, configuration, secrets)
    admin = configuration
    inject_api_fault("/presences/purecloud", delay_ms=900, method="GET",
                     configuration=admin, secrets=secrets)
    slow = threading.Thread(target=get_presence, args=(AGENT_1, configuration, secrets))
    slow.start()
    time.sleep(0.3)
    clear_sandbox_faults(configuration=admin, secrets=secrets)
    recovery = time_to_recover([AGENT_1], timeout=5, configuration=configuration,
                               secrets=secrets)
    assert recovery["recovered"] is True
    slow.join()
    injection = compare_with_baseline("api_max_ms", "injection", 1, 0, configuration, secrets)
    assert injection["observed"] >= 900
    after = compare_with_baseline("api_max_ms", "recovery", 3, 200, configuration, secrets)
    assert after["holds"] is True and after["observed"] < 900


def test_time_to_recover_measures_until_the_agent_is_back(
    configuration: Any, secrets: Any
) -> None:
    set_presence(AGENT_1, "Away", configuration, secrets)
    back = threading.Timer(1.0, set_presence, args=(AGENT_1, "On Queue", configuration, secrets))
    back.start()
    result = time_to_recover([AGENT_1, AGENT_2], timeout=10, interval=0.2,
                             configuration=configuration, secrets=secrets)
    back.join()
    assert result["recovered"] is True
    assert 0.9 <= result["seconds"] < 5
    assert result["checks"] >= 3 and result["not_back"] == []
    within = recovery_within(5, configuration, secrets)
    assert within == {"holds": True, "seconds": result["seconds"], "recovered": True,
                      "max_seconds": 5.0, "not_back": []}
    assert recovery_within(0.5, configuration, secrets)["holds"] is False
    figures = protocol_figures(configuration, secrets)
    assert figures["time_to_recover"]["seconds"] == result["seconds"]
    assert figures["phases"]["recovery"]["api"]["calls"] >= 3


def test_an_agent_that_never_comes_back_is_named(configuration: Any, secrets: Any) -> None:
    set_presence(AGENT_1, "Away", configuration, secrets)
    result = time_to_recover([AGENT_1], "On Queue", 0.6, 0.2, True, configuration, secrets)
    assert result["recovered"] is False and result["seconds"] is None
    assert result["not_back"] == [{"user_id": AGENT_1, "why": "the API shows presence Away"}]
    within = recovery_within(60, configuration, secrets)
    assert within["holds"] is False and within["recovered"] is False
    # Away is what this experiment expects: then the agent is back at once
    assert time_to_recover([AGENT_1], ["Away", "Break"], 1, 0.2, True,
                           configuration, secrets)["recovered"] is True


@pytest.mark.parametrize(
    ("call", "named"),
    [
        (lambda c, s: measure_baseline(0, [], 1, c, s), "duration must be greater than 0"),
        (lambda c, s: measure_baseline("5s", [], 1, c, s), "duration must be a number"),
        (lambda c, s: measure_baseline(1, 42, 1, c, s), "user_ids"),
        (lambda c, s: measure_baseline(1, [], 0, c, s), "sample_interval"),
        (lambda c, s: time_to_recover([AGENT_1], "Lunch", 1, 1, True, c, s),
         "expected_presence"),
        (lambda c, s: time_to_recover([AGENT_1], "On Queue", -1, 1, True, c, s), "timeout"),
        (lambda c, s: time_to_recover([AGENT_1], "On Queue", 1, 1, "yes", c, s),
         "check_desktops"),
        (lambda c, s: compare_with_baseline("p99", "injection", 2, 0, c, s), "metric must be"),
        (lambda c, s: compare_with_baseline("api_p99_ms", "fault", 2, 0, c, s),
         "phase must be"),
        (lambda c, s: compare_with_baseline("api_p99_ms", "injection", -1, 0, c, s),
         "max_ratio"),
        (lambda c, s: compare_with_baseline("api_p99_ms", "injection", 2, 0, c, s),
         "no baseline was measured"),
        (lambda c, s: recovery_within(30, c, s), "time_to_recover has not run"),
        (lambda c, s: recovery_within("30", c, s), "max_seconds"),
    ],
)
def test_bad_input_is_named_before_anything_is_measured(
    call: Any, named: str, configuration: Any, secrets: Any
) -> None:
    with pytest.raises(ActivityFailed, match=named):
        call(configuration, secrets)
    assert phases.current() is None  # nothing was started


def test_a_baseline_without_calls_cannot_be_compared(configuration: Any, secrets: Any) -> None:
    figures = measure_baseline(0.3, [], 1, configuration, secrets)
    assert figures["api"]["calls"] == 0 and figures["api"]["p99_ms"] is None
    with pytest.raises(ActivityFailed, match=r"no baseline value.*saw no API call"):
        compare_with_baseline("api_p99_ms", "injection", 2, 0, configuration, secrets)
    with pytest.raises(ActivityFailed, match="phase 'recovery' was not measured"):
        measure_baseline(0.3, [AGENT_1], 1, configuration, secrets)
        compare_with_baseline("api_p99_ms", "recovery", 2, 0, configuration, secrets)
