"""Chaos Toolkit control: a browser observer for the whole experiment.

A probe of the steady state that reads the desktop's browser (``browser_summary``,
``ui_presence``, ``ui_matches_api``) needs the observer running *before* the steady state is
first checked; the method starts too late. This control starts it when the experiment is
configured and stops it after the experiment, rollbacks included (and on interruption)::

    "controls": [
      {"name": "genesys-sandbox", "provider": {"type": "python",
          "module": "chaosgenesys.controls.sandbox",
          "arguments": {"seed": "examples/seed.yaml"}}},
      {"name": "desktop-browser", "provider": {"type": "python",
          "module": "chaosgenesys.controls.browser",
          "arguments": {"desktop_user": "${agent_1}",
                        "ready_when": {"presence": "On Queue", "connection": "connected"}}}}
    ]

Arguments (``${key}`` forms are substituted from the configuration and secrets):

- ``devtools_url``, ``page_url_pattern``, ``open_url``, ``selectors``, ``api_hosts``,
  ``reload_page``, ``metrics_port``: as ``chaosgenesys.browser.actions.start_observer``
  (docs/browser.md): attach to a browser started with ``--remote-debugging-port`` (a
  workstation's Chrome or Edge with the real desktop; ``reload_page: true`` reloads it once
  attached, so that ``block_websocket_handshakes`` reaches its streaming client), or launch
  headless Chromium on ``open_url``; ``metrics_port`` serves the observer's figures for
  Prometheus (docs/observability.md).
- ``desktop_user``: a seeded user's id or email; opens the sandbox's reference web desktop for
  that user (``<genesys_api_url>/desktop/?user=...``, docs/reference-desktop.md) in a headless
  Chromium. Declare the sandbox control before this one, so its URL is known.
- ``desktop_options``: with ``desktop_user``, the reference desktop's timings (its URL
  options): ``answer_ms`` (default 500), ``wrapup_ms`` (2000), ``renew_ahead_s`` (60).
- ``ready_when``: UI values to wait for before the experiment goes on (``{selector name:
  expected label}``), at most ``ready_timeout`` seconds (default 30); the desktop logging in
  and going On Queue is part of its start, not of the steady state.

A failure to start stops the run before anything executes (``InterruptExecution`` naming what
failed): Chaos Toolkit only logs what ``configure_control`` raises, so the control remembers it
and refuses in ``before_experiment_control``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any
from urllib.parse import quote

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Experiment, Secrets

from chaosgenesys.arguments import require_number, substitutes_own_arguments
from chaosgenesys.controls.startup import StartupFailure

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "cleanup_control",
    "configure_control",
    "running_observer",
]

logger = logging.getLogger("chaostoolkit")

_lock = threading.Lock()
_observer: dict[str, Any] | None = None
_startup = StartupFailure("the browser observer did not start")


def running_observer() -> dict[str, Any] | None:
    """What ``start_observer`` answered for the observer this control started, if any."""
    return _observer


#: The reference desktop's URL options (chaosgenesys/sandbox/desktop_files/desktop.js).
DESKTOP_OPTIONS = ("answer_ms", "wrapup_ms", "renew_ahead_s")


def _desktop_url(configuration: Configuration, user: str, options: Any) -> str:
    base = str((configuration or {}).get("genesys_api_url") or "").rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ActivityFailed(
            f"desktop_user {user!r} needs the sandbox's URL (genesys_api_url): declare the "
            "chaosgenesys.controls.sandbox control before this one"
        )
    if options is None:
        options = {}
    if not isinstance(options, dict):
        raise ActivityFailed(f"desktop_options must be a mapping, got {options!r}")
    query = f"user={quote(user, safe='@')}"
    for name, value in options.items():
        if name not in DESKTOP_OPTIONS:
            raise ActivityFailed(
                f"desktop_options: {name!r} is not one of {', '.join(DESKTOP_OPTIONS)}"
            )
        number = require_number(f"desktop_options[{name!r}]", value, maximum=86400 * 1000)
        query += f"&{name}={int(number) if number.is_integer() else number}"
    return f"{base}/desktop/?{query}"


def _check_ready(ready_when: Any, ready_timeout: Any) -> tuple[dict[str, str], float]:
    if ready_when is None:
        ready_when = {}
    if not isinstance(ready_when, dict) or not all(
        isinstance(k, str) and k and isinstance(v, str) for k, v in ready_when.items()
    ):
        raise ActivityFailed(
            f"ready_when must map UI selector names to labels, got {ready_when!r}"
        )
    if isinstance(ready_timeout, bool) or not isinstance(ready_timeout, int | float) or not (
        0 < ready_timeout <= 600
    ):
        raise ActivityFailed(f"ready_timeout must be seconds in (0, 600], got {ready_timeout!r}")
    return dict(ready_when), float(ready_timeout)


def _wait_ready(observer_id: str, wanted: dict[str, str], timeout: float) -> None:
    from chaosgenesys.browser import runs

    deadline = time.monotonic() + timeout
    seen: dict[str, Any] = {}
    while True:
        summary = runs.summary_of(runs.pick_observer(observer_id))
        seen = summary.get("ui") or {}
        if all(seen.get(name) == label for name, label in wanted.items()):
            return
        if not summary.get("running"):
            raise ActivityFailed(f"the browser observer ended ({summary.get('ended')})")
        if time.monotonic() >= deadline:
            raise ActivityFailed(
                f"ready_when {wanted!r} not reached within {timeout:g} s (UI shows {seen!r})"
            )
        time.sleep(0.2)


@substitutes_own_arguments
def configure_control(
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: dict[str, Any] | None = None,
    experiment: Experiment = None,
    devtools_url: str = "",
    page_url_pattern: str = "",
    open_url: str = "",
    desktop_user: str = "",
    selectors: dict[str, str] | None = None,
    api_hosts: str = "",
    ready_when: dict[str, str] | None = None,
    ready_timeout: float = 30.0,
    reload_page: bool = False,
    desktop_options: dict[str, float] | None = None,
    metrics_port: int = 0,
) -> None:
    """Start the observer (and the browser it launches) before the steady state is checked."""
    global _observer
    with _startup.remembering("The browser observer control could not start"):
        wanted, timeout = _check_ready(ready_when, ready_timeout)
        if desktop_user:
            if not isinstance(desktop_user, str) or open_url or devtools_url:
                raise ActivityFailed(
                    f"desktop_user {desktop_user!r} opens the sandbox's reference desktop: "
                    "give it alone, without open_url or devtools_url"
                )
            open_url = _desktop_url(configuration, desktop_user, desktop_options)
        elif desktop_options is not None:
            raise ActivityFailed("desktop_options go with desktop_user (the reference desktop)")
        from chaosgenesys.browser.actions import start_observer

        with _lock:
            _stop_running()
            observer = start_observer(
                devtools_url=devtools_url,
                page_url_pattern=page_url_pattern,
                open_url=open_url,
                selectors=selectors,  # type: ignore[arg-type]
                api_hosts=api_hosts,
                reload_page=reload_page,
                metrics_port=metrics_port,
                configuration=configuration,
                secrets=secrets,
            )
            _observer = observer
        logger.info("Browser observer %s attached to %s%s", observer["id"], observer["page_url"],
                    f", metrics at {observer['metrics_url']}" if observer["metrics_url"] else "")
        if wanted:
            try:
                _wait_ready(str(observer["id"]), wanted, timeout)
            except Exception:
                with _lock:
                    _stop_running()
                raise


def before_experiment_control(context: Experiment = None, **kwargs: Any) -> None:
    """Stop the run, before anything executes, when the observer could not start."""
    _startup.refuse_if_failed()


def after_experiment_control(**kwargs: Any) -> None:
    """Stop the observer once the experiment, its rollbacks included, has run."""
    with _lock:
        _stop_running()


def cleanup_control() -> None:
    """Stop the observer if it still runs (Chaos Toolkit calls this even on interruption)."""
    with _lock:
        _stop_running()


def _stop_running() -> None:
    global _observer
    observer, _observer = _observer, None
    if observer is None:
        return
    from chaosgenesys.browser.actions import stop_observer

    try:
        stop_observer(str(observer["id"]))
    except Exception as error:
        logger.error("Browser observer control: could not stop %s: %s", observer["id"], error)
    else:
        logger.info("Browser observer %s stopped", observer["id"])
