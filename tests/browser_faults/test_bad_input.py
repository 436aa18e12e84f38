"""Bad arguments are named in an ActivityFailed before anything starts: no record, no holder."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import faults
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import OpenPage

D = faults.delay_browser_requests
F = faults.fail_browser_requests
B = faults.block_websocket_handshakes
E = faults.emulate_network
C = faults.close_browser_websockets
OK = {"devtools_url": "http://127.0.0.1:9", "page_url_pattern": "x"}

CASES: list[tuple[Callable[..., Any], dict[str, Any], str]] = [
    (D, {"url_pattern": "", "delay_ms": 100, "duration": 5}, "url_pattern must be a regular"),
    (D, {"url_pattern": "(", "delay_ms": 100, "duration": 5},
     "url_pattern '(' is not a regular expression"),
    (D, {"url_pattern": "a", "delay_ms": -1, "duration": 5}, "delay_ms must be an integer"),
    (D, {"url_pattern": "a", "delay_ms": 700000, "duration": 5}, "got 700000"),
    (D, {"url_pattern": "a", "delay_ms": True, "duration": 5}, "delay_ms must be an integer"),
    (D, {"url_pattern": "a", "delay_ms": 1.5, "duration": 5}, "got 1.5"),
    (D, {"url_pattern": "a", "delay_ms": 100, "duration": 0},
     "duration must be a number of seconds above 0 and at most 86400, got 0"),
    (D, {"url_pattern": "a", "delay_ms": 100, "duration": 200000},
     "duration must be a number of seconds above 0 and at most 86400, got 200000"),
    (D, {"url_pattern": "a", "delay_ms": 100, "duration": float("nan")}, "got nan"),
    (F, {"url_pattern": "a", "status": 200, "duration": 5}, "status must be an integer from 400"),
    (F, {"url_pattern": "a", "status": "503", "duration": 5}, "status must be an integer"),
    (B, {"url_pattern": "a", "duration": -1}, "duration must be a number"),
    (B, {"url_pattern": "a", "duration": 5, "close_code": 1006},
     "close_code must be 1000 or 3000-4999, got 1006 (1006 is"),
    (B, {"url_pattern": "a", "duration": 5, "close_code": "4000"},
     "close_code must be 1000 or 3000-4999, got '4000'"),
    (B, {"url_pattern": "a", "duration": 5, "close_code": 4000, "close_reason": "x" * 124},
     "close_reason must be a string of at most 123 bytes"),
    (B, {"url_pattern": "a", "duration": 5, "close_reason": "cut"},
     "close_reason needs a close_code (1000 or 3000-4999), got close_reason='cut'"),
    (E, {"offline": "yes", "duration": 5}, "offline must be true or false, got 'yes'"),
    (E, {"latency_ms": -5, "duration": 5}, "latency_ms must be a number"),
    (E, {"download_kbps": "fast", "duration": 5}, "download_kbps must be a number"),
    (E, {"duration": 5}, "emulate_network needs a condition"),
    (C, {"url_pattern": "a", "code": 1006}, "code must be 1000 or 3000-4999, got 1006 (1006 is"),
    (C, {"url_pattern": "a", "code": 2000}, "code must be 1000 or 3000-4999, got 2000"),
    (C, {"url_pattern": "a", "code": 4000, "reason": "x" * 124}, "reason must be a string"),
]


@pytest.mark.parametrize(("activity", "arguments", "message"), CASES)
def test_bad_arguments_are_named_and_nothing_starts(
    runtime_dir: Path, activity: Callable[..., Any], arguments: dict[str, Any], message: str
) -> None:
    with pytest.raises(ActivityFailed, match=re.escape(message)):
        activity(**arguments, **OK)
    assert registry.active() == [] and not (runtime_dir / "browser-faults").exists()


def test_no_observer_and_no_target_is_named(runtime_dir: Path) -> None:
    with pytest.raises(
        ActivityFailed, match="devtools_url and page_url_pattern not given and this run has no "
        "browser observer"
    ):
        faults.delay_browser_requests("a", 100, 5)
    assert registry.active() == []


def test_an_endpoint_that_is_not_devtools_is_named(runtime_dir: Path) -> None:
    message = "devtools_url 'http://127.0.0.1:9' is not a DevTools"
    with pytest.raises(ActivityFailed, match=re.escape(message)):
        faults.block_websocket_handshakes("a", 5, **OK)
    assert registry.active() == []


def test_a_page_pattern_matching_no_page_fails_and_leaves_nothing(test_page: OpenPage) -> None:
    target = {**test_page.target(), "page_url_pattern": "/no-such-desktop/"}
    with pytest.raises(ActivityFailed, match="page_url_pattern '/no-such-desktop/' matches no"):
        faults.fail_browser_requests("a", 500, 30, **target)
    assert registry.active() == []


def test_a_pattern_javascript_cannot_read_is_named_for_the_websocket_guard(
    test_page: OpenPage,
) -> None:
    with pytest.raises(ActivityFailed, match=r"url_pattern '\(\?P<x>ws\)' is not a JavaScript"):
        faults.block_websocket_handshakes(r"(?P<x>ws)", 30, **test_page.target())
    assert registry.active() == []
    assert "__chaosgenesysWsGuard" not in test_page.page.evaluate("Object.keys(window)")


def test_close_names_a_page_pattern_matching_no_page(test_page: OpenPage) -> None:
    target = {**test_page.target(), "page_url_pattern": "/no-such-desktop/"}
    with pytest.raises(ActivityFailed, match="page_url_pattern '/no-such-desktop/' matches no"):
        faults.close_browser_websockets("/ws", 4000, **target)
    assert test_page.site.connections >= 1  # the page's socket stays open
    assert not any(e["event"] == "close" for e in test_page.events())


def test_close_names_a_devtools_websocket_the_browser_refuses(test_page: OpenPage) -> None:
    # the endpoint answers as DevTools does, but no browser has this id: the handshake is refused
    host = test_page.browser.ws_url.split("/")[2]
    wrong = f"ws://{host}/devtools/browser/00000000-0000-0000-0000-000000000000"
    target = {"devtools_url": wrong, "page_url_pattern": test_page.pattern}
    message = f"devtools_url {wrong!r}: could not attach over DevTools: the browser refused"
    with pytest.raises(ActivityFailed, match=re.escape(message)):
        faults.close_browser_websockets("/ws", 4000, **target)
    assert not any(e["event"] == "close" for e in test_page.events())
