"""Reconnect delays as today's genesys-cloud-streaming-client computes them.

The shared API reference (§7): infinite attempts, **no jitter**, the first delay at least 2 s,
doubling, 90 s at most, ``Retry-After`` honoured, and the backoff state kept across a reload (it
halves while the connection stays quiet and resets after an hour). Releases before v15 used
250 ms -> 5 s with jitter; that is not what the desktop runs today.

:class:`Backoff` is used by the synthetic agent (reconnects, start-up, retried REST changes) and
by the ``watch_events`` observer (with its own figures).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import Any

__all__ = [
    "DECAY_MULTIPLIER",
    "RESET_AFTER",
    "STREAMING_FACTOR",
    "STREAMING_INITIAL",
    "STREAMING_MAX",
    "Backoff",
]

#: The streaming client's figures (seconds).
STREAMING_INITIAL = 2.0
STREAMING_MAX = 90.0
STREAMING_FACTOR = 2.0
#: A remembered delay halves once the connection has stayed quiet this many times that delay.
DECAY_MULTIPLIER = 5.0
#: A remembered delay older than this (seconds) is forgotten.
RESET_AFTER = 3600.0
#: The longest ``Retry-After`` honoured (seconds); a longer one is clipped to this.
MAX_RETRY_AFTER = 600.0


class Backoff:
    """``initial * factor**n`` capped at ``maximum`` (times ``1 ± jitter``, 0 by default).

    ``tries`` delays are handed out before :meth:`next_delay` returns ``None`` (time for a hard
    reconnect on a new channel) until :meth:`reset`; ``tries=0`` means never. :meth:`reset`
    starts counting tries again but keeps the delay reached: like the streaming client, the
    delay only comes down with time (halved for every ``decay`` x delay seconds without a
    delay handed out, back to ``initial`` after ``reset_after`` seconds), so a connection that
    keeps dropping right after it comes back is not retried at the first delay each time.
    :meth:`forget` goes back to the first delay at once. :meth:`state` / :meth:`restore`
    carry that across a restart (wall-clock times).
    """

    def __init__(
        self,
        initial: float = STREAMING_INITIAL,
        maximum: float = STREAMING_MAX,
        factor: float = STREAMING_FACTOR,
        jitter: float = 0.0,
        tries: int = 0,
        rng: random.Random | None = None,
        *,
        decay: float = DECAY_MULTIPLIER,
        reset_after: float = RESET_AFTER,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.initial = initial
        self.maximum = max(maximum, initial)
        self.factor = factor
        self.jitter = jitter
        self.tries = tries
        self.decay = decay
        self.reset_after = reset_after
        self.attempt = 0
        self._delay = initial
        #: Wall time the latest delay handed out ends (None: none yet).
        self._last: float | None = None
        self._rng = rng or random.Random()
        self._clock = clock

    @property
    def exhausted(self) -> bool:
        """All ``tries`` have been handed out (never with ``tries=0``)."""
        return bool(self.tries) and self.attempt >= self.tries

    def reset(self) -> None:
        """Count tries from the start again (the delay reached is kept and decays with time)."""
        self.attempt = 0

    def forget(self) -> None:
        """Back to the first delay at once."""
        self.attempt = 0
        self._delay = self.initial
        self._last = None

    def _decay(self, now: float) -> None:
        if self._last is None:
            return
        quiet = now - self._last
        if quiet >= self.reset_after:
            self._delay, self._last = self.initial, None
            return
        while self.decay > 0 and self._delay > self.initial and quiet >= self.decay * self._delay:
            quiet -= self.decay * self._delay
            self._delay = max(self.initial, self._delay / self.factor if self.factor > 1 else
                              self.initial)

    def peek(self) -> float:
        """The base delay the next call would hand out (no jitter, no ``Retry-After``)."""
        self._decay(self._clock())
        return min(self.maximum, self._delay)

    def next_delay(self, retry_after: float = 0.0) -> float | None:
        """The delay before the next try, at least ``retry_after`` (a server's
        ``Retry-After``); ``None`` once ``tries`` are used up."""
        if self.exhausted:
            return None
        return self.delay(retry_after)

    def delay(self, retry_after: float = 0.0) -> float:
        """The next delay whether or not ``tries`` are used up (hard reconnects go on with it)."""
        now = self._clock()
        self._decay(now)
        base = min(self.maximum, self._delay)
        self._delay = min(self.maximum, base * self.factor)
        self.attempt += 1
        if self.jitter:
            spread = base * self.jitter
            base = max(0.0, base + self._rng.uniform(-spread, spread))
        wait = max(base, min(MAX_RETRY_AFTER, max(0.0, retry_after)))
        self._last = now + wait
        return wait

    def state(self) -> dict[str, Any]:
        """What to remember across a restart: the next delay and when the latest one ended."""
        return {"next_delay": round(min(self.maximum, self._delay), 3), "last": self._last}

    def restore(self, state: Any) -> None:
        """Take back :meth:`state` (ignored when malformed)."""
        if not isinstance(state, dict):
            return
        delay, last = state.get("next_delay"), state.get("last")
        if not isinstance(delay, int | float) or isinstance(delay, bool):
            return
        if last is not None and (not isinstance(last, int | float) or isinstance(last, bool)):
            return
        self._delay = min(self.maximum, max(self.initial, float(delay)))
        self._last = float(last) if last is not None else None
        self._decay(self._clock())
