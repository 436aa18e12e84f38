"""The observer notes when each access token the page obtains expires (from the ``expires_in`` of
its ``/oauth/token`` answer, never the token), and ``wait_until_browser_token_expiry`` lines an
action up with that moment."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import actions, probes
from chaosgenesys.browser.summary import read_events
from tests.browser.pages import TOKEN_SECRET, serve_test_page
from tests.browser_observer.conftest import page_in, wait_for

TOKEN_REQUEST = "fetch('/oauth/token?expires_in=%d', {method: 'POST'}).then(r => r.status)"
SLOW_TOKEN_REQUEST = (
    "fetch('/oauth/token?expires_in=%d&delay_ms=%d', {method: 'POST'}).then(r => r.status)"
)


def test_token_expiry_is_noted_and_waited_for_without_the_token() -> None:
    with serve_test_page() as site:
        started = actions.start_observer(open_url=site.url + "/")
        with pytest.raises(ActivityFailed, match="no access token"):
            actions.wait_until_browser_token_expiry(seconds_before=1)
        with page_in(started["devtools_url"], "127\\.0\\.0\\.1") as page:
            asked = time.time()
            assert page.evaluate(TOKEN_REQUEST % 30) == 200
            wait_for(lambda: probes.browser_summary()["tokens_obtained"] == 1, 5)
            expires_at = probes.browser_summary()["token_expires_at"]
            assert asked + 30 - 0.5 <= expires_at <= time.time() + 30
            quick = probes.browser_summary()["last_token_request_ms"]
            assert 0 <= quick < 700, quick
            with pytest.raises(ActivityFailed, match="max_wait"):
                actions.wait_until_browser_token_expiry(seconds_before=5, max_wait=1)
            waited = actions.wait_until_browser_token_expiry(seconds_before=28.5, max_wait=5)
            assert 0.5 <= waited["waited"] <= 2.5, waited
            assert 28 <= waited["seconds_left"] <= 28.6 and waited["refreshed"] is False
            # a renewal: the newer token is the one followed, with how long its request took;
            # a failed answer is not a token
            sent = time.monotonic()
            assert page.evaluate(SLOW_TOKEN_REQUEST % (60, 700)) == 200
            took = (time.monotonic() - sent) * 1000
            page.evaluate("fetch('/oauth/token?status=400', {method: 'POST'})")
            page.evaluate("fetch('/api/v2/users/me?status=401').then(r => r.status)")
            wait_for(lambda: probes.browser_summary()["tokens_obtained"] == 2, 5)
            summary = probes.browser_summary()
            assert summary["token_expires_at"] > expires_at + 25
            assert 700 <= summary["last_token_request_ms"] <= took + 50, (summary, took)
            wait_for(lambda: probes.browser_summary()["api_unauthorized"] == 1, 5)
            assert actions.wait_until_browser_token_expiry(seconds_before=120)["waited"] < 0.5
        actions.stop_observer()
    for path in Path(started["dir"]).iterdir():
        assert TOKEN_SECRET not in path.read_text(errors="replace"), path
    tokens = [e for e in read_events(Path(started["events"])) if e["event"] == "token"]
    assert [e["expires_in"] for e in tokens] == [30, 60]


def test_bad_arguments_are_named() -> None:
    for arguments, name in (
        ({"seconds_before": -1}, "seconds_before"),
        ({"seconds_before": "60"}, "seconds_before"),
        ({"max_wait": 10**9}, "max_wait"),
        ({"observer_id": "../x"}, "observer_id"),
    ):
        with pytest.raises(ActivityFailed, match=name):
            actions.wait_until_browser_token_expiry(**arguments)  # type: ignore[arg-type]
    with pytest.raises(ActivityFailed, match="no browser observer"):
        actions.wait_until_browser_token_expiry()
