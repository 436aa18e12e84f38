"""500 streaming clients dropped at once: all back, no 429 storm, and the spread of the backoff.

The sandbox runs as a subprocess (``chaosgenesys sandbox --port 0 --json --rate-limit 300``:
the platform's 300 requests per minute per token; server pings every 30 s) with a seed generated
here: 500 agents for the load clients, 5 for a sample of official clients, one watched user,
OAuth clients with a redirect URI holding 10 agents each (a hard reconnect opens a new channel;
the sandbox, like the platform, allows 20 per OAuth client), and one client for the checks.
Every agent logs in as itself (browser login: implicit grant with ``login_hint``), so per-token
limits apply per user, as they do for real desktops.

- 500 protocol-faithful load clients (``_xmpp_load.py``: the official client's handshake,
  reconnect decisions and backoff, on one asyncio loop in this process), each subscribed through
  XMPP pubsub to its own presence and to the watched user's;
- 5 official clients (``genesys-cloud-streaming-client`` in Node, ``streaming_sample.cjs``, one
  process each), subscribed (REST) to the watched user's presence.

The drop: every streaming session at once, by ``POST /sandbox/v1/notifications/close``
(``close_notification_sockets``, code 1001) when the sandbox closes streaming sessions with it
(its answer names ``streaming``), and, in the same run, by a TCP reset of every connection to the
sandbox's port (``chaosgenesys.sockets.actions.reset_connections``, sock_diag ``SOCK_DESTROY``:
a real RST, as a network fault gives; needs root). A sandbox whose close does not reach
streaming sessions gets the reset only (the notes say so).

For each drop: the time until every client is connected again (its own ``connected``), when
the first and the last came back (after the drop), each client's reconnect latency (its own
``connected`` - its own ``disconnected``) p50/p99/max, when the reconnect attempts started
(the backoff's spread: the schedule predicts every first attempt 2,000 ms after the client saw
the drop, with no jitter), attempts per client, the 429 answers the clients got (goal 0; every
HTTP answer of the load clients, the official clients' axios answers and refused upgrades), the
peak request rate at the sandbox, and a presence change of the watched user that must reach
all 505 clients afterwards.

Run: ``.venv/bin/python benchmarks/streaming_reconnect.py [--quick] [--json]`` (quick: 100 load
clients, 2 official ones).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from _common import (
    ROOT,
    BenchmarkError,
    Figure,
    fetch_token,
    generated_seed,
    median,
    parse_args,
    percentile,
    presence_ids,
    report,
    run_main,
    sandbox_process,
    user_id,
)
from _xmpp_load import (
    StreamingLoadClient,
    browser_login,
    child_cpu_seconds,
    expected_delays_ms,
    listen_overflows,
)

LOAD = 500
SAMPLE = 5
AGENTS_PER_CLIENT = 10
REDIRECT_URI = "http://localhost:8080/callback"
SETUP_CONCURRENCY = 25
BACK_TIMEOUT_S = 120.0
STORM_GOAL_S = 15.0
SCRIPT = ROOT / "benchmarks" / "streaming_sample.cjs"
TITLE = "streaming_reconnect: 500 streaming clients dropped at once"


def bench_seed(agents: int) -> dict[str, Any]:
    """``agents`` + the watched user; 10 agents per OAuth client + one client for the checks."""
    clients = -(-agents // AGENTS_PER_CLIENT) + 1
    seed = generated_seed(agents + 1, clients=clients, presence="Available")
    for client in seed["clients"]:
        client["redirect_uris"] = [REDIRECT_URI]
    return seed


def oauth_client(agent: int) -> str:
    """The OAuth client of agent ``agent`` (0-based)."""
    return f"bench-client-{agent // AGENTS_PER_CLIENT + 1}"


@dataclass
class Official:
    """One official client in Node and what it printed (``t`` in ms since the epoch)."""

    process: subprocess.Popen[str]
    lines: list[dict[str, Any]] = field(default_factory=list)
    reader: asyncio.Task[None] | None = None

    def steps(self, step: str, since_ms: float = 0) -> list[dict[str, Any]]:
        return [x for x in self.lines if x.get("step") == step and x.get("t", 0) >= since_ms]

    def statuses(self, since_ms: float = 0) -> Counter[int]:
        return Counter(int(x["status"]) for x in self.steps("http", since_ms))


async def start_official(url: str, agent: int, topic: str) -> Official:
    node = shutil.which("node")
    if node is None or not (ROOT / "node_modules" / "genesys-cloud-streaming-client").exists():
        raise BenchmarkError("node or genesys-cloud-streaming-client missing: ./scripts/bootstrap")
    env = {k: v for k, v in os.environ.items() if k != "STREAMING_CLIENT_DEBUG"}
    process = subprocess.Popen(
        [node, str(SCRIPT), url, user_id(agent + 1), oauth_client(agent), REDIRECT_URI, topic],
        cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        text=True, env=env,
    )
    official = Official(process)

    async def read() -> None:
        assert process.stdout is not None
        while True:
            line = await asyncio.to_thread(process.stdout.readline)
            if not line:
                return
            try:
                official.lines.append(json.loads(line))
            except ValueError:
                continue

    official.reader = asyncio.get_running_loop().create_task(read())
    return official


def stop_official(official: Official) -> None:
    if official.process.stdin is not None:
        official.process.stdin.close()
    try:
        official.process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        official.process.kill()
        official.process.wait()


def admin(url: str, method: str, path: str, body: Any = None) -> Any:
    import requests

    response = requests.request(method, f"{url}/sandbox/v1{path}", json=body, timeout=30)
    if response.status_code >= 400:
        raise BenchmarkError(f"{method} /sandbox/v1{path} answered {response.status_code}")
    return response.json() if response.content else {}


async def poll_requests(url: str, samples: list[tuple[float, int]], stop: asyncio.Event) -> None:
    while not stop.is_set():
        total = await asyncio.to_thread(admin, url, "GET", "/requests")
        samples.append((time.monotonic(), int(total["total"])))
        await asyncio.sleep(0.25)


def peak_rps(samples: list[tuple[float, int]]) -> float:
    best = 0.0
    for (t0, n0), (t1, n1) in itertools.pairwise(samples):
        if t1 > t0:
            best = max(best, (n1 - n0) / (t1 - t0))
    return best


def reset_sandbox_connections(port: int) -> int:
    """RST every established connection to 127.0.0.1:``port`` (the clients' ends)."""
    from chaosgenesys.sockets.actions import reset_connections

    result = reset_connections(destinations=["127.0.0.1"], ports=[str(port)])
    return int(result["count"])


@dataclass
class Storm:
    how: str
    dropped: str
    all_back: bool
    back_s: float
    back_ms: list[float]  # connected - drop, per client (load + official)
    latency_ms: list[float]  # connected - own disconnected
    first_attempt_ms: list[float]  # first attempt start - own disconnected (load clients)
    attempts: list[int]
    statuses: Counter[int]
    peak_rps: float
    official_latency_ms: list[float]
    hard: int
    delivered: int
    expected: int
    cpu: tuple[float, float]  # CPU seconds from the drop to all back: sandbox, this process
    overflows: int  # the kernel's ListenOverflows over the same window (whole namespace)


async def storm(
    how: str, url: str, port: int, http: aiohttp.ClientSession, clients: list[StreamingLoadClient],
    officials: list[Official], admin_token: str, watched: str, presence: dict[str, str],
    flip: list[str],
) -> Storm | None:
    before = [(len(c.connects), len(c.disconnects), len(c.attempts), c.hard_reconnects)
              for c in clients]
    status_before = [Counter(c.statuses) for c in clients]
    samples: list[tuple[float, int]] = []
    stop_poll = asyncio.Event()
    poller = asyncio.get_running_loop().create_task(poll_requests(url, samples, stop_poll))
    await asyncio.sleep(0.6)
    official_since = time.time() * 1000
    official_connects = [len(o.steps("connected")) for o in officials]
    sandbox_cpu = child_cpu_seconds("sandbox")
    own_cpu = time.process_time()
    overflows = listen_overflows()
    drop_wall = time.time() * 1000
    drop = time.perf_counter()
    if how == "close":
        answer = await asyncio.to_thread(admin, url, "POST", "/notifications/close",
                                         {"code": 1001})
        if "streaming" not in answer:
            stop_poll.set()
            await poller
            return None
        dropped = f"closed {answer.get('closed')}, streaming {answer.get('streaming')}"
    else:
        count = await asyncio.to_thread(reset_sandbox_connections, port)
        dropped = f"{count} connections reset"
    all_back = False
    deadline = drop + BACK_TIMEOUT_S
    while time.perf_counter() < deadline:
        load_back = all(len(c.connects) > b[0] and c.connected.is_set()
                        for c, b in zip(clients, before, strict=True))
        official_back = all(len(o.steps("connected")) > n
                            for o, n in zip(officials, official_connects, strict=True))
        if load_back and official_back:
            all_back = True
            break
        await asyncio.sleep(0.02)
    back_s = time.perf_counter() - drop
    own_cpu = time.process_time() - own_cpu
    overflows = listen_overflows() - overflows
    sandbox_after = child_cpu_seconds("sandbox")
    cpu = (sandbox_after[1] - sandbox_cpu[1] if sandbox_cpu and sandbox_after else -1.0, own_cpu)
    await asyncio.sleep(1.0)
    stop_poll.set()
    await poller

    back_ms: list[float] = []
    latency: list[float] = []
    first_attempt: list[float] = []
    attempts: list[int] = []
    statuses: Counter[int] = Counter()
    hard = 0
    for client, (connects, disconnects, tries, hard_before), seen in zip(
            clients, before, status_before, strict=True):
        statuses.update(client.statuses - seen)
        hard += client.hard_reconnects - hard_before
        if len(client.connects) <= connects or len(client.disconnects) <= disconnects:
            continue
        lost, back = client.disconnects[disconnects], client.connects[connects]
        back_ms.append((back - drop) * 1000)
        latency.append((back - lost) * 1000)
        new_attempts = client.attempts[tries:]
        attempts.append(len(new_attempts))
        if new_attempts:
            first_attempt.append((new_attempts[0] - lost) * 1000)
    official_latency: list[float] = []
    for official in officials:
        statuses.update(official.statuses(official_since))
        lost_at = official.steps("disconnected", official_since)
        back_at = official.steps("connected", official_since)
        if lost_at and back_at:
            back_ms.append(back_at[0]["t"] - drop_wall)
            official_latency.append(back_at[0]["t"] - lost_at[0]["t"])

    # every client receives again: one presence change of the watched user
    counts = [c.events for c in clients]
    official_events = [len(o.steps("event")) for o in officials]
    name = flip[0]
    flip.reverse()
    async with http.patch(
        f"{url}/api/v2/users/{watched}/presences/purecloud",
        headers={"Authorization": f"Bearer {admin_token}"},
        json={"presenceDefinition": {"id": presence[name.lower()]}},
    ) as response:
        if response.status != 200:
            raise BenchmarkError(f"PATCH presence answered {response.status}")
    delivered = 0
    for _ in range(250):
        await asyncio.sleep(0.02)
        delivered = sum(c.events > n for c, n in zip(clients, counts, strict=True)) + sum(
            len(o.steps("event")) > n for o, n in zip(officials, official_events, strict=True))
        if delivered == len(clients) + len(officials):
            break
    return Storm(how, dropped, all_back, back_s, back_ms, latency, first_attempt, attempts,
                 statuses, peak_rps(samples), official_latency, hard, delivered,
                 len(clients) + len(officials), cpu, overflows)


async def measure(url: str, port: int, load: int, sample: int) -> dict[str, Any]:
    agents = load + sample
    watched = user_id(agents + 1)
    checks = -(-agents // AGENTS_PER_CLIENT) + 1
    admin_token = await asyncio.to_thread(
        fetch_token, url, f"bench-client-{checks}", f"bench-secret-{checks}")
    presence = await asyncio.to_thread(presence_ids, url, admin_token)
    watched_topic = f"v2.users.{watched}.presence"
    login_statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    officials: list[Official] = []
    clients: list[StreamingLoadClient] = []
    storms: list[Storm] = []
    notes: list[str] = []
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        try:
            for n in range(load, agents):
                officials.append(await start_official(url, n, watched_topic))
            semaphore = asyncio.Semaphore(SETUP_CONCURRENCY)

            async def start(n: int) -> StreamingLoadClient:
                async with semaphore:
                    token = await browser_login(http, url, oauth_client(n), REDIRECT_URI,
                                                user_id(n + 1), login_statuses)
                    client = StreamingLoadClient(
                        http, url, token,
                        topics=[f"v2.users.{user_id(n + 1)}.presence", watched_topic])
                    client.start()
                    deadline = time.monotonic() + 60
                    while not client.subscribed:
                        if time.monotonic() > deadline or client.gave_up is not None:
                            raise BenchmarkError(f"load client {n} did not subscribe in 60 s: "
                                                 f"{client.gave_up}")
                        await asyncio.sleep(0.01)
                    return client

            started = time.monotonic()
            clients = list(await asyncio.gather(*(start(n) for n in range(load))))
            setup_s = time.monotonic() - started
            deadline = time.monotonic() + 60
            while not all(o.steps("subscribed") for o in officials):
                failed = [o.steps("error") for o in officials if o.steps("error")]
                if failed or time.monotonic() > deadline:
                    raise BenchmarkError(f"official clients not subscribed: {failed}")
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)
            flip = ["Busy", "Available"]
            hows = ["close", "reset"] if os.geteuid() == 0 else ["close"]
            for how in hows:
                result = await storm(how, url, port, http, clients, officials, admin_token,
                                     watched, presence, flip)
                if result is None:
                    notes.append("[close] not measured: this sandbox's POST /sandbox/v1/"
                                 "notifications/close does not close streaming sessions (its "
                                 "answer has no 'streaming')")
                    continue
                storms.append(result)
                await asyncio.sleep(3.0)
            notes.append(f"set-up: {load} load clients logged in, connected and subscribed in "
                         f"{setup_s:.1f} s ({SETUP_CONCURRENCY} at a time); login answers "
                         f"{dict(login_statuses)}")
        finally:
            await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
            for official in officials:
                await asyncio.to_thread(stop_official, official)
    return {"storms": storms, "notes": notes}


def figures_of(result: Storm, load: int, sample: int) -> list[Figure]:
    tag = f"[{result.how}]"
    total = load + sample
    figures = [
        Figure(f"{tag} dropped", result.dropped),
        Figure(
            f"{tag} all back (own `connected`)",
            f"{len(result.back_ms)} of {total} in {result.back_s:.2f} s" if result.all_back
            else f"{len(result.back_ms)} of {total} in {BACK_TIMEOUT_S:.0f} s",
            "", f"all, ≤ {STORM_GOAL_S:.0f} s",
            result.all_back and result.back_s <= STORM_GOAL_S),
    ]
    if result.back_ms:
        figures.append(Figure(
            f"{tag} back after the drop: first / p50 / p99 / last",
            f"{min(result.back_ms):,.0f} / {median(result.back_ms):,.0f} / "
            f"{percentile(result.back_ms, 0.99):,.0f} / {max(result.back_ms):,.0f}", "ms"))
    if result.latency_ms:
        figures.append(Figure(
            f"{tag} load clients: disconnected -> connected p50 / p99 / max",
            f"{median(result.latency_ms):,.0f} / {percentile(result.latency_ms, 0.99):,.0f} / "
            f"{max(result.latency_ms):,.0f}", "ms"))
    if result.first_attempt_ms:
        predicted = expected_delays_ms(1)[0]
        spread = max(result.first_attempt_ms) - min(result.first_attempt_ms)
        figures.append(Figure(
            f"{tag} first attempt after own disconnect: min / max (backoff: {predicted:,})",
            f"{min(result.first_attempt_ms):,.0f} / {max(result.first_attempt_ms):,.0f}", "ms",
            f"≥ {predicted:,} ms", min(result.first_attempt_ms) >= predicted - 1))
        figures.append(Figure(f"{tag} spread of the first attempts", spread, "ms"))
    if result.attempts:
        figures.append(Figure(f"{tag} attempts per load client: max", max(result.attempts)))
    if result.official_latency_ms:
        figures.append(Figure(
            f"{tag} official clients ({len(result.official_latency_ms)}): "
            "disconnected -> connected min / max",
            f"{min(result.official_latency_ms):,.0f} / {max(result.official_latency_ms):,.0f}",
            "ms", f"≥ {expected_delays_ms(1)[0]:,} ms",
            min(result.official_latency_ms) >= expected_delays_ms(1)[0]))
    figures += [
        Figure(f"{tag} 429 answers to the clients", result.statuses.get(429, 0), "", "0",
               result.statuses.get(429, 0) == 0),
        Figure(f"{tag} HTTP answers to the clients",
               " ".join(f"{k}:{v}" for k, v in sorted(result.statuses.items())) or "none"),
        Figure(f"{tag} hard reconnects (new channel)", result.hard),
        Figure(f"{tag} peak requests/s at the sandbox (250 ms buckets)", result.peak_rps,
               "req/s"),
        Figure(f"{tag} CPU from the drop to all back: sandbox / load clients",
               f"{result.cpu[0]:.2f} / {result.cpu[1]:.2f}", "s"),
        Figure(f"{tag} connections dropped by a full accept queue (kernel ListenOverflows)",
               result.overflows),
        Figure(f"{tag} a presence change afterwards reaches",
               f"{result.delivered} of {result.expected}", "", "all",
               result.delivered == result.expected),
    ]
    return figures


def body() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else TITLE)
    load, sample = (100, 2) if args.quick else (LOAD, SAMPLE)
    seed = bench_seed(load + sample)
    with sandbox_process(seed, rate_limit=300) as details:
        url = details["url"]
        port = int(url.rsplit(":", 1)[1])
        measured = asyncio.run(measure(url, port, load, sample))
    figures: list[Figure] = []
    for result in measured["storms"]:
        figures += figures_of(result, load, sample)
    notes = [
        f"{load} load clients (_xmpp_load.py, one asyncio loop) + {sample} official clients "
        f"(Node, one process each), each its own user and token; "
        f"{-(-(load + sample) // AGENTS_PER_CLIENT)} OAuth clients; sandbox: 300 requests/min "
        "per token, 30 s server pings",
        "backoff (client.js + exponential-backoff 3.1.3): after a drop the attempts wait "
        f"{', '.join(f'{d / 1000:g}' for d in expected_delays_ms(7))} s, no jitter, so every "
        "client's first attempt is 2 s after it saw the drop",
        *measured["notes"],
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB",
    ]
    title = TITLE if load == LOAD else TITLE.replace(" 500 ", f" {load} + {sample} ")
    report(title, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
