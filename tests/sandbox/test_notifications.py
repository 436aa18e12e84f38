"""The sandbox's notification service over real HTTP and real WebSocket clients (loopback).

Every test runs a real :class:`~chaosgenesys.sandbox.Sandbox` and talks to it the way a Genesys
Cloud client does: a bearer token from ``/oauth/token``, the REST notification API, then the
``connectUri`` socket with ``websocket-client`` (and ``aiohttp`` for the fan-out test).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
import websocket

from chaosgenesys.clock import ManualClock
from tests.conftest import AGENT_1, AGENT_2, CLIENT_ID, CLIENT_SECRET, make_seed

HEARTBEAT = 0.2
OTHER_CLIENT = "other-client"
OTHER_SECRET = "other-secret-value"

pytestmark = pytest.mark.timeout(60)


# --------------------------------------------------------------------------- helpers


class Api:
    """A bearer-token HTTP client of the sandbox's REST API."""

    def __init__(self, base: str, client_id: str, client_secret: str) -> None:
        self.base = base
        self.session = requests.Session()
        response = self.session.post(
            f"{base}/oauth/token",
            auth=(client_id, client_secret),
            data={"grant_type": "client_credentials"},
            timeout=5,
        )
        response.raise_for_status()
        self.session.headers["Authorization"] = f"Bearer {response.json()['access_token']}"

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.base}{path}", timeout=5, **kwargs)

    def new_channel(self) -> dict[str, Any]:
        response = self.call("POST", "/api/v2/notifications/channels")
        assert response.status_code == 200, response.text
        channel: dict[str, Any] = response.json()
        return channel

    def subscribe(self, channel_id: str, topics: list[str], method: str = "POST") -> Any:
        response = self.call(
            method,
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            json=[{"id": topic} for topic in topics],
        )
        assert response.status_code == 200, response.text
        return response.json()

    def head(self, channel_id: str) -> int:
        return self.call("HEAD", f"/api/v2/notifications/channels/{channel_id}").status_code

    def presence_definition_id(self, system_presence: str) -> str:
        response = self.call("GET", "/api/v2/presence/definitions")
        assert response.status_code == 200, response.text
        for definition in response.json()["entities"]:
            if definition.get("systemPresence") == system_presence and (
                definition.get("type", "System") == "System"
            ):
                return str(definition["id"])
        raise AssertionError(f"no {system_presence} definition")

    def set_presence(self, user_id: str, system_presence: str) -> None:
        response = self.call(
            "PATCH",
            f"/api/v2/users/{user_id}/presences/purecloud",
            json={"presenceDefinition": {"id": self.presence_definition_id(system_presence)}},
        )
        assert response.status_code == 200, response.text


def connect(uri: str) -> websocket.WebSocket:
    return websocket.create_connection(uri, timeout=5)


def next_frame(ws: websocket.WebSocket, timeout: float = 3.0) -> tuple[int, bytes]:
    ws.settimeout(timeout)
    opcode, data = ws.recv_data(control_frame=True)
    return opcode, data


def next_message(
    ws: websocket.WebSocket, timeout: float = 3.0, *, heartbeats: bool = False
) -> dict[str, Any]:
    """The next JSON text message (heartbeats skipped unless asked for)."""
    deadline = time.monotonic() + timeout
    while True:
        opcode, data = next_frame(ws, max(0.01, deadline - time.monotonic()))
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            raise AssertionError(f"socket closed ({close_code_of(data)}) while waiting")
        if opcode != websocket.ABNF.OPCODE_TEXT:
            continue
        message: dict[str, Any] = json.loads(data)
        if not heartbeats and message.get("eventBody") == {"message": "WebSocket Heartbeat"}:
            continue
        return message


def wait_topic(ws: websocket.WebSocket, topic: str, timeout: float = 3.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        message = next_message(ws, max(0.01, deadline - time.monotonic()))
        if message.get("topicName") == topic:
            return message


def close_code_of(data: bytes) -> int:
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005


def wait_close(ws: websocket.WebSocket, timeout: float = 3.0) -> tuple[int, list[dict[str, Any]]]:
    """Read until the close frame: (close code, text messages seen before it)."""
    deadline = time.monotonic() + timeout
    seen: list[dict[str, Any]] = []
    while True:
        opcode, data = next_frame(ws, max(0.01, deadline - time.monotonic()))
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return close_code_of(data), seen
        if opcode == websocket.ABNF.OPCODE_TEXT:
            seen.append(json.loads(data))


@pytest.fixture
def sb() -> Iterator[Any]:
    """A sandbox with a fast heartbeat and a second OAuth client."""
    from chaosgenesys.sandbox import Sandbox

    seed = make_seed(
        clients=[
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token_lifetime": 86400},
            {"client_id": OTHER_CLIENT, "client_secret": OTHER_SECRET, "token_lifetime": 86400},
        ]
    )
    with Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: Any) -> Api:
    return Api(sb.url, CLIENT_ID, CLIENT_SECRET)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --------------------------------------------------------------------------- channels


def test_channel_create_head_and_list(sb: Any, api: Api) -> None:
    before = datetime.now(UTC)
    channel = api.new_channel()
    host = sb.url.removeprefix("http://")
    assert channel["connectUri"] == f"ws://{host}/channels/{channel['id']}"
    lifetime = (parse_time(channel["expires"]) - before).total_seconds()
    assert 86390 < lifetime < 86410

    assert api.head(channel["id"]) == 200
    assert api.head("streaming-0-doesnotexist") == 404

    listed = api.call("GET", "/api/v2/notifications/channels").json()["entities"]
    assert [c["id"] for c in listed] == [channel["id"]]
    assert listed[0]["connectUri"] == channel["connectUri"]

    # another OAuth client neither sees nor reaches it
    other = Api(sb.url, OTHER_CLIENT, OTHER_SECRET)
    assert other.call("GET", "/api/v2/notifications/channels").json()["entities"] == []
    assert other.head(channel["id"]) == 404


def test_unknown_channel_is_an_error_body(api: Api) -> None:
    response = api.call("GET", "/api/v2/notifications/channels/streaming-0-nope/subscriptions")
    assert response.status_code == 404
    body = response.json()
    assert body["status"] == 404 and body["code"] == "not.found"
    for key in ("message", "messageWithParams", "messageParams", "contextId", "details", "errors"):
        assert key in body


def test_websocket_to_unknown_channel_is_404(sb: Any) -> None:
    host = sb.url.removeprefix("http://")
    with pytest.raises(websocket.WebSocketBadStatusException) as raised:
        connect(f"ws://{host}/channels/streaming-0-nope")
    assert raised.value.status_code == 404


# --------------------------------------------------------------------------- subscriptions


def test_subscriptions_permitted_rejected_put_and_delete(api: Api) -> None:
    channel_id = api.new_channel()["id"]
    combined = f"v2.users.{AGENT_2}?presence&routingStatus"
    result = api.subscribe(
        channel_id,
        [
            f"v2.users.{AGENT_1}.presence",
            f"v2.users.{AGENT_1}.conversations.calls",
            "v2.routing.queues.7c1d2a90-0000-4000-8000-0000000000aa.conversations",
            combined,
            "v2.users.nobody.favouriteColour",
            "not.a.topic",
        ],
    )
    states = {entity["id"]: entity for entity in result["entities"]}
    assert states[f"v2.users.{AGENT_1}.presence"]["state"] == "Permitted"
    assert states[combined]["state"] == "Permitted"
    assert states["not.a.topic"]["state"] == "Rejected"
    assert states["not.a.topic"]["rejectionReason"]
    assert states["v2.users.nobody.favouriteColour"]["state"] == "Rejected"
    assert all(entity["missingPermissions"] == [] for entity in states.values())

    listed = api.call("GET", f"/api/v2/notifications/channels/{channel_id}/subscriptions")
    assert {e["id"] for e in listed.json()["entities"]} == {
        f"v2.users.{AGENT_1}.presence",
        f"v2.users.{AGENT_1}.conversations.calls",
        "v2.routing.queues.7c1d2a90-0000-4000-8000-0000000000aa.conversations",
        combined,
    }

    # POST adds
    api.subscribe(channel_id, [f"v2.users.{AGENT_1}.routingStatus"])
    listed = api.call("GET", f"/api/v2/notifications/channels/{channel_id}/subscriptions")
    assert len(listed.json()["entities"]) == 5

    # PUT replaces
    replaced = api.subscribe(channel_id, [f"v2.users.{AGENT_2}.activity"], method="PUT")
    assert [e["id"] for e in replaced["entities"]] == [f"v2.users.{AGENT_2}.activity"]
    listed = api.call("GET", f"/api/v2/notifications/channels/{channel_id}/subscriptions")
    assert [e["id"] for e in listed.json()["entities"]] == [f"v2.users.{AGENT_2}.activity"]

    # DELETE removes all
    response = api.call("DELETE", f"/api/v2/notifications/channels/{channel_id}/subscriptions")
    assert response.status_code in (200, 204)
    listed = api.call("GET", f"/api/v2/notifications/channels/{channel_id}/subscriptions")
    assert listed.json()["entities"] == []


def test_more_than_1000_topics_is_400(api: Api) -> None:
    channel_id = api.new_channel()["id"]
    api.subscribe(channel_id, [f"v2.users.{AGENT_1}.presence"])
    topics = [f"v2.users.user-{n}.presence" for n in range(1000)]
    response = api.call(
        "POST",
        f"/api/v2/notifications/channels/{channel_id}/subscriptions",
        json=[{"id": topic} for topic in topics],
    )
    assert response.status_code == 400
    body = response.json()
    assert body["status"] == 400 and body["code"] == "bad.request"
    assert "1000" in body["message"]
    # nothing changed
    listed = api.call("GET", f"/api/v2/notifications/channels/{channel_id}/subscriptions")
    assert [e["id"] for e in listed.json()["entities"]] == [f"v2.users.{AGENT_1}.presence"]
    # exactly 1000 is fine (PUT replaces)
    assert len(api.subscribe(channel_id, topics, method="PUT")["entities"]) == 1000


def test_malformed_subscription_body_is_400(api: Api) -> None:
    channel_id = api.new_channel()["id"]
    path = f"/api/v2/notifications/channels/{channel_id}/subscriptions"
    response = api.call("POST", path, json={"id": f"v2.users.{AGENT_1}.presence"})
    assert response.status_code == 400 and response.json()["code"] == "bad.request"


# --------------------------------------------------------------------------- the socket


def test_heartbeats_arrive_at_the_configured_interval(api: Api) -> None:
    ws = connect(api.new_channel()["connectUri"])
    try:
        start = time.monotonic()
        stamps = []
        while len(stamps) < 4:
            message = next_message(ws, heartbeats=True)
            assert message == {
                "topicName": "channel.metadata",
                "eventBody": {"message": "WebSocket Heartbeat"},
            }
            stamps.append(time.monotonic())
    finally:
        ws.close()
    gaps = [b - a for a, b in zip([start, *stamps], stamps, strict=False)]
    assert all(HEARTBEAT * 0.5 < gap < HEARTBEAT * 2.5 for gap in gaps), gaps
    assert abs(sum(gaps) / len(gaps) - HEARTBEAT) < HEARTBEAT * 0.3, gaps


def test_ping_gets_pong(api: Api) -> None:
    ws = connect(api.new_channel()["connectUri"])
    try:
        ws.send(json.dumps({"message": "ping"}))
        assert next_message(ws) == {
            "topicName": "channel.metadata",
            "eventBody": {"message": "pong"},
        }
    finally:
        ws.close()


def test_presence_change_delivers_presence_and_routing_status(api: Api) -> None:
    single = api.new_channel()
    api.subscribe(
        single["id"], [f"v2.users.{AGENT_1}.presence", f"v2.users.{AGENT_1}.routingStatus"]
    )
    combined = api.new_channel()
    api.subscribe(combined["id"], [f"v2.users.{AGENT_1}?presence&routingStatus"])
    unrelated = api.new_channel()
    api.subscribe(unrelated["id"], [f"v2.users.{AGENT_2}.presence"])
    sockets = [connect(c["connectUri"]) for c in (single, combined, unrelated)]
    try:
        available = api.presence_definition_id("Available")
        api.set_presence(AGENT_1, "Available")  # from On Queue
        for ws in sockets[:2]:
            presence = wait_topic(ws, f"v2.users.{AGENT_1}.presence")
            assert presence["version"] == "2"
            assert presence["metadata"]["CorrelationId"]
            body = presence["eventBody"]
            assert body["presenceDefinition"]["id"] == available
            assert body["presenceDefinition"]["systemPresence"] == "Available"
            assert body["source"] == "PURECLOUD"
            assert "modifiedDate" in body

            routing = wait_topic(ws, f"v2.users.{AGENT_1}.routingStatus")
            assert routing["eventBody"]["id"] == AGENT_1
            assert routing["eventBody"]["routingStatus"]["status"] == "OFF_QUEUE"
            assert "startTime" in routing["eventBody"]["routingStatus"]
        # the channel about another agent only sees heartbeats
        with pytest.raises(websocket.WebSocketTimeoutException):
            next_message(sockets[2], timeout=3 * HEARTBEAT)
    finally:
        for ws in sockets:
            ws.close()


def test_second_connection_displaces_the_first(api: Api) -> None:
    channel = api.new_channel()
    api.subscribe(channel["id"], [f"v2.users.{AGENT_1}.presence"])
    first = connect(channel["connectUri"])
    second = connect(channel["connectUri"])
    try:
        code, _ = wait_close(first)
        assert code == 1000
        api.set_presence(AGENT_1, "Busy")
        event = wait_topic(second, f"v2.users.{AGENT_1}.presence")
        assert event["eventBody"]["presenceDefinition"]["systemPresence"] == "Busy"
    finally:
        first.close()
        second.close()


def test_close_sockets_with_a_code_keeps_the_channel(sb: Any, api: Api) -> None:
    about_1 = api.new_channel()
    api.subscribe(about_1["id"], [f"v2.users.{AGENT_1}.presence"])
    about_2 = api.new_channel()
    api.subscribe(about_2["id"], [f"v2.users.{AGENT_2}?presence&routingStatus"])
    ws_1, ws_2 = connect(about_1["connectUri"]), connect(about_2["connectUri"])
    try:
        assert sb.close_notification_sockets(code=4000, user_ids=[AGENT_1]) == 1
        code, _ = wait_close(ws_1)
        assert code == 4000
        assert next_message(ws_2, heartbeats=True)["topicName"] == "channel.metadata"

        # like a network drop: the channel is still there, reconnecting works
        assert api.head(about_1["id"]) == 200
        ws_1.close()
        ws_1 = connect(about_1["connectUri"])
        api.set_presence(AGENT_1, "Away")
        assert wait_topic(ws_1, f"v2.users.{AGENT_1}.presence")["eventBody"]

        assert sb.close_notification_sockets(code=4000) == 2
        assert wait_close(ws_1)[0] == 4000
        assert wait_close(ws_2)[0] == 4000
    finally:
        ws_1.close()
        ws_2.close()


def test_socket_closing_notice(sb: Any, api: Api) -> None:
    channel = api.new_channel()
    api.subscribe(channel["id"], [f"v2.users.{AGENT_1}.presence"])
    ws = connect(channel["connectUri"])
    try:
        assert sb.send_socket_closing() == 1
        notice = wait_topic(ws, "v2.system.socket_closing")
        assert notice["eventBody"]["channelId"] == channel["id"]
        # a notice only: the socket still works
        ws.send(json.dumps({"message": "ping"}))
        assert next_message(ws)["eventBody"] == {"message": "pong"}
    finally:
        ws.close()


def test_the_21st_channel_evicts_the_oldest_unconnected_one(api: Api) -> None:
    channels = [api.new_channel() for _ in range(20)]
    connected = connect(channels[0]["connectUri"])  # oldest, but connected
    try:
        newest = api.new_channel()
        assert api.head(channels[1]["id"]) == 404  # oldest unconnected one went
        assert api.head(channels[0]["id"]) == 200
        assert api.head(newest["id"]) == 200
        listed = api.call("GET", "/api/v2/notifications/channels").json()["entities"]
        assert len(listed) == 20
        assert next_message(connected, heartbeats=True)["topicName"] == "channel.metadata"
    finally:
        connected.close()


def test_eviction_of_a_connected_channel_tells_its_socket(api: Api) -> None:
    channels = [api.new_channel() for _ in range(20)]
    api.subscribe(channels[0]["id"], [f"v2.users.{AGENT_1}.presence"])
    sockets = [connect(c["connectUri"]) for c in channels]
    try:
        api.new_channel()
        code, seen = wait_close(sockets[0])
        topics = [m.get("topicName") for m in seen]
        assert f"v2.system.no_longer_subscribed.{channels[0]['id']}" in topics
        assert code == 1000
        assert api.head(channels[0]["id"]) == 404
        assert api.head(channels[1]["id"]) == 200
    finally:
        for ws in sockets:
            ws.close()


def test_channel_expiry_closes_the_socket_and_subscribing_extends() -> None:
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(
        seed=make_seed(), heartbeat_interval=30.0, channel_lifetime=0.6, clock=ManualClock()
    ) as sandbox:
        check_expiry(Api(sandbox.url, CLIENT_ID, CLIENT_SECRET), sandbox.advance)


def check_expiry(api: Api, advance: Callable[[float], object]) -> None:
    """Channels of 0.6 s lifetimes; ``advance`` moves the sandbox's clock."""
    short = api.new_channel()
    kept = api.new_channel()
    assert (parse_time(short["expires"]) - datetime.now(UTC)).total_seconds() < 5
    ws = connect(short["connectUri"])
    try:
        advance(0.35)
        api.subscribe(kept["id"], [f"v2.users.{AGENT_1}.presence"])  # extends by 0.6 s
        assert api.head(short["id"]) == 200
        advance(0.3)  # short's lifetime is up, kept's not
        code, _ = wait_close(ws)
        assert code == 1000
        assert api.head(short["id"]) == 404
        assert api.head(kept["id"]) == 200
        with pytest.raises(websocket.WebSocketBadStatusException):
            connect(short["connectUri"])
        advance(0.8)
        assert api.head(kept["id"]) == 404
    finally:
        ws.close()


# --------------------------------------------------------------------------- fan-out


def test_fan_out_to_500_sockets(tmp_path: Any) -> None:
    """One presence change reaches 500 sockets (25 clients x 20 channels) quickly."""
    import aiohttp

    from chaosgenesys.sandbox import Sandbox

    clients = [
        {"client_id": f"fan-{n}", "client_secret": f"fan-secret-{n}", "token_lifetime": 86400}
        for n in range(25)
    ]
    topic = f"v2.users.{AGENT_1}.presence"

    async def run(base: str) -> tuple[float, int]:
        connector = aiohttp.TCPConnector(limit=0)  # 500 sockets: no pool limit
        async with aiohttp.ClientSession(base_url=base, connector=connector) as http:

            async def token(client: dict[str, Any]) -> str:
                pair = f"{client['client_id']}:{client['client_secret']}".encode()
                basic = {"Authorization": f"Basic {base64.b64encode(pair).decode()}"}
                async with http.post(
                    "/oauth/token", headers=basic, data={"grant_type": "client_credentials"}
                ) as response:
                    assert response.status == 200
                    return str((await response.json())["access_token"])

            async def channel(bearer: str) -> str:
                headers = {"Authorization": f"Bearer {bearer}"}
                async with http.post("/api/v2/notifications/channels", headers=headers) as r:
                    created = await r.json()
                path = f"/api/v2/notifications/channels/{created['id']}/subscriptions"
                async with http.put(path, headers=headers, json=[{"id": topic}]) as r:
                    assert r.status == 200
                return str(created["connectUri"])

            tokens = await asyncio.gather(*(token(c) for c in clients))
            uris = await asyncio.gather(*(channel(t) for t in tokens for _ in range(20)))
            sockets = await asyncio.gather(*(http.ws_connect(uri) for uri in uris))
            definitions = await (
                await http.get(
                    "/api/v2/presence/definitions",
                    headers={"Authorization": f"Bearer {tokens[0]}"},
                )
            ).json()
            busy = next(d["id"] for d in definitions["entities"] if d["systemPresence"] == "Busy")

            async def receive(ws: aiohttp.ClientWebSocketResponse) -> float:
                while True:
                    message = json.loads(await ws.receive_str(timeout=10))
                    if message.get("topicName") == topic:
                        return time.perf_counter()

            waiting = [asyncio.ensure_future(receive(ws)) for ws in sockets]
            start = time.perf_counter()
            async with http.patch(
                f"/api/v2/users/{AGENT_1}/presences/purecloud",
                headers={"Authorization": f"Bearer {tokens[0]}"},
                json={"presenceDefinition": {"id": busy}},
            ) as response:
                assert response.status == 200
            arrivals = await asyncio.gather(*waiting)
            for ws in sockets:
                await ws.close()
            return max(arrivals) - start, len(arrivals)

    with Sandbox(seed=make_seed(clients=clients), heartbeat_interval=30.0) as sandbox:
        elapsed, count = asyncio.run(run(sandbox.url))
    assert count == 500
    assert elapsed < 2.0, f"500 sockets took {elapsed:.3f} s"
