"""A browser the observer launched is the run's session: however the observer ends (stopped, its
duration, its owner or the browser gone, or an error while it starts after the page logged in),
every token the page obtained is revoked, proved dead by the sandbox that issued it, and
``status.json`` says so. The reference desktop (``/desktop/``) logs in to a real sandbox with
the official SDK (authorization code + PKCE), in the real headless Chromium the observer launches.
A token request on its way when the observer stops is waited for, and its token revoked; the
browser refuses the page any new one from then on (the test page, whose token answers wait).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import actions, runs
from chaosgenesys.browser.summary import read_events
from chaosgenesys.faults import registry
from chaosgenesys.sandbox.seed import DESKTOP_CLIENT_ID
from tests.browser.pages import TOKEN_SECRET, serve_test_page
from tests.browser_observer.conftest import alive, page_in, processes_with, wait_for
from tests.conftest import AGENT_1, make_seed

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed=make_seed()) as sb:
        yield sb


@pytest.fixture
def before(sandbox: Any) -> set[str]:
    """The desktop tokens issued before the test, none of them valid any more (each test counts
    the page's own)."""
    sandbox.revoke_tokens(DESKTOP_CLIENT_ID)
    return desktop_tokens(sandbox)


def desktop_tokens(sandbox: Any) -> set[str]:
    """Every token the sandbox has issued to the desktop's client (valid or not)."""
    records = list(sandbox.state.tokens._tokens.items())
    return {token for token, record in records if record.client_id == DESKTOP_CLIENT_ID}


def answers(sandbox: Any, tokens: set[str]) -> list[int]:
    """What the sandbox answers ``GET /api/v2/tokens/me`` with each token (never shown)."""
    return [
        requests.get(f"{sandbox.url}/api/v2/tokens/me", timeout=5,
                     headers={"Authorization": f"Bearer {token}"}).status_code
        for token in tokens
    ]


def active_desktop_tokens(sandbox: Any) -> int:
    state = requests.get(f"{sandbox.url}/sandbox/v1/state", timeout=5).json()
    return int({c["clientId"]: c for c in state["clients"]}[DESKTOP_CLIENT_ID]["activeTokens"])


def the_observer() -> tuple[dict[str, Any], dict[str, Any]]:
    (record,) = runs.list_observers()
    return record, json.loads((Path(record["dir"]) / "status.json").read_text())


def assert_gone(record: dict[str, Any]) -> dict[str, Any]:
    """Nothing of the observer of ``record`` and of the browser it launched is left running, and
    the registry has forgotten it; its status."""
    wait_for(lambda: not alive(int(record["pid"])), 10)
    status: dict[str, Any] = json.loads((Path(record["dir"]) / "status.json").read_text())
    assert not alive(status["browser_pid"])
    wait_for(lambda: runs._group_members(status["browser_pid"],
                                         status["browser_start_time"]) == [], 5)
    wait_for(lambda: processes_with(status["browser_profile"]) == [], 5)
    # forgotten by the observer itself, or (its owner gone) by the guardian on its next round,
    # which a loaded machine may take a while to come to
    wait_for(lambda: registry.mine(kind=runs.KIND) == [], 15)
    return status


def assert_revoked_and_gone(sandbox: Any, before: set[str]) -> dict[str, Any]:
    """The page obtained a token in this test, none of its tokens works any more, the
    observer's status says it revoked them, and nothing of the observer is left running; the
    observer's status."""
    obtained = desktop_tokens(sandbox) - before
    assert len(obtained) >= 1  # the page logged in: there was a session to end
    assert answers(sandbox, obtained) == [401] * len(obtained)
    assert active_desktop_tokens(sandbox) == 0
    record, _ = the_observer()
    status = assert_gone(record)
    assert status["tokens_revoked"] == len(obtained), status
    assert status["tokens_still_working"] == 0 and status["token_problems"] == [], status
    for path in Path(record["dir"]).iterdir():  # no token written anywhere
        text = path.read_text(errors="replace")
        assert not [token for token in obtained if token in text], path
    events = read_events(Path(record["dir"]) / "events.jsonl")
    assert [e["revoked"] for e in events if e["event"] == "tokens_revoked"] == [len(obtained)]
    return status


def test_a_bad_selector_fails_before_the_page_opens_and_leaves_no_session(
    sandbox: Any, before: set[str]
) -> None:
    # The reference desktop logs in as soon as it opens: the selectors are checked first, on
    # the launched browser's blank page (parsing a selector needs no particular document).
    opened = sandbox.requests("^/desktop/", "GET")
    with pytest.raises(ActivityFailed, match=r"selectors\['p'\] '\[\[\[' is not a CSS selector"):
        actions.start_observer(open_url=f"{sandbox.url}/desktop/?user={AGENT_1}",
                               selectors={"p": "[[["})
    assert len(desktop_tokens(sandbox) - before) == 0  # nobody logged in (no token shown)
    assert active_desktop_tokens(sandbox) == 0
    assert sandbox.requests("^/desktop/", "GET") == opened  # the page never opened
    record, _ = the_observer()
    status = assert_gone(record)
    assert status["ended"] == "error" and "selectors['p']" in status["error"], status


def test_a_page_pattern_that_never_matches_revokes_the_page_s_token(
    sandbox: Any, before: set[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(actions, "PAGE_TIMEOUT", 5.0)  # the desktop logs in meanwhile
    with pytest.raises(ActivityFailed, match="page_url_pattern 'nowhere' does not match"):
        actions.start_observer(open_url=f"{sandbox.url}/desktop/?user={AGENT_1}",
                               page_url_pattern="nowhere")
    assert assert_revoked_and_gone(sandbox, before)["ended"] == "error"


OWNER = """
import json, sys, time
from chaosgenesys.browser import actions
started = actions.start_observer(open_url=sys.argv[1])
print(json.dumps(started), flush=True)
time.sleep(120)
"""


@pytest.mark.parametrize("ending", ["stopped", "duration", "owner_gone", "browser_gone"])
def test_however_the_observer_ends_the_page_s_tokens_are_revoked(
    sandbox: Any, before: set[str], ending: str
) -> None:
    open_url = f"{sandbox.url}/desktop/?user={AGENT_1}"
    owner = None
    if ending == "owner_gone":
        owner = subprocess.Popen([sys.executable, "-c", OWNER, open_url], cwd=ROOT,
                                 env={**os.environ, "PYTHONPATH": str(ROOT)},
                                 stdout=subprocess.PIPE, text=True)
        assert owner.stdout is not None
        started = json.loads(owner.stdout.readline())
    else:
        started = actions.start_observer(open_url=open_url,
                                         duration=6 if ending == "duration" else 0)
    try:
        # the observer has read the page's token (its expiry is in the status)
        wait_for(lambda: the_observer()[1].get("token_expires_at"), 15)
        record, status = the_observer()
        if ending == "stopped":
            stopped = actions.stop_observer()
            assert stopped["summaries"][started["id"]]["tokens_revoked"] == 1, stopped
        elif ending == "owner_gone":
            assert owner is not None
            os.kill(owner.pid, signal.SIGKILL)
            owner.wait(10)
        elif ending == "browser_gone":
            os.kill(status["browser_pid"], signal.SIGKILL)
        wait_for(lambda: not alive(int(record["pid"])), 20)
    finally:
        if owner is not None:
            owner.kill()
            owner.wait()
    status = assert_revoked_and_gone(sandbox, before)
    # the owner gone: the observer sees it, or the registry's guardian stops it first
    expected = {"owner_gone": ("owner_gone", "stopped")}.get(ending, (ending,))
    assert status["ended"] in expected, status


# The test page's token endpoint answers after ``delay_ms``; its /api/ answers every call 200,
# the revocation's check too (``tokens_still_working`` 1 there: it is not a real login service).
LATE_TOKENS = """() => {
  window.onTheWay = fetch('/oauth/token?expires_in=60&delay_ms=2500', {method: 'POST'});
  setTimeout(() => fetch('/oauth/token?expires_in=90', {method: 'POST'}), 1500);
  return true;
}"""


def test_a_token_on_its_way_at_the_stop_is_revoked_and_no_new_one_is_asked_for() -> None:
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/")
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            assert page.evaluate(LATE_TOKENS) is True
            wait_for(lambda: "/oauth/token" in site.api_calls, 5)  # on its way: 2.5 s to go
        stopped = actions.stop_observer()
        summary = stopped["summaries"][started["id"]]
        assert summary["tokens_revoked"] == 1, summary  # the token that came after the stop
        # the second request, 1.5 s after the first, was refused by the browser: never sent
        assert site.api_calls.count("/oauth/token") == 1, site.api_calls
        assert site.api_calls.count("/api/v2/tokens/me") == 2  # DELETE, then the check
    events = read_events(Path(started["events"]))
    assert [e["expires_in"] for e in events if e["event"] == "token"] == [60]
    refused = [e for e in events if e["event"] == "rest" and e["path"] == "/oauth/token"
               and e["status"] == 0]
    assert len(refused) == 1, refused  # the refused one, as the observer saw it fail
    assert [e["event"] for e in events][-2:] == ["stop", "tokens_revoked"]
    for path in Path(started["dir"]).iterdir():
        assert TOKEN_SECRET not in path.read_text(errors="replace"), path
