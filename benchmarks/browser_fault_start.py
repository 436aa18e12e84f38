"""How soon a browser fault is in force: the activity a user calls, beside what Playwright alone
costs a new process before it could do the same.

Everything runs on 127.0.0.1: the browser tests' page (``tests/browser/pages.py``) served from a
thread of this process, the system's headless Chromium (``tests/browser/chromium.py``) with the
page opened through the DevTools HTTP endpoint (``PUT /json/new``), and a temporary fault
registry. Rounds alternate four methods (N rounds, 10; quick 4):

- **delay**: ``chaosgenesys.browser.faults.delay_browser_requests(url_pattern, 100, 60,
  devtools_url=http://127.0.0.1:<port>, page_url_pattern=…)`` until it returns (it returns once
  the holder has the fault in force), then ``clear_browser_faults()`` (not timed);
- **block**: the same with ``block_websocket_handshakes`` (the WebSocket guard evaluated in the
  page's frames);
- **close**: ``close_browser_websockets("/ws", 4001, …)`` until it returns (the page's socket
  closed from the page; it reconnects 100 ms later);
- **Playwright floor**: a new Python process that imports Playwright, starts its driver,
  ``connect_over_cdp`` to the same browser, opens a CDP session on the page and enables
  ``Fetch``: what a holder, and ``close_browser_websockets``, paid before they spoke CDP
  themselves, before any of their own work.

**Goal: delay in force within 0.4 s on the median (idle machine)**, at least 2x sooner than the
Playwright floor.

Run: ``.venv/bin/python benchmarks/browser_fault_start.py [--quick] [--json]``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from _common import Figure, median, parse_args, report, run_main
from browser_observer import open_page, runtime_dir

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

PLAYWRIGHT_FLOOR = """
import asyncio, sys
from playwright.async_api import async_playwright
async def main(ws_url, marker):
    async with async_playwright() as playwright:
        browser = await playwright.chromium.connect_over_cdp(ws_url, timeout=15_000)
        page = next(p for c in browser.contexts for p in c.pages if marker in p.url)
        session = await page.context.new_cdp_session(page)
        await session.send("Fetch.enable", {"patterns": [{"urlPattern": "*",
                                                          "resourceType": "XHR"}]})
        await browser.close()
asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


def body() -> None:
    args = parse_args(__doc__ or "", sys.argv[1:])
    rounds = 4 if args.quick else 10
    from chaosgenesys.browser import faults
    from tests.browser.chromium import chromium
    from tests.browser.pages import serve_test_page

    times: dict[str, list[float]] = {"delay": [], "block": [], "close": [], "floor": []}
    with runtime_dir(), serve_test_page() as site, chromium() as ws_url:
        port = int(ws_url.split("/")[2].split(":")[1])
        marker = "fault-start=1"
        open_page(port, f"{site.url}/?{marker}")
        target = {"devtools_url": f"http://127.0.0.1:{port}", "page_url_pattern": marker}
        methods = {
            "delay": lambda: faults.delay_browser_requests("/api/", 100, 60, **target),
            "block": lambda: faults.block_websocket_handshakes("/ws", 60, **target),
            "close": lambda: faults.close_browser_websockets("/ws", 4001, **target),
        }
        for index in range(rounds + 1):  # the first round warms the page and the disk cache
            order = ["delay", "block", "close", "floor"]
            order = order[index % 4:] + order[: index % 4]
            for name in order:
                started = time.perf_counter()
                if name == "floor":
                    subprocess.run(
                        [sys.executable, "-c", PLAYWRIGHT_FLOOR, ws_url, marker], check=True
                    )
                else:
                    methods[name]()
                took = time.perf_counter() - started
                if name in ("delay", "block"):
                    faults.clear_browser_faults()
                time.sleep(0.2)  # the page's socket back (it reconnects 100 ms after a close)
                if index:
                    times[name].append(took)
    delay, block, close, floor = (median(times[k]) for k in ("delay", "block", "close", "floor"))
    figures = [
        Figure("delay_browser_requests: called -> in force, median", delay, "s", "<= 0.4 s",
               delay <= 0.4),
        Figure("delay_browser_requests: max", max(times["delay"]), "s"),
        Figure("block_websocket_handshakes: called -> in force, median", block, "s"),
        Figure("close_browser_websockets: called -> closed, median", close, "s"),
        Figure("Playwright floor (new process: driver, connect, Fetch.enable), median", floor,
               "s"),
        Figure("Playwright floor / delay in force", floor / delay, "x", ">= 2x",
               floor / delay >= 2),
    ]
    notes = [
        f"medians of {rounds} rounds, the four methods in each, order rotating, 0.2 s apart; a "
        "first round not counted",
        "in force = the activity returned: its holder started, attached over one DevTools "
        "WebSocket, found the page and wrote its ready file",
    ]
    report("browser_fault_start", figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
