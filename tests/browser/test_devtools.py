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
        with devtools.connected(http_url) as browser:
            browser.contexts[0].new_page().goto(site.url + "/?secret=abc#access_token=t")
            page = devtools.find_page(browser, r"127\.0\.0\.1:\d+/")
            assert page.get_attribute('[data-cg="presence"]', "data-cg") == "presence"
            with pytest.raises(ActivityFailed) as failed:
                devtools.find_page(browser, r"/desktop/", timeout=0.3)
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
