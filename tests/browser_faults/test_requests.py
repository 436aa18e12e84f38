"""REST requests delayed and failed through the DevTools Fetch domain, measured from the page,
and reverted: at the end of the duration, by clear_browser_faults, by revert_all (the kill
switch), and by the guardian when the run that made the fault is killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from chaosgenesys.browser import faults, probes
from chaosgenesys.faults import registry
from tests.browser_faults.conftest import OpenPage, holder_running, wait_for
from tests.faults.conftest import ROOT


def test_delay_holds_matching_requests_only_and_ends_with_its_duration(
    test_page: OpenPage,
) -> None:
    started = faults.delay_browser_requests(r"/api/slow", 1200, 3, **test_page.target())
    assert started["kind"] == "delay" and started["delay_ms"] == 1200
    assert started["url_pattern"] == "/api/slow" and started["duration"] == 3
    (record,) = registry.mine(kind=faults.KIND)
    assert record.id == started["id"] and record.spec["pid"] == started["pid"]
    state_dir = Path(record.spec["state_dir"])
    assert (state_dir / "holder.log").exists()
    status, slow = test_page.timed_call("/api/slow/presences")
    assert status == 200 and slow >= 1150
    status, fast = test_page.timed_call("/api/other")
    assert status == 200 and fast < 1000
    # the duration ends it: the holder goes, the record goes, the requests go straight
    wait_for(lambda: not holder_running(started["pid"]), 8)
    wait_for(lambda: not registry.mine(kind=faults.KIND), 3)
    assert not state_dir.exists()
    status, after = test_page.timed_call("/api/slow/again")
    assert status == 200 and after < 1000


def test_fail_answers_a_genesys_error_and_revert_all_ends_it(test_page: OpenPage) -> None:
    calls = len(test_page.site.api_calls)
    started = faults.fail_browser_requests(r"/presences$", 503, 30, **test_page.target())
    assert started["status"] == 503
    body = test_page.page.evaluate(
        """async () => { const r = await fetch('/api/v2/users/u1/presences');
                        return [r.status, r.headers.get('retry-after'), await r.json()]; }"""
    )
    assert body[0] == 503 and body[1] == "1"
    assert body[2]["status"] == 503 and body[2]["code"] == "service.unavailable"
    assert body[2]["contextId"] and "message" in body[2]
    assert test_page.site.api_calls[calls:] == []  # answered in the browser, never sent
    assert test_page.timed_call("/api/v2/users/u1")[0] == 200  # not matched: sent
    assert test_page.site.api_calls[calls:] == ["/api/v2/users/u1"]
    # the kill switch's revert_all ends it
    results = registry.revert_all()
    assert [(r["id"], r["status"]) for r in results] == [(started["id"], "reverted")]
    assert not holder_running(started["pid"]) and not registry.mine(kind=faults.KIND)
    assert test_page.timed_call("/api/v2/users/u1/presences")[0] == 200


#: A dedicated worker that fetches the path it is sent and posts back the status.
WORKER = """self.onmessage = async (e) => {
  let status; try { status = (await fetch(e.data)).status; } catch (x) { status = String(x); }
  self.postMessage(status); };"""


def test_a_dedicated_worker_s_requests_are_reached_through_the_page(test_page: OpenPage) -> None:
    page = test_page.page
    call = """(path) => new Promise(done => {
        window.__worker.onmessage = (e) => done(e.data);
        window.__worker.postMessage(location.origin + path); })"""
    page.evaluate("(code) => { window.__worker = new Worker(URL.createObjectURL("
                  "new Blob([code]))); }", WORKER)
    assert page.evaluate(call, "/api/in-worker") == 200
    faults.fail_browser_requests(r"/api/in-worker", 503, 30, **test_page.target())
    calls = len(test_page.site.api_calls)
    # the page's own Fetch interception takes its dedicated workers' requests too
    assert page.evaluate(call, "/api/in-worker") == 503
    assert test_page.site.api_calls[calls:] == []
    wait_for(lambda: probes.browser_faults()["matched"] == 1, 3)  # (written every 0.25 s)
    faults.clear_browser_faults()
    assert page.evaluate(call, "/api/in-worker") == 200


def test_clear_browser_faults_reverts_them_all(test_page: OpenPage) -> None:
    one = faults.fail_browser_requests(r"/api/a", 500, 60, **test_page.target())
    two = faults.delay_browser_requests(r"/api/b", 1500, 60, **test_page.target())
    assert test_page.timed_call("/api/a")[0] == 500
    cleared = faults.clear_browser_faults()
    assert sorted(cleared["reverted"]) == sorted([one["id"], two["id"]])
    # what each hit in all: the one call to /api/a, answered by the first
    assert cleared["hits"][one["id"]]["matched"] == 1, cleared
    assert cleared["hits"][two["id"]]["matched"] == 0, cleared
    assert not holder_running(one["pid"]) and not holder_running(two["pid"])
    assert registry.mine(kind=faults.KIND) == []
    assert test_page.timed_call("/api/a")[0] == 200
    status, took = test_page.timed_call("/api/b")
    assert status == 200 and took < 1000
    assert faults.clear_browser_faults() == {"reverted": [], "hits": {}}


def test_browser_faults_says_what_each_fault_hit(test_page: OpenPage) -> None:
    one = faults.fail_browser_requests(r"/api/a$", 500, 60, **test_page.target())
    two = faults.delay_browser_requests(r"/api/b$", 300, 60, **test_page.target())
    seen = probes.browser_faults()
    assert seen["count"] == 2 and seen["matched"] == 0, seen
    assert [(f["id"], f["kind"], f["url_pattern"], f["matched"]) for f in seen["faults"]] == [
        (one["id"], "fail", "/api/a$", 0), (two["id"], "delay", "/api/b$", 0)
    ]
    assert test_page.timed_call("/api/a")[0] == 500
    assert test_page.timed_call("/api/b")[0] == 200
    assert test_page.timed_call("/api/a")[0] == 500
    assert test_page.timed_call("/api/c")[0] == 200  # matched by neither
    # the holders write their figures each tick (0.25 s)
    wait_for(lambda: probes.browser_faults()["matched"] == 3, 3)
    hit = {f["id"]: f for f in probes.browser_faults()["faults"]}
    assert hit[one["id"]]["matched"] == 2 and hit[two["id"]]["matched"] == 1, hit
    assert hit[one["id"]]["passed"] >= 1 and hit[two["id"]]["passed"] >= 1, hit
    cleared = faults.clear_browser_faults()["hits"]
    assert {i: h["matched"] for i, h in cleared.items()} == {one["id"]: 2, two["id"]: 1}
    assert probes.browser_faults() == {"count": 0, "matched": 0, "faults": []}


OWNER = """
import json, sys, time
from chaosgenesys.browser import faults
started = faults.fail_browser_requests(sys.argv[1], 502, 120, devtools_url=sys.argv[2],
                                       page_url_pattern=sys.argv[3])
print(json.dumps(started), flush=True)
time.sleep(120)
"""


def test_the_guardian_reverts_the_fault_when_its_run_is_killed(test_page: OpenPage) -> None:
    target = test_page.target()
    owner = subprocess.Popen(
        [sys.executable, "-c", OWNER, r"/api/owned", target["devtools_url"],
         target["page_url_pattern"]],
        cwd=ROOT, stdout=subprocess.PIPE, text=True, start_new_session=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    try:
        assert owner.stdout is not None
        started = json.loads(owner.stdout.readline())
        assert test_page.timed_call("/api/owned")[0] == 502
        assert [f.id for f in registry.active(faults.KIND)] == [started["id"]]
        os.kill(owner.pid, signal.SIGKILL)  # no rollback, no finally: the run is just gone
        owner.wait(5)
        wait_for(lambda: not registry.active(faults.KIND), 10)
        wait_for(lambda: not holder_running(started["pid"]), 5)
        assert test_page.timed_call("/api/owned")[0] == 200
    finally:
        owner.kill()
        owner.wait()
