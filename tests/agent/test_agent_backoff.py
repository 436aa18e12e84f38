"""The reconnect backoff of today's streaming client (API reference §7), with a given clock."""

from __future__ import annotations

from chaosgenesys.agent.backoff import Backoff
from chaosgenesys.agent.config import AgentConfig


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_defaults_are_the_streaming_clients() -> None:
    config = AgentConfig()
    assert (config.backoff_initial, config.backoff_max, config.backoff_factor,
            config.backoff_jitter) == (2.0, 90.0, 2.0, 0.0)


def test_two_seconds_doubling_ninety_at_most_no_jitter() -> None:
    clock = Clock()
    backoff = Backoff(clock=clock)
    delays = []
    for _ in range(9):
        delay = backoff.delay()
        delays.append(delay)
        clock.now += delay
    assert delays == [2, 4, 8, 16, 32, 64, 90, 90, 90]


def test_retry_after_is_honoured_and_tries_lead_to_hard_reconnects() -> None:
    clock = Clock()
    backoff = Backoff(tries=2, clock=clock)
    assert backoff.next_delay(retry_after=30) == 30
    assert backoff.next_delay(retry_after=1) == 4
    assert backoff.exhausted and backoff.next_delay() is None
    assert backoff.delay() == 8  # hard reconnects go on with the same delays
    backoff.reset()
    assert not backoff.exhausted


def test_the_delay_reached_decays_with_quiet_time_and_survives_a_restart() -> None:
    clock = Clock()
    backoff = Backoff(clock=clock)
    for _ in range(4):
        clock.now += backoff.delay()  # 2, 4, 8, 16: next would be 32
    state = backoff.state()
    assert state["next_delay"] == 32
    clock.now += 10  # too short to halve (5 x 32 s)
    again = Backoff(clock=clock)
    again.restore(state)
    assert again.peek() == 32
    clock.now += 5 * 32  # quiet long enough: halved
    assert again.peek() == 16
    clock.now += 3600
    assert again.peek() == 2  # forgotten after an hour
    garbage = Backoff(clock=clock)
    garbage.restore({"next_delay": "x"})
    assert garbage.peek() == 2
