"""The fault holder's DevTools client against a real Chromium: commands answered on the session
they were sent on, the browser's errors raised by name, events kept to their own session, and a
command waiting when the connection goes is not left hanging."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from chaosgenesys.browser.cdp import CdpError, Connection
from tests.browser_faults.conftest import OpenPage


def _run[T](work: Callable[[], Awaitable[T]]) -> T:
    """``work()`` on an event loop of its own thread (the module's sync Playwright owns this
    thread's)."""
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = asyncio.run(asyncio.wait_for(work(), 20))  # type: ignore[arg-type]
        except BaseException as error:
            outcome["error"] = error

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    value: T = outcome["value"]
    return value


def _page_target(targets: list[dict[str, Any]], pattern: str) -> dict[str, Any]:
    found = [t for t in targets if t["type"] == "page" and pattern in t["url"]]
    assert len(found) == 1, targets
    return found[0]


def test_a_page_session_answers_and_keeps_its_events(test_page: OpenPage) -> None:
    test_page.page.evaluate("window.__mark = 41")

    async def work() -> dict[str, Any]:
        async with await Connection.open(test_page.browser.ws_url) as browser:
            targets = (await browser.send("Target.getTargets"))["targetInfos"]
            page = await browser.attach(_page_target(targets, test_page.pattern))
            on_page: list[dict[str, Any]] = []
            on_browser: list[dict[str, Any]] = []
            page.on("Runtime.executionContextCreated", on_page.append)
            browser.on("Runtime.executionContextCreated", on_browser.append)
            await page.send("Runtime.enable")
            answer = await page.send(
                "Runtime.evaluate", {"expression": "window.__mark + 1", "returnByValue": True}
            )
            return {"value": answer["result"]["value"], "page": on_page, "browser": on_browser}

    seen = _run(work)
    assert seen["value"] == 42  # evaluated in the page the session is attached to
    assert any(e["context"]["auxData"].get("isDefault") for e in seen["page"])
    assert seen["browser"] == []


def test_the_browser_s_refusal_is_raised_with_its_message(test_page: OpenPage) -> None:
    async def work() -> None:
        async with await Connection.open(test_page.browser.ws_url) as browser:
            await browser.send("Nothing.likeThis", {})

    with pytest.raises(CdpError, match=r"Nothing\.likeThis"):
        _run(work)


def test_a_command_waiting_when_the_connection_goes_fails_at_once(test_page: OpenPage) -> None:
    async def work() -> tuple[str, bool]:
        browser = await Connection.open(test_page.browser.ws_url)
        targets = (await browser.send("Target.getTargets"))["targetInfos"]
        page = await browser.attach(_page_target(targets, test_page.pattern))
        # a promise that never settles: the answer would never come
        waiting = asyncio.ensure_future(
            page.send("Runtime.evaluate", {"expression": "new Promise(() => {})",
                                           "awaitPromise": True})
        )
        await asyncio.sleep(0.2)
        assert not waiting.done()
        await browser.close()
        try:
            await asyncio.wait_for(waiting, 2)
        except CdpError as error:
            return str(error), browser.closed.is_set()
        raise AssertionError("the waiting command was answered")

    why, closed = _run(work)
    assert closed
    assert "closed" in why or "gone" in why
    with pytest.raises(CdpError, match="gone"):
        _run(lambda: _after_close(test_page.browser.ws_url))


async def _after_close(ws_url: str) -> None:
    browser = await Connection.open(ws_url)
    await browser.close()
    await browser.send("Target.getTargets")
