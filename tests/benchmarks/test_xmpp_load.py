"""The streaming benchmarks' load client (``benchmarks/_xmpp_load.py``) against a real sandbox:
three clients, each logged in as its own user through the browser login, connect over XMPP,
receive a presence change, and one of them, dropped by the server, comes back after the
official client's first backoff delay. No speed is asserted (the benchmarks measure that);
only that the client speaks the protocol and keeps the official client's schedule."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterator

import aiohttp
import pytest

from benchmarks._xmpp_load import (
    INITIAL_DELAY_MS,
    MAX_DELAY_MS,
    Backoff,
    StreamingLoadClient,
    browser_login,
    expected_delays_ms,
)
from chaosgenesys.sandbox import Sandbox
from tests.conftest import AGENT_1, AGENT_2, AGENT_3, CLIENT_ID, make_seed
from tests.sandbox.streaming_helpers import REDIRECT, Xmpp

AGENTS = [AGENT_1, AGENT_2, AGENT_3]
WATCHED = AGENT_3
TOPIC = f"v2.users.{WATCHED}.presence"


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    seed = make_seed()
    seed["clients"][0]["redirect_uris"] = [REDIRECT]
    with Sandbox(seed=seed, rate_limit_per_minute=300) as sandbox:
        yield sandbox


async def _connected(http: aiohttp.ClientSession, sb: Sandbox,
                     received: list[tuple[int, str]]) -> list[StreamingLoadClient]:
    statuses: Counter[int] = Counter()
    clients = []
    for slot, agent in enumerate(AGENTS):
        token = await browser_login(http, sb.url, CLIENT_ID, REDIRECT, agent, statuses)
        client = StreamingLoadClient(
            http, sb.url, token, topics=[TOPIC],
            on_event=lambda _topic, _at, envelope, s=slot: received.append(
                (s, envelope["eventBody"]["presenceDefinition"]["systemPresence"])),
        )
        client.start()
        clients.append(client)
    assert statuses == {302: 3}
    deadline = time.monotonic() + 10
    while not all(c.subscribed for c in clients):
        assert time.monotonic() < deadline, [c.gave_up for c in clients]
        await asyncio.sleep(0.02)
    return clients


async def _wait_events(received: list[tuple[int, str]], presence: str) -> set[int]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        slots = {slot for slot, name in received if name == presence}
        if len(slots) == len(AGENTS):
            return slots
        await asyncio.sleep(0.02)
    return {slot for slot, name in received if name == presence}


def test_three_clients_log_in_connect_and_receive_a_presence_change(sb: Sandbox) -> None:
    async def scenario() -> None:
        received: list[tuple[int, str]] = []
        async with aiohttp.ClientSession() as http:
            clients = await _connected(http, sb, received)
            try:
                # the hard connect: users/me, the channel, the upgrade; nothing refused
                for client in clients:
                    assert client.statuses == {200: 2, 101: 1}
                    assert client.jid is not None and client.jid.endswith("@sandbox.invalid")
                # the sandbox's own count agrees: three upgrades, three users/me
                assert sb.requests(r"^/stream/channels/", "GET") == 3
                assert sb.requests(r"^/api/v2/users/me$", "GET") == 3
                await asyncio.to_thread(sb.set_presence, WATCHED, "Busy")
                assert await _wait_events(received, "Busy") == {0, 1, 2}
            finally:
                await asyncio.gather(*(c.stop() for c in clients))

    asyncio.run(scenario())


def test_a_dropped_client_comes_back_after_the_official_first_delay(sb: Sandbox) -> None:
    async def scenario() -> None:
        received: list[tuple[int, str]] = []
        async with aiohttp.ClientSession() as http:
            clients = await _connected(http, sb, received)
            victim = clients[0]
            try:
                assert victim.channel_id is not None and victim.jid is not None
                # another session on the victim's channel displaces it (stream error conflict)
                intruder = await asyncio.to_thread(Xmpp, sb, victim.channel_id)
                await asyncio.to_thread(intruder.start, AGENT_1, victim.token, "intruder")
                deadline = time.monotonic() + 5
                while not victim.disconnects:
                    assert time.monotonic() < deadline, "the victim never saw its drop"
                    await asyncio.sleep(0.01)
                await asyncio.to_thread(intruder.close)
                while len(victim.connects) < 2:
                    assert time.monotonic() < deadline + 10, "the victim did not come back"
                    await asyncio.sleep(0.02)
                waited = victim.attempts[1] - victim.disconnects[0]
                assert waited >= INITIAL_DELAY_MS / 1000 - 0.005, waited
                assert len(victim.attempts) == 2  # one attempt was enough
                # the same channel again: no REST call, the channel kept its subscription
                assert victim.statuses == {200: 2, 101: 2}
                assert sb.requests(r"^/stream/channels/", "GET") == 3 + 1 + 1  # + intruder
                await asyncio.to_thread(sb.set_presence, WATCHED, "Away")
                assert await _wait_events(received, "Away") == {0, 1, 2}
            finally:
                await asyncio.gather(*(c.stop() for c in clients))

    asyncio.run(scenario())


def test_backoff_follows_client_js_and_exponential_backoff() -> None:
    now = [1_000_000.0]
    backoff = Backoff(clock=lambda: now[0])
    # first connect: no wait before attempt 0, then 2 s, 4 s, ...
    starting = backoff.starting_delay()
    assert starting == INITIAL_DELAY_MS
    assert [backoff.attempt_delay(n, starting, False) for n in range(4)] == [0, 2000, 4000, 8000]
    # later connects (after a drop) delay their first attempt too, capped at 90 s
    assert [backoff.attempt_delay(n, starting, True) for n in range(8)] == \
        expected_delays_ms(8) == [2000, 4000, 8000, 16000, 32000, 64000, 90000, 90000]
    # a failure raises the remembered delay: the next connect starts at 4 s
    backoff.increase()
    assert backoff.data["currentDelayMs"] == 4000
    assert backoff.data["nextDelayReductionTime"] == now[0] + 20_000
    assert backoff.starting_delay() == 4000
    backoff.increase()
    assert backoff.starting_delay() == 8000
    # the reduction halves it, and below 2 s it resets
    assert backoff.decrease(4000) == 20_000
    assert backoff.data["currentDelayMs"] == 4000
    assert backoff.decrease(1000) is None and backoff.data == {"currentDelayMs": 0}
    # an hour after the last failure, the start is 2 s whatever was remembered
    for _ in range(10):
        backoff.increase()
    assert backoff.starting_delay() == MAX_DELAY_MS
    now[0] += 60 * 60 * 1000 + 1
    assert backoff.starting_delay() == INITIAL_DELAY_MS


def test_all_clients_come_back_after_the_sandbox_closes_every_session(sb: Sandbox) -> None:
    """The drop ``streaming_reconnect.py`` uses: ``close_notification_sockets`` (code 1001)."""

    async def scenario() -> None:
        received: list[tuple[int, str]] = []
        async with aiohttp.ClientSession() as http:
            clients = await _connected(http, sb, received)
            try:
                closed = await asyncio.to_thread(sb.close_notification_sockets, 1001)
                assert closed == 3
                deadline = time.monotonic() + 15
                while not all(len(c.connects) == 2 for c in clients):
                    assert time.monotonic() < deadline, [c.connects for c in clients]
                    await asyncio.sleep(0.02)
                for client in clients:
                    assert len(client.disconnects) == 1 and len(client.attempts) == 2
                    waited = client.attempts[1] - client.disconnects[0]
                    assert waited >= INITIAL_DELAY_MS / 1000 - 0.005, waited
                    assert client.statuses == {200: 2, 101: 2}  # no 429, no REST call
                await asyncio.to_thread(sb.set_presence, WATCHED, "Busy")
                assert await _wait_events(received, "Busy") == {0, 1, 2}
            finally:
                await asyncio.gather(*(c.stop() for c in clients))

    asyncio.run(scenario())


def test_a_429_is_counted_and_its_retry_after_honoured_without_raising_the_backoff(
    sb: Sandbox,
) -> None:
    """The 429 count of ``streaming_reconnect.py`` sees what the sandbox answers, and the client
    waits as client.js does: ``Retry-After``, then the next exponential delay (2 s)."""

    async def scenario() -> None:
        sb.inject_fault("^/api/v2/notifications/channels$", status=429, method="POST",
                        count=1, retry_after=1)
        async with aiohttp.ClientSession() as http:
            token = await browser_login(http, sb.url, CLIENT_ID, REDIRECT, AGENT_1)
            client = StreamingLoadClient(http, sb.url, token, topics=[TOPIC])
            client.start()
            try:
                await asyncio.wait_for(client.connected.wait(), 10)
                assert client.statuses == {200: 2, 429: 1, 101: 1}  # users/me once
                assert len(client.attempts) == 2
                waited = client.attempts[1] - client.attempts[0]
                assert waited >= 1 + INITIAL_DELAY_MS / 1000 - 0.005, waited
                assert client.backoff.data["currentDelayMs"] == 0
            finally:
                await client.stop()

    asyncio.run(scenario())
