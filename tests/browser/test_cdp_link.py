"""The observer's DevTools link against a real Chromium: events handled in the thread that pumps,
in the browser's order, a handler free to send commands, one handler's slip not stopping the
others, and a browser that goes away seen at once."""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

import pytest

from chaosgenesys.browser import devtools
from chaosgenesys.browser.cdp import CdpError
from chaosgenesys.browser.cdp_link import Link
from tests.browser.chromium import chromium


def _pump_until(link: Link, condition: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met"
        link.pump(0.05)


def test_handlers_run_in_the_pumping_thread_in_order_and_may_send_commands() -> None:
    with chromium() as ws_url:
        link = Link.open(ws_url)
        try:
            page = devtools.find_page(link, "^about:blank$")
            seen: list[tuple[int, Any, Any]] = []

            def logged(params: dict[str, Any]) -> None:
                answer = link.send(
                    "Runtime.evaluate", {"expression": "6 * 7", "returnByValue": True}, page
                )
                value = params["args"][0]["value"]
                seen.append((threading.get_ident(), value, answer["result"]["value"]))

            link.on(page, "Runtime.consoleAPICalled", logged)
            link.send("Runtime.enable", session=page)
            link.send(
                "Runtime.evaluate",
                {"expression": "for (let i = 0; i < 30; i++) console.log(i)"},
                page,
            )
            assert seen == []  # nothing runs until this thread pumps
            _pump_until(link, lambda: len(seen) == 30)
        finally:
            link.close()
    assert [value for _thread, value, _answer in seen] == list(range(30))
    assert {thread for thread, _value, _answer in seen} == {threading.get_ident()}
    assert {answer for _thread, _value, answer in seen} == {42}


def test_a_handler_that_raises_does_not_stop_the_others(capsys: pytest.CaptureFixture[str]) -> None:
    with chromium() as ws_url:
        link = Link.open(ws_url)
        try:
            page = devtools.find_page(link, "^about:blank$")
            seen: list[int] = []

            def fragile(params: dict[str, Any]) -> None:
                value = params["args"][0]["value"]
                if value == 1:
                    raise ValueError("one handler's slip")
                seen.append(value)

            link.on(page, "Runtime.consoleAPICalled", fragile)
            link.send("Runtime.enable", session=page)
            link.send("Runtime.evaluate", {"expression": "[0, 1, 2].forEach(console.log)"}, page)
            _pump_until(link, lambda: len(seen) == 2)
        finally:
            link.close()
    assert seen == [0, 2]
    assert "ValueError: one handler's slip" in capsys.readouterr().err


def test_a_browser_that_goes_away_is_seen_and_its_commands_fail() -> None:
    with chromium() as ws_url:
        link = Link.open(ws_url)
        assert not link.closed
        with contextlib.suppress(CdpError):  # it may go before it answers
            link.send("Browser.close")
        deadline = time.monotonic() + 10
        while not link.closed:
            assert time.monotonic() < deadline, "the link did not see the browser go"
            time.sleep(0.05)
        with pytest.raises(CdpError, match="the browser is gone"):
            link.send("Target.getTargets")
        link.close()
        assert not link.thread.is_alive()


def test_a_wake_ends_a_pump_whose_until_is_met() -> None:
    with chromium() as ws_url:
        link = Link.open(ws_url)
        try:
            done = threading.Event()
            timer = threading.Timer(0.2, lambda: (done.set(), link.wake()))
            timer.start()
            started = time.monotonic()
            link.pump(30, done.is_set)  # nothing else arrives: only the wake ends it
            waited = time.monotonic() - started
            timer.join()
        finally:
            link.close()
    assert done.is_set() and waited < 15, waited
