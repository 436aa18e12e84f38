"""The clocks of ``chaosgenesys.clock``: the real one reads the real time, a manual one stands
still until advanced and then runs the timers that fall due, in order, at their deadlines."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime

import pytest

from chaosgenesys.clock import DUE_WITHIN, REAL_CLOCK, ManualClock


def test_the_real_clock_reads_the_real_time() -> None:
    assert abs(REAL_CLOCK.time() - time.time()) < 1
    assert abs(REAL_CLOCK.monotonic() - time.monotonic()) < 1
    assert abs((REAL_CLOCK.now() - datetime.now(UTC)).total_seconds()) < 1
    assert REAL_CLOCK.now().tzinfo is UTC


def test_a_manual_clock_stands_still_until_advanced() -> None:
    start = datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
    clock = ManualClock(start)
    first = (clock.time(), clock.monotonic(), clock.now())
    time.sleep(0.01)
    assert (clock.time(), clock.monotonic(), clock.now()) == first
    assert clock.now() == start
    assert clock.advance(90) == 0
    assert clock.time() == first[0] + 90
    assert clock.monotonic() == first[1] + 90
    assert clock.now() == datetime(2024, 5, 1, 10, 1, 30, tzinfo=UTC)
    assert clock.elapsed == 90
    with pytest.raises(ValueError, match="does not go back"):
        clock.advance(-1)


def test_timers_run_only_when_due_in_order_at_their_deadline() -> None:
    clock = ManualClock()
    start = clock.monotonic()
    ran: list[tuple[str, float]] = []

    async def scenario() -> None:
        def note(name: str) -> None:
            ran.append((name, clock.monotonic() - start))

        clock.call_later(5, lambda: note("five"))
        clock.call_later(2, lambda: note("two"))
        cancelled = clock.call_later(3, lambda: note("cancelled"))
        # a timer armed by a timer runs in the same advance when it falls due within it
        clock.call_later(1, lambda: clock.call_later(2, lambda: note("one+two")))
        await asyncio.sleep(0.05)  # a real loop turn: nothing runs by itself
        assert ran == []
        cancelled.cancel()
        assert clock.pending() == 3
        assert clock.advance(1.5) == 1  # the arming timer
        assert ran == []
        assert clock.advance(2) == 2
        assert ran == [("two", 2), ("one+two", 3)]
        assert clock.monotonic() - start == 3.5
        assert clock.advance(10) == 1
        assert ran[-1] == ("five", 5)
        assert clock.pending() == 0

    asyncio.run(scenario())


def test_a_timer_due_at_the_end_of_an_advance_runs_despite_the_rounding_of_its_delay() -> None:
    # A delay computed from absolute readings, as the sandbox's grace is: (m + 0.6) - m is
    # 0.6000000000058 for m = 73,892 (the monotonic clock of a machine up for 20 hours).
    reading = 73_892.307485847
    delay = (reading + 0.6) - reading
    assert delay > 0.6
    clock = ManualClock()
    ran: list[tuple[str, float]] = []

    async def scenario() -> None:
        clock.call_later(delay, lambda: ran.append(("rounded", clock.elapsed)))
        clock.call_later(0.6 + 10 * DUE_WITHIN, lambda: ran.append(("later", clock.elapsed)))
        assert clock.advance(0.6) == 1
        assert ran == [("rounded", 0.6)]  # the clock reads the end of the advance, not past it
        assert clock.elapsed == 0.6
        assert clock.advance(5 * DUE_WITHIN) == 0  # further past than that: not yet
        assert clock.advance(5 * DUE_WITHIN) == 1
        assert ran[-1] == ("later", 0.6 + 10 * DUE_WITHIN)

    asyncio.run(scenario())


def test_call_later_needs_a_running_loop_as_the_real_clock_does() -> None:
    with pytest.raises(RuntimeError):
        ManualClock().call_later(1, lambda: None)
    with pytest.raises(RuntimeError):
        REAL_CLOCK.call_later(1, lambda: None)


def test_a_failing_timer_goes_to_the_loop_and_the_others_still_run() -> None:
    clock = ManualClock()
    ran: list[str] = []
    errors: list[BaseException | None] = []

    def fail() -> None:
        raise RuntimeError("boom")

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(
            lambda _loop, context: errors.append(context.get("exception"))
        )
        clock.call_later(1, fail)
        clock.call_later(2, lambda: ran.append("after"))
        assert clock.advance(5) == 2

    asyncio.run(scenario())
    assert ran == ["after"]
    assert len(errors) == 1 and str(errors[0]) == "boom"


def test_advanced_from_another_thread_a_timer_runs_on_its_own_loop() -> None:
    clock = ManualClock()
    armed = threading.Event()
    where: list[threading.Thread] = []

    async def scenario() -> None:
        done = asyncio.Event()

        def fire() -> None:
            where.append(threading.current_thread())
            done.set()

        clock.call_later(10, fire)
        armed.set()
        await asyncio.wait_for(done.wait(), 5)

    loop_thread = threading.Thread(target=asyncio.run, args=(scenario(),))
    loop_thread.start()
    assert armed.wait(5)
    assert clock.advance(10) == 1
    loop_thread.join(5)
    assert where == [loop_thread]
