"""The browser observer: its CPU on a page with 10 WebSocket frames/s, its reconnect latency
against the page's own clock, and the time to attach to a running browser.

Everything runs on 127.0.0.1: the test page of the browser tests (``tests/browser/pages.py``,
``serve_test_page(tick_ms=100)``: a page whose WebSocket gets a frame every 100 ms and notes
``close``/``open``/``first_frame`` in ``window.__events`` with ``Date.now()``; it reconnects
100 ms after a close) in a thread of this process, and the system's headless Chromium
(``tests/browser/chromium.py``) with the page opened through the DevTools HTTP endpoint
(``PUT /json/new``), so no DevTools client is attached unless an observer is. The fault
registry (which lists the observers) lives in a temporary ``CHAOSGENESYS_RUNTIME_DIR``.

- **CPU**: user + system CPU (``/proc/<pid>/stat``) over fixed windows, as % of one core, of
  the observer process (and any process it started), of the fault guardian, and of the
  browser's processes (renderers apart), without the observer (two windows: before it starts
  and after it stopped, W/2 each) and with it (W; 20 s, quick 4 s). **Goal: observer +
  the browser's increase ≤ 5 % of a core** (issue: overhead on the desktop page at 10 WebSocket
  events/s). Not with ``--quick``: the same with the page's socket silent (W/2 with, W/2
  without), which separates the observer's own cost from what each frame costs.
- **Reconnect latency**: N closes from the server (code 4000; 20, quick 5), 1 s apart (quick
  0.6 s), with
  the observer attached; for each, the observer's close -> first frame of the next socket (from
  its ``events.jsonl``, as ``browser_summary`` computes it) against the page's own ``close`` ->
  ``first_frame`` (``Date.now()``). **Goal: max |difference| ≤ 20 ms.**
- **Attach**: ``start_observer(devtools_url="http://127.0.0.1:<port>", page_url_pattern=…)``
  until it returns (it returns once attached), the browser already running with the page open;
  in N fresh Python processes (7, quick 3), each timing its first attach (cold) and a second one
  (warm), ``stop_observer`` after each. **Goal: ≤ 1 s on the median.**

Run: ``.venv/bin/python benchmarks/browser_observer.py [--quick] [--json]``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    ROOT,
    BenchmarkError,
    Figure,
    median,
    parse_args,
    report,
    run_main,
)

TITLE = "browser_observer: CPU at 10 WebSocket frames/s, reconnect latency, attach"
TICK_MS = 100
#: The tick that silences the page's socket (its ticker sleeps this long after its next frame).
SILENT_TICK_MS = 10_000_000
CPU_GOAL_PERCENT = 5.0
RECONNECT_GOAL_MS = 20.0
ATTACH_GOAL_S = 1.0
CLOSE_CODE = 4000
#: A close the observer saw and one the page saw are the same close if this close in time.
SAME_CLOSE_S = 0.5
TICKS = os.sysconf("SC_CLK_TCK")
OTHERS = "browser: others"

#: One attach round in a fresh interpreter: the first start_observer of the process (cold),
#: then ``warm`` more, stop_observer after each; prints the times as one JSON line.
ATTACH_ROUND = r"""
import json, sys, time
from chaosgenesys.browser import actions
url, pattern, warm = sys.argv[1], sys.argv[2], int(sys.argv[3])
out = {"attach": [], "stop": []}
try:
    for _ in range(1 + warm):
        began = time.perf_counter()
        started = actions.start_observer(devtools_url=url, page_url_pattern=pattern)
        out["attach"].append(time.perf_counter() - began)
        began = time.perf_counter()
        actions.stop_observer(observer_id=started["id"])
        out["stop"].append(time.perf_counter() - began)
finally:
    actions.stop_observer()
print(json.dumps(out), flush=True)
"""


# -- processes and their CPU --------------------------------------------------------------------


@dataclass(frozen=True)
class Proc:
    parent: int
    cpu: float  # user + system seconds
    command: str


def process_table() -> dict[int, Proc]:
    """Every process: parent pid, user + system CPU seconds, command line (from ``/proc``)."""
    table: dict[int, Proc] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                command = handle.read().replace(b"\0", b" ").decode("utf-8", "replace")
        except (OSError, IndexError):
            continue
        if fields[0] in ("Z", "X"):
            continue
        table[int(entry)] = Proc(
            int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS, command.strip()
        )
    return table


def descendants(table: dict[int, Proc], root: int) -> set[int]:
    """``root`` and every process below it."""
    found = {root} if root in table else set()
    grew = True
    while grew:
        grew = False
        for pid, proc in table.items():
            if proc.parent in found and pid not in found:
                found.add(pid)
                grew = True
    return found


def browser_pid(table: dict[int, Proc]) -> int:
    """The Chromium that ``tests.browser.chromium.chromium()`` started (a child of this one)."""
    for pid, proc in table.items():
        if (
            proc.parent == os.getpid()
            and "--remote-debugging-port" in proc.command
            and "--type=" not in proc.command
        ):
            return pid
    raise BenchmarkError("the Chromium started for the benchmark is not among its children")


def browser_groups(table: dict[int, Proc], root: int) -> dict[str, set[int]]:
    """The browser's processes, all and by kind."""
    every = descendants(table, root)
    renderers = {pid for pid in every if "--type=renderer" in table[pid].command}
    return {
        "browser": every,
        "browser: renderers": renderers,
        "browser: main process": {root} & every,
        OTHERS: every - renderers - {root},
    }


@dataclass
class Window:
    seconds: float
    cpu: dict[str, float]  # group -> CPU seconds over the window
    wall: tuple[float, float]  # epoch seconds at start and end
    lost: list[str]  # groups that lost a process during the window (its CPU not counted)

    def percent(self, group: str) -> float:
        return 100.0 * self.cpu.get(group, 0.0) / self.seconds


def measure_window(
    seconds: float, groups: Callable[[dict[int, Proc]], dict[str, set[int]]]
) -> Window:
    """CPU of each group of processes over ``seconds`` (processes started meanwhile count
    whole; the groups are taken at the start and at the end)."""
    before = process_table()
    wall_start, start = time.time(), time.monotonic()
    time.sleep(seconds)
    after = process_table()
    elapsed, wall_end = time.monotonic() - start, time.time()
    at_start, at_end = groups(before), groups(after)
    cpu: dict[str, float] = {}
    lost: list[str] = []
    for name in at_start.keys() | at_end.keys():
        members = at_start.get(name, set()) | at_end.get(name, set())
        cpu[name] = sum(
            after[pid].cpu - (before[pid].cpu if pid in before else 0.0)
            for pid in members
            if pid in after
        )
        if any(pid not in after for pid in members):
            lost.append(name)
    return Window(elapsed, cpu, (wall_start, wall_end), lost)


def combined(windows: list[Window]) -> Window:
    """Several windows as one (CPU and seconds summed)."""
    names = {name for window in windows for name in window.cpu}
    return Window(
        sum(w.seconds for w in windows),
        {name: sum(w.cpu.get(name, 0.0) for w in windows) for name in names},
        (windows[0].wall[0], windows[-1].wall[1]),
        sorted({name for w in windows for name in w.lost}),
    )


# -- the page and the browser ---------------------------------------------------------------


def devtools_json(port: int, path: str, method: str = "GET") -> Any:
    """An answer of the browser's DevTools HTTP endpoint."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method)
    with urllib.request.urlopen(request, timeout=10) as answer:
        return json.loads(answer.read().decode("utf-8") or "null")


def open_page(port: int, url: str) -> str:
    """Open ``url`` in a new tab (no DevTools client stays attached) and close the blank one;
    the new tab's target id."""
    opened = devtools_json(port, f"/json/new?{url}", method="PUT")
    for target in devtools_json(port, "/json/list"):
        if target.get("type") == "page" and target.get("url") == "about:blank":
            with contextlib.suppress(OSError):
                urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/json/close/{target['id']}", timeout=10
                ).close()
    return str(opened["id"])


def page_events(port: int, target: str) -> list[dict[str, Any]]:
    """The page's ``window.__events``, read over a short-lived DevTools connection."""
    import websocket

    connection = websocket.create_connection(
        f"ws://127.0.0.1:{port}/devtools/page/{target}", timeout=10, suppress_origin=True
    )
    try:
        connection.send(json.dumps({"id": 1, "method": "Runtime.evaluate", "params": {
            "expression": "JSON.stringify(window.__events)", "returnByValue": True}}))
        while True:
            message = json.loads(connection.recv())
            if message.get("id") == 1:
                break
    finally:
        connection.close()
    value = (message.get("result") or {}).get("result", {}).get("value")
    if not isinstance(value, str):
        raise BenchmarkError(f"could not read the page's events: {str(message)[:300]}")
    events: list[dict[str, Any]] = json.loads(value)
    return events


# -- reconnects ------------------------------------------------------------------------------


def page_reconnects(events: list[dict[str, Any]], since: float) -> list[tuple[float, float]]:
    """``(close time, ms from the close to the next socket's first frame)`` per close of the
    page after ``since`` (epoch seconds), from the page's own ``Date.now()`` notes."""
    found: list[tuple[float, float]] = []
    closed: float | None = None
    for event in sorted(events, key=lambda e: float(e.get("t", 0))):
        moment = float(event.get("t", 0)) / 1000.0
        if event.get("event") == "close" and moment >= since:
            closed = moment if closed is None else closed
        elif event.get("event") == "first_frame" and closed is not None:
            found.append((closed, (moment - closed) * 1000.0))
            closed = None
    return found


def observer_reconnects(
    events: list[dict[str, Any]], since: float
) -> list[tuple[float, float]]:
    """The same from the observer's ``events.jsonl``: a ``ws_closed``, then the first
    ``ws_frame`` in on another socket (browser timestamps brought to wall-clock time)."""
    found: list[tuple[float, float]] = []
    closed: float | None = None
    gone: set[str] = set()
    for event in sorted(events, key=lambda e: float(e.get("ts", 0.0))):
        kind, moment, ws = event.get("event"), float(event.get("ts", 0.0)), event.get("ws")
        if kind == "ws_closed" and moment >= since:
            gone.add(str(ws))
            closed = moment if closed is None else closed
        elif (
            kind == "ws_frame" and event.get("dir") == "in" and closed is not None
            and str(ws) not in gone
        ):
            found.append((closed, (moment - closed) * 1000.0))
            closed = None
    return found


def paired(
    page: list[tuple[float, float]], seen: list[tuple[float, float]]
) -> list[tuple[float, float, float]]:
    """``(page ms, observer ms, observer close - page close in ms)`` for each close both saw
    (the observer's close nearest in time to the page's, within ``SAME_CLOSE_S``)."""
    pairs: list[tuple[float, float, float]] = []
    left = list(seen)
    for closed, latency in page:
        if not left:
            break
        nearest = min(left, key=lambda item: abs(item[0] - closed))
        if abs(nearest[0] - closed) <= SAME_CLOSE_S:
            left.remove(nearest)
            pairs.append((latency, nearest[1], (nearest[0] - closed) * 1000.0))
    return pairs


# -- the run --------------------------------------------------------------------------------


@dataclass
class Counts:
    window_s: float  # with the observer; the two windows without it are half as long each
    closes: int
    spacing_s: float  # between the closes
    rounds: int  # attach rounds (fresh interpreters)
    silent: bool  # also measure with the page's socket silent (no frames)

    @classmethod
    def chosen(cls, quick: bool) -> Counts:
        return cls(4.0, 5, 0.6, 3, False) if quick else cls(20.0, 20, 1.0, 7, True)


@contextlib.contextmanager
def runtime_dir() -> Iterator[Path]:
    """A temporary ``CHAOSGENESYS_RUNTIME_DIR`` for the block (the fault registry)."""
    previous = os.environ.get("CHAOSGENESYS_RUNTIME_DIR")
    with tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-browser-") as tmp:
        os.environ["CHAOSGENESYS_RUNTIME_DIR"] = str(Path(tmp) / "runtime")
        try:
            yield Path(tmp) / "runtime"
        finally:
            guardian_gone(Path(tmp) / "runtime")
            if previous is None:
                os.environ.pop("CHAOSGENESYS_RUNTIME_DIR", None)
            else:
                os.environ["CHAOSGENESYS_RUNTIME_DIR"] = previous


def guardian_pid(directory: Path) -> int:
    """The fault guardian of the temporary registry, 0 if none runs."""
    from chaosgenesys.faults.registry import Registry

    if not directory.exists():
        return 0
    return Registry(directory).guardian_pid() or 0


def guardian_gone(directory: Path, timeout: float = 10.0) -> None:
    """Wait until the guardian of the (now empty) registry has exited."""
    deadline = time.monotonic() + timeout
    while guardian_pid(directory) and time.monotonic() < deadline:
        time.sleep(0.1)


def kill_leftovers(pids: set[int], notes: list[str]) -> None:
    """SIGKILL what is left of the browser this benchmark started (by pid, once it is checked
    to be that Chromium still), after ``chromium()`` stopped it."""
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        table = process_table()
        left = [pid for pid in pids if pid in table and "chromium" in table[pid].command]
        if not left:
            return
        time.sleep(0.1)
    for pid in left:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    notes.append(f"{len(left)} browser process(es) outlived the browser's stop: killed")


def attach_rounds(
    url: str, pattern: str, rounds: int
) -> tuple[list[float], list[float], list[float]]:
    """Cold attaches, warm attaches and stops (seconds), one fresh interpreter per round."""
    cold: list[float] = []
    warm: list[float] = []
    stops: list[float] = []
    for _ in range(rounds):
        done = subprocess.run(
            [sys.executable, "-c", ATTACH_ROUND, url, pattern, "1"],
            cwd=ROOT, capture_output=True, text=True, timeout=180,
        )
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode != 0 or not lines:
            raise BenchmarkError(
                f"an attach round failed (exit {done.returncode}): "
                f"{done.stderr.strip()[-1500:] or done.stdout.strip()[-500:]}"
            )
        times = json.loads(lines[-1])
        cold.append(times["attach"][0])
        warm += times["attach"][1:]
        stops += times["stop"]
    return cold, warm, stops


def measure(counts: Counts, notes: list[str]) -> list[Figure]:
    """Every figure; the observers stopped and the browser gone when it returns or raises."""
    try:
        from tests.browser.chromium import chromium
        from tests.browser.pages import serve_test_page
    except ImportError as error:
        raise BenchmarkError(f"the browser tests' helpers are not importable: {error}") from None
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.browser import actions, runs

    browser_pids: set[int] = set()
    with runtime_dir() as registry, serve_test_page(tick_ms=TICK_MS) as site:
        try:
            with chromium() as ws_url:
                port = int(urlsplit(ws_url).port or 0)
                return measure_with_browser(counts, notes, site, port, registry, browser_pids)
        except (AssertionError, ActivityFailed, subprocess.TimeoutExpired) as error:
            # no Chromium, no DevTools URL, a socket that did not open, an observer that did
            # not attach, an attach round that hung
            raise BenchmarkError(f"{type(error).__name__}: {error}") from None
        finally:
            with contextlib.suppress(Exception):
                actions.stop_observer()
            alive = [
                record["id"] for record in runs.list_observers()
                if runs.process_alive(int(record.get("pid") or 0), str(record.get("start_time")))
            ]
            if alive:
                notes.append(f"observer(s) still running after stop_observer(): {alive}")
            kill_leftovers(browser_pids, notes)


def measure_with_browser(
    counts: Counts, notes: list[str], site: Any, port: int, registry: Path,
    browser_pids: set[int],
) -> list[Figure]:
    """The three measurements, against the page open in the browser at ``port``."""
    from chaosgenesys.browser import actions, runs
    from chaosgenesys.browser.probes import browser_summary
    from chaosgenesys.browser.summary import read_events

    devtools_url = f"http://127.0.0.1:{port}"
    page_url = site.url + "/"
    pattern = "^" + re.escape(page_url)
    target = open_page(port, page_url)
    site.wait_connections(1)
    time.sleep(1.0)  # the page loaded, its socket ticking
    root = browser_pid(process_table())
    observer = {"pid": 0}

    def groups(table: dict[int, Proc]) -> dict[str, set[int]]:
        found = browser_groups(table, root)
        browser_pids.update(found["browser"])
        observed = descendants(table, observer["pid"]) if observer["pid"] else set()
        found["observer"] = observed
        guardian = guardian_pid(registry)
        found["guardian"] = {guardian} if guardian in table else set()
        return found

    # CPU without the observer (W/2), with it (W; then W/2 with the socket silent), the
    # reconnects, without it again (W/2; then W/2 with the socket silent), the attach rounds
    before = measure_window(counts.window_s / 2, groups)
    began = time.perf_counter()
    started = actions.start_observer(devtools_url=devtools_url, page_url_pattern=pattern)
    in_process_attach = time.perf_counter() - began
    observer_id = str(started["id"])
    observer["pid"] = int(runs.pick_observer(observer_id).get("pid") or 0)
    time.sleep(1.0)
    watched = measure_window(counts.window_s, groups)
    watched_silent = None
    if counts.silent:
        silence(site)
        watched_silent = measure_window(counts.window_s / 2, groups)
        site.tick_ms = TICK_MS  # the next socket ticks again (the silent one waits forever)

    since = time.time()
    for _ in range(counts.closes):
        site.wait_connections(1)
        if site.close_sockets(CLOSE_CODE) != 1:
            raise BenchmarkError("the page's socket was not open to close")
        time.sleep(counts.spacing_s)
    site.wait_connections(1)
    time.sleep(0.5)
    actions.stop_observer(observer_id=observer_id)
    observer["pid"] = 0
    summary = browser_summary(observer_id=observer_id)  # what an experiment's probe reads
    seen_events = read_events(Path(started["events"]))
    events_of_page = page_events(port, target)
    time.sleep(0.5)
    after = measure_window(counts.window_s / 2, groups)
    silent = None
    if counts.silent:
        silence(site)
        silent = measure_window(counts.window_s / 2, groups)
        site.tick_ms = TICK_MS
        site.close_sockets(CLOSE_CODE)  # a new socket, ticking, for the attach rounds
        site.wait_connections(1)

    cold, warm, stops = attach_rounds(devtools_url, pattern, counts.rounds)

    page = page_reconnects(events_of_page, since)
    seen = observer_reconnects(seen_events, since)
    pairs = paired(page, seen)
    for window in (before, watched, watched_silent, after, silent):
        if window is not None and window.lost:
            notes.append(f"a process of {', '.join(window.lost)} ended during a window")
    notes.append(
        f"attach of the observer the CPU and reconnects were measured with (in this process, "
        f"its first): {in_process_attach:.3f} s"
    )
    cpu = cpu_figures(combined([before, after]), watched, frames_in(seen_events, watched))
    if watched_silent is not None and silent is not None:
        cpu += silent_figures(
            silent, watched_silent, frames_in(seen_events, watched_silent),
            caused(combined([before, after]), watched),
            frames_in(seen_events, watched) / watched.seconds,
        )
    else:
        notes.append(
            "--quick: the CPU figures are rough (4 s windows; one 10 ms tick is 0.25 % of a "
            "core, and the browser's own CPU moves between windows); read the full run's. The "
            "CPU with the page's socket silent is not measured"
        )
    return (
        cpu
        + reconnect_figures(counts.closes, page, seen, pairs, summary)
        + attach_figures(cold, warm, stops)
    )


def silence(site: Any) -> None:
    """Stop the frames of the page's socket (its ticker sends one more, then waits ~forever)."""
    site.tick_ms = SILENT_TICK_MS
    time.sleep(2 * TICK_MS / 1000)


def frames_in(events: list[dict[str, Any]], window: Window) -> int:
    """WebSocket frames in that the observer logged during ``window``."""
    return sum(
        1 for e in events
        if e.get("event") == "ws_frame" and e.get("dir") == "in"
        and window.wall[0] <= float(e.get("ts", 0.0)) <= window.wall[1]
    )


def caused(without: Window, watched: Window) -> float:
    """Observer + the browser's increase, % of a core."""
    return (
        watched.percent("observer")
        + watched.percent("browser") - without.percent("browser")
    )


def cpu_figures(without: Window, watched: Window, frames: int) -> list[Figure]:
    observer = watched.percent("observer")
    extra = watched.percent("browser") - without.percent("browser")
    total = caused(without, watched)
    ratio = watched.percent("browser") / max(without.percent("browser"), 1e-9)

    def increase(group: str) -> float:
        return watched.percent(group) - without.percent(group)

    renderer_extra = increase("browser: renderers")
    return [
        Figure(
            f"frames in seen by the observer in the {watched.seconds:.0f} s window",
            f"{frames} ({frames / watched.seconds:.1f}/s)",
        ),
        Figure("observer CPU", observer, "% of a core"),
        Figure(
            "browser CPU without / with observer",
            f"{without.percent('browser'):.2f} / {watched.percent('browser'):.2f}",
            "% of a core",
        ),
        Figure(
            "browser's increase with observer (ratio with / without)",
            f"{extra:+.2f} ({ratio:.2f}x)", "% of a core",
        ),
        Figure(
            "  of which renderers: without / with (increase)",
            f"{without.percent('browser: renderers'):.2f} / "
            f"{watched.percent('browser: renderers'):.2f} ({renderer_extra:+.2f})",
            "% of a core",
        ),
        Figure(
            "  main process / others (gpu, network, zygotes): increase",
            f"{increase('browser: main process'):+.2f} / {increase(OTHERS):+.2f}",
            "% of a core",
        ),
        Figure(
            "observer-caused CPU (observer + browser's increase)",
            total, "% of a core", f"<= {CPU_GOAL_PERCENT:g} %", total <= CPU_GOAL_PERCENT,
        ),
        Figure("fault guardian CPU while the observer runs", watched.percent("guardian"),
               "% of a core"),
    ]


def silent_figures(
    without: Window, watched: Window, frames: int, ticking: float, rate: float
) -> list[Figure]:
    """The same with the page's socket silent: what the observer costs without any event;
    ``ticking`` is the observer-caused CPU at ``rate`` frames/s."""
    idle = caused(without, watched)
    per_frame = (ticking - idle) * 10.0 / max(rate, 1e-9)  # % of a core -> ms per second
    return [
        Figure(
            f"socket silent ({frames} frames in): observer / browser's increase",
            f"{watched.percent('observer'):.2f} / "
            f"{watched.percent('browser') - without.percent('browser'):+.2f}", "% of a core",
        ),
        Figure("socket silent: observer-caused CPU", idle, "% of a core"),
        Figure("CPU per frame: (ticking - silent) / frames per s", per_frame, "ms"),
    ]


def reconnect_figures(
    closes: int,
    page: list[tuple[float, float]],
    seen: list[tuple[float, float]],
    pairs: list[tuple[float, float, float]],
    summary: dict[str, Any],
) -> list[Figure]:
    figures = [
        Figure(
            f"reconnects after {closes} closes: page / observer / paired",
            f"{len(page)} / {len(seen)} / {len(pairs)}", "", "all",
            len(page) == len(seen) == len(pairs) == closes,
        )
    ]
    if not pairs:
        return figures
    page_ms = [p for p, _, _ in pairs]
    seen_ms = [s for _, s, _ in pairs]
    differences = [abs(s - p) for p, s, _ in pairs]
    figures += [
        Figure("page: close -> first frame p50 / max",
               f"{median(page_ms):.1f} / {max(page_ms):.1f}", "ms"),
        Figure("observer: close -> first frame p50 / max",
               f"{median(seen_ms):.1f} / {max(seen_ms):.1f}", "ms"),
        Figure(
            "browser_summary: reconnects, reconnect_p50_ms / reconnect_max_ms",
            f"{summary.get('reconnects')}, {summary.get('reconnect_p50_ms')} / "
            f"{summary.get('reconnect_max_ms')}", "ms",
        ),
        Figure("|observer - page| per reconnect: p50", median(differences), "ms"),
        Figure("|observer - page| per reconnect: max", max(differences), "ms",
               f"<= {RECONNECT_GOAL_MS:g} ms", max(differences) <= RECONNECT_GOAL_MS),
        Figure(
            "observer - page, signed: min / median / max",
            f"{min(s - p for p, s, _ in pairs):+.1f} / "
            f"{median([s - p for p, s, _ in pairs]):+.1f} / "
            f"{max(s - p for p, s, _ in pairs):+.1f}", "ms",
        ),
        Figure(
            "close time, observer - page: median / max |.|",
            f"{median([c for _, _, c in pairs]):+.1f} / "
            f"{max(abs(c) for _, _, c in pairs):.1f}", "ms",
        ),
    ]
    return figures


def attach_figures(cold: list[float], warm: list[float], stops: list[float]) -> list[Figure]:
    return [
        Figure(
            f"attach, cold (first in a fresh process, n={len(cold)}): median",
            median(cold), "s", f"<= {ATTACH_GOAL_S:g} s", median(cold) <= ATTACH_GOAL_S,
        ),
        Figure("attach, cold: max", max(cold), "s"),
        Figure(
            f"attach, warm (second in the process, n={len(warm)}): median",
            median(warm), "s", f"<= {ATTACH_GOAL_S:g} s", median(warm) <= ATTACH_GOAL_S,
        ),
        Figure("attach, warm: max", max(warm), "s"),
        Figure("stop_observer: median / max", f"{median(stops):.3f} / {max(stops):.3f}", "s"),
    ]


def body() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else TITLE)
    counts = Counts.chosen(args.quick)
    notes: list[str] = []
    started, load = time.monotonic(), os.getloadavg()[0]
    figures = measure(counts, notes)
    notes[:0] = [
        f"page: a frame every {TICK_MS} ms on one WebSocket; headless Chromium "
        f"({os.cpu_count()} cores here); CPU windows: {counts.window_s / 2:g} s + "
        f"{counts.window_s / 2:g} s without (before the observer started and after it "
        f"stopped), {counts.window_s:g} s with; CPU from /proc in {1000 // TICKS} ms ticks; "
        f"{counts.closes} closes {counts.spacing_s:g} s apart",
        "every start_observer spawns a new observer process (Python, its imports, one "
        "DevTools WebSocket): every attach, cold or warm, includes its start",
    ]
    notes.append(
        f"ran {time.monotonic() - started:.0f} s; load average {load:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (other work on the machine moves the CPU figures)"
    )
    report(TITLE, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
