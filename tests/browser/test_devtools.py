"""Reaching a browser's DevTools endpoint and a page in it; bad endpoints and patterns named."""

from __future__ import annotations

import re

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.browser import devtools
from tests.browser.chromium import chromium
from tests.browser.pages import serve_test_page


def test_http_endpoint_and_ws_url_reach_the_same_browser_and_find_the_page() -> None:
    with serve_test_page() as site, chromium() as ws_url:
        http_url = "http://" + ws_url.split("/")[2]
        assert devtools.websocket_url(http_url) == ws_url
        assert devtools.websocket_url(ws_url) == ws_url
        link = devtools.connect(http_url)
        try:
            opened = link.send("Target.createTarget", {"url": "about:blank"})
            page = devtools.find_page(link, "^about:blank$")
            link.send("Page.enable", session=page)
            link.send("Page.navigate", {"url": site.url + "/?secret=abc#access_token=t"}, page)
            page = devtools.find_page(link, r"127\.0\.0\.1:\d+/", timeout=5)
            assert page.target["targetId"] == opened["targetId"]
            answer = link.send(
                "Runtime.evaluate",
                {"expression": "document.querySelector('[data-cg=\"presence\"]') !== null",
                 "returnByValue": True},
                page,
            )
            assert answer["result"]["value"] is True
            with pytest.raises(ActivityFailed) as failed:
                devtools.find_page(link, r"/desktop/", timeout=0.3)
        finally:
            link.close()
        assert link.closed and not link.thread.is_alive()
        message = str(failed.value)
        assert "page_url_pattern '/desktop/' matches no page" in message
        assert site.url + "/" in message
        assert "secret" not in message and "access_token" not in message


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("", "devtools_url must be a DevTools endpoint"),
        ("ftp://127.0.0.1:9222", "devtools_url must start with http://"),
        ("http://127.0.0.1:9", "devtools_url 'http://127.0.0.1:9' is not a DevTools endpoint"),
    ],
)
def test_bad_endpoints_are_named(value: str, expected: str) -> None:
    with pytest.raises(ActivityFailed, match=re.escape(expected)):
        devtools.websocket_url(value)


def test_a_web_server_that_is_not_devtools_is_refused() -> None:
    with serve_test_page() as site, pytest.raises(ActivityFailed, match="is not a DevTools"):
        devtools.websocket_url(site.url)


def test_bad_pattern_is_named() -> None:
    with pytest.raises(ActivityFailed, match=r"page_url_pattern '\(' is not a regular"):
        devtools.page_pattern("(")


def test_a_browser_that_refuses_the_websocket_is_named() -> None:
    with chromium() as ws_url:
        wrong = ws_url.rsplit("/", 1)[0] + "/no-such-browser"
        with pytest.raises(ActivityFailed) as failed:
            devtools.connect(wrong)
    assert f"devtools_url {wrong!r}: could not attach over DevTools" in str(failed.value)
