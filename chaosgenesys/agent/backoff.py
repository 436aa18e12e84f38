"""Reconnect delays: exponential backoff with jitter, as genesys-cloud-streaming-client does it."""

from __future__ import annotations

import random

__all__ = ["Backoff"]


class Backoff:
    """``initial * factor**n`` capped at ``maximum``, each multiplied by ``1 ± jitter``.

    ``tries`` delays are handed out; after that :meth:`next_delay` returns ``None`` (time for a
    hard reconnect on a new channel) until :meth:`reset`.
    """

    def __init__(
        self,
        initial: float = 0.25,
        maximum: float = 5.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        tries: int = 10,
        rng: random.Random | None = None,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self.tries = tries
        self.attempt = 0
        self._rng = rng or random.Random()

    def reset(self) -> None:
        """Start again from the first delay."""
        self.attempt = 0

    def next_delay(self) -> float | None:
        """The delay before the next try, or ``None`` once ``tries`` are used up."""
        if self.attempt >= self.tries:
            return None
        base = min(self.maximum, self.initial * self.factor**self.attempt)
        self.attempt += 1
        spread = base * self.jitter
        return max(0.0, base + self._rng.uniform(-spread, spread))
