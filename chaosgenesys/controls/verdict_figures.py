"""The figures the verdict control journals beside its own findings (one job: read them).

``desktop_figures`` gathers what this run's desktops measured (synthetic desktops' status
files, browser observers' logs) and the run's API latency series for the report's timeline;
``protocol_outcome`` reads the protocol's phases (``chaosgenesys.protocol``) and logs them.
Each reader is imported when called: a run without desktops or protocol pays for none of them.
Used by :mod:`chaosgenesys.controls.verdict` in ``after_experiment_control``.
"""

from __future__ import annotations

import logging
import math
import sys
from typing import Any

__all__ = ["MAX_LATENCY_BUCKETS", "desktop_figures", "protocol_outcome"]

logger = logging.getLogger("chaostoolkit")


def _figure_line(name: str, figures: dict[str, Any] | None) -> str:
    if not figures:
        return f"{name}: not measured"
    api = figures.get("api") or {}
    desktops = figures.get("desktops") or {}
    rate = api.get("error_rate")
    return (
        f"{name} {figures.get('seconds')} s: API p50 {api.get('p50_ms')} ms, p99 "
        f"{api.get('p99_ms')} ms over {api.get('calls')} call(s), error rate "
        f"{'n/a' if rate is None else f'{rate:.1%}'}; desktops dropped their socket "
        f"{desktops.get('disconnects')} time(s), reconnected {desktops.get('reconnects')}"
    )


def desktop_figures() -> dict[str, Any]:
    """The figures of this run's desktops, as the desktops measured them: ``{"synthetic":
    {user: {...}}, "browser": {observer id: {...}}, "api_latency": {...}}`` (empty parts left
    out). What could hold figures is looked up first, without importing its readers: a run
    without desktops pays for none of them."""
    from chaosgenesys.agent.runtime import agents_dir, observers_dir

    try:
        any_agents = any(agents_dir().iterdir())
        any_observers = any(observers_dir().iterdir())
    except OSError:
        any_agents = any_observers = True  # the readers will say what is wrong
    found: dict[str, Any] = {}
    for part, read, needed in (("synthetic", _synthetic_figures, any_agents),
                               ("browser", _browser_figures, any_observers)):
        if not needed:
            continue
        try:
            figures = read()
        except Exception:  # the figures must never cost the verdict
            logger.warning("Verdict: the desktops' figures could not be read", exc_info=True)
            continue
        if figures:
            found[part] = figures
    if not (any_agents or any_observers or "chaosgenesys.platform.metrics" in sys.modules
            or "chaosgenesys.protocol.phases" in sys.modules):
        return found  # no source of API calls: no desktop, no observer, no call of ours
    try:
        series = _api_latency_series()
    except Exception:  # the timeline must never cost the verdict
        logger.warning("Verdict: the API latency series could not be read", exc_info=True)
        series = None
    if series is not None:
        found["api_latency"] = series
    return found


def _synthetic_figures() -> dict[str, Any]:
    """Each synthetic desktop of this run, by user id."""
    from chaosgenesys.agent.this_run import agent_runs

    synthetic = {}
    for _, status in agent_runs():
        for user, figures in (status.get("agents") or {}).items():
            if not isinstance(figures, dict):
                continue
            latency = figures.get("reconnect_latency_ms") or {}
            synthetic[str(user)] = {
                "mode": figures.get("mode"),
                "reconnects": figures.get("reconnects"),
                "reconnect_max_ms": latency.get("max") if isinstance(latency, dict) else None,
                "longest_off_queue_s": figures.get("longest_off_queue_seconds"),
                "zombie_s": figures.get("zombie_seconds"),
                "logged_out": figures.get("logged_out"),
                "interactions_lost": figures.get("interactions_lost"),
                "consistency_violations": figures.get("consistency_violations"),
                # the timeline (chaosgenesys report): bounded by the agent's summary
                # (PATH_RECORDS_KEPT each)
                "connected": figures.get("connected"),
                "off_queue_stretches": list(figures.get("off_queue_stretches") or ()),
                "recent_reconnects": list(figures.get("recent_reconnects") or ()),
            }
    return synthetic


def _browser_figures() -> dict[str, Any]:
    """Each browser observer of this run, by observer id."""
    from pathlib import Path

    from chaosgenesys.browser.runs import run_observers, summary_of
    from chaosgenesys.browser.summary import read_events, socket_outages

    browser = {}
    for record in run_observers():
        events = read_events(Path(str(record["dir"])) / "events.jsonl")  # read once
        figures = summary_of(record, events=events)
        entry = {
            key: figures.get(key)
            for key in ("reconnects", "reconnect_max_ms", "disconnected_s", "zombie_s",
                        "api_calls", "api_errors", "api_p99_ms", "websocket_errors",
                        "ended", "disconnected_now")
        }
        # the timeline (chaosgenesys report): the page's socket outages, bounded
        # (OUTAGES_KEPT, the latest)
        entry.update(socket_outages(events))
        browser[str(record.get("id"))] = entry
    return browser


#: At most this many buckets per source in the journal's API latency series: a longer run
#: gets wider buckets (a 10-minute run keeps one per second).
MAX_LATENCY_BUCKETS = 1200


def _api_latency_series() -> dict[str, Any] | None:
    """This run's API calls over time, for the report's timeline, compactly: per source
    (``tooling``, ``desktop``, ``browser``) ``[sent, max_ms, calls, failed]`` for each bucket
    of ``bucket_seconds`` in which calls were *sent* (the protocol's rule: a call slowed by a
    fault shows inside the fault's window): when its slowest call was sent (epoch seconds),
    that call's latency, how many calls, how many failed. Read from the protocol's call
    collector when the run measured a baseline (it keeps every call from the baseline on),
    joined by the calls before it; otherwise from this process's platform client
    (``chaosgenesys.platform.metrics``), this run's synthetic desktops' status files (their
    last five minutes) and this run's browser observers' logs. ``None`` when the run made no
    call."""
    from chaosgenesys.agent.this_run import agent_runs
    from chaosgenesys.protocol import phases
    from chaosgenesys.protocol.calls import Call, CallCollector

    # every call the three sources still hold (the desktops' last five minutes), read once
    everything = CallCollector(since=0.0, desktops=agent_runs)
    everything.collect()
    held = everything.calls(float("-inf"), float("inf"))
    protocol = phases.current()
    chosen: list[Call] = held
    if protocol is not None:  # the collector's calls, joined by the tooling's and desktops' before
        since = protocol.collector.started
        chosen = protocol.collector.calls(0.0, float("inf")) + [
            call for call in held if call.at < since and call.source != "browser"
        ]
    calls = [(c.began, c.latency_ms, bool(c.failed), c.source) for c in chosen]
    if not calls:
        return None
    first = min(call[0] for call in calls)
    span = max(call[0] for call in calls) - first
    bucket = max(1, -(-int(span) // MAX_LATENCY_BUCKETS))
    buckets: dict[str, dict[int, list[float]]] = {}  # [sent, max_ms, calls, failed]
    for sent, latency, failed, source in calls:
        slot = buckets.setdefault(source, {}).setdefault(int(sent // bucket), [sent, -1.0, 0, 0])
        if latency > slot[1]:
            slot[0], slot[1] = sent, latency
        slot[2] += 1
        slot[3] += int(failed)
    return {
        "bucket_seconds": bucket,
        "from": "protocol" if protocol is not None else "run",
        "sources": {
            # the time cut (not rounded) to 10 ms, never before its bucket's start, so it stays
            # in its bucket: a call sent at 27.996 s rounded to 28.0, the next second's
            source: [[max(key * bucket, math.floor(value[0] * 100) / 100), round(value[1], 1),
                      int(value[2]), int(value[3])]
                     for key, value in sorted(seconds.items())]
            for source, seconds in sorted(buckets.items())
        },
    }


def protocol_outcome() -> dict[str, Any] | None:
    """The protocol's figures (``chaosgenesys.protocol``), logged in a few lines; ``None`` when
    no protocol probe ran. Its call collector stops here."""
    if "chaosgenesys.protocol.phases" not in sys.modules:
        return None  # no protocol probe ran in this process
    from chaosgenesys.protocol import phases

    try:
        found = phases.summary()
    except Exception:  # the figures must never cost the verdict
        logger.warning("Verdict: the protocol's figures could not be read", exc_info=True)
        return None
    finally:
        protocol = phases.current()
        if protocol is not None:
            protocol.collector.stop()
    if found is None:
        return None
    for name in ("baseline", "injection", "recovery"):
        if name in found["phases"]:
            logger.info("Verdict: protocol %s", _figure_line(name, found["phases"][name]))
    recovery = found.get("time_to_recover")
    if recovery:
        if recovery.get("recovered"):
            logger.info("Verdict: time to recover %s s", recovery.get("seconds"))
        else:
            logger.error(
                "Verdict: the steady state did not come back within %s s of the fault's "
                "removal: %s",
                recovery.get("timeout"),
                "; ".join(f"{item['user_id']}: {item['why']}" for item in
                          recovery.get("not_back") or []),
            )
    return found
