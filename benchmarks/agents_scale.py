"""Synthetic agents at scale, through what a user runs, on one OAuth client.

Each agent logs in as its own user (the agent option ``login: user``: authorization code +
PKCE, as the real desktop), so the platform's per-user limits (20 notification channels per
user and client) apply per agent and one OAuth client serves them all. Variants, each against a
fresh sandbox process (``chaosgenesys sandbox``, the platform's 300 requests per minute per
token, 30 s heartbeats) holding the agents as On Queue users of one queue and one OAuth client:

- ``start_agents`` (the activity, called here as an experiment calls it) with 500 agents;
- ``chaosgenesys agent`` (the command, run here as a pipeline runs it) with 500 agents;
- the command with 2,000 agents (measured and reported; the goals are set for 500).

(quick: 100 agents through each, no 2,000; the per-agent goals are judged at 500 only.) Both
host every agent in one process. Measured, each from outside that process (``/proc/<pid>``, its
status file, the sandbox's counters):

- start-up: from the call until every agent is ready (On Queue, channel connected);
- memory per agent: the process's RSS once idle, less the RSS of the same command running one
  agent, divided by the other agents (goal ≤ 64 KiB); RSS / agents beside it (info);
- CPU per agent while idle (30 s heartbeats, 14 s pings, the status file; no state polling,
  the agents' default as the real desktop's): the process's user+system time over 30 s, one
  heartbeat period (goal ≤ 20 µs/s);
- the storm: the sandbox closes every socket at once (code 1001); time until every agent says
  it reconnected and is connected (goal ≤ 15 s); the 429 answers the agents saw (goal 0); peak
  requests per second at the sandbox; hard reconnects; agents On Queue afterwards (all).

Run: ``.venv/bin/python benchmarks/agents_scale.py [--quick] [--json]``.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from _common import (
    ROOT,
    VENV_BIN,
    BenchmarkError,
    Figure,
    generated_seed,
    median,
    parse_args,
    percentile,
    report,
    run_main,
    sandbox_process,
    user_id,
)

TITLE = "agents_scale: synthetic agents through start_agents and the command, one OAuth client"
CLIENT_ID, CLIENT_SECRET = "bench-client-1", "bench-secret-1"
REDIRECT_URI = "http://localhost:8080/callback"
OPTIONS = {"login": "user", "redirect_uri": REDIRECT_URI}
STORM_GOAL_S = 15.0
MEMORY_GOAL_KIB = 64.0
CPU_GOAL_US = 20.0
IDLE_WINDOW_S = 30.0  # one heartbeat period: every agent hears one heartbeat in it
READY_TIMEOUT_S = 180.0


def _seed(count: int) -> dict[str, Any]:
    seed = generated_seed(count, clients=1)
    seed["clients"][0]["redirect_uris"] = [REDIRECT_URI]
    return seed


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise BenchmarkError(f"no VmRSS for pid {pid}")


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _admin(url: str, method: str, path: str, body: Any = None) -> Any:
    import requests

    response = requests.request(method, f"{url}/sandbox/v1{path}", json=body, timeout=30)
    if response.status_code >= 400:
        raise BenchmarkError(f"{method} /sandbox/v1{path} answered {response.status_code}")
    return response.json() if response.content else {}


def _agents(status_path: Path) -> dict[str, dict[str, Any]]:
    with contextlib.suppress(OSError, ValueError):
        data = json.loads(status_path.read_text())
        agents = data.get("agents")
        if isinstance(agents, dict):
            return agents
    return {}


class _RequestPoller:
    """Polls the sandbox's request counter every 250 ms on a thread: the peak rate."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            total = _admin(self.url, "GET", "/requests")
            self.samples.append((time.monotonic(), int(total["total"])))
            self._stop.wait(0.25)

    def __enter__(self) -> _RequestPoller:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def peak(self) -> float:
        best = 0.0
        for (t0, n0), (t1, n1) in itertools.pairwise(self.samples):
            if t1 > t0:
                best = max(best, (n1 - n0) / (t1 - t0))
        return best


@contextlib.contextmanager
def _command(url: str, users: list[str], folder: Path) -> Iterator[tuple[int, Path, float]]:
    """``chaosgenesys agent --json`` with ``users``: yields (pid, status file, seconds to
    ready) once it printed that every agent is ready."""
    status = folder / f"status-{len(users)}.json"
    command = [str(VENV_BIN / "chaosgenesys"), "agent", "--api-url", url, "--json",
               "--status-file", str(status), "--log", str(folder / f"events-{len(users)}.jsonl")]
    for name, value in OPTIONS.items():
        command += ["--option", f"{name}={value}"]
    for user in users:
        command += ["--user", user]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYSCLOUD_")}
    env |= {"GENESYSCLOUD_OAUTHCLIENT_ID": CLIENT_ID,
            "GENESYSCLOUD_OAUTHCLIENT_SECRET": CLIENT_SECRET}
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.DEVNULL, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()  # --json: one line, at ready or when it gave up
        ready = time.monotonic() - started
        answer = json.loads(line) if line.startswith("{") else {}
        if not answer.get("ready"):
            raise BenchmarkError(f"the agent command with {len(users)} agents was not ready: "
                                 f"{line.strip()!r}")
        yield process.pid, status, ready
    finally:
        process.terminate()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


@contextlib.contextmanager
def _start_agents(url: str, users: list[str]) -> Iterator[tuple[int, Path, float]]:
    """``chaosgenesys.agent.actions.start_agents`` as an experiment calls it."""
    from chaosgenesys.agent.actions import start_agents, stop_agents

    configuration = {"genesys_api_url": url, "genesys_login_url": url, "genesys_timeout": 10}
    secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
    started = time.monotonic()
    run = start_agents(users, options=dict(OPTIONS), configuration=configuration,
                       secrets=secrets)
    ready = time.monotonic() - started
    try:
        yield int(run["pid"]), Path(run["status"]), ready
    finally:
        stop_agents(configuration=configuration, secrets=secrets)


def _measure(how: str, count: int, baseline_kib: int, tmp: Path) -> tuple[list[Figure], str]:
    users = [user_id(n) for n in range(1, count + 1)]
    with sandbox_process(_seed(count), rate_limit=300) as details:
        url = details["url"]
        runner = _start_agents(url, users) if how == "start_agents" else _command(
            url, users, tmp)
        with runner as (pid, status, startup):
            time.sleep(2.0)  # the last agents' first state reads settle
            cpu_start, idle_start = _cpu_seconds(pid), time.monotonic()
            time.sleep(IDLE_WINDOW_S)
            cpu_idle = (_cpu_seconds(pid) - cpu_start) / (time.monotonic() - idle_start)
            rss = _rss_kib(pid)
            before = _agents(status)
            throttled_before = sum(int(a.get("throttled", 0)) for a in before.values())
            with _RequestPoller(url) as poller:
                time.sleep(0.6)
                storm_start, storm_epoch = time.monotonic(), time.time()
                closed = _admin(url, "POST", "/notifications/close", {"code": 1001})
                back: float | None = None
                while time.monotonic() - storm_start < 70:
                    agents = _agents(status)
                    if len(agents) == count and all(
                        a.get("reconnects", 0) >= 1 and a.get("connected")
                        for a in agents.values()
                    ):
                        # the status file is seconds old with many agents; each agent's own
                        # reconnect times are exact: the last one ends the storm
                        ends = [a["recent_reconnects"][-1][0] for a in agents.values()]
                        back = max(ends) - storm_epoch
                        break
                    time.sleep(0.2)
                time.sleep(1.0)
            after = _agents(status)
    throttled = sum(int(a.get("throttled", 0)) for a in after.values()) - throttled_before
    worst = [float(a["reconnect_latency_ms"]["max"]) for a in after.values()
             if a.get("reconnect_latency_ms", {}).get("max") is not None]
    hard = sum(int(a.get("hard_reconnects", 0)) for a in after.values())
    on_queue = sum(a.get("presence") == "On Queue" for a in after.values())
    per_agent_kib = (rss - baseline_kib) / max(1, count - 1)
    cpu_per_agent = cpu_idle / count * 1e6
    label = f"{how} x{count}"
    goals = count <= 500  # the goals are the for 500; 2,000 is measured
    # Per agent, the goals are the at 500 agents: at 100 (quick) each agent carries
    # five times the process's fixed share (its event loop, its status file every 0.5 s).
    per_agent_goals = count == 500
    figures = [
        Figure(f"{label}: start-up until all ready", startup, "s"),
        Figure(f"{label}: memory per agent (RSS less 1 agent's)", per_agent_kib, "KiB",
               f"≤ {MEMORY_GOAL_KIB:.0f} KiB" if per_agent_goals else "",
               per_agent_kib <= MEMORY_GOAL_KIB if per_agent_goals else None),
        Figure(f"{label}: RSS of the process / agents", rss / count, "KiB"),
        Figure(f"{label}: CPU per agent, idle", cpu_per_agent, "µs/s",
               f"≤ {CPU_GOAL_US:.0f} µs/s" if per_agent_goals else "",
               cpu_per_agent <= CPU_GOAL_US if per_agent_goals else None),
        Figure(f"{label}: storm, sockets closed", int(closed.get("closed", 0))),
        Figure(
            f"{label}: storm, all back and connected",
            back if back is not None else "not all in 70 s",
            "s" if back is not None else "",
            f"≤ {STORM_GOAL_S:.0f} s" if goals else "",
            (back is not None and back <= STORM_GOAL_S) if goals else None,
        ),
        Figure(
            f"{label}: storm, worst reconnect per agent p50 / p99 / max",
            f"{median(worst):.0f} / {percentile(worst, 0.99):.0f} / {max(worst):.0f}"
            if worst else "none",
            "ms",
        ),
        Figure(f"{label}: storm, peak requests/s at the sandbox", poller.peak(), "req/s"),
        Figure(f"{label}: storm, 429 answers to the agents", throttled, "", "0",
               throttled == 0),
        Figure(f"{label}: storm, hard reconnects (new channel)", hard),
        Figure(f"{label}: after the storm, On Queue", f"{on_queue} / {count}", "", "all",
               on_queue == count),
    ]
    note = (f"{label}: RSS {rss / 1024:.1f} MiB, one process; one-agent process "
            f"{baseline_kib / 1024:.1f} MiB")
    return figures, note


def _baseline_kib(tmp: Path) -> int:
    """RSS of the command running one agent, idle (what every agent process pays once)."""
    with sandbox_process(_seed(1), rate_limit=300) as details, _command(
        details["url"], [user_id(1)], tmp
    ) as (pid, _status, _ready):
        time.sleep(3.0)
        return _rss_kib(pid)


def body() -> None:
    args = parse_args(__doc__ or TITLE)
    variants = [("start_agents", 100), ("command", 100)] if args.quick else [
        ("start_agents", 500), ("command", 500), ("command", 2000)]
    figures: list[Figure] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-") as folder:
        tmp = Path(folder)
        os.environ.setdefault("CHAOSGENESYS_RUNTIME_DIR", str(tmp / "runtime"))
        baseline = _baseline_kib(tmp)
        for how, count in variants:
            found, note = _measure(how, count, baseline, tmp)
            figures += found
            notes.append(note)
    notes += [
        f"one OAuth client ({CLIENT_ID}); every agent logs in as its own user (login: user, "
        "authorization code + PKCE); 300 requests/min per token, 30 s heartbeats, 14 s pings, "
        "no state polling (the agents' default sync_interval 0)",
        f"idle CPU over {IDLE_WINDOW_S:.0f} s from /proc/<pid>/stat; storm: all back = the "
        "last agent's own reconnect time (its status file's recent_reconnects) less the close",
        f"{os.cpu_count()} CPUs, the sandbox in its own process on the same machine",
    ]
    if args.quick:
        notes.append(
            "quick: the per-agent memory and CPU goals are the issue's for 500 agents and are "
            "judged only there; at 100 each agent carries five times the process's fixed share"
        )
    report(TITLE, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
