"""``watch_events`` against a real sandbox: figures checked against known injected changes."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.notifications.probes import watch_events
from chaosgenesys.sandbox import Sandbox
from tests.conftest import AGENT_1, AGENT_2, CLIENT_ID, CLIENT_SECRET, make_seed

pytestmark = pytest.mark.timeout(60)

# Long enough that a scheduling stall of up to a quarter second on a loaded machine (two test
# sessions on two cores) is not a missed heartbeat: one counts as missed past 1.5 intervals.
HEARTBEAT = 0.5
TOLERANCE = 0.15


@pytest.fixture(autouse=True)
def _fresh_clients() -> Iterator[None]:
    from chaosgenesys.platform import client, tokens

    tokens.token_cache().clear()
    client.clear_clients()
    yield
    tokens.token_cache().clear()
    client.clear_clients()


def _configuration(sb: Sandbox) -> dict[str, Any]:
    return {"genesys_api_url": sb.url, "genesys_login_url": sb.url, "genesys_timeout": 5}


SECRETS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


class Background:
    """Runs ``watch_events`` on a thread, as Chaos Toolkit runs a background activity."""

    def __init__(self, call: Callable[[], dict[str, Any]]) -> None:
        self.result: dict[str, Any] | None = None
        self.error: BaseException | None = None
        self.started = time.monotonic()
        self.elapsed = 0.0
        self._thread = threading.Thread(target=self._run, args=(call,), daemon=True)
        self._thread.start()

    def _run(self, call: Callable[[], dict[str, Any]]) -> None:
        try:
            self.result = call()
        except BaseException as error:  # handed to the test
            self.error = error
        self.elapsed = time.monotonic() - self.started

    def join(self, timeout: float = 30) -> dict[str, Any]:
        self._thread.join(timeout)
        if self.error is not None:
            raise self.error
        assert self.result is not None
        return self.result


def _watch(sb: Sandbox, duration: float, **kwargs: Any) -> Background:
    background = Background(
        lambda: watch_events(
            [AGENT_1, AGENT_2], duration, configuration=_configuration(sb), secrets=SECRETS,
            **kwargs,
        )
    )
    # the observer is subscribed once the sandbox has its socket
    deadline = time.monotonic() + 5
    while sb.snapshot()["notifications"]["connected"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)  # and has read the users
    return background


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(seed=make_seed(), heartbeat_interval=HEARTBEAT) as sb:
        yield sb


def test_break_for_a_known_time_is_counted_as_not_on_queue(sandbox: Sandbox) -> None:
    background = _watch(sandbox, 3.0)
    sandbox.set_presence(AGENT_1, "Break")
    time.sleep(1.0)
    sandbox.set_presence(AGENT_1, "On Queue")
    result = background.join()

    assert abs(background.elapsed - 3.0) < 0.3, background.elapsed
    assert abs(result["observed_seconds"] - 3.0) < 0.05
    agent_1 = result["users"][AGENT_1]
    assert abs(agent_1["seconds_not_on_queue"] - 1.0) < TOLERANCE, agent_1
    assert result["seconds_not_on_queue"] == {AGENT_1: agent_1["seconds_not_on_queue"],
                                              AGENT_2: 0.0}
    presence = [(t["from"], t["to"]) for t in agent_1["transitions"] if t["kind"] == "presence"]
    routing = [(t["from"], t["to"]) for t in agent_1["transitions"] if t["kind"] == "routing"]
    assert presence == [("On Queue", "Break"), ("Break", "On Queue")]
    assert routing == [("IDLE", "OFF_QUEUE"), ("OFF_QUEUE", "IDLE")]
    assert all(t["source"] == "event" for t in agent_1["transitions"])
    first, second = (t for t in agent_1["transitions"] if t["kind"] == "presence")
    assert abs((second["t"] - first["t"]) - 1.0) < TOLERANCE
    assert first["at"].endswith("Z")
    assert agent_1["presence"] == "On Queue" and agent_1["routing_status"] == "IDLE"
    assert result["users"][AGENT_2]["transitions"] == []
    assert result["event_counts"] == {
        f"v2.users.{AGENT_1}.presence": 2,
        f"v2.users.{AGENT_1}.routingStatus": 2,
    }
    assert result["disconnects"] == 0 and result["missed_heartbeats"] == 0
    assert result["heartbeat_interval_source"] == "learnt"
    assert abs(result["heartbeat_interval"] - HEARTBEAT) < 0.05
    assert result["heartbeats"] >= 5


def test_a_user_off_queue_from_the_start_counts_the_whole_time(sandbox: Sandbox) -> None:
    sandbox.set_presence(AGENT_2, "Meal")
    result = _watch(sandbox, 1.0).join()
    assert abs(result["seconds_not_on_queue"][AGENT_2] - 1.0) < 0.05
    assert result["users"][AGENT_2]["transitions"] == []
    assert result["max_seconds_not_on_queue"] == result["seconds_not_on_queue"][AGENT_2]


def test_socket_closed_by_the_sandbox_is_a_disconnect_and_observation_continues(
    sandbox: Sandbox,
) -> None:
    background = _watch(sandbox, 3.0)
    assert sandbox.close_notification_sockets(code=4000, user_ids=[AGENT_1]) == 1
    # a change while the observer is away is not lost: the resync or the events show it
    sandbox.set_presence(AGENT_2, "Away")
    time.sleep(1.0)
    sandbox.set_presence(AGENT_1, "Training")  # after the reconnect: an event
    result = background.join()

    assert result["disconnects"] == 1 and result["reconnects"] == 1
    (drop,) = result["disconnect_details"]
    assert drop["code"] == 4000 and "Closed by the sandbox" in drop["reason"]
    assert 100 <= drop["reconnect_ms"] <= 1000 and drop["new_channel"] is False
    assert result["channels_used"] == 1 and result["resyncs"] == 1
    assert result["users"][AGENT_2]["presence"] == "Away"
    assert result["users"][AGENT_1]["presence"] == "Training"
    training = result["users"][AGENT_1]["transitions"][-2:]
    assert {t["source"] for t in training} == {"event"}
    assert abs(result["seconds_not_on_queue"][AGENT_2] - (3.0 - 0.1 - 0.0)) < 0.5
    assert result["missed_heartbeats"] == 0
    assert result["connected_seconds"] < result["observed_seconds"]


def test_an_expired_channel_is_replaced_by_a_new_one() -> None:
    with Sandbox(seed=make_seed(), heartbeat_interval=HEARTBEAT, channel_lifetime=1.0) as sb:
        result = _watch(sb, 2.5).join()
    assert result["channels_used"] >= 2
    assert result["disconnects"] >= 1 and result["reconnects"] >= 1
    assert result["disconnect_details"][0]["new_channel"] is True
    assert any("no_longer_subscribed" in m["topic"] for m in result["system_messages"])
    assert result["errors"] == [] or all("channel gone" in e for e in result["errors"])


def test_heartbeats_missed_against_a_given_interval() -> None:
    with Sandbox(seed=make_seed(), heartbeat_interval=0.4) as sb:
        result = _watch(sb, 2.1, heartbeat_interval=0.2).join()
    # a heartbeat every 0.4 s where one every 0.2 s was expected: one missed per gap
    assert result["heartbeat_interval"] == 0.2 and result["heartbeat_interval_source"] == "given"
    assert 4 <= result["heartbeats"] <= 6
    assert result["heartbeats"] - 1 <= result["missed_heartbeats"] <= result["heartbeats"] + 1
    assert result["disconnects"] == 0  # the pings it sent were answered: not a dead socket


def test_duration_is_honoured_while_the_api_is_slow(sandbox: Sandbox) -> None:
    background = _watch(sandbox, 2.0)
    sandbox.inject_fault(r"/api/v2/", delay_ms=3000)  # reconnect's REST calls are slow
    sandbox.close_notification_sockets(code=1001)
    result = background.join()
    assert abs(background.elapsed - 2.0) < 0.3, background.elapsed
    assert result["disconnects"] == 1 and result["reconnects"] == 0
    assert result["disconnect_details"][0]["reconnect_ms"] is None


def test_arguments_are_checked_before_anything(sandbox: Sandbox) -> None:
    config = _configuration(sandbox)
    with pytest.raises(ActivityFailed, match="user_ids"):
        watch_events([], 1, configuration=config, secrets=SECRETS)
    with pytest.raises(ActivityFailed, match="duration"):
        watch_events([AGENT_1], 0, configuration=config, secrets=SECRETS)
    with pytest.raises(ActivityFailed, match=r"topics\[1\]"):
        watch_events([AGENT_1], 1, ["presence", "bogus"], configuration=config, secrets=SECRETS)
    with pytest.raises(ActivityFailed, match="heartbeat_interval"):
        watch_events([AGENT_1], 1, heartbeat_interval=-1, configuration=config, secrets=SECRETS)
    assert sandbox.snapshot()["notifications"]["connected"] == 0
    # An unknown user is found only by reading the users, which happens once the socket is open
    # (so that no change between the read and the connect is missed): the observer must close
    # that socket when it gives up. The sandbox sees the close a moment later.
    with pytest.raises(ActivityFailed, match="nobody"):
        watch_events(["nobody"], 1, configuration=config, secrets=SECRETS)
    deadline = time.monotonic() + 5
    while sandbox.snapshot()["notifications"]["connected"] and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sandbox.snapshot()["notifications"]["connected"] == 0


def test_observer_is_not_an_agent_session() -> None:
    with Sandbox(seed=make_seed(), heartbeat_interval=HEARTBEAT, session_grace_seconds=0.1) as sb:
        result = _watch(sb, 1.0, topics=["activity"]).join()
        assert sb.platform()["sessions"] == {}
    assert result["users"][AGENT_1]["presence"] == "On Queue"
    assert result["users"][AGENT_1]["routing_status"] == "IDLE"


def test_a_channel_fault_at_connect_time_is_retried_and_reported_as_blind(
    sandbox: Sandbox,
) -> None:
    from chaosgenesys.sandbox.actions import clear_sandbox_faults, inject_api_fault
    from chaosgenesys.users.actions import set_presence

    config = _configuration(sandbox)
    inject_api_fault("^/channels/", status=503, configuration=config)
    background = Background(
        lambda: watch_events([AGENT_1, AGENT_2], 10.0, configuration=config, secrets=SECRETS)
    )
    time.sleep(2.0)
    assert sandbox.snapshot()["notifications"]["connected"] == 0  # the fault held it off
    clear_sandbox_faults(configuration=config)
    cleared = time.monotonic() - background.started
    deadline = time.monotonic() + 8
    while sandbox.snapshot()["notifications"]["connected"] < 1 and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.2)  # and has read the users
    set_presence(AGENT_1, "Break", configuration=config, secrets=SECRETS)  # through the API
    result = background.join()

    assert abs(background.elapsed - 10.0) < 0.3, background.elapsed
    assert result["connect_failures"] >= 2
    assert all("503" in e for e in result["errors"]), result["errors"]
    (window,) = result["blind_windows"]
    assert window["t_from"] == 0.0
    # the next try after the fault cleared connected (whatever the backoff, well within 10 s)
    assert cleared - 0.1 <= window["t_to"] <= 8.0, (window, cleared)
    assert window["seconds"] == window["t_to"] and "503" in window["reason"]
    assert result["blind_seconds"] == window["seconds"]
    assert abs(result["connect_ms"] - window["seconds"] * 1000) < 1.0
    assert result["disconnects"] == 0
    agent_1 = result["users"][AGENT_1]
    assert agent_1["presence"] == "Break"
    (change,) = (t for t in agent_1["transitions"] if t["kind"] == "presence")
    assert change["source"] == "event" and change["t"] > window["t_to"]


def test_never_connecting_within_the_duration_fails_naming_the_refusal(
    sandbox: Sandbox,
) -> None:
    sandbox.inject_fault("^/channels/", status=503)
    started = time.monotonic()
    with pytest.raises(ActivityFailed, match=r"could not connect .* in 1.5 s.*503"):
        watch_events([AGENT_1], 1.5, configuration=_configuration(sandbox), secrets=SECRETS)
    assert time.monotonic() - started < 2.0
    assert sandbox.snapshot()["notifications"]["connected"] == 0


def test_a_refused_request_is_not_retried(sandbox: Sandbox) -> None:
    sandbox.inject_fault("^/channels/", status=403)
    started = time.monotonic()
    with pytest.raises(ActivityFailed, match="refused with 403"):
        watch_events([AGENT_1], 5.0, configuration=_configuration(sandbox), secrets=SECRETS)
    assert time.monotonic() - started < 2.0
