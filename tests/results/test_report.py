"""``chaosgenesys report`` on journals real ``chaos run`` processes wrote, opened in a real
headless Chromium; and on what is not a journal, and outputs that cannot be written.

Three examples run for real, two at a time as soon as a test asks (``examples``):
``websocket-close.json`` (the verdict control, the sandbox with a synthetic desktop, an external
observer, two faults, the kill switch) serves every test that reads a full journal,
``browser-websocket-close.json`` the browser's row, ``protocol.yaml`` the protocol's phases.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.results.journal import parse_time
from tests.conftest import AGENT_1, AGENT_2
from tests.controls.runner import ROOT, ChaosRun, chaos_run

CHAOSGENESYS = str(Path(sys.executable).with_name("chaosgenesys"))
FAULTS = ("streaming-service-refuses-new-sockets-for-3s",
          "platform-closes-the-agent-socket-with-a-close-frame")


def _report(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CHAOSGENESYS, "report", *args], capture_output=True, text=True,
                          timeout=60)


#: The examples this module runs for real, the longest first: started two at a time as soon as
#: a test asks for one, so their waits overlap.
EXAMPLES = ("browser-websocket-close.json", "protocol.yaml", "websocket-close.json")


def _run_example(name: str, folder: Path) -> tuple[ChaosRun, Path]:
    import yaml

    text = (ROOT / "examples" / name).read_text()
    experiment = json.loads(text) if name.endswith(".json") else yaml.safe_load(text)
    run = chaos_run(experiment, folder, folder / "runtime")
    assert run.returncode == 0, run.output[-3000:] + run.log[-3000:]
    return run, folder


@pytest.fixture(scope="module")
def examples(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Future[tuple[ChaosRun, Path]]]]:
    """Each of :data:`EXAMPLES` run once with ``chaos run``: its run and its folder."""
    pool = ThreadPoolExecutor(max_workers=2)
    started = {name: pool.submit(_run_example, name, tmp_path_factory.mktemp(Path(name).stem))
               for name in EXAMPLES}
    yield started
    pool.shutdown(wait=True)


@pytest.fixture(scope="module")
def websocket_close(
    examples: dict[str, Future[tuple[ChaosRun, Path]]],
) -> tuple[ChaosRun, Path]:
    """The real run of examples/websocket-close.json; its journal's path."""
    run, folder = examples["websocket-close.json"].result(timeout=300)
    return run, folder / "journal.json"


def _pixels(path: Path) -> Any:
    import numpy
    from PIL import Image

    return numpy.asarray(Image.open(path).convert("RGB"), dtype=numpy.float64)


def _not_blank(path: Path) -> None:
    """A plot, not an empty page: varied pixels, a fair share of them not white, some red (the
    fault bands and the limit line)."""
    pixels = _pixels(path)
    assert pixels.std() > 20, pixels.std()
    inked = (pixels.min(axis=2) < 200).mean()
    assert inked > 0.03, inked
    red = ((pixels[:, :, 0] > 180) & (pixels[:, :, 1] < 120) & (pixels[:, :, 2] < 120)).mean()
    assert red > 0.0005, red


def _no_external_reference(text: str) -> None:
    attributes = re.findall(r"""(?:src|href)\s*=\s*["']([^"']*)["']""", text, re.I)
    assert attributes, "the SVG's markers and the PNG link are references"
    external = [a for a in attributes if re.match(r"(?:[a-z]+:)?//", a, re.I)]
    assert external == [], external
    assert "@import" not in text and not re.search(r"url\(\s*['\"]?(?:https?:)?//", text)
    # the only absolute URLs left are XML namespace names (never fetched)
    leftover = set(re.findall(r"https?://[^\s\"'<>]+", text))
    assert leftover <= {"http://www.w3.org/2000/svg", "http://www.w3.org/1999/xlink"}, leftover


def test_the_verdict_control_journals_the_timeline(websocket_close: tuple[ChaosRun, Path]
                                                   ) -> None:
    run, _ = websocket_close
    verdict = run.extension("chaosgenesys-verdict")
    desktop = verdict["desktops"]["synthetic"][AGENT_1]
    # the keys the verdict reads are unchanged
    assert desktop["mode"] == "resilient" and desktop["reconnects"] >= 1, desktop
    assert {"reconnect_max_ms", "longest_off_queue_s", "zombie_s", "logged_out",
            "interactions_lost", "consistency_violations"} <= set(desktop)
    # the socket closed at the fault and came back within the example's 8 s
    assert desktop["connected"] is True
    closed = parse_time(next(r["start"] for r in run.journal["run"]
                             if r["activity"]["name"] == FAULTS[1]))
    assert closed is not None
    assert any(closed - 1 <= at - ms / 1000 <= closed + 1 and 0 < ms < 8000
               for at, ms in desktop["recent_reconnects"]), (closed, desktop)
    assert desktop["off_queue_stretches"] and all(
        end is not None and start <= end for start, end in desktop["off_queue_stretches"])
    series = verdict["desktops"]["api_latency"]
    assert series["bucket_seconds"] == 1 and series["from"] == "run"
    assert {"tooling", "desktop"} <= set(series["sources"]), series
    for points in series["sources"].values():
        seconds = [int(p[0]) for p in points]  # when the bucket's slowest call was sent
        assert seconds == sorted(set(seconds)), "one bucket per second, in order"
        assert all(p[1] >= 0 and p[2] >= 1 and 0 <= p[3] <= p[2] for p in points)
    # compact: a 20 s run's extension stays a few kilobytes
    assert len(json.dumps(verdict)) < 20_000, len(json.dumps(verdict))


def test_a_report_of_a_real_run_opens_offline_in_chromium(
    websocket_close: tuple[ChaosRun, Path], tmp_path: Path
) -> None:
    _, journal = websocket_close
    done = _report(str(journal), "-o", str(tmp_path / "run.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"PASSED: report {tmp_path / 'run.html'}, timeline "
                                  f"{tmp_path / 'run.png'}"), done.stdout
    page_text = (tmp_path / "run.html").read_text(encoding="utf-8")
    _no_external_reference(page_text)
    for needed in (*FAULTS, AGENT_1, AGENT_2, "kill switch p99 limit 2,000 ms",
                   "API latency over time"):
        assert needed in page_text, needed
    _not_blank(tmp_path / "run.png")

    from playwright.sync_api import sync_playwright

    from tests.browser.chromium import chromium

    requested: list[str] = []
    with chromium() as ws_url, sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(ws_url)
        page = browser.contexts[0].new_page()
        page.set_viewport_size({"width": 1400, "height": 1000})
        page.on("request", lambda request: requested.append(request.url))
        page.goto((tmp_path / "run.html").as_uri())
        page.wait_for_load_state("load")
        assert page.inner_text("#verdict").startswith("PASSED: The agent desktop comes back")
        assert page.inner_text("#verdict-text").startswith("PASSED:")
        svg_text = [t.strip() for t in page.locator("#timeline svg text").all_text_contents()]
        for fault in FAULTS:
            assert fault in svg_text, (fault, svg_text[:40])
        assert any(t.startswith("0b6b…000001 socket") for t in svg_text), svg_text
        assert any(t.startswith("0b6b…000002 presence/routing") for t in svg_text), svg_text
        assert "kill switch p99 limit 2,000 ms" in svg_text
        assert page.locator(f'#agents .agent[data-user="{AGENT_1}"]').count() == 1
        box = page.locator("#timeline svg").bounding_box()
        assert box is not None and box["width"] > 1000 and box["height"] > 400, box
        page.locator("#timeline svg").screenshot(path=str(tmp_path / "seen.png"))
        page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
        browser.close()
    assert requested == [(tmp_path / "run.html").as_uri()], requested  # nothing else fetched
    _not_blank(tmp_path / "seen.png")
    _not_blank(tmp_path / "page.png")


def test_a_browser_run_draws_the_page_socket_down_over_the_fault(
    examples: dict[str, Future[tuple[ChaosRun, Path]]], tmp_path: Path
) -> None:
    """examples/browser-websocket-close.json, run for real (the reference desktop in headless
    Chromium, about 30 s): the verdict journals the page's socket outage at the close, as long
    as the observer's reconnect, and the report draws the observer's socket row and lists it."""
    from chaosgenesys.browser.summary import read_events, socket_outages, summarize_events

    run, folder = examples["browser-websocket-close.json"].result(timeout=300)
    (observer, page), = run.extension("chaosgenesys-verdict")["desktops"]["browser"].items()
    (cut,) = [r for r in run.journal["run"]
              if r["activity"]["name"] == "streaming-handshakes-refused-and-the-socket-closed"]
    started, closed = parse_time(cut["start"]), parse_time(cut["end"])
    assert started is not None and closed is not None
    assert page["up_since"] is not None and page["up_since"] < started
    # one outage, from the close to the reconnect the observer measured (2 s, refused, 4 s)
    assert page["outages_dropped"] == 0 and len(page["outages"]) == 1, page
    ((began, ended),) = page["outages"]
    # the fault's holder closes the socket before the action returns; the page reports it a
    # moment later (1 s of slack); the outage's length is checked exactly below
    assert started <= began <= closed + 1 and ended is not None, (started, closed, page)
    assert abs((ended - began) * 1000 - page["reconnect_max_ms"]) < 5, page
    assert 5.5 <= ended - began <= 9 and page["disconnected_now"] is False, page
    # the same outages as the observer's figures, from its events file
    events = read_events(folder / "runtime" / "browser" / observer / "events.jsonl")
    again = socket_outages(events)
    assert again["outages"] == page["outages"]
    assert abs(sum(b - a for a, b in again["outages"])
               - summarize_events(events)["disconnected_s"]) < 0.01
    assert socket_outages(events, kept=0) == {"up_since": page["up_since"], "outages": [],
                                              "outages_dropped": 1}

    # the refusal's window is the duration it ran with (its output's: "${refuse_seconds}", 4 s
    # as the experiment configures it and no --var changed; tests/results/
    # test_verdict_summary.py has a run that changed it)
    from chaosgenesys.results.verdict import summarize

    (refusal,) = [f for f in summarize(run.journal)["faults"]
                  if f["action"] == "browser.actions.block_websocket_handshakes"]
    assert refusal["ended_by"] == "its duration (4 s)" and refusal["seconds"] == 4.0, refusal

    done = _report(str(folder / "journal.json"), "-o", str(tmp_path / "browser.html"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "browser.html").read_text(encoding="utf-8")
    _no_external_reference(text)
    assert "not their WebSockets over time" not in text
    from playwright.sync_api import sync_playwright

    from tests.browser.chromium import chromium

    with chromium() as ws_url, sync_playwright() as pw:
        browser = pw.chromium.connect_over_cdp(ws_url)
        view = browser.contexts[0].new_page()
        view.goto((tmp_path / "browser.html").as_uri())
        view.wait_for_load_state("load")
        svg_text = [t.strip() for t in view.locator("#timeline svg text").all_text_contents()]
        assert f"browser …{observer[-8:]} socket" in svg_text, svg_text
        assert any(t.startswith("reconnect ") and t.endswith(" s") for t in svg_text), svg_text
        row = view.locator(f'#browsers tr:has(.browser[data-observer="{observer}"])')
        assert row.count() == 1
        assert row.inner_text().split("\t")[-1].startswith("1 reconnect(s), 1 outage(s), ")
        missing = view.inner_text("#missing")
        assert "browser" not in missing, missing
        browser.close()
    _not_blank(tmp_path / "browser.png")


def test_a_protocol_run_draws_its_phases_and_the_slow_calls_inside_the_fault(
    examples: dict[str, Future[tuple[ChaosRun, Path]]], tmp_path: Path
) -> None:
    """examples/protocol.yaml (about 16 s): the latency series comes from the protocol's call
    collector, and the desktops' reads slowed by 800 ms are drawn inside the fault's window."""
    run, folder = examples["protocol.yaml"].result(timeout=300)
    series = run.extension("chaosgenesys-verdict")["desktops"]["api_latency"]
    assert series["from"] == "protocol" and "desktop" in series["sources"], series
    from chaosgenesys.results.journal import load_journal
    from chaosgenesys.results.timeline import timeline

    data = timeline(load_journal(folder / "journal.json"))
    assert [p["name"] for p in data["phases"]] == ["baseline", "injection", "recovery"]
    slow = next(f for f in data["faults"] if f["name"] == "user-reads-800-ms-slower")
    # each second's slowest call is drawn when it was sent: the slow ones within the window
    slowest = [p for points in data["latency"].values() for p in points if p[1] >= 800]
    assert slowest and all(slow["start"] - 0.2 <= p[0] <= slow["end"] for p in slowest), (
        slow, slowest)
    assert [p for points in data["latency"].values() for p in points
            if p[0] < slow["start"] - 1 or p[0] > slow["end"] + 1], "calls outside the fault"
    done = _report(str(folder / "journal.json"), "-o", str(tmp_path / "protocol.html"))
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "protocol.html").read_text(encoding="utf-8")
    _no_external_reference(text)
    for label in ("baseline", "injection", "recovery", "user-reads-800-ms-slower"):
        assert re.search(rf"<text [^>]*>\s*{label}\s*</text>", text), label
    _not_blank(tmp_path / "protocol.png")


def test_a_run_without_chaosgenesys_controls_still_renders(tmp_path: Path) -> None:
    experiment = {
        "title": "no chaosgenesys control",
        "description": "a plain experiment",
        "steady-state-hypothesis": {"title": "true holds", "probes": [
            {"type": "probe", "name": "true-exits-0", "tolerance": 0,
             "provider": {"type": "process", "path": "true"}},
        ]},
        "method": [{"type": "action", "name": "nothing", "provider": {
            "type": "process", "path": "true"}}],
    }
    run = chaos_run(experiment, tmp_path, tmp_path / "runtime")
    assert run.returncode == 0, run.log[-2000:]
    done = _report(str(tmp_path / "journal.json"), "-o", str(tmp_path / "plain.html"))
    assert done.returncode == 0, done.stderr
    assert "not in the journal: no chaosgenesys verdict control in this run" in done.stdout
    assert "no external observer" in done.stdout and "no fault action" in done.stdout
    text = (tmp_path / "plain.html").read_text(encoding="utf-8")
    _no_external_reference(text)
    assert '<h1 id="verdict" class="passed">PASSED: no chaosgenesys control</h1>' in text
    assert "no kill switch in this run: its default API p99 limit (2,000 ms) is drawn" in text
    assert "no API latency series in this journal" in text  # said on the plot itself
    # two checks (before and after) held
    assert text.count('<span class="passed">held</span>') == 2
    pixels = _pixels(tmp_path / "plain.png")
    assert pixels.std() > 20 and (pixels.min(axis=2) < 200).mean() > 0.01


def test_what_is_not_a_journal_and_what_cannot_be_written(
    websocket_close: tuple[ChaosRun, Path], tmp_path: Path
) -> None:
    experiment = ROOT / "examples" / "websocket-close.json"
    for path, said in (
        (experiment, "not a Chaos Toolkit journal (it has no experiment, status, run)"),
        (tmp_path / "missing.json", "cannot be read"),
        (Path(__file__), "not JSON"),
    ):
        done = _report(str(path), "-o", str(tmp_path / "never.html"))
        assert done.returncode == 2 and done.stdout == "", done
        assert done.stderr.startswith("chaosgenesys report: ") and said in done.stderr, done.stderr
    assert not (tmp_path / "never.html").exists() and not (tmp_path / "never.png").exists()

    _, journal = websocket_close
    a_file = tmp_path / "a-file"
    a_file.write_text("x")
    for output, said in (
        (tmp_path / "no" / "such" / "report.html", "its folder"),
        (a_file / "report.html", "is not a folder"),
        (tmp_path, "is a folder; give a file name"),
    ):
        done = _report(str(journal), "-o", str(output))
        assert done.returncode == 1 and done.stdout == "", done
        assert done.stderr.startswith(f"chaosgenesys report: {output}"), done.stderr
        assert said in done.stderr, done.stderr


def test_ten_minutes_of_fifty_agents_are_all_drawn(
    websocket_close: tuple[ChaosRun, Path], tmp_path: Path
) -> None:
    """The real journal grown to the speed goal's size (benchmarks/report_render.py times it):
    its desktop's timeline copied to 50 agents over 10 minutes, its observer's to 50 users, a
    latency bucket per second per source; all of it is drawn."""
    from chaosgenesys.results.journal import load_journal
    from chaosgenesys.results.report import write_report

    journal = load_journal(websocket_close[1])
    start = parse_time(journal["start"])
    assert start is not None
    journal["duration"] = 600.0
    journal["end"] = datetime.fromtimestamp(start + 600, UTC).isoformat()
    verdict = next(e for e in journal["experiment"]["extensions"]
                   if e["name"] == "chaosgenesys-verdict")
    desktops = verdict["desktops"]
    one = desktops["synthetic"][AGENT_1]
    grown = {}
    for index in range(50):
        shifted = dict(one)
        shifted["recent_reconnects"] = [[at + 60 * k + index, ms] for at, ms in
                                        one["recent_reconnects"] for k in range(10)]
        shifted["off_queue_stretches"] = [[a + 60 * k + index, (b or a + 5) + 60 * k + index]
                                          for a, b in one["off_queue_stretches"]
                                          for k in range(10)]
        grown[f"{AGENT_1[:-3]}{index:03d}"] = shifted
    desktops["synthetic"] = grown
    for source, points in desktops["api_latency"]["sources"].items():
        desktops["api_latency"]["sources"][source] = [
            [int(start) + second, points[second % len(points)][1] * (1 + second % 7), 3, 0]
            for second in range(600)
        ]
    watch = next(r for r in journal["run"] if r["activity"]["provider"].get("func")
                 == "watch_events")
    seen = watch["output"]["users"][AGENT_1]
    watch["output"]["users"] = {f"{AGENT_1[:-3]}{index:03d}": seen for index in range(50)}
    from chaosgenesys.results.timeline import timeline

    data = timeline(journal)
    assert len(data["desktops"]) == 50 and len(data["observers"]) == 50
    write_report(journal, tmp_path / "big.html")
    assert len(json.dumps(verdict)) < 400_000
    _not_blank(tmp_path / "big.png")


def test_importing_the_verdict_control_and_the_command_stays_cheap() -> None:
    code = (
        "import sys, chaosgenesys.controls.verdict, chaosgenesys.commands.report, "
        "chaosgenesys.results.timeline, chaosgenesys.results.report\n"
        "print(sorted(m for m in ('matplotlib', 'numpy', 'PIL') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=ROOT)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done


def test_a_long_title_fits_the_png(tmp_path: Path) -> None:
    """examples/browser-websocket-close.json's title (about 150 characters) is wrapped to the
    figure's width: the PNG's title is not cut off on either side, and all of it is there."""
    from chaosgenesys.results.report import figure, write_report
    from chaosgenesys.results.timeline import timeline

    title = json.loads((ROOT / "examples" / "browser-websocket-close.json").read_text())["title"]
    journal = {
        "experiment": {"title": title}, "status": "completed", "deviated": False,
        "start": "2026-12-08T03:00:00+00:00", "end": "2026-12-08T03:00:20+00:00",
        "duration": 20.0, "steady_states": {"before": None, "after": None}, "run": [],
    }
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    endless = " ".join(["a very long experiment title"] * 40)
    for written, said in ((title, f"{title} (PASSED)"), (endless, None)):
        fig = figure(timeline({**journal, "experiment": {"title": written}}))
        canvas = FigureCanvasAgg(fig)
        canvas.draw()
        shown = fig._suptitle
        assert shown is not None
        box = shown.get_window_extent(canvas.get_renderer())
        assert box.x0 >= 0 and box.x1 <= fig.bbox.width, (box, fig.bbox.width)
        assert box.y1 <= fig.bbox.height, (box, fig.bbox.height)
        text = fig.get_suptitle()
        assert shown.get_fontsize() >= 10 and text.count("\n") <= 2, text
        if said is not None:  # all of it, wrapped
            assert " ".join(text.split()) == said, text
        else:  # cut, its outcome kept (the HTML's heading has all of it)
            assert text.startswith("a very long") and text.endswith(" … (PASSED)"), text

    # the PNG as written: the title's green ink stays clear of both edges, in its top rows
    write_report(journal, tmp_path / "long.html")
    pixels = _pixels(tmp_path / "long.png")
    green = ((abs(pixels[:, :, 0] - 0x00) < 40) & (abs(pixels[:, :, 1] - 0x6d) < 40)
             & (abs(pixels[:, :, 2] - 0x2c) < 40))
    rows = green.any(axis=1).nonzero()[0]
    assert len(rows) and rows.min() < 120, "the title is drawn at the top"
    block = [int(rows[0])]  # the title's lines: green rows up to the first gap of 10 rows
    for row in rows[1:]:
        if row - block[-1] > 10:
            break
        block.append(int(row))
    columns = green[block[0]: block[-1] + 1].any(axis=0).nonzero()[0]
    assert columns.min() > 5 and columns.max() < pixels.shape[1] - 6, (
        columns.min(), columns.max(), pixels.shape)
