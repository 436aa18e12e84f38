"""500 synthetic agents in one process against the sandbox, and a reconnect storm.

The sandbox runs in its own process (``chaosgenesys sandbox``, the platform's 300 requests per
minute per token, 30 s heartbeats) with 500 On Queue agents and 50 OAuth clients: the sandbox,
like the platform, allows 20 notification channels per OAuth client, so agents are spread ten
per client (each agent still has its own token, as each desktop has its own session, so the
per-token rate limit is per agent). The agents (resilient, default timings of the real
streaming client) run in this process on one asyncio loop. Measured:

- start-up: time until all 500 are On Queue with a subscribed channel;
- CPU and memory per agent: process CPU time and RSS growth over 500 agents, CPU per agent
  while idle (heartbeats, 14 s pings, 30 s state syncs) over a 10 s window;
- the storm: the sandbox closes all 500 sockets at once (``POST /sandbox/v1/notifications/close``,
  code 1001); time until every agent is back and re-subscribed (goal ≤ 15 s), reconnect
  latency p50/p99/max, peak requests per second at the sandbox over 250 ms buckets scaled to a
  second (``GET /sandbox/v1/requests`` polled), and the 429 answers the agents saw (goal 0).

Run: ``.venv/bin/python benchmarks/agents_500.py [--quick] [--json]`` (quick: 100 agents).
"""

from __future__ import annotations

import asyncio
import itertools
import resource
import sys
import time
from typing import Any

from _common import (
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

AGENTS = 500
AGENTS_PER_CLIENT = 10
STORM_GOAL_S = 15.0
IDLE_WINDOW_S = 10.0
TITLE = "agents_500: 500 synthetic agents in one process, reconnect storm"


def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _admin(url: str, method: str, path: str, body: Any = None) -> Any:
    import requests

    response = requests.request(method, f"{url}/sandbox/v1{path}", json=body, timeout=10)
    if response.status_code >= 400:
        raise BenchmarkError(f"{method} /sandbox/v1{path} answered {response.status_code}")
    return response.json() if response.content else {}


async def _poll_requests(url: str, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        total = await asyncio.to_thread(_admin, url, "GET", "/requests")
        samples.append((time.monotonic(), int(total["total"])))
        await asyncio.sleep(0.25)


def _peak_rps(samples: list[tuple[float, int]]) -> float:
    best = 0.0
    for (t0, n0), (t1, n1) in itertools.pairwise(samples):
        if t1 > t0:
            best = max(best, (n1 - n0) / (t1 - t0))
    return best


async def _run(url: str, count: int) -> tuple[list[Figure], list[str]]:
    from chaosgenesys.agent.config import AgentConfig, Endpoint
    from chaosgenesys.agent.manager import AgentManager

    endpoints = [
        Endpoint(url, url, f"bench-client-{i}", f"bench-secret-{i}", timeout=10)
        for i in range(1, count // AGENTS_PER_CLIENT + 2)
    ]
    specs = [(user_id(n), endpoints[(n - 1) // AGENTS_PER_CLIENT]) for n in range(1, count + 1)]
    rss_before = _rss_kib()
    cpu_before = time.process_time()
    started = time.monotonic()
    manager = AgentManager(specs, AgentConfig(), rng_seed=7)
    runner = asyncio.get_running_loop().create_task(manager.run())
    if not await manager.wait_ready(timeout=120):
        manager.stop()
        await runner
        ready = sum(a.stats.ready for a in manager.agents)
        raise BenchmarkError(f"only {ready} of {count} agents were ready within 120 s")
    startup = time.monotonic() - started
    cpu_startup = time.process_time() - cpu_before
    await asyncio.sleep(1.0)
    cpu_idle_start = time.process_time()
    await asyncio.sleep(IDLE_WINDOW_S)
    cpu_idle = time.process_time() - cpu_idle_start
    rss_after = _rss_kib()

    # the storm
    samples: list[tuple[float, int]] = []
    stop_poll = asyncio.Event()
    poller = asyncio.get_running_loop().create_task(_poll_requests(url, samples, stop_poll))
    await asyncio.sleep(0.6)
    throttled_before = sum(a.stats.throttled for a in manager.agents)
    storm_start = time.monotonic()
    closed = await asyncio.to_thread(
        _admin, url, "POST", "/notifications/close", {"code": 1001}
    )
    all_back = False
    while time.monotonic() - storm_start < 60:
        if all(a.stats.reconnects >= 1 and a.stats.connected for a in manager.agents):
            all_back = True
            break
        await asyncio.sleep(0.05)
    storm = time.monotonic() - storm_start
    await asyncio.sleep(1.0)
    stop_poll.set()
    await poller
    throttled = sum(a.stats.throttled for a in manager.agents) - throttled_before
    latencies = [x for a in manager.agents for x in a.stats.reconnect_latencies_ms]
    hard = sum(a.stats.hard_reconnects for a in manager.agents)
    on_queue = sum(a.presence == "On Queue" for a in manager.agents)
    manager.stop()
    await runner

    per_agent_kib = (rss_after - rss_before) / count
    figures = [
        Figure(f"start-up: {count} agents On Queue and subscribed", startup, "s"),
        Figure("CPU per agent, start-up", cpu_startup / count * 1000, "ms"),
        Figure("CPU per agent, idle", cpu_idle / IDLE_WINDOW_S / count * 1e6, "µs/s"),
        Figure("memory per agent (RSS growth)", per_agent_kib, "KiB"),
        Figure("storm: sockets closed by the sandbox", int(closed.get("closed", 0))),
        Figure(
            "storm: all back and re-subscribed",
            storm if all_back else f"not all in 60 s ({storm:.1f} s)",
            "s" if all_back else "",
            f"≤ {STORM_GOAL_S:.0f} s",
            all_back and storm <= STORM_GOAL_S,
        ),
        Figure(
            "storm: reconnect latency p50 / p99 / max",
            f"{median(latencies):.0f} / {percentile(latencies, 0.99):.0f} / "
            f"{max(latencies):.0f}" if latencies else "none",
            "ms",
        ),
        Figure("storm: peak requests per second at the sandbox", _peak_rps(samples), "req/s"),
        Figure("storm: 429 answers seen by the agents", throttled, "", "0", throttled == 0),
        Figure("storm: hard reconnects (new channel)", hard),
        Figure("after the storm: agents On Queue", f"{on_queue} / {count}", "", "all",
               on_queue == count),
    ]
    notes = [
        f"{count} agents, {len(endpoints) - 1} OAuth clients ({AGENTS_PER_CLIENT} agents each: "
        "the sandbox allows 20 channels per client), one token per agent, 300 requests/min "
        "per token, 30 s heartbeats, 14 s pings",
        "a reconnect is socket open + PUT subscriptions; the state re-read after it "
        "(user, agent status) is counted in the requests but not in the latency",
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
    ]
    return figures, notes


def body() -> None:
    args = parse_args(__doc__ or TITLE)
    count = 100 if args.quick else AGENTS
    seed = generated_seed(count, clients=count // AGENTS_PER_CLIENT + 1)
    with sandbox_process(seed, rate_limit=300) as details:
        url = details["url"]
        figures, notes = asyncio.run(_run(url, count))
    title = TITLE if count == AGENTS else TITLE.replace(" 500 ", f" {count} ", 1)
    report(title, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
