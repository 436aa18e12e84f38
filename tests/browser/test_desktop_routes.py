"""The sandbox serves the official browser bundles the reference desktop uses."""

from __future__ import annotations

from typing import Any

import requests


def test_desktop_serves_the_official_browser_bundles(sandbox: Any) -> None:
    streaming = requests.get(f"{sandbox.url}/desktop/lib/streaming-client.browser.js", timeout=10)
    assert streaming.status_code == 200, streaming.text[:200]
    assert "application/javascript" in streaming.headers["Content-Type"]
    assert len(streaming.content) > 10_000

    url = f"{sandbox.url}/desktop/lib/purecloud-platform-client-v2.js"
    platform = requests.get(url, timeout=10)
    assert platform.status_code == 200, platform.text[:200]
    assert b"platformClient" in platform.content


def test_unknown_desktop_library_is_404(sandbox: Any) -> None:
    response = requests.get(f"{sandbox.url}/desktop/lib/nope.js", timeout=10)
    assert response.status_code == 404
    assert "no desktop library named" in response.text
