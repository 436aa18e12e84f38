"""Reach a browser's DevTools endpoint and the desktop's page in it.

The one place that turns what an experiment names (``devtools_url``, ``page_url_pattern``) into a
DevTools WebSocket URL and a page pattern (the observer and the browser faults both check theirs
here), and, for the observer, into a connection and the page's session (the faults reach theirs
over :mod:`chaosgenesys.browser.cdp_pages` in their own event loop)::

    from chaosgenesys.browser import devtools

    link = devtools.connect("http://127.0.0.1:9222")
    try:
        page = devtools.find_page(link, r"/desktop/")
        print(link.send("Runtime.evaluate", {"expression": "document.title"}, page))
    finally:
        link.close()

``devtools_url`` is the browser's DevTools HTTP endpoint (``http://127.0.0.1:9222``, what
``--remote-debugging-port=9222`` opens) or its WebSocket URL (``ws://…/devtools/browser/<id>``,
which Chromium prints on start). Anything else, or an endpoint that does not answer as DevTools
does, is an ``ActivityFailed`` naming the argument and its value; so is a pattern no page matches.
Page URLs are shown without their query and fragment (a login redirect carries a token there).
The connection is :mod:`chaosgenesys.browser.cdp`'s (no Playwright, no Node driver).
"""

from __future__ import annotations

import json
import re
import urllib.error
import urllib.request
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from chaosgenesys.browser.redaction import first_line, shown_url
from chaosgenesys.failure import activity_failed

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.browser.cdp import Session
    from chaosgenesys.browser.cdp_link import Link

__all__ = [
    "connect",
    "find_page",
    "no_page",
    "not_attached",
    "page_pattern",
    "shown_url",
    "websocket_url",
]


def _version(http_url: str, timeout: float) -> dict[str, Any]:
    with urllib.request.urlopen(http_url.rstrip("/") + "/json/version", timeout=timeout) as answer:
        data = json.loads(answer.read().decode("utf-8"))
    if not isinstance(data, dict):
        raise ValueError("/json/version is not a JSON object")
    return data


def websocket_url(devtools_url: str, argument: str = "devtools_url", timeout: float = 5.0) -> str:
    """The browser's DevTools WebSocket URL for ``devtools_url`` (HTTP endpoint or ws URL)."""
    if not isinstance(devtools_url, str) or not devtools_url.strip():
        raise activity_failed(
            f"{argument} must be a DevTools endpoint such as http://127.0.0.1:9222, "
            f"got {devtools_url!r}"
        )
    url = devtools_url.strip()
    scheme = urlsplit(url).scheme
    if scheme in ("ws", "wss"):
        http = urlunsplit(("http" if scheme == "ws" else "https", urlsplit(url).netloc, "", "", ""))
    elif scheme in ("http", "https"):
        http = url
    else:
        raise activity_failed(
            f"{argument} must start with http://, https://, ws:// or wss://, got {url!r}"
        )
    try:
        version = _version(http, timeout)
    except (OSError, ValueError, urllib.error.URLError) as error:
        raise activity_failed(
            f"{argument} {url!r} is not a DevTools endpoint ({error}); start the browser with "
            "--remote-debugging-port=9222 and pass http://127.0.0.1:9222"
        ) from None
    found = version.get("webSocketDebuggerUrl")
    if not isinstance(found, str) or not found.startswith(("ws://", "wss://")):
        raise activity_failed(f"{argument} {url!r} is not a DevTools endpoint (no browser URL)")
    return url if scheme in ("ws", "wss") else found


def connect(devtools_url: str, argument: str = "devtools_url") -> Link:
    """A :class:`~chaosgenesys.browser.cdp_link.Link` to the browser at ``devtools_url``; the
    caller closes it (the browser itself keeps running: it is the user's)."""
    ws_url = websocket_url(devtools_url, argument)
    from chaosgenesys.browser.cdp_link import Link

    try:
        return Link.open(ws_url)
    except Exception as error:  # refused, timed out, or not a WebSocket that answers
        raise not_attached(argument, devtools_url, error) from None


def not_attached(argument: str, value: str, error: BaseException) -> Exception:
    """The failure to raise when the DevTools WebSocket of ``argument`` ``value`` refused us,
    timed out or did not answer as DevTools does (``error``)."""
    return activity_failed(
        f"{argument} {value!r}: could not attach over DevTools: {first_line(error)}"
    )


def page_pattern(pattern: str, argument: str = "page_url_pattern") -> re.Pattern[str]:
    """``pattern`` compiled, or an ``ActivityFailed`` naming the argument."""
    if not isinstance(pattern, str) or not pattern:
        raise activity_failed(f"{argument} must be a regular expression, got {pattern!r}")
    try:
        return re.compile(pattern)
    except re.error as error:
        raise activity_failed(
            f"{argument} {pattern!r} is not a regular expression: {error}"
        ) from None


def find_page(
    link: Link, pattern: str, timeout: float = 10.0, argument: str = "page_url_pattern"
) -> Session:
    """A session on the first page whose URL ``pattern`` searches, waiting up to ``timeout``
    seconds; its ``target`` is the page's ``TargetInfo``."""
    compiled = page_pattern(pattern, argument)
    from chaosgenesys.browser.cdp import CdpError
    from chaosgenesys.browser.cdp_pages import attach_page

    assert link.browser is not None
    try:
        return link.run(attach_page(link.browser, compiled, timeout, argument), timeout + 30)
    except CdpError as error:
        raise activity_failed(str(error)) from None


def no_page(argument: str, pattern: str, timeout: float, urls: list[str]) -> str:
    """What to say when ``pattern`` matched none of the pages at ``urls`` within ``timeout``."""
    seen = ", ".join(sorted({shown_url(url) for url in urls})) or "none"
    return (
        f"{argument} {pattern!r} matches no page of the browser after {timeout:g} s "
        f"(pages: {seen})"
    )
