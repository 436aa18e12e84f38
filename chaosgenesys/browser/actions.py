"""Start and stop the browser observer: a process that watches the desktop's page over DevTools.

The observer (:mod:`chaosgenesys.browser.observer`) attaches to a Chromium-based browser started
with ``--remote-debugging-port`` (Chrome, Edge, an Electron or CEF shell) or launches a headless
Chromium itself, and writes the page's WebSocket life, REST calls, console errors and UI labels
to an event log that the probes of :mod:`chaosgenesys.browser.probes` read. It runs detached and
is in the fault registry (kind ``browser-observer``) from before it starts: a run that dies,
even by SIGKILL, leaves no observer and no launched browser behind. Importing this module
imports no Playwright.
"""


import contextlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import (
    require_bool,
    require_int,
    require_number,
    require_regex,
    require_text,
)
from chaosgenesys.browser import runs
from chaosgenesys.browser.faults import (
    block_websocket_handshakes,
    clear_browser_faults,
    close_browser_websockets,
    delay_browser_requests,
    emulate_network,
    fail_browser_requests,
)
from chaosgenesys.shown import show

#: The observer's actions and, re-exported from ``chaosgenesys.browser.faults``, the faults
#: through the browser: experiment files name this module for all of them.
__all__ = [
    "block_websocket_handshakes",
    "clear_browser_faults",
    "close_browser_websockets",
    "delay_browser_requests",
    "emulate_network",
    "fail_browser_requests",
    "start_observer",
    "stop_observer",
    "wait_until_browser_token_expiry",
]

#: How long start_observer waits for the observer to attach, beyond the page wait.
ATTACH_TIMEOUT = 30.0
#: How long the observer waits for a page matching ``page_url_pattern``.
PAGE_TIMEOUT = 10.0
#: How much longer start_observer waits when the observer reloads the page (``reload_page``).
RELOAD_TIMEOUT = 15.0
#: How long past its duration the guardian lets an observer end by itself (revoke its tokens,
#: write its summary) before it stops it.
ENDING_GRACE = 30.0
MAX_DURATION = 7 * 86400.0
#: The longest wait_until_browser_token_expiry accepts (as the synthetic desktop's).
MAX_TOKEN_WAIT = 48 * 3600.0
MAX_SELECTORS = 20
_SELECTOR_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]{0,63}$")


def _selectors(selectors: Any) -> dict[str, str]:
    from chaosgenesys.browser.page_recorder import DEFAULT_SELECTORS

    if selectors is None:
        return dict(DEFAULT_SELECTORS)
    if not isinstance(selectors, dict) or len(selectors) > MAX_SELECTORS:
        raise ActivityFailed(
            f"selectors must be an object of at most {MAX_SELECTORS} name: CSS selector "
            f"pairs such as {{\"presence\": \"[data-cg=presence]\"}}, got {show(selectors)}"
        )
    for name, selector in selectors.items():
        if not isinstance(name, str) or not _SELECTOR_NAME.match(name):
            raise ActivityFailed(f"selectors: {show(name)} is not a name (letters, digits, _ -)")
        if not isinstance(selector, str) or not selector.strip() or len(selector) > 500:
            raise ActivityFailed(
                f"selectors[{name!r}] must be a non-empty CSS selector, got {show(selector)}"
            )
    return {str(name): str(selector).strip() for name, selector in selectors.items()}


def _open_url(open_url: str) -> str:
    require_text("open_url", open_url)
    parts = urlsplit(open_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ActivityFailed(f"open_url must be an http:// or https:// URL, got {show(open_url)}")
    from chaosgenesys.browser.chromium import ENV_CHROMIUM, chromium_path

    browser = chromium_path()
    if not (os.path.isfile(browser) and os.access(browser, os.X_OK)):
        raise ActivityFailed(
            f"open_url: no browser to launch at {browser!r} (install chromium with "
            f"scripts/bootstrap, or set {ENV_CHROMIUM}), or pass devtools_url"
        )
    return open_url


def _tail(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-400:].strip()
    except OSError:
        return ""


def start_observer(
    devtools_url: str = "",
    page_url_pattern: str = "",
    open_url: str = "",
    selectors: dict = None,  # type: ignore[assignment,type-arg]  # noqa: RUF013
    api_hosts: str = "",
    duration: float = 0,
    reload_page: bool = False,
    metrics_port: int = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Start the browser observer on the desktop's page and wait until it is attached.

    ``devtools_url``: the browser's DevTools endpoint (``http://127.0.0.1:9222``, what
    ``--remote-debugging-port=9222`` opens, or its ``ws://…/devtools/browser/<id>`` URL). Left
    empty, the observer launches the system Chromium headless (``CHAOSGENESYS_CHROMIUM`` or
    ``/usr/bin/chromium``, a fresh profile) on ``open_url`` (for tests and CI); that browser
    stops with the observer. ``page_url_pattern``: a regular expression searched in the page
    URLs (default with ``open_url``: that URL's origin and path); the observer waits up to 10 s
    for a page that matches. ``selectors``: UI labels to record, name to CSS selector (default
    ``{"presence": "[data-cg=\\"presence\\"]", "connection": "[data-cg=\\"connection\\"]"}``).
    ``api_hosts``: a regular expression searched in a request's URL (without query) that makes
    it a REST call (default: the page's origin's ``/api/`` and ``/oauth/`` paths and any
    ``*.mypurecloud.*`` or ``*.pure.cloud`` host). ``duration`` > 0: it stops by itself that many
    seconds after it attached (a slow browser start eats none of it). ``metrics_port`` (0 = off,
    the default): the observer also serves the page's figures for Prometheus at
    ``http://127.0.0.1:<metrics_port>/metrics`` (the synthetic agents' metrics, labelled
    ``desktop="browser"``, docs/observability.md); a port it cannot bind is an
    ``ActivityFailed`` naming ``metrics_port``.

    Every document the page loads while the observer watches starts with the WebSocket guard of
    ``block_websocket_handshakes`` in place before its own scripts, so that fault reaches the
    libraries that keep their own reference to ``WebSocket`` (the official streaming client
    does). A page the observer opens (``open_url``) has it from the start; for a desktop already
    open in a browser, ``reload_page: true`` reloads it once attached (the desktop logs in
    again), or the guard reaches only code that builds its sockets after the fault starts.
    Returns ``{"id", "dir", "events", "devtools_url", "page_url", "ws_guard_resident",
    "metrics_url"}`` (the page URL without its query; ``metrics_url`` ``""`` when off).

    A bad argument, an endpoint that is not DevTools, no page matching: ``ActivityFailed``
    naming the argument, nothing left running.

    ```json
    {"type": "action", "name": "watch-the-desktop",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "start_observer",
                  "arguments": {"devtools_url": "http://127.0.0.1:9222",
                                "page_url_pattern": "apps\\\\.mypurecloud\\\\.com"}}}
    ```
    """
    from chaosgenesys.browser import devtools
    from chaosgenesys.faults import registry

    require_text("devtools_url", devtools_url, allow_empty=True)
    require_text("page_url_pattern", page_url_pattern, allow_empty=True)
    require_text("open_url", open_url, allow_empty=True)
    require_text("api_hosts", api_hosts, allow_empty=True)
    chosen_selectors = _selectors(selectors)
    if api_hosts:
        require_regex("api_hosts", api_hosts)
    seconds = require_number("duration", duration, maximum=MAX_DURATION)
    reload_it = require_bool("reload_page", reload_page)
    port = require_int("metrics_port", metrics_port, maximum=65535)
    if devtools_url and open_url:
        raise ActivityFailed(
            f"give devtools_url ({show(devtools_url)}) or open_url ({show(open_url)}), not both"
        )
    if not devtools_url and not open_url:
        raise ActivityFailed(
            "devtools_url must be the browser's DevTools endpoint (http://127.0.0.1:9222), or "
            "open_url a page for a headless Chromium the observer launches; got neither"
        )
    if reload_it and open_url:
        raise ActivityFailed(
            "reload_page is for a page already open at devtools_url; the page open_url opens "
            "has the guard from the start"
        )
    pattern = page_url_pattern
    if open_url:
        _open_url(open_url)
        if not pattern:
            pattern = "^" + re.escape(devtools.shown_url(open_url))
    elif not pattern:
        raise ActivityFailed("page_url_pattern must be a regular expression, got ''")
    devtools.page_pattern(pattern)
    browser_ws = devtools.websocket_url(devtools_url) if devtools_url else ""

    observer_id = time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8]
    folder = runs.observer_dir(observer_id)
    folder.mkdir(parents=True)
    owner_pid, owner_start = registry.run_owner()
    record: dict[str, Any] = {
        "id": observer_id, "created_at": time.time(),
        "owner_pid": owner_pid, "owner_start": str(owner_start or ""),
        "owner_ancestors": [[pid, str(start or "")] for pid, start in registry.ancestry()],
        "devtools_url": browser_ws, "page_url_pattern": pattern, "open_url":
        devtools.shown_url(open_url) if open_url else "", "selectors": chosen_selectors,
        "api_hosts": api_hosts, "duration": seconds, "metrics_port": port,
        "pid": 0, "start_time": "",
        "fault_id": "",
    }
    spec: dict[str, Any] = {
        "dir": str(folder), "pid": 0, "start_time": "", "devtools_url": browser_ws,
        "page_url_pattern": pattern, "browser_pid": 0, "browser_start_time": "",
    }
    what = devtools.shown_url(open_url) if open_url else browser_ws
    fault = registry.record(
        kind=runs.KIND,
        description=f"browser observer on {pattern!r} of {what}",
        reverter="chaosgenesys.browser.runs:revert",
        spec=spec,
        # until it watches, the deadline leaves it the longest start (it moves once attached)
        duration=seconds + PAGE_TIMEOUT + ATTACH_TIMEOUT + RELOAD_TIMEOUT + ENDING_GRACE
        if seconds
        else None,
    )
    record["fault_id"] = fault.id
    runs.write_json_atomic(folder / "observer.json", record)
    command = [
        sys.executable, "-m", "chaosgenesys.browser.observer", "--dir", str(folder),
        "--page-url-pattern", pattern, "--selectors", json.dumps(chosen_selectors),
        "--page-timeout", str(PAGE_TIMEOUT), "--owner-pid", str(owner_pid),
        "--owner-start", str(owner_start or ""), "--fault-id", fault.id,
    ]
    command += ["--devtools-url", browser_ws] if browser_ws else ["--open-url", open_url]
    if api_hosts:
        command += ["--api-hosts", api_hosts]
    if seconds:
        command += ["--duration", str(seconds)]
    if reload_it:
        command.append("--reload")
    if port:
        command += ["--metrics-port", str(port)]
    with registry.undone_on_failure(fault.id):
        with open(folder / "stderr.log", "wb") as stderr:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                start_new_session=True, cwd=str(folder),
            )
        process.returncode = 0  # detached on purpose: no ResourceWarning for it
        record["pid"], record["start_time"] = process.pid, runs.start_time(process.pid)
        current = registry.get(fault.id)
        registry.update(fault.id, spec={**(current.spec if current else spec),
                                        "pid": process.pid, "start_time": record["start_time"]})
        runs.write_json_atomic(folder / "observer.json", record)
        status = _wait_attached(folder, process.pid, record["start_time"],
                                RELOAD_TIMEOUT if reload_it else 0.0)
    attached_at = status.get("attached_at")
    if seconds and isinstance(attached_at, int | float):
        # it watches for ``seconds`` from when it attached: so does its record's deadline
        with contextlib.suppress(ActivityFailed):  # gone already: it ended by itself
            registry.update(fault.id, deadline=float(attached_at) + seconds + ENDING_GRACE)
    return {
        "id": observer_id,
        "dir": str(folder),
        "events": str(folder / "events.jsonl"),
        "devtools_url": str(status.get("devtools_url") or browser_ws),
        "page_url": str(status.get("page_url") or ""),
        "ws_guard_resident": bool(status.get("ws_guard_resident")),
        "metrics_url": str((status.get("metrics") or {}).get("url") or ""),
    }


def _wait_attached(folder: Path, pid: int, started: str, extra: float) -> dict[str, Any]:
    from chaosgenesys.agent.runtime import read_json

    deadline = time.monotonic() + PAGE_TIMEOUT + ATTACH_TIMEOUT + extra
    while time.monotonic() < deadline:
        status = read_json(folder / "status.json") or {}
        if status.get("attached"):
            return status
        if status.get("error"):
            raise ActivityFailed(str(status["error"]))
        if not runs.process_alive(pid, started):
            status = read_json(folder / "status.json") or {}
            raise ActivityFailed(
                str(status.get("error") or "the browser observer ended before it attached: "
                    + (_tail(folder / "stderr.log") or "no message"))
            )
        time.sleep(0.05)
    raise ActivityFailed(
        f"the browser observer did not attach within {PAGE_TIMEOUT + ATTACH_TIMEOUT + extra:g} s"
    )


def stop_observer(
    observer_id: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Stop this run's browser observer(s) (or the one ``observer_id`` names) and any browser
    they launched; returns ``{"stopped": [ids], "summaries": {id: browser summary}}`` (the
    figures of ``chaosgenesys.browser.probes.browser_summary``). Idempotent: a natural
    rollback. The event logs stay readable by the probes.

    ```json
    {"type": "action", "name": "stop-watching-the-desktop",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "stop_observer"}}
    ```
    """
    from chaosgenesys.faults import registry

    require_text("observer_id", observer_id, allow_empty=True)
    chosen = [runs.pick_observer(observer_id)] if observer_id else runs.run_observers()
    stopped: list[str] = []
    summaries: dict[str, Any] = {}
    for record in chosen:
        fault_id = str(record.get("fault_id") or "")
        was = runs.process_alive(int(record.get("pid") or 0), str(record.get("start_time") or ""))
        reverted = False
        if fault_id:
            with contextlib.suppress(Exception):
                reverted = registry.revert(fault_id)
        if not reverted:
            runs.stop_process(int(record.get("pid") or 0), str(record.get("start_time") or ""))
        if was:
            stopped.append(str(record["id"]))
        summaries[str(record["id"])] = runs.summary_of(record)
    return {"stopped": stopped, "summaries": summaries}


def wait_until_browser_token_expiry(
    seconds_before: float = 60.0,
    max_wait: float = 3600.0,
    observer_id: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Sleep until the access token the observed desktop last obtained has ``seconds_before``
    seconds left: lines a fault up with the end of the *desktop's* own token (the guide's edge
    case 3: a delay about 60 s before expiry makes the renewal race the desktop's own calls).

    The observer notes each token the page obtains from the ``expires_in`` of its
    ``/oauth/token`` answer (authorization code + PKCE, refresh; the token itself is never
    read out); ``browser_summary`` shows ``tokens_obtained`` and ``token_expires_at``. Refuses
    with ``ActivityFailed``, before waiting: no observer of this run (or ``observer_id``
    unknown), no token seen yet (a page logged in before the observer attached: the next
    renewal is the first seen), or a moment more than ``max_wait`` seconds away (default 3600,
    at most 172800). Returns at once when the token is already that close to expiry. Returns
    ``{"waited": s, "seconds_left": s, "expires_at": "<ISO time>", "refreshed": bool}``
    (``refreshed``: the page obtained a newer token meanwhile). Shorten the desktop's token
    lifetime to keep experiments short (the sandbox control's ``desktop_token_lifetime``).

    ```json
    {"type": "action", "name": "wait-until-the-desktop-token-has-a-minute-left",
     "provider": {"type": "python", "module": "chaosgenesys.browser.actions",
                  "func": "wait_until_browser_token_expiry",
                  "arguments": {"seconds_before": 60, "max_wait": 600}}}
    ```
    """
    from chaosgenesys.token_moment import wait_until_token_moment

    before = require_number("seconds_before", seconds_before, maximum=MAX_TOKEN_WAIT)
    bound = require_number("max_wait", max_wait, maximum=MAX_TOKEN_WAIT)
    record = runs.pick_observer(observer_id)
    expires_at = runs.summary_of(record).get("token_expires_at")
    if not isinstance(expires_at, int | float):
        raise ActivityFailed(
            f"the browser observer {record.get('id')} has seen no access token of the page yet "
            "(one obtained before it attached is not seen: the next renewal will be)"
        )
    return wait_until_token_moment(
        float(expires_at), before, bound, whose="the desktop's access token",
        latest_expiry=lambda: runs.summary_of(record).get("token_expires_at"),
    )
