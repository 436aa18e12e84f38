"""A run's report at a glance: one HTML file that opens offline, and its timeline as a PNG.

``chaosgenesys report journal.json -o report.html`` writes ``report.html`` and, next to it,
``report.png``. The HTML holds everything inline (its CSS, the timeline as SVG): nothing is
fetched, so it opens from a CI artifact or an e-mail. The timeline (:mod:`.timeline` says
where each part comes from), on one time axis in seconds since the run started:

* **run**: the protocol's phases (baseline, injection, recovery), each fault's window (one row
  per fault; a close or a reset is a single line) and the steady-state checks before and after
  the method (a dot that held, a cross that deviated);
* **agents**: per user, the presence (upper half) and routing status (lower half) an external
  observer saw, and per synthetic desktop its WebSocket (green up, red down, a tick per
  reconnect) with its stretches off queue (orange, below); per browser observer its page's
  WebSocket the same way (from when it first came up);
* **API latency**: the slowest call sent in each second, per source (the experiment's own
  calls, the synthetic desktops', the browser pages'), with the kill switch's p99 limit.

Fault windows are also drawn as bands across every part. Below the plot: the verdict
(``chaosgenesys verdict``'s text), the faults, the checks and what the journal lacks.

In Python::

    from chaosgenesys.results.journal import load_journal
    from chaosgenesys.results.report import write_report

    written = write_report(load_journal("journal.json"), "out/report.html")
    written["html"], written["png"], written["seconds"]

matplotlib (the ``report`` extra: ``pip install 'chaosgenesys[report]'``) is imported here
only, when a report is written.
"""

from __future__ import annotations

import html
import io
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from chaosgenesys.results.timeline import timeline
from chaosgenesys.results.verdict import hit_words, render

__all__ = ["MAX_USERS_DRAWN", "ReportError", "figure", "html_report", "write_report"]

#: Users drawn in the agents part (two rows each); the rest are counted in the report.
MAX_USERS_DRAWN = 60
#: Up to this many agent rows, the presence values and reconnect latencies are written out.
WORDY_ROWS = 16

_PHASE_COLOURS = {"baseline": "#9ecae1", "injection": "#fdae6b", "recovery": "#a1d99b"}
_SOURCE_COLOURS = {"tooling": "#6a51a3", "desktop": "#2171b5", "browser": "#d94801"}
_SOURCE_NAMES = {"tooling": "experiment's calls", "desktop": "synthetic desktops",
                 "browser": "browser pages"}
_SOURCE_MARKERS = {"tooling": "s", "desktop": "o", "browser": "^"}
#: Latencies below this are drawn at it (the log scale's floor, ms).
_FLOOR_MS = 0.5
_FAULT = "#de2d26"
_UP, _DOWN, _OFF_QUEUE = "#74c476", "#de2d26", "#fd8d3c"


class ReportError(Exception):
    """The report cannot be written; the message says why and what to do."""


def _presence_colour(value: str) -> str:
    text = value.lower().replace("_", " ")
    if text in ("on queue",):
        return "#31a354"
    if text in ("available", "idle"):
        return "#a1d99b"
    if text in ("interacting", "communicating"):
        return "#3182bd"
    if text in ("offline", "off queue"):
        return "#bdbdbd"
    if text in ("not responding",):
        return "#de2d26"
    return "#fdae6b"  # break, meal, away, busy, training...


def _short_user(user: str) -> str:
    return user if len(user) <= 14 else f"{user[:4]}…{user[-6:]}"


def _short_observer(observer: str) -> str:
    """An observer's id (``20261206-031502-1a2b3c4d``) by its random part."""
    return observer if len(observer) <= 12 else f"…{observer[-8:]}"


def _clip(text: str, limit: int = 38) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


#: The figure's width (inches) and resolution; the title is wrapped to fit this width.
_WIDTH_IN, _DPI = 13, 100
#: The title's font sizes: the first whose wrapped title takes at most :data:`_TITLE_LINES`
#: lines; at the last, a title still longer is cut there with "…" (the HTML's heading has
#: all of it), the run's outcome kept.
_TITLE_SIZES = (12.0, 10.5)
_TITLE_LINES = 3


def _title_lines(text: str, size: float, width_px: float) -> list[str]:
    """``text`` wrapped into lines each at most ``width_px`` wide in bold at ``size`` points
    (measured from the font's outlines: Agg's hinted text, the PNG's, is about 2% wider, which
    the caller's margin leaves room for); a word wider than a line is split."""
    from matplotlib.font_manager import FontProperties
    from matplotlib.textpath import text_to_path

    font = FontProperties(size=size, weight="bold")

    def fits(line: str) -> bool:
        points = text_to_path.get_text_width_height_descent(line, font, ismath=False)[0]
        return points * _DPI / 72.0 <= width_px

    lines: list[str] = []
    for word in text.split():
        if lines and fits(f"{lines[-1]} {word}"):
            lines[-1] = f"{lines[-1]} {word}"
            continue
        while len(word) > 1 and not fits(word):
            cut = len(word) - 1
            while cut > 1 and not fits(word[:cut]):
                cut -= 1
            lines.append(word[:cut])
            word = word[cut:]
        lines.append(word)
    return lines or [""]


def _title(title: str, outcome: str) -> tuple[str, float]:
    """The figure's title, ``title  (PASSED)``, wrapped to the figure's width (one line of a
    long experiment title is wider than the figure and was cut off on both sides), and its
    font size."""
    width = _WIDTH_IN * _DPI * 0.94  # a margin on each side, and room for hinting
    ending = f"({outcome})"
    for size in _TITLE_SIZES:
        lines = _title_lines(f"{title}  {ending}", size, width)
        if len(lines) <= _TITLE_LINES:
            return "\n".join(lines), size
    # still too long at the smallest size: its first lines, then "…" and the outcome
    words = " ".join(lines[:_TITLE_LINES]).split()
    while words:
        lines = _title_lines(" ".join([*words, "…", ending]), size, width)
        if len(lines) <= _TITLE_LINES:
            return "\n".join(lines), size
        words.pop()
    return ending, size


def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ReportError(
            "chaosgenesys report needs matplotlib: pip install 'chaosgenesys[report]'"
        ) from None
    return matplotlib


def figure(data: dict[str, Any]) -> Any:
    """The timeline of :func:`chaosgenesys.results.timeline.timeline`'s ``data`` as a
    matplotlib ``Figure`` (no pyplot: no global state, any thread)."""
    _matplotlib()
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    t0 = float(data["start"])
    span = max(1.0, float(data["end"]) - t0)
    faults = data["faults"]
    users = sorted(set(data["observers"]) | set(data["desktops"]))
    hidden = max(0, len(users) - MAX_USERS_DRAWN)
    users = users[:MAX_USERS_DRAWN]
    run_rows = [*(["phases"] if data["phases"] else []),
                *[f"fault: {_clip(f['name'])}" for f in faults], "steady state"]
    agent_rows: list[tuple[str, str]] = []
    for user in users:
        if user in data["observers"]:
            agent_rows.append((user, "observer"))
        if user in data["desktops"]:
            agent_rows.append((user, "desktop"))
    agent_rows += [(observer, "browser") for observer in sorted(data["browsers"])]
    heights = [0.32 * len(run_rows) + 0.5]
    if agent_rows:
        heights.append((0.28 if len(agent_rows) <= WORDY_ROWS else 0.17) * len(agent_rows) + 0.4)
    heights.append(2.4)
    title, title_size = _title(str(data["title"]),
                               "PASSED" if data["summary"]["passed"] else "FAILED")
    extra = 0.25 * title.count("\n")  # the title's further lines get their own room
    fig = Figure(figsize=(_WIDTH_IN, sum(heights) + 1.2 + extra), dpi=_DPI,
                 layout="constrained")
    axes = fig.subplots(len(heights), 1, sharex=True, height_ratios=heights, squeeze=False)[:, 0]
    fig.suptitle(title, fontsize=title_size, fontweight="bold",
                 color="#006d2c" if data["summary"]["passed"] else "#a50f15")

    def x(at: float) -> float:
        return at - t0

    for ax in axes:
        for fault in faults:
            if not fault["applied"]:  # nothing was in force: no band, no line
                continue
            if fault["instant"]:
                ax.axvline(x(fault["start"]), color=_FAULT, linestyle="--", linewidth=1.2,
                           alpha=0.8, zorder=0)
            else:
                ax.axvspan(x(fault["start"]), x(fault["end"]), color=_FAULT, alpha=0.10,
                           zorder=0, linewidth=0)
        ax.grid(axis="x", color="#e0e0e0", linewidth=0.6)
        ax.set_axisbelow(True)

    # the run: phases, faults, checks
    run = axes[0]
    count = len(run_rows)
    first_fault = count - 1 - (1 if data["phases"] else 0)  # rows top down; checks at 0
    for phase in data["phases"]:
        y = count - 1
        run.broken_barh([(x(phase["start"]), phase["end"] - phase["start"])], (y - 0.35, 0.7),
                        color=_PHASE_COLOURS.get(phase["name"], "#d9d9d9"))
        run.text(x(phase["start"]) + 0.2, y, phase["name"], va="center", fontsize=8)
    for index, fault in enumerate(faults):
        y = first_fault - index
        if not fault["applied"]:
            run.text(x(fault["start"]) + 0.2, y + 0.38, f"{fault['name']} (not applied)",
                     va="bottom", fontsize=7.5, color="#737373")
            continue
        if fault["instant"]:
            run.plot([x(fault["start"])], [y], marker="|", markersize=14, color=_FAULT,
                     markeredgewidth=2.5, gid=f"fault-{index}")
        else:
            run.broken_barh([(x(fault["start"]), max(fault["end"] - fault["start"], 0.05))],
                            (y - 0.35, 0.7), color=_FAULT, alpha=0.75, gid=f"fault-{index}")
        run.text(x(fault["start"]) + 0.2, y + 0.38, fault["name"], va="bottom", fontsize=7.5,
                 color="#67000d")
    y = 0
    for when, checks in (("before", [c for c in data["checks"] if c["when"] == "before"]),
                         ("after", [c for c in data["checks"] if c["when"] == "after"])):
        if not checks:
            continue
        held = [c for c in checks if c["met"] is not False]
        deviated = [c for c in checks if c["met"] is False]
        if held:
            run.plot([x(c["at"]) for c in held], [y] * len(held), "o", color="#31a354",
                     markersize=6)
        if deviated:
            run.plot([x(c["at"]) for c in deviated], [y] * len(deviated), "X", color="#a50f15",
                     markersize=9)
        label = f"{when}: {len(held)} held" + (
            f", {len(deviated)} deviated ({_clip(', '.join(c['name'] for c in deviated), 60)})"
            if deviated else "")
        # before: above its markers, from the first; after: below them, up to the last
        run.text(x(min(c["at"] for c in checks)) if when == "before"
                 else x(max(c["at"] for c in checks)),
                 y + 0.3 if when == "before" else y - 0.3, label, fontsize=7.5,
                 va="bottom" if when == "before" else "top",
                 ha="left" if when == "before" else "right",
                 color="#a50f15" if deviated else "#006d2c")
    run.set_yticks(range(count), list(reversed(run_rows)), fontsize=8)
    run.set_ylim(-0.9, count - 0.1)
    run.set_title("the run: protocol phases, faults, steady-state checks", fontsize=9,
                  loc="left")

    # the agents
    if agent_rows:
        agents = axes[1]
        count = len(agent_rows)
        words = count <= WORDY_ROWS  # the values and reconnects written out, when few rows
        labels = []
        for index, (user, kind) in enumerate(agent_rows):
            y = count - 1 - index
            if kind == "observer":
                seen = data["observers"][user]
                for value_key, offset in (("presence", 0.0), ("routing", -0.34)):
                    spans = seen[value_key]
                    agents.broken_barh(
                        [(x(a), max(b - a, 0.01)) for a, b, _ in spans], (y + offset, 0.32),
                        color=[_presence_colour(v) for _, _, v in spans],
                    )
                    for a, b, value in spans if words else ():
                        if (b - a) / span > 0.06:
                            agents.text(x(a) + 0.1, y + offset + 0.16, value, va="center",
                                        fontsize=6.5, clip_on=True)
                labels.append(f"{_short_user(user)} presence/routing")
            else:
                desk = (data["desktops"] if kind == "desktop" else data["browsers"])[user]
                up_from = 0.0 if kind == "desktop" else (
                    None if desk["up_since"] is None else max(0.0, x(desk["up_since"])))
                if up_from is not None:
                    agents.broken_barh([(up_from, max(span - up_from, 0.05))], (y - 0.05, 0.35),
                                       color=_UP)
                if desk["outages"]:
                    agents.broken_barh([(x(a), max(b - a, 0.05)) for a, b in desk["outages"]],
                                       (y - 0.05, 0.35), color=_DOWN)
                if desk.get("off_queue"):
                    agents.broken_barh([(x(a), max(b - a, 0.05)) for a, b in desk["off_queue"]],
                                       (y - 0.35, 0.22), color=_OFF_QUEUE)
                if desk["reconnects"]:
                    agents.plot([x(at) for at, _ in desk["reconnects"]],
                                [y + 0.12] * len(desk["reconnects"]), "|", color="black",
                                markersize=9)
                for at, latency in desk["reconnects"] if words else ():
                    agents.text(x(at) + 0.1, y + 0.12, f"reconnect {latency / 1000:.1f} s",
                                va="center", fontsize=6.5, clip_on=True)
                state = "" if desk["connected"] is not False else " (down at the end)"
                labels.append(f"{_short_user(user)} socket{state}" if kind == "desktop"
                              else f"browser {_short_observer(user)} socket{state}")
        agents.set_yticks(range(count), list(reversed(labels)), fontsize=7.5)
        agents.set_ylim(-0.6, count - 0.3)
        title = "agents: " + "; ".join(part for part, shown in (
            ("presence/routing seen by an observer", data["observers"]),
            ("desktop socket", data["desktops"]), ("browser page socket", data["browsers"]),
        ) if shown)
        if hidden:
            title += f" ({hidden} more user(s) not drawn)"
        agents.set_title(title, fontsize=9, loc="left")
        agents.legend(handles=[
            Patch(color=_UP, label="socket up"), Patch(color=_DOWN, label="socket down"),
            Patch(color=_OFF_QUEUE, label="desktop off queue"),
            Patch(color="#31a354", label="On Queue"), Patch(color="#fdae6b",
                                                            label="other presence"),
        ], fontsize=7, loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=5, frameon=False,
            borderaxespad=0.1)

    # the API latency
    api = axes[-1]
    top = data["p99_limit_ms"]
    for source, points in sorted(data["latency"].items()):
        api.plot([x(p[0]) for p in points], [max(p[1], _FLOOR_MS) for p in points],
                 _SOURCE_MARKERS.get(source, "."), markersize=3.5, linestyle="",
                 color=_SOURCE_COLOURS.get(source, "#525252"),
                 label=_SOURCE_NAMES.get(source, source))
        failed = [p for p in points if p[3]]
        if failed:
            api.plot([x(p[0]) for p in failed], [max(p[1], _FLOOR_MS) for p in failed], "x",
                     markersize=6, color="#a50f15")
        top = max(top, max(p[1] for p in points))
    limit_label = (f"kill switch p99 limit {data['p99_limit_ms']:,.0f} ms"
                   + ("" if data["p99_limit_from"] == "kill switch" else " (default)"))
    api.axhline(data["p99_limit_ms"], color=_FAULT, linestyle="--", linewidth=1.2)
    api.text(0.0, data["p99_limit_ms"] * 1.15, limit_label, color=_FAULT, fontsize=7.5,
             va="bottom")
    api.set_yscale("log")
    api.set_ylim(_FLOOR_MS * 0.7, top * 3)
    api.set_ylabel("ms (slowest per\n"
                   f"{data['bucket_seconds']:g} s, log)", fontsize=8)
    api.set_title("API latency over time", fontsize=9, loc="left")
    if data["latency"]:
        handles, _ = api.get_legend_handles_labels()
        handles.append(Line2D([], [], color="#a50f15", marker="x", linestyle="",
                              label="a call failed"))
        api.legend(handles=handles, fontsize=7, loc="upper right", ncols=4)
    else:
        api.text(span / 2, 30, "no API latency series in this journal", ha="center",
                 fontsize=9, color="#737373")
    api.set_xlim(-0.01 * span, 1.02 * span)
    clock = datetime.fromtimestamp(t0, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    api.set_xlabel(f"seconds since the run started ({clock})", fontsize=8)
    for ax in axes:
        ax.tick_params(labelsize=7.5)
    return fig


_CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',sans-serif;margin:1.5em;color:#222;
max-width:1400px}
h1{font-size:1.3em;margin:.2em 0} h2{font-size:1.05em;margin:1.2em 0 .4em}
.passed{color:#006d2c} .failed{color:#a50f15}
.meta{color:#555;font-size:.9em}
#timeline svg{width:100%;height:auto;border:1px solid #ddd}
table{border-collapse:collapse;font-size:.85em} td,th{border:1px solid #ddd;padding:.2em .5em;
text-align:left;vertical-align:top} th{background:#f4f4f4}
pre{background:#f7f7f7;padding:.8em;white-space:pre-wrap;font-size:.85em}
.missing li{color:#8c510a}
"""


def _svg(fig: Any) -> str:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "chaosgenesys"}):
        fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.find("<svg"):]  # inline: no XML declaration, no DOCTYPE
    start, end = text.find("<metadata>"), text.find("</metadata>")
    if start != -1 and end != -1:  # the Dublin Core block names external namespaces only
        text = text[:start] + text[end + len("</metadata>"):]
    return text


def _seconds(value: Any) -> str:
    return f"{value:.1f}" if isinstance(value, int | float) else html.escape(str(value))


def _table(head: list[str], rows: list[list[str]], table_id: str) -> str:
    if not rows:
        return f'<p id="{table_id}">none</p>'
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f'<table id="{table_id}"><tr>{cells}</tr>{body}</table>'


def html_report(data: dict[str, Any], svg: str, png_name: str | None = None) -> str:
    """The report's HTML: the verdict, the timeline (``svg``, inline) and its tables."""
    summary = data["summary"]
    passed = summary["passed"]
    e = html.escape

    def clock(at: float) -> str:
        return datetime.fromtimestamp(at, UTC).strftime("%H:%M:%S.%f")[:-3]

    faults = [[e(f["name"]), e(str(f["action"])), e(str(f["status"])), clock(f["start"]),
               "not applied" if not f["applied"]
               else "a single event" if f["instant"] else f"{f['end'] - f['start']:.3f} s",
               e(str(f["ended_by"]) + hit_words(f))] for f in data["faults"]]
    checks = [[e(c["when"]), e(c["name"]), clock(c["at"]),
               '<span class="failed">deviated</span>' if c["met"] is False
               else '<span class="passed">held</span>'] for c in data["checks"]]
    agents = []
    for user in sorted(set(data["observers"]) | set(data["desktops"])):
        seen = data["observers"].get(user)
        desk = data["desktops"].get(user)
        presences = " → ".join(e(v) for _, _, v in seen["presence"]) if seen else "not observed"
        socket = ("no synthetic desktop" if desk is None else
                  f"{len(desk['reconnects'])} reconnect(s), "
                  f"{len(desk['off_queue'])} stretch(es) off queue"
                  + ("" if desk["connected"] is not False else ", down at the end"))
        agents.append([f'<span class="agent" data-user="{e(user)}">{e(user)}</span>',
                       presences, e(socket)])
    browsers = []
    for observer, page in sorted(data["browsers"].items()):
        down = sum(b - a for a, b in page["outages"])
        socket = ("never came up" if page["up_since"] is None else
                  f"{len(page['reconnects'])} reconnect(s), {len(page['outages'])} outage(s), "
                  f"{down:.1f} s down" + ("" if page["connected"] is not False
                                           else ", down at the end"))
        if page["dropped"]:
            socket += f" ({page['dropped']} earlier outage(s) not kept)"
        browsers.append([f'<span class="browser" data-observer="{e(observer)}">'
                         f"{e(observer)}</span>", e(socket)])
    browser_table = ("<h2>Browser desktops</h2>\n"
                     + _table(["observer", "page WebSocket"], browsers, "browsers")
                     if browsers else "")
    missing = "".join(f"<li>{e(item)}</li>" for item in data["missing"])
    png = (f'<p class="meta">The same timeline as a PNG: <a href="{e(png_name)}">'
           f"{e(png_name)}</a></p>" if png_name else "")
    outcome = "PASSED" if passed else "FAILED"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{outcome}: {e(str(data['title']))} - chaosgenesys report</title>
<style>{_CSS}</style></head>
<body>
<h1 id="verdict" class="{'passed' if passed else 'failed'}">{outcome}: {e(str(data['title']))}</h1>
<p class="meta">status {e(str(summary['status']))}, deviated
{e(str(summary['deviated']).lower())}, {_seconds(summary['seconds'])} s; started
{datetime.fromtimestamp(data['start'], UTC).strftime('%Y-%m-%d %H:%M:%S UTC')}</p>
<section id="timeline">{svg}</section>
{png}
<h2>Verdict</h2>
<pre id="verdict-text">{e(render(summary))}</pre>
<h2>Faults</h2>
{_table(["fault", "action", "status", "at (UTC)", "window", "ended by"], faults, "faults")}
<h2>Steady-state checks</h2>
{_table(["when", "probe", "at (UTC)", "outcome"], checks, "checks")}
<h2>Agents</h2>
{_table(["user", "presence seen by the observer", "synthetic desktop"], agents, "agents")}
{browser_table}
<h2>Not in this journal</h2>
<ul class="missing" id="missing">{missing or '<li>nothing: every part has data</li>'}</ul>
<p class="meta">chaosgenesys report, docs/report.md</p>
</body></html>
"""


def write_report(
    journal: dict[str, Any], html_path: str | Path, png_path: str | Path | None = None
) -> dict[str, Any]:
    """Write the report of ``journal`` to ``html_path`` and its timeline to ``png_path``
    (default: the HTML's name with ``.png``). Returns ``{"html", "png", "missing",
    "seconds"}``; :class:`ReportError` when matplotlib is missing or a file cannot be
    written."""
    begun = time.monotonic()
    html_file = Path(html_path)
    png_file = Path(png_path) if png_path is not None else html_file.with_suffix(".png")
    for target in (html_file, png_file):
        if target.is_dir():
            raise ReportError(f"{target}: is a folder; give a file name (-o report.html)")
        if target.parent.exists() and not target.parent.is_dir():
            raise ReportError(f"{target}: {target.parent} is not a folder")
        if not target.parent.is_dir():
            raise ReportError(f"{target}: its folder {target.parent} does not exist")
    data = timeline(journal)
    fig = figure(data)
    svg = _svg(fig)
    fig.set_layout_engine("none")  # laid out by the SVG's drawing: the PNG keeps it
    try:
        fig.savefig(png_file, format="png", dpi=100, metadata={"Software": "chaosgenesys"})
        html_file.write_text(html_report(data, svg, png_file.name
                                         if png_file.parent == html_file.parent
                                         else str(png_file)), encoding="utf-8")
    except OSError as error:
        raise ReportError(f"{error.filename or html_file}: cannot be written "
                          f"({error.strerror or error})") from None
    return {"html": str(html_file), "png": str(png_file), "missing": data["missing"],
            "passed": data["summary"]["passed"],
            "seconds": round(time.monotonic() - begun, 3)}
