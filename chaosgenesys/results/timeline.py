"""What a run's timeline shows, read from its journal: plain data, no plotting library.

:func:`timeline` gathers, in epoch seconds, everything ``chaosgenesys report`` draws:

* the run's window (the journal's ``start`` and ``end``);
* each fault's window (``chaosgenesys.results.verdict.summarize``'s ``faults``: from the action
  that applied it to its duration's end, the action that removed it or the kill switch's revert
  of it; closes and resets are single events);
* the protocol's phases (baseline, injection, recovery) when the run measured them;
* each steady-state probe, before and after the method, with when it ran and whether it held;
* each user's presence and routing status over time, as an external observer saw them (the
  outputs of ``chaosgenesys.notifications.probes.watch_events`` in the journal), and the
  observer's own blind windows;
* each synthetic desktop's WebSocket outages (a reconnect of ``latency_ms`` that ended at ``t``
  was an outage from ``t - latency_ms`` to ``t``), its stretches off queue and whether it was
  connected at the end (the verdict control's ``desktops.synthetic``);
* each browser observer's page WebSocket outages (from its close to the reconnect's first
  frame; still down at the end: up to the end), its reconnects and when its socket first came
  up (the verdict control's ``desktops.browser``, :func:`chaosgenesys.browser.summary.
  socket_outages`);
* the API latency over time per source (the verdict control's ``desktops.api_latency``) and the
  kill switch's p99 limit (its journaled thresholds; 2,000 ms, the guide's, without it);
* ``missing``: a sentence for each part the journal has no data for, so the report can say so.

::

    from chaosgenesys.results.journal import load_journal
    from chaosgenesys.results.timeline import timeline

    data = timeline(load_journal("journal.json"))
    data["faults"][0]["start"], data["missing"]
"""

from __future__ import annotations

from typing import Any

from chaosgenesys.results.journal import activity_key, extension, parse_time, runs
from chaosgenesys.results.verdict import applied, summarize

__all__ = ["DEFAULT_P99_LIMIT_MS", "OBSERVER", "timeline"]

#: The kill switch's default API latency limit (p99, ms): the guide's.
DEFAULT_P99_LIMIT_MS = 2000.0
#: The external observer's probe, whose outputs give presence and routing status over time.
OBSERVER = "chaosgenesys.notifications.probes.watch_events"


def _number(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None


def _faults(summary: dict[str, Any], end_of_run: float) -> list[dict[str, Any]]:
    faults = []
    for fault in summary["faults"]:
        start = parse_time(fault.get("start"))
        if start is None:
            continue
        instant = str(fault.get("ended_by") or "").startswith("itself")
        seconds = _number(fault.get("seconds"))
        faults.append({
            "applied": applied(fault),
            "name": str(fault.get("name")),
            "action": fault.get("action"),
            "status": fault.get("status"),
            "start": start,
            "end": start if instant else (start + seconds if seconds is not None
                                          else end_of_run),
            "instant": instant,
            "ended_by": fault.get("ended_by"),
            "hits": fault.get("hits"),
        })
    return faults


def _phases(summary: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for name, figures in ((summary.get("protocol") or {}).get("phases") or {}).items():
        if not isinstance(figures, dict):
            continue
        start, end = parse_time(figures.get("start")), parse_time(figures.get("end"))
        if start is not None and end is not None:
            found.append({"name": str(name), "start": start, "end": end})
    return found


def _checks(journal: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for when, state in (journal.get("steady_states") or {}).items():
        for probe in (state or {}).get("probes") or ():
            if not isinstance(probe, dict):
                continue
            at = parse_time(probe.get("end")) or parse_time(probe.get("start"))
            if at is None:
                continue
            found.append({
                "when": str(when),
                "name": str((probe.get("activity") or {}).get("name")),
                "met": probe.get("tolerance_met"),
                "at": at,
            })
    return found


def _spans(changes: list[tuple[float, str]], start: float, end: float
           ) -> list[tuple[float, float, str]]:
    """``[(from, to, value)]`` from the value at ``start`` and its later changes."""
    spans = []
    for index, (at, value) in enumerate(changes):
        until = changes[index + 1][0] if index + 1 < len(changes) else end
        spans.append((max(at, start), max(until, at), value))
    return spans


def _observers(journal: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[Any]]:
    """Each observed user's presence and routing spans; the observer's blind windows."""
    users: dict[str, dict[str, Any]] = {}
    blind: list[tuple[float, float]] = []
    for item in runs(journal):
        output = item.get("output")
        if activity_key(item) != OBSERVER or not isinstance(output, dict):
            continue
        start, end = parse_time(output.get("started_at")), parse_time(output.get("ended_at"))
        if start is None or end is None:
            continue
        for window in output.get("blind_windows") or ():
            began = parse_time((window or {}).get("from"))
            ended = parse_time((window or {}).get("to"))
            if began is not None and ended is not None:
                blind.append((began, ended))
        for user, seen in (output.get("users") or {}).items():
            if not isinstance(seen, dict):
                continue
            row = users.setdefault(str(user), {"presence": [], "routing": []})
            transitions = [t for t in seen.get("transitions") or () if isinstance(t, dict)]
            for kind, final in (("presence", seen.get("presence")),
                                ("routing", seen.get("routing_status"))):
                mine = [t for t in transitions if t.get("kind") == kind
                        and parse_time(t.get("at")) is not None]
                # the state read first is the first change's "from" (or the last one seen)
                first = mine[0].get("from") if mine else final
                changes: list[tuple[float, str]] = []
                if first:
                    changes.append((start, str(first)))
                changes += [(parse_time(t.get("at")) or start, str(t.get("to"))) for t in mine]
                row[kind].extend(_spans(changes, start, end))
    return users, blind


def _desktops(synthetic: dict[str, Any], end_of_run: float) -> dict[str, dict[str, Any]]:
    desktops = {}
    for user, figures in synthetic.items():
        if not isinstance(figures, dict) or "recent_reconnects" not in figures:
            continue
        outages, reconnects, off_queue = [], [], []
        for entry in figures.get("recent_reconnects") or ():
            at = _number(entry[0]) if isinstance(entry, list) and len(entry) >= 2 else None
            latency = _number(entry[1]) if at is not None else None
            if at is not None and latency is not None:
                outages.append((at - latency / 1000.0, at))
                reconnects.append((at, latency))
        for entry in figures.get("off_queue_stretches") or ():
            began = _number(entry[0]) if isinstance(entry, list) and len(entry) >= 2 else None
            if began is not None:
                off_queue.append((began, _number(entry[1]) or end_of_run))
        desktops[str(user)] = {
            "mode": figures.get("mode"),
            "connected": figures.get("connected"),
            "outages": outages,
            "reconnects": reconnects,
            "off_queue": off_queue,
        }
    return desktops


def _browsers(browser: dict[str, Any], end_of_run: float) -> dict[str, dict[str, Any]]:
    pages = {}
    for observer, figures in browser.items():
        if not isinstance(figures, dict) or "outages" not in figures:
            continue
        outages, reconnects = [], []
        for entry in figures.get("outages") or ():
            began = _number(entry[0]) if isinstance(entry, list) and len(entry) >= 2 else None
            if began is None:
                continue
            ended = _number(entry[1])
            outages.append((began, ended if ended is not None else max(end_of_run, began)))
            if ended is not None:
                reconnects.append((ended, (ended - began) * 1000.0))
        pages[str(observer)] = {
            "up_since": _number(figures.get("up_since")),
            "connected": None if figures.get("up_since") is None
            else not figures.get("disconnected_now"),
            "outages": outages,
            "reconnects": reconnects,
            "dropped": int(_number(figures.get("outages_dropped")) or 0),
        }
    return pages


def _latency(series: Any) -> tuple[dict[str, list[tuple[float, float, int, int]]], float]:
    if not isinstance(series, dict):
        return {}, 1.0
    bucket = _number(series.get("bucket_seconds")) or 1.0
    sources: dict[str, list[tuple[float, float, int, int]]] = {}
    for source, points in (series.get("sources") or {}).items():
        kept = []
        for point in points or ():
            if isinstance(point, list) and len(point) >= 4:
                at, top = _number(point[0]), _number(point[1])
                if at is not None and top is not None:
                    kept.append((at, top, int(point[2] or 0), int(point[3] or 0)))
        if kept:
            sources[str(source)] = kept
    return sources, bucket


def timeline(journal: dict[str, Any]) -> dict[str, Any]:
    """The run's timeline (module docstring), from a journal :func:`load_journal` accepted."""
    summary = summarize(journal)
    verdict = extension(journal, "chaosgenesys-verdict")
    killswitch = extension(journal, "chaosgenesys-killswitch")
    start = parse_time(journal.get("start"))
    end = parse_time(journal.get("end"))
    checks = _checks(journal)
    moments = [c["at"] for c in checks] + [
        t for item in runs(journal) + runs(journal, "rollbacks")
        for t in (parse_time(item.get("start")), parse_time(item.get("end"))) if t is not None
    ]
    if start is None:
        start = min(moments, default=0.0)
    if end is None:
        end = max(moments, default=start)
    desktops_figures = summary["desktops"] or {}
    observers, blind = _observers(journal)
    desktops = _desktops(desktops_figures.get("synthetic") or {}, end)
    latency, bucket = _latency(desktops_figures.get("api_latency"))
    thresholds = (killswitch or {}).get("thresholds") or {}
    limit = _number(thresholds.get("max_api_p99_ms"))
    missing = []
    if verdict is None:
        missing.append("no chaosgenesys verdict control in this run: no desktops' timeline and "
                       "no API latency series (declare chaosgenesys.controls.verdict, "
                       "docs/controls.md)")
    if not summary["faults"]:
        missing.append("no fault action in this run")
    if not observers:
        missing.append(f"no external observer ({OBSERVER}): no presence or routing status "
                       "over time")
    synthetic = desktops_figures.get("synthetic") or {}
    if not synthetic:
        missing.append("no synthetic desktop in this run: no WebSocket "
                       "outages or reconnects over time")
    elif not desktops:
        missing.append("the synthetic desktops' figures have no timeline (a journal from an "
                       "older chaosgenesys)")
    if verdict is not None and not latency:
        missing.append("no API latency series: the run made no call, or the journal is from "
                       "an older chaosgenesys")
    if killswitch is None:
        missing.append("no kill switch in this run: its default API p99 limit "
                       f"({DEFAULT_P99_LIMIT_MS:,.0f} ms) is drawn")
    elif limit is None:  # it refused to arm: no thresholds
        why = killswitch.get("refused") or "its journal has no thresholds"
        missing.append(f"the kill switch never armed ({why}): the default API p99 limit "
                       f"({DEFAULT_P99_LIMIT_MS:,.0f} ms) is drawn")
    browser_figures = desktops_figures.get("browser") or {}
    browsers = _browsers(browser_figures, end)
    if browser_figures and len(browsers) < len(browser_figures):
        missing.append("browser observers: some have their figures only, not their "
                       "WebSockets over time (a journal from an older chaosgenesys)")
    if not checks:
        missing.append("no steady-state probe ran")
    return {
        "title": summary["experiment"],
        "start": start,
        "end": max(end, start),
        "summary": summary,
        "faults": _faults(summary, end),
        "phases": _phases(summary),
        "checks": checks,
        "observers": observers,
        "observer_blind": blind,
        "desktops": desktops,
        "browsers": browsers,
        "latency": latency,
        "bucket_seconds": bucket,
        "p99_limit_ms": limit if limit is not None else DEFAULT_P99_LIMIT_MS,
        "p99_limit_from": "kill switch" if limit is not None else "default",
        "missing": missing,
    }
