"""Presence fan-out to 500 streaming (XMPP) sessions, side by side with 500 JSON sockets.

The sandbox runs as a subprocess (``chaosgenesys sandbox --port 0 --json --rate-limit 300``:
the platform's limit per token; server pings every 30 s, its default) with a seed generated
here: 500 agents (plus two watched users), 50 OAuth clients with a redirect URI (10 agents
each: every agent holds one streaming and one JSON channel, and the sandbox, like the platform,
allows 20 channels per OAuth client) and one more client for the presence changes. Every agent
logs in as itself through the browser login (implicit grant with ``login_hint``), so each has
its own token, as each desktop has.

- streaming: each agent runs the protocol-faithful load client (``_xmpp_load.py``: channel,
  ``users/me``, XMPP over WebSocket, SASL ``authKey:<token>``, bind, server pings) subscribed
  through XMPP pubsub to ``v2.users.{X}.presence``;
- JSON: each agent also has a JSON notification channel subscribed (``PUT .../subscriptions``)
  to ``v2.users.{J}.presence`` of a second watched user, connected over WebSocket.

Then K presence changes of each watched user (``PATCH /api/v2/users/{id}/presences/purecloud``,
alternating Busy and Available), interleaved X, J, X, J, one at a time: each waits until all
500 sockets of its channel have the event (at most 10 s). Delay = arrival on a socket (the
moment the client's read returns, before parsing) - the moment just before the PATCH was sent;
p50, p99, max over 500 x K deliveries per channel. One unmeasured change of each first checks
that every socket receives. Both kinds of socket are open the whole time, so both channels see
the same machine and the same open sockets; each change reaches only its own 500.

Goal (issue 9): streaming p99 ≤ 50 ms. The JSON channel and the ratios are side by side.

Run: ``.venv/bin/python benchmarks/streaming_fanout.py [--quick] [--json]`` (K = 20; quick:
100 agents, K = 5).
"""

from __future__ import annotations

import asyncio
import json
import resource
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import aiohttp
from _common import (
    BenchmarkError,
    Figure,
    fetch_token,
    generated_seed,
    normalise,
    parse_args,
    percentile,
    presence_ids,
    report,
    run_main,
    sandbox_process,
    user_id,
)
from _xmpp_load import StreamingLoadClient, browser_login, child_cpu_seconds

from chaosgenesys.sandbox.xmpp import NS_JSON, NS_PUBSUB_EVENT, parse_frame

AGENTS = 500
AGENTS_PER_CLIENT = 10
REDIRECT_URI = "http://localhost:8080/callback"
DELIVERY_TIMEOUT = 10.0
SETUP_CONCURRENCY = 25
P99_GOAL_MS = 50.0
TITLE = "streaming_fanout: presence to 500 streaming sessions and 500 JSON sockets"


def bench_seed(agents: int) -> dict[str, Any]:
    """``agents`` agents + 2 watched users; one client per 10 agents + one for the changes."""
    seed = generated_seed(agents + 2, clients=agents // AGENTS_PER_CLIENT + 1,
                          presence="Available")
    for client in seed["clients"]:
        client["redirect_uris"] = [REDIRECT_URI]
    return seed


async def gather_bounded(limit: int, coroutines: list[Any]) -> list[Any]:
    """``asyncio.gather`` with at most ``limit`` running at once."""
    semaphore = asyncio.Semaphore(limit)

    async def bounded(coroutine: Any) -> Any:
        async with semaphore:
            return await coroutine

    return await asyncio.gather(*(bounded(c) for c in coroutines))


class Round:
    """The change being measured: which channel, which presence, when it was sent.

    The readers only take the arrival time and the frame text (a substring test for the
    topic); the frames are parsed and checked after the change reached every socket, so the
    clients' own parsing on this one loop does not delay the sockets read after them.
    """

    def __init__(self, agents: int, topics: dict[str, str]) -> None:
        self.agents = agents
        self.markers = {"xmpp": f'<items node="{topics["xmpp"]}">',
                        "json": f'"topicName":"{topics["json"]}"'}
        self.kind = ""
        self.index = -1
        self.presence = ""
        self.sent = 0.0
        self.got: dict[str, list[int]] = {"xmpp": [-1] * agents, "json": [-1] * agents}
        self.delays: dict[str, list[list[float]]] = {"xmpp": [], "json": []}
        self.frames: list[str] = []
        self.wrong = 0
        self.complete = asyncio.Event()

    def start(self, kind: str, index: int, presence: str) -> None:
        self.kind, self.index, self.presence = kind, index, normalise(presence)
        self.delays[kind].append([])
        self.frames = []
        self.complete.clear()

    def take(self, kind: str, slot: int, arrived: float, frame: str) -> bool:
        """A reader's frame: True if it is an event of the watched topic (taken)."""
        if self.markers[kind] not in frame:
            return False
        if kind == self.kind and self.got[kind][slot] != self.index:
            self.got[kind][slot] = self.index
            delays = self.delays[kind][self.index]
            delays.append((arrived - self.sent) * 1000)
            self.frames.append(frame)
            if len(delays) == self.agents:
                self.complete.set()
        return True

    def taker(self, kind: str, slot: int) -> Callable[[str, float], bool]:
        """``take`` for one reader: a load client's ``on_raw``."""
        return lambda frame, arrived: self.take(kind, slot, arrived, frame)

    def check(self) -> None:
        """Parse the frames of this change; count those that do not carry its presence."""
        for frame in self.frames:
            if self.kind == "xmpp":
                stanza = parse_frame(frame)
                event = stanza.child("event", NS_PUBSUB_EVENT)
                items = event.child("items", NS_PUBSUB_EVENT) if event is not None else None
                item = items.children[0] if items is not None and items.children else None
                payload = item.child("json", NS_JSON) if item is not None else None
                envelope = json.loads(payload.text) if payload is not None else {}
            else:
                envelope = json.loads(frame)
            body = envelope.get("eventBody") or {}
            name = (body.get("presenceDefinition") or {}).get("systemPresence") or ""
            if normalise(name) != self.presence:
                self.wrong += 1


async def json_socket(
    http: aiohttp.ClientSession, url: str, token: str, topic: str, slot: int, rounds: Round
) -> tuple[aiohttp.ClientWebSocketResponse, asyncio.Task[None]]:
    """A JSON notification channel subscribed to ``topic``, connected, and its reader task."""
    headers = {"Authorization": f"Bearer {token}"}
    async with http.post(f"{url}/api/v2/notifications/channels", headers=headers) as r:
        if r.status != 200:
            raise BenchmarkError(f"POST channels answered {r.status}: {await r.text()}")
        channel = await r.json()
    sub_url = f"{url}/api/v2/notifications/channels/{channel['id']}/subscriptions"
    async with http.put(sub_url, headers=headers, json=[{"id": topic}]) as r:
        if r.status != 200:
            raise BenchmarkError(f"PUT subscriptions answered {r.status}: {await r.text()}")
    ws = await http.ws_connect(channel["connectUri"], heartbeat=None, autoping=True)

    async def read() -> None:
        async for message in ws:
            if message.type is aiohttp.WSMsgType.TEXT:
                rounds.take("json", slot, time.perf_counter(), message.data)

    return ws, asyncio.get_running_loop().create_task(read())


async def measure(url: str, agents: int, changes: int) -> dict[str, Any]:
    seed_clients = agents // AGENTS_PER_CLIENT
    watched = {"xmpp": user_id(agents + 1), "json": user_id(agents + 2)}
    topics = {kind: f"v2.users.{uid}.presence" for kind, uid in watched.items()}
    admin = await asyncio.to_thread(
        fetch_token, url, f"bench-client-{seed_clients + 1}", f"bench-secret-{seed_clients + 1}")
    presence = await asyncio.to_thread(presence_ids, url, admin)
    rounds = Round(agents, topics)
    statuses: Counter[int] = Counter()
    connector = aiohttp.TCPConnector(limit=0)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as http:
        tokens = await gather_bounded(SETUP_CONCURRENCY, [
            browser_login(http, url, f"bench-client-{n // AGENTS_PER_CLIENT + 1}", REDIRECT_URI,
                          user_id(n + 1), statuses)
            for n in range(agents)
        ])
        setup_start = time.monotonic()
        clients = [
            StreamingLoadClient(http, url, token, topics=[topics["xmpp"]],
                                on_raw=rounds.taker("xmpp", slot))
            for slot, token in enumerate(tokens)
        ]
        semaphore = asyncio.Semaphore(SETUP_CONCURRENCY)

        async def start(client: StreamingLoadClient) -> None:
            async with semaphore:
                client.start()
                deadline = time.monotonic() + 60
                while not client.subscribed:
                    if time.monotonic() > deadline or client.gave_up is not None:
                        raise TimeoutError
                    await asyncio.sleep(0.01)

        try:
            await asyncio.gather(*(start(c) for c in clients))
        except TimeoutError:
            ready = sum(c.subscribed for c in clients)
            raise BenchmarkError(f"only {ready} of {agents} streaming clients subscribed "
                                 "within 60 s") from None
        streaming_setup = time.monotonic() - setup_start
        sockets = await gather_bounded(SETUP_CONCURRENCY, [
            json_socket(http, url, token, topics["json"], slot, rounds)
            for slot, token in enumerate(tokens)
        ])
        patch_headers = {"Authorization": f"Bearer {admin}"}
        sequence = ["Busy", "Available"]  # the watched users start Available
        incomplete: list[str] = []
        cpu = {"xmpp": [0.0, 0.0], "json": [0.0, 0.0]}
        try:
            for index in range(changes + 1):  # change 0: unmeasured check of every socket
                for kind in ("xmpp", "json"):
                    name = sequence[index % 2]
                    rounds.start(kind, index, name)
                    body = {"presenceDefinition": {"id": presence[normalise(name)]}}
                    patch_url = f"{url}/api/v2/users/{watched[kind]}/presences/purecloud"
                    sandbox_cpu = child_cpu_seconds("sandbox")
                    own_cpu = time.process_time()
                    rounds.sent = time.perf_counter()
                    async with http.patch(patch_url, headers=patch_headers, json=body) as r:
                        if r.status != 200:
                            raise BenchmarkError(f"PATCH presence answered {r.status}")
                    try:
                        await asyncio.wait_for(rounds.complete.wait(), DELIVERY_TIMEOUT)
                    except TimeoutError:
                        got = len(rounds.delays[kind][index])
                        if index == 0:
                            raise BenchmarkError(
                                f"{kind}: only {got} of {agents} sockets got the first event "
                                f"within {DELIVERY_TIMEOUT:.0f} s") from None
                        incomplete.append(f"{kind} #{index}: {got}/{agents}")
                    sandbox_after = child_cpu_seconds("sandbox")
                    if index and sandbox_cpu and sandbox_after:
                        cpu[kind][0] += sandbox_after[1] - sandbox_cpu[1]
                        cpu[kind][1] += time.process_time() - own_cpu
                    rounds.check()
                    await asyncio.sleep(0.05)
        finally:
            disconnects = sum(len(c.disconnects) for c in clients)
            for ws, reader in sockets:
                await ws.close()
                reader.cancel()
            await asyncio.gather(*(c.stop() for c in clients), return_exceptions=True)
    for client in clients:
        statuses.update(client.statuses)
    return {
        "xmpp": [d for per in rounds.delays["xmpp"][1:] for d in per],
        "json": [d for per in rounds.delays["json"][1:] for d in per],
        "expected": agents * changes,
        "incomplete": incomplete,
        "wrong": rounds.wrong,
        "cpu": cpu,
        "statuses": statuses,
        "setup": streaming_setup,
        "disconnects": disconnects,
    }


def body() -> None:
    args = parse_args(__doc__.splitlines()[0] if __doc__ else TITLE)
    agents, changes = (100, 5) if args.quick else (AGENTS, 20)
    seed = bench_seed(agents)
    with sandbox_process(seed, rate_limit=300) as details:
        result = asyncio.run(measure(details["url"], agents, changes))
    figures: list[Figure] = []
    stats: dict[str, tuple[float, float, float]] = {}
    for kind, label in (("xmpp", "streaming (XMPP)"), ("json", "JSON channel")):
        delays = result[kind]
        figures.append(Figure(
            f"{label}: events delivered / expected", f"{len(delays):,} / {result['expected']:,}",
            "", "all", len(delays) == result["expected"]))
        if not delays:
            continue
        p50, p99, worst = percentile(delays, 0.5), percentile(delays, 0.99), max(delays)
        stats[kind] = (p50, p99, worst)
        figures.append(Figure(f"{label}: PATCH -> event p50", p50, "ms"))
        figures.append(Figure(
            f"{label}: PATCH -> event p99", p99, "ms",
            f"<= {P99_GOAL_MS:.0f} ms" if kind == "xmpp" else "",
            p99 <= P99_GOAL_MS if kind == "xmpp" else None))
        figures.append(Figure(f"{label}: PATCH -> event max", worst, "ms"))
    if len(stats) == 2:
        x, j = stats["xmpp"], stats["json"]
        figures.append(Figure(
            "ratio streaming / JSON: p50 / p99 / max",
            f"{x[0] / j[0]:.2f} / {x[1] / j[1]:.2f} / {x[2] / j[2]:.2f}"))
    for kind, label in (("xmpp", "streaming (XMPP)"), ("json", "JSON channel")):
        sandbox_ms, client_ms = (x * 1000 / changes for x in result["cpu"][kind])
        figures.append(Figure(f"{label}: CPU per change, sandbox / clients",
                              f"{sandbox_ms:.1f} / {client_ms:.1f}", "ms"))
    figures.append(Figure("events without the presence of their change", result["wrong"], "",
                          "0", result["wrong"] == 0))
    statuses = result["statuses"]
    figures.append(Figure("429 answers during set-up and run", statuses.get(429, 0), "", "0",
                          statuses.get(429, 0) == 0))
    notes = [
        f"{agents} agents, each logged in as itself (implicit grant), one streaming and one JSON "
        f"channel each, over {agents // AGENTS_PER_CLIENT} OAuth clients; {changes} changes per "
        "channel, interleaved; sandbox: 300 requests/min per token, 30 s server pings",
        f"streaming set-up: {agents} clients connected and subscribed in {result['setup']:.1f} s "
        f"({SETUP_CONCURRENCY} at a time); streaming disconnects during the run: "
        f"{result['disconnects']}",
        f"HTTP answers seen by the clients: {dict(sorted(statuses.items()))}",
        f"process max RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB; "
        "clients (one asyncio loop) in this process, sandbox in its own",
    ]
    if result["incomplete"]:
        notes.append(f"changes not delivered to every socket in 10 s: {result['incomplete']}")
    title = TITLE if agents == AGENTS else TITLE.replace(" 500 ", f" {agents} ")
    report(title, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
