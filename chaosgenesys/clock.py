"""The time the token caches and the sandbox read: the real clock, or one a test drives.

Code that keeps a lifetime, a grace or a timeout reads the time through a :class:`Clock`
object instead of calling :mod:`time` and :mod:`datetime` itself, and arms its event-loop
timers with :meth:`Clock.call_later` instead of ``loop.call_later``::

    class Cache:
        def __init__(self, clock: Clock = REAL_CLOCK) -> None:
            self._clock = clock

        def expired(self) -> bool:
            return self._clock.time() >= self._expires_at

:data:`REAL_CLOCK` (the default everywhere) is a thin layer over :func:`time.time`,
:func:`time.monotonic`, ``datetime.now(UTC)`` and ``loop.call_later``: production code pays one
method call and has no other branch. A test passes a :class:`ManualClock` instead: it stands
still until :meth:`ManualClock.advance` moves it, which also runs the timers that fall due, in
order, each with the clock reading its deadline. A lifetime of a day then passes in no time,
and "nothing happened before the grace ran out" is checked exactly, not after a sleep::

    clock = ManualClock()
    with Sandbox(clock=clock, session_grace_seconds=30) as sb:
        ...                      # the desktop's socket closes
        sb.advance(29.9)         # on the sandbox's loop: nothing is due yet
        sb.advance(0.2)          # the grace ran out: the platform reacts now

``docs/testing.md`` ("Driving the clock") says which components read a clock.
"""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    # Only for annotations: asyncio costs a probe's process about 10 ms to import, and the
    # platform client (through its token cache) imports this module, while only code that
    # already runs an event loop arms timers.
    import asyncio

__all__ = ["DUE_WITHIN", "REAL_CLOCK", "Clock", "ManualClock", "Timer"]


class Timer(Protocol):
    """What :meth:`Clock.call_later` returns: a timer that can be cancelled
    (:class:`asyncio.TimerHandle` is one)."""

    def cancel(self) -> None:
        """Do not run the callback (nothing when it has run already)."""


class Clock:
    """The real clock: wall time, monotonic time, UTC now and the running loop's timers."""

    def time(self) -> float:
        """Epoch seconds, as :func:`time.time`."""
        return time.time()

    def monotonic(self) -> float:
        """Seconds on a clock that never goes back, as :func:`time.monotonic`."""
        return time.monotonic()

    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        return datetime.now(UTC)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` on the running event loop after ``delay`` seconds.

        Raises :class:`RuntimeError` when no loop runs in this thread, as
        :func:`asyncio.get_running_loop` does.
        """
        import asyncio

        return asyncio.get_running_loop().call_later(delay, callback)


#: The clock of production code (and of tests that do not drive time).
REAL_CLOCK = Clock()


#: How far past the end of an :meth:`ManualClock.advance` a timer may fall due and still run
#: in it: a delay is often a difference of absolute readings (``lost_at + grace - now``), which
#: carries their rounding: 0.6 s from a monotonic reading of 73,892 s (a machine up for 20
#: hours) computes as 0.6000000000058 s, and ``advance(0.6)`` must run that timer.
DUE_WITHIN = 1e-6


class _ManualTimer:
    """A timer of a :class:`ManualClock`: due when the clock's ``elapsed`` reaches
    ``deadline``."""

    __slots__ = ("callback", "cancelled", "deadline", "loop", "order")

    def __init__(
        self,
        deadline: float,
        order: int,
        callback: Callable[[], object],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.deadline = deadline
        self.order = order
        self.callback = callback
        self.loop = loop
        self.cancelled = False

    def __lt__(self, other: _ManualTimer) -> bool:
        return (self.deadline, self.order) < (other.deadline, other.order)

    def cancel(self) -> None:
        """Do not run the callback."""
        self.cancelled = True

    def run(self) -> None:
        """Run the callback unless cancelled; an exception goes to the loop's exception
        handler, as a failing ``loop.call_later`` callback's does."""
        if self.cancelled:
            return
        self.cancelled = True
        try:
            self.callback()
        except (SystemExit, KeyboardInterrupt):
            raise
        except BaseException as exc:
            self.loop.call_exception_handler(
                {"message": f"Exception in callback {self.callback!r}", "exception": exc}
            )


class ManualClock(Clock):
    """A clock that moves only when :meth:`advance` moves it (thread-safe).

    It starts at ``start`` (default: the real time when it is made) for :meth:`time` and
    :meth:`now`, and at the real :func:`time.monotonic` reading for :meth:`monotonic`; all three
    move together. Timers armed with :meth:`call_later` run only from :meth:`advance`, never by
    themselves.
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._lock = threading.Lock()
        self._epoch = (start or datetime.now(UTC)).timestamp()
        self._monotonic = time.monotonic()
        self._elapsed = 0.0
        self._timers: list[_ManualTimer] = []
        self._order = itertools.count()

    @property
    def elapsed(self) -> float:
        """Seconds :meth:`advance` has moved the clock so far."""
        return self._elapsed

    def time(self) -> float:
        """Epoch seconds on this clock."""
        return self._epoch + self._elapsed

    def monotonic(self) -> float:
        """Monotonic seconds on this clock."""
        return self._monotonic + self._elapsed

    def now(self) -> datetime:
        """This clock's time, timezone-aware UTC."""
        return datetime.fromtimestamp(self.time(), UTC)

    def call_later(self, delay: float, callback: Callable[[], object]) -> Timer:
        """Run ``callback`` when :meth:`advance` reaches ``delay`` seconds from now, on the
        loop running here (:class:`RuntimeError` when none runs, as for the real clock)."""
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            timer = _ManualTimer(self._elapsed + max(0.0, delay), next(self._order), callback, loop)
            heapq.heappush(self._timers, timer)
        return timer

    def pending(self) -> int:
        """Timers armed and neither run nor cancelled."""
        with self._lock:
            return sum(not timer.cancelled for timer in self._timers)

    def advance(self, seconds: float) -> int:
        """Move the clock ``seconds`` forward; returns how many timers ran.

        Due timers run in deadline order, each with the clock reading its deadline, so a timer
        armed by one of them that falls due within ``seconds`` runs too. A timer due less than
        :data:`DUE_WITHIN` past the end runs too, the clock reading the end. A timer of the event
        loop running in this thread runs before this returns; one of another loop is handed to
        that loop (``call_soon_threadsafe``) and runs there soon after. Call it on the loop of
        the timers (``Sandbox.advance`` does) to have them all run before it returns.
        """
        if seconds < 0:
            raise ValueError(f"a clock does not go back: advance({seconds})")
        import asyncio

        try:
            here: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        ran = 0
        with self._lock:
            target = self._elapsed + seconds
        while True:
            with self._lock:
                while self._timers and self._timers[0].cancelled:
                    heapq.heappop(self._timers)
                if not self._timers or self._timers[0].deadline > target + DUE_WITHIN:
                    self._elapsed = target
                    return ran
                timer = heapq.heappop(self._timers)
                self._elapsed = max(self._elapsed, min(timer.deadline, target))
            ran += 1
            if timer.loop is here:
                timer.run()
            elif not timer.loop.is_closed():
                timer.loop.call_soon_threadsafe(timer.run)
