"""The synthetic agent against the real sandbox over real sockets: On Queue, reconnects,
socket_closing, zombie detection."""

from __future__ import annotations

from typing import Any

from tests.agent.helpers import AgentsThread, StallingRelay, agent_seed, wait_for
from tests.conftest import AGENT_1, AGENT_3


def test_agent_goes_on_queue_read_back_through_the_api(fast_sandbox: Any) -> None:
    from chaosgenesys.users import probes

    configuration = {"genesys_api_url": fast_sandbox.url, "genesys_login_url": fast_sandbox.url}
    secrets = {"client_id": "chaos-client", "client_secret": "chaos-secret-value-never-printed"}
    assert probes.get_presence(AGENT_3, configuration, secrets)["system_presence"] != "On Queue"
    with AgentsThread(fast_sandbox.url, [AGENT_3]) as agents:
        presence = probes.get_presence(AGENT_3, configuration, secrets)
        assert presence["system_presence"] == "On Queue"
        assert probes.get_routing_status(AGENT_3, configuration, secrets)["status"] == "IDLE"
        stats = agents.stats()
        assert stats["connected"] and stats["ready"] and stats["token_refreshes"] == 1
        assert fast_sandbox.snapshot()["notifications"]["connected"] == 1


def test_close_frame_reconnect_latency_and_resubscription(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        assert fast_sandbox.close_notification_sockets(code=1001) == 1
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 5)
        latency = agents.stats()["reconnect_latency_ms"]
        # today's streaming client: the first delay is 2 s, no jitter (the old 250 ms ± 20 %
        # is gone), then a loopback connect and one PUT
        assert 2000 <= latency["min"] <= 2800, latency
        assert agents.stats()["last_disconnect_reason"] == "closed by server (1001)"
        # re-subscribed: a presence change made now reaches the agent as an event
        fast_sandbox.set_presence(AGENT_1, "Break")
        assert wait_for(lambda: agents.agent.presence == "Break", 3)


def test_socket_kept_closed_for_a_known_time_gives_latency_in_range(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        fast_sandbox.inject_fault(r"^/channels/", status=503, duration=3.0, retry_after=1)
        fast_sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 12)
        latency = agents.stats()["reconnect_latency_ms"]["max"]
        # tries at 2 s (refused) and 2 + 4 = 6 s: doubling, no jitter (Retry-After: 1 is less)
        assert 6000 <= latency <= 6800, latency
        stats = agents.stats()
        assert stats["hard_reconnects"] == 0
        # the delay reached is remembered (it only decays with time): 8 s next
        assert stats["reconnect_backoff"]["next_delay"] == 8.0, stats["reconnect_backoff"]


def test_retry_after_longer_than_the_backoff_is_honoured(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        fast_sandbox.inject_fault(r"^/channels/", status=503, count=1, retry_after=5)
        fast_sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 12)
        latency = agents.stats()["reconnect_latency_ms"]["max"]
        # refused at 2 s with Retry-After: 5 (more than the next delay, 4 s): back at 7 s
        assert 7000 <= latency <= 7800, latency


def test_a_restart_with_the_same_status_file_remembers_the_backoff(
    fast_sandbox: Any, tmp_path: Any
) -> None:
    import json

    status = tmp_path / "status.json"
    with AgentsThread(fast_sandbox.url, [AGENT_1], status_path=str(status)) as agents:
        fast_sandbox.inject_fault(r"^/channels/", status=503, duration=3.0)
        fast_sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 12)
    remembered = json.loads(status.read_text())["agents"][AGENT_1]["reconnect_backoff"]
    assert remembered["next_delay"] == 8.0, remembered
    # "reloaded": the new desktop's first reconnect waits the remembered 8 s, not 2 s
    with AgentsThread(fast_sandbox.url, [AGENT_1], status_path=str(status)) as agents:
        assert agents.stats()["reconnect_backoff"]["next_delay"] == 8.0
        fast_sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 12)
        latency = agents.stats()["reconnect_latency_ms"]["max"]
        assert 8000 <= latency <= 8800, latency


def test_socket_closing_opens_a_new_socket_first(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        assert fast_sandbox.send_socket_closing() == 1
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 5)
        stats = agents.stats()
        assert stats["socket_closing_notices"] == 1
        assert stats["disconnects"] == 0 and stats["connected"]
        assert fast_sandbox.snapshot()["notifications"]["connected"] == 1
        fast_sandbox.set_presence(AGENT_1, "Meal")
        assert wait_for(lambda: agents.agent.presence == "Meal", 3)


def test_channel_gone_means_a_new_channel() -> None:
    from chaosgenesys.sandbox import Sandbox

    with (
        Sandbox(seed=agent_seed(), heartbeat_interval=0.2, channel_lifetime=1.0) as sandbox,
        AgentsThread(sandbox.url, [AGENT_1]) as agents,
    ):
        first = agents.agent.channel_id
        # the channel expires: no_longer_subscribed, then a new channel and subscriptions
        assert wait_for(lambda: agents.agent.channel_id not in ("", first), 5)
        assert wait_for(lambda: agents.stats()["connected"], 3)
        sandbox.set_presence(AGENT_1, "Training")
        assert wait_for(lambda: agents.agent.presence == "Training", 3)


def test_silent_socket_resilient_detects_the_zombie(fast_sandbox: Any) -> None:
    with StallingRelay(fast_sandbox.port) as relay:
        url = f"http://127.0.0.1:{relay.port}"
        with AgentsThread(url, [AGENT_1], timeout=1.0) as agents:
            relay.stall()
            assert wait_for(lambda: agents.stats()["zombies_detected"] == 1, 5)
            relay.resume()
            assert wait_for(lambda: agents.stats()["reconnects"] >= 1, 10)
            stats = agents.stats()
            # declared dead after 0.5 s of silence; zombie time counts after 0.3 s
            assert stats["zombie_seconds"] < 0.6, stats
            assert stats["last_disconnect_reason"].startswith("zombie")


def test_silent_socket_naive_stays_a_zombie(fast_sandbox: Any) -> None:
    with StallingRelay(fast_sandbox.port) as relay:
        url = f"http://127.0.0.1:{relay.port}"
        with AgentsThread(url, [AGENT_1], mode="naive", timeout=1.0) as agents:
            relay.stall()
            assert wait_for(lambda: agents.stats()["zombie_seconds"] >= 1.5, 5)
            stats = agents.stats()
            assert stats["zombies_detected"] == 0 and stats["connected"]
            assert stats["reconnects"] == 0
            relay.resume()


def test_a_401_on_reconnect_means_a_new_login_and_a_new_channel(fast_sandbox: Any) -> None:
    with AgentsThread(fast_sandbox.url, [AGENT_1]) as agents:
        first = agents.agent.channel_id
        assert agents.stats()["token_refreshes"] == 1
        fast_sandbox.inject_fault(r"^/channels/", status=401, count=1)
        fast_sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 12)
        stats = agents.stats()
        # not retried as is: a new token first, then the next try on a new channel
        assert stats["token_refreshes"] == 2, stats
        assert agents.agent.channel_id not in ("", first)
        assert 6000 <= stats["reconnect_latency_ms"]["max"] <= 6800, stats
