"""Bad input fails naming the argument and leaves nothing running; a killed owner leaves no
observer and no browser; the probes import no Playwright, the observer process no chaoslib."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import actions, runs
from chaosgenesys.faults import registry
from tests.browser.chromium import chromium
from tests.browser.pages import serve_test_page
from tests.browser_observer.conftest import alive, page_in, processes_with, wait_for
from tests.fresh_imports import imported_by

ROOT = Path(__file__).resolve().parents[2]


def nothing_left() -> None:
    assert registry.mine(kind=runs.KIND) == []
    for record in runs.list_observers():
        assert not alive(int(record.get("pid") or 0)), record


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({}, "devtools_url"),
        ({"devtools_url": "ftp://127.0.0.1:9222", "page_url_pattern": "x"}, "devtools_url"),
        ({"open_url": "file:///etc/passwd"}, "open_url"),
        ({"open_url": "http://127.0.0.1:1/", "devtools_url": "http://127.0.0.1:1"}, "not both"),
        ({"open_url": "http://127.0.0.1:1/", "page_url_pattern": "(("}, "page_url_pattern"),
        ({"open_url": "http://127.0.0.1:1/", "selectors": ["presence"]}, "selectors"),
        ({"open_url": "http://127.0.0.1:1/", "selectors": {"presence": 3}},
         "selectors['presence']"),
        ({"open_url": "http://127.0.0.1:1/", "selectors": {"a b": "x"}}, "selectors"),
        ({"open_url": "http://127.0.0.1:1/", "api_hosts": "[a"}, "api_hosts"),
        ({"open_url": "http://127.0.0.1:1/", "duration": -1}, "duration"),
    ],
)
def test_bad_arguments_fail_before_anything_starts(arguments: dict[str, Any], named: str) -> None:
    with pytest.raises(ActivityFailed, match=named.replace("[", r"\[").replace("(", r"\(")):
        actions.start_observer(**arguments)
    nothing_left()
    assert runs.list_observers() == []


def test_an_endpoint_that_is_not_devtools_is_named() -> None:
    with serve_test_page() as site:  # an HTTP server, but not a browser's DevTools
        for url in (site.url, f"http://127.0.0.1:{free_port()}"):
            with pytest.raises(ActivityFailed, match=r"devtools_url .* is not a DevTools endpoint"):
                actions.start_observer(devtools_url=url, page_url_pattern=".")
    nothing_left()
    assert runs.list_observers() == []


def test_no_page_matching_and_a_bad_selector_leave_nothing_running(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(actions, "PAGE_TIMEOUT", 1.0)
    with serve_test_page() as site, chromium() as ws_url, page_in(ws_url, "about:blank") as page:
        page.goto(site.url + "/")
        with pytest.raises(ActivityFailed, match="page_url_pattern '/desktop/' matches no page"):
            actions.start_observer(devtools_url=ws_url, page_url_pattern="/desktop/")
        nothing_left()
        with pytest.raises(ActivityFailed, match=r"selectors\['presence'\] '\[\[' is not a CSS"):
            actions.start_observer(devtools_url=ws_url, page_url_pattern="127",
                                   selectors={"presence": "[["})
        nothing_left()
        with pytest.raises(ActivityFailed, match="page_url_pattern 'nowhere' does not match"):
            actions.start_observer(open_url=site.url + "/", page_url_pattern="nowhere")
        nothing_left()
        launched = [json.loads((Path(r["dir"]) / "status.json").read_text()) for r in
                    runs.list_observers()]
        assert [s["ended"] for s in launched] == ["error", "error", "error"]
        assert not alive(launched[0]["browser_pid"])
        assert page.evaluate("1 + 1") == 2  # the user's browser is left as it was


def test_an_open_url_that_does_not_load_is_named_with_the_browser_s_reason() -> None:
    port = free_port()  # nothing listens there
    with pytest.raises(ActivityFailed) as failed:
        actions.start_observer(open_url=f"http://127.0.0.1:{port}/desktop/?code=secret-code")
    message = str(failed.value)
    assert f"open_url 'http://127.0.0.1:{port}/desktop/' did not load" in message
    assert "ERR_CONNECTION_REFUSED" in message and "secret-code" not in message
    nothing_left()
    (status,) = [json.loads((Path(r["dir"]) / "status.json").read_text())
                 for r in runs.list_observers()]
    assert status["ended"] == "error" and not alive(status["browser_pid"])


OWNER = """
import json, sys, time
from chaosgenesys.browser import actions
started = actions.start_observer(open_url=sys.argv[1])
print(json.dumps(started), flush=True)
time.sleep(120)
"""


def test_a_killed_owner_leaves_no_observer_and_no_browser() -> None:
    with serve_test_page() as site:
        owner = subprocess.Popen([sys.executable, "-c", OWNER, site.url + "/"], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 stdout=subprocess.PIPE, text=True)
        assert owner.stdout is not None
        try:
            started = json.loads(owner.stdout.readline())
            site.wait_connections(1)
            record = json.loads((Path(started["dir"]) / "observer.json").read_text())
            status = json.loads((Path(started["dir"]) / "status.json").read_text())
            fault = registry.get(record["fault_id"])
            assert fault is not None and fault.kind == "browser-observer"
            assert fault.spec["devtools_url"] == started["devtools_url"]
            assert fault.spec["browser_pid"] == status["browser_pid"]
            assert alive(record["pid"]) and alive(status["browser_pid"])
            # the observer killed too: only the registry (its guardian) can stop the browser
            os.kill(owner.pid, signal.SIGKILL)
            os.kill(record["pid"], signal.SIGKILL)
            owner.wait(10)
            wait_for(lambda: registry.get(record["fault_id"]) is None, 20)
            wait_for(lambda: not alive(status["browser_pid"]), 10)
            assert not alive(record["pid"])
            wait_for(lambda: runs._group_members(status["browser_pid"],
                                                 status["browser_start_time"]) == [], 5)
            wait_for(lambda: processes_with(status["browser_profile"]) == [], 5)
            assert site.connections == 0
        finally:
            owner.kill()
            owner.wait()


def test_a_killed_owner_alone_stops_the_observer_and_its_browser() -> None:
    with serve_test_page() as site:
        owner = subprocess.Popen([sys.executable, "-c", OWNER, site.url + "/"], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 stdout=subprocess.PIPE, text=True)
        assert owner.stdout is not None
        try:
            started = json.loads(owner.stdout.readline())
            record = json.loads((Path(started["dir"]) / "observer.json").read_text())
            status = json.loads((Path(started["dir"]) / "status.json").read_text())
            os.kill(owner.pid, signal.SIGKILL)
            owner.wait(10)
            wait_for(lambda: not alive(record["pid"]) and not alive(status["browser_pid"]), 15)
            wait_for(lambda: registry.get(record["fault_id"]) is None, 20)
            wait_for(lambda: processes_with(status["browser_profile"]) == [], 5)
        finally:
            owner.kill()
            owner.wait()


def test_the_activity_modules_import_no_playwright() -> None:
    modules = ["chaosgenesys.browser.probes", "chaosgenesys.browser.actions"]
    assert imported_by(modules, ("playwright",)) == []


def test_the_observer_process_loads_without_chaoslib() -> None:
    # chaoslib takes about a tenth of a second to import: a quarter of an observer's start
    assert imported_by(["chaosgenesys.browser.observer"], ("chaoslib", "playwright")) == []
