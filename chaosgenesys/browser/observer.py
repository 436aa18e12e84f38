"""The browser observer process: watch one page of a browser over the DevTools protocol.

Run by :func:`chaosgenesys.browser.actions.start_observer` (detached, in a session of its own, so
it outlives the activity; the fault registry stops it)::

    python -m chaosgenesys.browser.observer --dir DIR --devtools-url http://127.0.0.1:9222 \\
        --page-url-pattern '/desktop/' [--selectors JSON] [--api-hosts REGEX] [--duration S] \\
        [--metrics-port PORT]
    python -m chaosgenesys.browser.observer --dir DIR --open-url http://127.0.0.1:8080/desktop/

It attaches with :func:`chaosgenesys.browser.devtools.connect` (our own DevTools client, no
Playwright), waits for the page with :func:`~chaosgenesys.browser.devtools.find_page`, follows
it and its out-of-process iframes and workers over that one connection and writes
``DIR/events.jsonl`` (the agents'
:class:`~chaosgenesys.agent.eventlog.EventLog` format; schema in ``docs/browser.md``) and
``DIR/status.json`` (rewritten atomically about 4 times a second). Times of network events are
the browser's own (CDP timestamps brought to wall-clock time), not when the observer heard of
them. No frame payload, query string, header or token is ever written. With
``--metrics-port`` it also serves its figures for Prometheus on 127.0.0.1
(:mod:`chaosgenesys.browser.metrics`, prometheus-client imported only then); ``status.json``'s
``metrics`` says where (``{"port", "url"}``, ``null`` when off).

It ends on SIGTERM, when its owner process is gone, when the browser or the page goes away
(``browser_gone`` / ``page_closed`` events) or ``--duration`` seconds after it attached. Without
``--devtools-url`` it launches the system Chromium headless (``CHAOSGENESYS_CHROMIUM`` or
``/usr/bin/chromium``, a fresh profile, ``--remote-debugging-port=0``), attaches to its blank
page and then opens ``--open-url`` in it; that browser is its child and stops with it, and
the tokens its page obtained are revoked however the observer ends, an error while it starts
included (:func:`settle`). An observer that ends by itself (duration, browser or page gone)
forgets its registry record.

This module is the process: its arguments and its run. The observer itself is
:class:`chaosgenesys.browser.page_sessions.Observer` (its CDP sessions), built on
:mod:`~chaosgenesys.browser.page_recorder` (what it records) and
:mod:`~chaosgenesys.browser.observer_log` (its state, ``events.jsonl`` and ``status.json``);
:mod:`~chaosgenesys.browser.chromium` launches the browser, :mod:`~chaosgenesys.browser.redaction`
keeps secrets out of what is written.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from chaosgenesys.browser import devtools
from chaosgenesys.browser.chromium import CHROMIUM as CHROMIUM
from chaosgenesys.browser.chromium import CHROMIUM_FLAGS as CHROMIUM_FLAGS
from chaosgenesys.browser.chromium import ENV_CHROMIUM as ENV_CHROMIUM
from chaosgenesys.browser.chromium import LaunchedBrowser
from chaosgenesys.browser.chromium import chromium_path as chromium_path
from chaosgenesys.browser.chromium import die_with_parent as die_with_parent
from chaosgenesys.browser.page_recorder import DEFAULT_SELECTORS as DEFAULT_SELECTORS
from chaosgenesys.browser.page_recorder import default_api_match as default_api_match
from chaosgenesys.browser.page_sessions import Observer
from chaosgenesys.browser.redaction import first_line
from chaosgenesys.browser.redaction import redact as redact
from chaosgenesys.browser.runs import process_alive
from chaosgenesys.failure import activity_failed, is_activity_failed

__all__ = [
    "CHROMIUM",
    "CHROMIUM_FLAGS",
    "DEFAULT_SELECTORS",
    "ENV_CHROMIUM",
    "chromium_path",
    "default_api_match",
    "main",
    "redact",
]

POLL_S = 0.25
#: How long a stopped observer still takes in what the browser reports before it writes ``stop``
#: (events on their way when the stop came; a request still waiting for its answer is not).
SETTLE_S = 0.1
#: How long an ending observer of a browser it launched waits for the answer of a token request
#: of the page already on its way (the token it brings is revoked with the others).
TOKEN_WAIT_S = 3.0
#: Why an observer ends when nobody stopped it (it then forgets its own registry record).
ENDED_BY_ITSELF = ("duration", "browser_gone", "page_closed")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m chaosgenesys.browser.observer")
    parser.add_argument("--dir", required=True)
    parser.add_argument("--devtools-url", default="")
    parser.add_argument("--open-url", default="")
    parser.add_argument("--page-url-pattern", default="")
    parser.add_argument("--selectors", default="")
    parser.add_argument("--api-hosts", default="")
    parser.add_argument("--duration", type=float, default=0.0)
    parser.add_argument("--page-timeout", type=float, default=10.0)
    parser.add_argument("--reload", action="store_true")
    parser.add_argument("--label", default="")
    parser.add_argument("--owner-pid", type=int, default=0)
    parser.add_argument("--owner-start", default="")
    parser.add_argument("--fault-id", default="")
    parser.add_argument("--metrics-port", type=int, default=0)
    return parser.parse_args(argv)


def _register_browser(fault_id: str, launched: LaunchedBrowser) -> None:
    if not fault_id:
        return
    from chaosgenesys.faults import registry

    with contextlib.suppress(Exception):
        fault = registry.get(fault_id)
        if fault is not None:
            registry.update(fault_id, spec={
                **fault.spec, "devtools_url": launched.ws_url, "browser_pid": launched.pid,
                "browser_start_time": launched.start_time, "browser_profile": launched.profile,
            })


def settle(observer: Observer) -> None:
    """The last of the page, however the observer ends (stopped, its duration, its owner gone,
    an error while it started): what the browser reports in the next ``SETTLE_S``, and, in a
    browser the observer launched, every token the page obtained until now kept for
    :meth:`~chaosgenesys.browser.page_recorder.PageRecorder.revoke_tokens`. New token requests
    of the page are refused from here on and one on its way is waited for (up to
    ``TOKEN_WAIT_S``): no token the page obtains escapes the revocation."""
    link = observer.require_link()
    if link.closed:  # the browser is gone: the tokens read while it was there are all there are
        return
    if observer.keep_tokens:
        with contextlib.suppress(Exception):  # the page gone: nothing more will come from it
            observer.refuse_new_tokens()
    link.pump(SETTLE_S)
    deadline = time.monotonic() + TOKEN_WAIT_S
    while observer.keep_tokens and observer.token_pending() and not observer.page_gone:
        left = deadline - time.monotonic()
        if left <= 0 or link.closed:
            break
        link.pump(min(left, 0.05), lambda: not observer.token_pending())
    observer.read_tokens()


def watch(
    observer: Observer, args: argparse.Namespace, launched: bool, stop: threading.Event
) -> None:
    """Find the page, follow it and write what it does until the observer must end (``stop``
    set, its duration over, its owner, the browser or the page gone)."""
    link = observer.require_link()
    if launched:  # attach first, then open the page: nothing missed
        page = devtools.find_page(link, "^about:blank$", args.page_timeout)
    else:
        page = devtools.find_page(link, args.page_url_pattern, args.page_timeout)
    observer.page_url = devtools.shown_url(str(page.target.get("url")))
    observer.label = args.label or observer.page_url
    observer.follow(page)
    try:
        observer.follow_children()
    except Exception as error:  # the page still watched; its children not
        observer.write("children_not_followed", error=redact(first_line(error), 200))
    if launched:
        # a selector the browser refuses fails now, on the blank page, before the page opens
        # (and a desktop logs in: a bad argument changes nothing)
        observer.check_selectors(note=False)
        observer.open(args.open_url, args.page_url_pattern, args.page_timeout)
        observer.label = args.label or observer.page_url
    elif args.reload:
        observer.reload(args.page_timeout + 5)
    link.pump(0)
    observer.check_selectors()
    observer.poll_ui()
    observer.read_tokens()
    observer.write("attached", url=observer.page_url)
    observer.write_status(attached=True, attached_at=time.time())
    # --duration is how long it watches: counted from now, not from its start (launching a
    # browser and opening the page can take seconds on a loaded machine)
    watching_since = time.monotonic()
    while True:
        if stop.is_set():
            observer.ended = "stopped"
        elif args.duration and time.monotonic() - watching_since >= args.duration:
            observer.ended = "duration"
        elif args.owner_pid and not process_alive(args.owner_pid, args.owner_start):
            observer.ended = "owner_gone"
        elif link.closed:
            observer.ended = "browser_gone"
            observer.write("browser_gone")
        elif observer.page_gone:
            observer.ended = "page_closed"
            observer.write("page_closed")
        if observer.ended:
            break
        observer.poll_ui()
        observer.read_tokens()
        with contextlib.suppress(Exception):
            observer.page_url = devtools.shown_url(observer.current_url())
        observer.write_status()
        link.pump(POLL_S, stop.is_set)
    with contextlib.suppress(Exception):
        settle(observer)  # what the browser reported as the stop came, a renewal of the last moment
    observer.write("stop", reason=observer.ended)
    observer.write_status()


def run(args: argparse.Namespace) -> int:
    """Attach, watch until told to stop; the exit code."""
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    selectors = json.loads(args.selectors) if args.selectors else dict(DEFAULT_SELECTORS)
    observer = Observer(folder, args.api_hosts, selectors)
    stop = threading.Event()

    def stopping(*_: object) -> None:
        stop.set()
        if observer.link is not None:
            observer.link.wake()  # out of its wait at once, not at the end of the poll

    signal.signal(signal.SIGTERM, stopping)
    signal.signal(signal.SIGINT, stopping)
    launched: LaunchedBrowser | None = None
    metrics: Any = None
    observer.write_status(metrics=None)
    try:
        if args.metrics_port:
            from chaosgenesys.browser.metrics import ObserverMetrics

            metrics = ObserverMetrics(args.metrics_port, folder.name)
            try:
                metrics.start()
            except OSError as error:
                metrics = None
                raise activity_failed(str(error.strerror or error)) from None
            observer.log.listener = metrics.event
            observer.write_status(metrics={"port": metrics.port, "url": metrics.url})
        devtools_url = args.devtools_url
        if not devtools_url:
            launched = LaunchedBrowser()
            observer.keep_tokens = True  # a session this run logs in: revoked when it ends
            devtools_url = launched.ws_url
            observer.write_status(browser_pid=launched.pid, devtools_url=launched.ws_url,
                                  browser_start_time=launched.start_time,
                                  browser_profile=launched.profile)
            _register_browser(args.fault_id, launched)
        argument = "devtools_url" if args.devtools_url else "open_url"
        observer.link = link = devtools.connect(devtools_url, argument)
        try:
            watch(observer, args, launched is not None, stop)
        except Exception:
            with contextlib.suppress(Exception):
                settle(observer)  # the page may have logged in before the error: its tokens
            raise
        finally:
            if launched is not None:
                # however it ends; before an error is written (start_observer raises on it)
                with contextlib.suppress(Exception):
                    observer.revoke_tokens()
            link.close()
    except Exception as error:
        if is_activity_failed(error):  # a message for the user, as the activity will raise it
            observer.ended = "error"
            observer.write_status(error=str(error))
            return 2
        if not observer.ended:
            observer.ended = "browser_gone" if observer.status.get("attached") else "error"
            if observer.ended == "browser_gone":
                observer.write("browser_gone")
        observer.write_status(error=redact(first_line(error), 300))
        return 0 if observer.ended == "browser_gone" else 3
    finally:
        if launched is not None:
            launched.stop()
        if metrics is not None:
            metrics.stop()
        observer.log.close()
        if observer.ended in ENDED_BY_ITSELF and args.fault_id:
            # Nothing left to revert: the registry lists live observers only. (Not when stopped
            # or its owner is gone: a revert is under way then and holds the registry's lock.)
            from chaosgenesys.faults import registry

            with contextlib.suppress(Exception):
                registry.forget(args.fault_id)
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m chaosgenesys.browser.observer``."""
    return run(_parse(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
