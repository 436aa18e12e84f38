"""Progress of long waits, in a terminal: a line every few seconds, nothing in a CI log.

A baseline of five minutes, a wait for a token's last minute or a recovery that takes its time
used to be silent between two log lines. :class:`Progress` says where a wait stands::

    with Progress("baseline", total=300) as progress:
        while ...:
            progress.tick(lambda: f"{calls} call(s) so far")

It writes through the ``chaostoolkit`` logger (what ``chaos run`` shows), at most every
``every`` seconds (``CHAOSGENESYS_PROGRESS_EVERY``, 5 by default) and only for waits of at
least ``MIN_TOTAL`` seconds (or open-ended ones, up to a timeout):
``baseline: 35 s of 300 s (12 %): 41 call(s) so far``. When it writes is set by the
environment variable ``CHAOSGENESYS_PROGRESS``: ``auto`` (the default) writes when the run is
interactive (standard error is a terminal) and not under CI (no ``CI`` variable), ``always``,
or ``never``. Pure Python, no thread: the wait itself calls :meth:`Progress.tick`.
:class:`PauseProgress` does the same for Chaos Toolkit's own pauses (the verdict control
attaches it for the run).
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
import time
from collections.abc import Callable
from types import TracebackType

__all__ = ["MIN_TOTAL", "PauseProgress", "Progress", "enabled", "unwatch_pauses", "watch_pauses"]

#: Waits shorter than this (seconds) say nothing.
MIN_TOTAL = 10.0
ENVIRONMENT = "CHAOSGENESYS_PROGRESS"
EVERY = "CHAOSGENESYS_PROGRESS_EVERY"

logger = logging.getLogger("chaostoolkit")


def enabled() -> bool:
    """Whether progress lines are written (``CHAOSGENESYS_PROGRESS``: auto, always, never)."""
    mode = os.environ.get(ENVIRONMENT, "auto").strip().lower()
    if mode == "always":
        return True
    if mode == "never":
        return False
    if os.environ.get("CI"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def _every() -> float:
    """Seconds between two lines: ``CHAOSGENESYS_PROGRESS_EVERY``, else 5."""
    try:
        value = float(os.environ.get(EVERY, "5"))
    except ValueError:
        return 5.0
    return value if value > 0 else 5.0


class Progress:
    """Where one wait stands; ``total`` seconds (``None``: open-ended, e.g. up to a timeout)."""

    def __init__(self, what: str, total: float | None = None, every: float | None = None) -> None:
        self.what = what
        self.total = total
        self.every = every if every is not None else _every()
        self.started = time.monotonic()
        self._last = self.started
        self.lines = 0
        self._on = enabled() and (total is None or total >= MIN_TOTAL)

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        return None

    def tick(self, detail: Callable[[], str] | None = None) -> bool:
        """Write a line if ``every`` seconds passed since the last one; True when it did.
        ``detail()`` is called only then (it may read files)."""
        now = time.monotonic()
        if not self._on or now - self._last < self.every:
            return False
        self._last = now
        elapsed = now - self.started
        if self.total:
            share = min(1.0, elapsed / self.total)
            where = f"{elapsed:.0f} s of {self.total:.0f} s ({share:.0%})"
        else:
            where = f"{elapsed:.0f} s"
        extra = ""
        if detail is not None:
            try:
                extra = f": {detail()}"
            except Exception:  # a progress line must never cost the wait
                extra = ""
        logger.info("%s: %s%s", self.what, where, extra)
        self.lines += 1
        return True

    def sleep(self, seconds: float, detail: Callable[[], str] | None = None) -> None:
        """Sleep ``seconds``, writing progress lines on the way."""
        end = time.monotonic() + max(0.0, seconds)
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, min(self.every, 1.0) if self._on else left))
            self.tick(detail)


class PauseProgress(logging.Filter):
    """Progress of Chaos Toolkit's own pauses (``pauses.before`` / ``pauses.after``).

    chaoslib logs ``Pausing after activity for 30s...`` and then sleeps, with no hook between
    the two. Attached to the ``chaostoolkit`` logger (the verdict control does it for the whole
    run), this filter sees that line and writes progress lines for the pause on a daemon thread,
    under the same rules as :class:`Progress` (a terminal, at least ``MIN_TOTAL`` seconds).
    It never drops a record.
    """

    PATTERN = re.compile(r"^Pausing (?:after activity|before next activity) for ([\d.]+)s")

    def __init__(self) -> None:
        super().__init__("chaosgenesys-pauses")
        self._stop = threading.Event()

    def filter(self, record: logging.LogRecord) -> bool:
        match = self.PATTERN.match(str(record.msg))
        if match and not self._stop.is_set():
            seconds = float(match.group(1))
            progress = Progress("pause", total=seconds)
            if progress._on:
                threading.Thread(target=self._tick, args=(progress, seconds),
                                 name="chaosgenesys-pause", daemon=True).start()
        return True

    def _tick(self, progress: Progress, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop.wait(min(progress.every, max(0.0, end - time.monotonic()))):
            if time.monotonic() >= end:
                return
            progress.tick()

    def close(self) -> None:
        """Stop every pause's progress lines (the run ended)."""
        self._stop.set()


def watch_pauses() -> PauseProgress:
    """Attach a :class:`PauseProgress` to the ``chaostoolkit`` logger (once); returns it."""
    for existing in logger.filters:
        if isinstance(existing, PauseProgress):
            return existing
    watcher = PauseProgress()
    logger.addFilter(watcher)
    return watcher


def unwatch_pauses() -> None:
    """Detach and stop the pause watcher, if any."""
    for existing in list(logger.filters):
        if isinstance(existing, PauseProgress):
            existing.close()
            logger.removeFilter(existing)
