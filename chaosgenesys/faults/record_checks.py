"""The checks of what the registry is given, each an ``ActivityFailed`` naming the argument and
the value, raised before anything is written; and the import of a record's reverter.

    from chaosgenesys.faults.record_checks import check_scope

    scope = check_scope(" Run ")   # "run"; ActivityFailed for "mine"
"""

from __future__ import annotations

import importlib
import json
import math
from collections.abc import Callable
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.faults.record import REVERTER_PATTERN, FaultRecord
from chaosgenesys.shown import show

__all__ = [
    "SCOPES",
    "check_deadline",
    "check_duration",
    "check_reverter",
    "check_scope",
    "check_spec",
    "check_text",
    "resolve_reverter",
]

#: ``scope`` values: ``run``, the faults of the caller's run; ``all``, every run's.
SCOPES = ("run", "all")


def check_scope(
    scope: Any, name: str = "scope", meaning: str = "the faults of this run, or every run's"
) -> str:
    """``scope`` as one of :data:`SCOPES`; ``ActivityFailed`` naming ``name`` (and what each
    value means to the caller) otherwise."""
    if not isinstance(scope, str) or scope.strip().lower() not in SCOPES:
        raise ActivityFailed(
            f"{name} must be one of {', '.join(repr(s) for s in SCOPES)} ({meaning}), "
            f"got {show(scope)}"
        )
    return scope.strip().lower()


def check_text(name: str, value: Any, *, empty: bool = False) -> str:
    """``value`` as a string (non-empty unless ``empty``)."""
    if not isinstance(value, str) or (not empty and not value.strip()):
        raise ActivityFailed(f"{name} must be a non-empty string, got {show(value)}")
    return value


def check_reverter(reverter: Any) -> Callable[[FaultRecord], object]:
    """``'module:function'``, imported now so that a typo fails before a fault is applied."""
    if not isinstance(reverter, str) or not REVERTER_PATTERN.match(reverter):
        raise ActivityFailed(
            f"reverter must be 'module:function' (e.g. 'chaosgenesys.network.engine:revert'), "
            f"got {show(reverter)}"
        )
    return resolve_reverter(reverter)


def resolve_reverter(reverter: str) -> Callable[[FaultRecord], object]:
    """The function a record's ``reverter`` names; ActivityFailed when it cannot be imported."""
    module_name, _, function = reverter.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:
        raise ActivityFailed(
            f"reverter {reverter!r}: cannot import module {module_name!r}: "
            f"{type(error).__name__}: {error}"
        ) from error
    func = getattr(module, function, None)
    if not callable(func):
        raise ActivityFailed(
            f"reverter {reverter!r}: module {module_name!r} has no function {function!r}"
        )
    resolved: Callable[[FaultRecord], object] = func
    return resolved


def check_spec(spec: Any) -> dict[str, Any]:
    """A copy of ``spec`` through JSON: what the record file will hold, and all it can."""
    if not isinstance(spec, dict):
        raise ActivityFailed(f"spec must be a JSON object (a dict), got {show(spec)}")
    try:
        text = json.dumps(spec, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise ActivityFailed(
            f"spec must be JSON-serialisable ({error}), got {show(spec)}"
        ) from None
    copy: dict[str, Any] = json.loads(text)
    return copy


def check_duration(duration: Any) -> float | None:
    """Seconds > 0, or None (no deadline)."""
    if duration is None:
        return None
    if (
        isinstance(duration, bool)
        or not isinstance(duration, int | float)
        or not math.isfinite(duration)
        or duration <= 0
    ):
        raise ActivityFailed(f"duration must be a number of seconds > 0 or None, got {duration!r}")
    return float(duration)


def check_deadline(deadline: Any) -> float:
    """Epoch seconds."""
    if isinstance(deadline, bool) or not isinstance(deadline, int | float) or not math.isfinite(
        deadline
    ):
        raise ActivityFailed(f"deadline must be epoch seconds, got {deadline!r}")
    return float(deadline)
