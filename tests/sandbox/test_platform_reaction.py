"""The platform's reaction to a lost agent session, over real HTTP and real WebSockets.

A "desktop" here is what an agent desktop holds on the wire: a notification channel subscribed
to the agent's presence, routing status and conversations, with a connected socket
(``websocket-client``). The sandbox runs on a ``ManualClock``: a test waits (real I/O) until
the sandbox has seen a socket go or come, then advances the clock past, or short of, the grace.
One test keeps the real clock to check the grace in real time.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from chaosgenesys.clock import ManualClock
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.admin import AdminError
from chaosgenesys.sandbox.seed import SeedError, load_seed
from chaosgenesys.sandbox.sessions import PlatformSettings, session_users
from tests.sandbox.sandbox_helpers import (
    AGENT_1,
    AGENT_2,
    AGENT_3,
    QUEUE,
    Api,
    make_seed,
    wait_until,
)

pytestmark = pytest.mark.timeout(60)

GRACE = 0.6


class Desktop:
    """A notification channel with a connected socket, subscribed to ``topics`` of a user."""

    def __init__(self, api: Api, user_id: str, suffixes: tuple[str, ...] | None = None) -> None:
        self.api = api
        suffixes = suffixes or ("presence", "routingStatus", "conversations")
        channel = api.post("/api/v2/notifications/channels").json()
        self.channel_id: str = channel["id"]
        self.uri: str = channel["connectUri"]
        answer = api.put(
            f"/api/v2/notifications/channels/{self.channel_id}/subscriptions",
            json=[{"id": f"v2.users.{user_id}.{suffix}"} for suffix in suffixes],
        )
        assert answer.status_code == 200, answer.text
        self.ws: websocket.WebSocket | None = None
        self.messages: list[tuple[float, dict[str, Any]]] = []
        self._reader: threading.Thread | None = None
        self.connect()

    def connect(self) -> None:
        ws = websocket.create_connection(self.uri, timeout=5)
        self.ws = ws
        self._reader = threading.Thread(target=self._read, args=(ws,), daemon=True)
        self._reader.start()

    def _read(self, ws: websocket.WebSocket) -> None:
        try:
            while True:
                data = ws.recv()
                if not data:
                    return
                self.messages.append((time.monotonic(), json.loads(data)))
        except (websocket.WebSocketException, OSError, ValueError):
            return

    def close(self) -> None:
        if self.ws is not None:
            self.ws.close()
            self.ws = None
        if self._reader is not None:
            self._reader.join(timeout=5)

    def events(self, topic_end: str) -> list[tuple[float, dict[str, Any]]]:
        return [(t, m["eventBody"]) for t, m in self.messages if m["topicName"].endswith(topic_end)]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(
        seed=make_seed(), heartbeat_interval=5.0, session_grace_seconds=GRACE, clock=ManualClock()
    ) as sb:
        yield sb


@pytest.fixture
def real_time_sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=make_seed(), heartbeat_interval=5.0, session_grace_seconds=GRACE) as sb:
        yield sb


def _lost(sandbox: Sandbox, user_id: str) -> None:
    """Wait (real I/O) until the sandbox has seen ``user_id``'s last session go."""
    assert wait_until(lambda: user_id in [p["userId"] for p in sandbox.platform()["pending"]])


def _sockets(sandbox: Sandbox) -> int:
    connected: int = sandbox.snapshot()["notifications"]["connected"]
    return connected


@pytest.fixture
def api(sandbox: Sandbox) -> Iterator[Api]:
    client = Api(sandbox)
    yield client
    client.close()


def _user(api: Api, user_id: str) -> tuple[str, str]:
    body = api.get(f"/api/v2/users/{user_id}", params={"expand": "presence,routingStatus"}).json()
    return body["presence"]["presenceDefinition"]["systemPresence"], body["routingStatus"]["status"]


def _agents(api: Api, conversation_id: str) -> list[dict[str, Any]]:
    conversation = api.get(f"/api/v2/conversations/calls/{conversation_id}").json()
    return [p for p in conversation["participants"] if p["purpose"] == "agent"]


# --------------------------------------------------------------------------- sessions


def test_session_users_need_a_conversations_topic() -> None:
    assert session_users(
        [
            f"v2.users.{AGENT_1}.conversations",
            f"v2.users.{AGENT_2}.conversations.calls",
            f"v2.users.{AGENT_3}.conversationsummary",
            f"v2.users.{AGENT_3}.presence",
            f"v2.routing.queues.{QUEUE}.conversations",
        ]
    ) == {AGENT_1, AGENT_2}


def test_an_observer_of_presence_is_not_a_session(sandbox: Sandbox, api: Api) -> None:
    observer = Desktop(api, AGENT_1, ("presence", "routingStatus"))
    try:
        assert sandbox.platform()["sessions"] == {}
        observer.close()
        assert wait_until(lambda: _sockets(sandbox) == 0)
        sandbox.advance(GRACE * 2)
        assert _user(api, AGENT_1) == ("On Queue", "IDLE")
    finally:
        observer.close()


def test_users_never_connected_are_left_alone() -> None:
    with Sandbox(seed=make_seed(), session_grace_seconds=0.05, clock=ManualClock()) as sb:
        sb.advance(0.4)
        users = {u["id"]: u for u in sb.snapshot()["users"]}
        assert users[AGENT_1]["presence"] == "On Queue"
        assert users[AGENT_2]["presence"] == "On Queue"
        assert sb.platform()["reactions"] == []


def test_combined_topic_counts_and_displacement_keeps_the_session(
    sandbox: Sandbox, api: Api
) -> None:
    channel = api.post("/api/v2/notifications/channels").json()
    api.put(
        f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
        json=[{"id": f"v2.users.{AGENT_1}?presence&conversations"}],
    )
    first = websocket.create_connection(channel["connectUri"], timeout=5)
    assert wait_until(lambda: sandbox.platform()["sessions"] == {AGENT_1: 1})
    second = websocket.create_connection(channel["connectUri"], timeout=5)  # displaces first
    try:
        _wait_closed(first)  # the sandbox has displaced it
        sandbox.advance(GRACE * 2)
        assert _user(api, AGENT_1) == ("On Queue", "IDLE")
        assert sandbox.platform()["reactions"] == []
    finally:
        first.close()
        second.close()


def _wait_closed(ws: websocket.WebSocket) -> None:
    """Read until the server has closed ``ws`` (real I/O, at most 5 s)."""
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            if ws.recv() in ("", b""):
                return
    except (websocket.WebSocketException, OSError):
        return
    raise AssertionError("the sandbox did not close the displaced socket")


# --------------------------------------------------------------------------- the reaction


def test_lost_session_logs_the_agent_off_after_the_grace_time(real_time_sandbox: Sandbox) -> None:
    sandbox = real_time_sandbox  # the real clock: the grace is measured in real time here
    api = Api(sandbox)
    observer = Desktop(api, AGENT_1, ("presence", "routingStatus"))
    desktop = Desktop(api, AGENT_1)
    try:
        assert wait_until(lambda: sandbox.platform()["sessions"] == {AGENT_1: 1})
        closed_at = time.monotonic()
        desktop.close()
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        assert _user(api, AGENT_1) == ("Offline", "OFF_QUEUE")
        assert wait_until(lambda: bool(observer.events("presence")))
        at, body = observer.events("presence")[-1]
        assert body["presenceDefinition"]["systemPresence"] == "Offline"
        assert GRACE - 0.05 <= at - closed_at <= GRACE + 0.5
        routing = [b["routingStatus"]["status"] for _, b in observer.events("routingStatus")]
        assert routing == ["OFF_QUEUE"]
        reaction = sandbox.platform()["reactions"][-1]
        assert reaction["userId"] == AGENT_1 and reaction["action"] == "sessionLost"
        assert reaction["previousPresence"] == "On Queue"
        assert reaction["notResponding"] == []
        # the other agent, who never had a session, is untouched
        assert _user(api, AGENT_2) == ("On Queue", "IDLE")
    finally:
        observer.close()
        desktop.close()
        api.close()


def test_the_grace_runs_on_the_sandbox_clock(sandbox: Sandbox, api: Api) -> None:
    desktop = Desktop(api, AGENT_1)
    try:
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE - 0.05)
        assert _user(api, AGENT_1) == ("On Queue", "IDLE")
        assert sandbox.platform()["reactions"] == []
        sandbox.advance(0.1)  # the grace is up: the reaction has run when advance returns
        assert _user(api, AGENT_1) == ("Offline", "OFF_QUEUE")
        assert sandbox.platform()["reactions"][-1]["secondsWithoutSession"] == GRACE
    finally:
        desktop.close()


def test_reconnect_within_the_grace_time_changes_nothing(sandbox: Sandbox, api: Api) -> None:
    desktop = Desktop(api, AGENT_1)
    try:
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE / 3)
        assert sandbox.platform()["pending"][0]["userId"] == AGENT_1
        desktop.connect()  # same channel, as after a network blip
        assert wait_until(lambda: sandbox.platform()["sessions"] == {AGENT_1: 1})
        sandbox.advance(GRACE * 2)
        assert _user(api, AGENT_1) == ("On Queue", "IDLE")
        assert sandbox.platform()["reactions"] == []
        assert sandbox.platform()["pending"] == []
    finally:
        desktop.close()


def test_sandbox_close_of_the_socket_is_a_lost_session(sandbox: Sandbox, api: Api) -> None:
    desktop = Desktop(api, AGENT_1)
    try:
        assert sandbox.close_notification_sockets(code=4000, user_ids=[AGENT_1]) == 1
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
    finally:
        desktop.close()


def test_alerting_call_is_not_answered_and_goes_to_another_agent(
    sandbox: Sandbox, api: Api
) -> None:
    desktop = Desktop(api, AGENT_1)
    # make agent 1 the longest idle one so that the call alerts on it
    sandbox.set_presence(AGENT_2, "Available")
    sandbox.set_presence(AGENT_2, "On Queue")
    conversation_id = sandbox.route_call(QUEUE)
    try:
        assert [a["user"]["id"] for a in _agents(api, conversation_id)] == [AGENT_1]
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: len(_agents(api, conversation_id)) == 2, timeout=5)
        first, second = _agents(api, conversation_id)
        assert first["user"]["id"] == AGENT_1 and first["state"] == "disconnected"
        assert first["disconnectType"] == "transfer.noanswer"
        assert second["user"]["id"] == AGENT_2 and second["state"] == "alerting"
        assert _user(api, AGENT_1) == ("Offline", "OFF_QUEUE")
        assert sandbox.platform()["reactions"][-1]["notResponding"] == [conversation_id]
        # the routing status went NOT_RESPONDING before the log-off
        statuses: list[str] = []
        lock = threading.Lock()

        def listener(topic: str, body: dict[str, Any]) -> None:
            if topic == f"v2.users.{AGENT_1}.routingStatus":
                with lock:
                    statuses.append(body["routingStatus"]["status"])

        sandbox.events.subscribe(listener)
        sandbox.set_presence(AGENT_1, "On Queue")
        desktop.connect()
        second_call = sandbox.route_call(QUEUE, user_id=AGENT_1)
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        assert statuses[-2:] == ["NOT_RESPONDING", "OFF_QUEUE"]
        # nobody idle is left: the call waits in the queue
        assert _agents(api, second_call)[-1]["state"] == "disconnected"
        assert sandbox.snapshot()["queues"][0]["waiting"] == 1
    finally:
        desktop.close()


def test_connected_call_and_wrapup_survive_the_lost_session(sandbox: Sandbox, api: Api) -> None:
    desktop = Desktop(api, AGENT_1)
    conversation_id = sandbox.route_call(QUEUE, user_id=AGENT_1, answer=True)
    try:
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        (agent,) = _agents(api, conversation_id)
        assert agent["state"] == "connected"
        customer = next(
            p for p in api.get(f"/api/v2/conversations/calls/{conversation_id}").json()[
                "participants"] if p["purpose"] == "customer"
        )
        assert customer["state"] == "connected"
        # the customer hangs up: after-call work starts and waits for the agent's wrap-up
        sandbox.disconnect_call(conversation_id)
        (agent,) = _agents(api, conversation_id)
        assert agent["state"] == "disconnected" and agent["wrapupRequired"] is True
        summary = api.get(
            f"/api/v2/users/{AGENT_1}", params={"expand": "conversationSummary"}
        ).json()["conversationSummary"]["call"]["contactCenter"]
        assert summary == {"active": 0, "acw": 1}
        wrapup = api.post(
            f"/api/v2/conversations/calls/{conversation_id}/participants/{agent['id']}"
            f"/communications/{_call_id(api, conversation_id)}/wrapup",
            json={"code": "4c4d5a11-0000-4000-8000-0000000000c1"},
        )
        assert wrapup.status_code == 202, wrapup.text
    finally:
        desktop.close()


def _call_id(api: Api, conversation_id: str) -> str:
    conversation = api.get(f"/api/v2/conversations/{conversation_id}").json()
    agent = [p for p in conversation["participants"] if p["purpose"] == "agent"][-1]
    call_id: str = agent["calls"][0]["id"]
    return call_id


# --------------------------------------------------------------------------- renewal


def test_presence_is_renewed_on_reconnect_within_the_window(api: Api, sandbox: Sandbox) -> None:
    desktop = Desktop(api, AGENT_1)
    try:
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        desktop.connect()
        # On Queue is renewed as Available unless renew_on_queue is set
        assert wait_until(lambda: _user(api, AGENT_1) == ("Available", "OFF_QUEUE"))
        assert sandbox.platform()["reactions"][-1]["action"] == "sessionRenewed"

        sandbox.configure_platform(renew_on_queue=True)
        sandbox.set_presence(AGENT_1, "On Queue")
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        desktop.connect()
        assert wait_until(lambda: _user(api, AGENT_1) == ("On Queue", "IDLE"))

        sandbox.configure_platform(presence_renew_seconds=0.2)
        sandbox.set_presence(AGENT_1, "Break")
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        sandbox.advance(0.3)
        desktop.connect()  # after the window: Available
        assert wait_until(lambda: _user(api, AGENT_1) == ("Available", "OFF_QUEUE"))
    finally:
        desktop.close()


def test_a_presence_set_while_offline_is_not_overwritten(api: Api, sandbox: Sandbox) -> None:
    desktop = Desktop(api, AGENT_1)
    try:
        desktop.close()
        _lost(sandbox, AGENT_1)
        sandbox.advance(GRACE)
        assert wait_until(lambda: _user(api, AGENT_1)[0] == "Offline", timeout=5)
        sandbox.set_presence(AGENT_1, "Meal")
        desktop.connect()
        assert wait_until(lambda: sandbox.platform()["sessions"] == {AGENT_1: 1})
        assert _user(api, AGENT_1)[0] == "Meal"
    finally:
        desktop.close()


# --------------------------------------------------------------------------- settings


def test_settings_from_seed_constructor_and_admin() -> None:
    seed = make_seed(platform={"session_grace_seconds": 5, "renew_on_queue": True})
    assert load_seed(seed).platform == PlatformSettings(5.0, 60.0, True)
    with pytest.raises(SeedError, match=r"platform\.session_grace_second"):
        load_seed(make_seed(platform={"session_grace_second": 5}))
    with pytest.raises(SeedError, match=r"platform\.renew_on_queue"):
        load_seed(make_seed(platform={"renew_on_queue": "yes"}))
    with pytest.raises(SeedError, match=r"platform\.presence_renew_seconds"):
        load_seed(make_seed(platform={"presence_renew_seconds": -1}))
    with pytest.raises(ValueError, match="session_grace_seconds"):
        Sandbox(seed=make_seed(), session_grace_seconds=-1)

    with Sandbox(seed=seed) as sb:
        view = sb.platform()
        assert (view["session_grace_seconds"], view["renew_on_queue"]) == (5.0, True)
    with Sandbox(seed=seed, session_grace_seconds=0) as sb:
        assert sb.platform()["session_grace_seconds"] == 0
        url = f"{sb.url}/sandbox/v1/platform"
        answer = requests.patch(url, json={"session_grace_seconds": 2.5}, timeout=5)
        assert answer.status_code == 200
        assert answer.json()["session_grace_seconds"] == 2.5
        assert requests.get(url, timeout=5).json()["presence_renew_seconds"] == 60.0
        bad = requests.patch(url, json={"grace": 1}, timeout=5)
        assert bad.status_code == 400 and "grace" in bad.json()["message"]
        bad = requests.patch(url, json={"session_grace_seconds": -2}, timeout=5)
        assert bad.status_code == 400 and "-2" in bad.json()["message"]
        with pytest.raises(AdminError, match="renew_on_queue"):
            sb.configure_platform(renew_on_queue="no")  # type: ignore[arg-type]
        assert "platform" in sb.snapshot()
        # a new seed with a platform section replaces the settings
        sb.load_seed(make_seed(platform={"session_grace_seconds": 7}))
        assert sb.platform()["session_grace_seconds"] == 7.0


def test_grace_zero_disables_the_reaction() -> None:
    with Sandbox(seed=make_seed(), session_grace_seconds=0, clock=ManualClock()) as sb:
        client = Api(sb)
        desktop = Desktop(client, AGENT_1)
        try:
            desktop.close()
            _lost(sb, AGENT_1)
            sb.advance(0.5)
            assert _user(client, AGENT_1) == ("On Queue", "IDLE")
            assert sb.platform()["pending"][0]["reactsInSeconds"] is None
            # turning it on later reacts counting from the loss: already due, it runs at the
            # next advance, however short
            sb.configure_platform(session_grace_seconds=0.2)
            sb.advance(0)
            assert wait_until(lambda: _user(client, AGENT_1)[0] == "Offline", timeout=3)
        finally:
            desktop.close()
            client.close()
