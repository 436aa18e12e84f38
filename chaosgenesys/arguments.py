"""Argument checking shared by every activity.

Each helper either returns the value in its canonical form or raises
:class:`~chaoslib.exceptions.ActivityFailed` naming the argument and the value it got, before
anything is sent or changed::

    >>> require_id("user_id", "")
    Traceback (most recent call last):
    ...
    chaoslib.exceptions.ActivityFailed: user_id must be a non-empty string without '/', got ''

Ids are not checked as UUIDs: the sandbox accepts any id string, so an id is any non-empty
string without ``/`` (which would change the request path) or surrounding white space.

Presence names are compared after lower-casing and removing spaces, underscores and hyphens, so
``"On Queue"``, ``"OnQueue"`` and ``"ON_QUEUE"`` (the spellings of the REST API, the newer
definitions API and analytics/notifications) are the same presence.
"""

import contextlib
import functools
import math
import re
from collections.abc import Callable
from typing import Any, cast

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.presence_names import normalise_presence
from chaosgenesys.shown import show

__all__ = [
    "ROUTING_STATUSES",
    "SYSTEM_PRESENCES",
    "normalise_presence",
    "not_found",
    "presence_name",
    "presence_names",
    "require_bool",
    "require_http_status",
    "require_id",
    "require_ids",
    "require_int",
    "require_number",
    "require_regex",
    "require_text",
    "routing_status_name",
    "routing_status_names",
    "substitutes_own_arguments",
]

#: The system presences of Genesys Cloud, spelled as the REST API spells them.
SYSTEM_PRESENCES: tuple[str, ...] = (
    "Available",
    "Away",
    "Busy",
    "Offline",
    "Idle",
    "On Queue",
    "Meal",
    "Training",
    "Meeting",
    "Break",
)

#: The routing statuses of ``/api/v2/users/{id}/routingstatus``.
ROUTING_STATUSES: tuple[str, ...] = (
    "OFF_QUEUE",
    "IDLE",
    "INTERACTING",
    "NOT_RESPONDING",
    "COMMUNICATING",
)

_PRESENCES_BY_KEY = {normalise_presence(name): name for name in SYSTEM_PRESENCES}
_ROUTING_BY_KEY = {normalise_presence(name): name for name in ROUTING_STATUSES}


def require_id(name: str, value: Any) -> str:
    """A Genesys id: a non-empty string without ``/`` or surrounding white space."""
    if (
        not isinstance(value, str)
        or not value
        or "/" in value
        or value != value.strip()
        or any(ch in value for ch in "?#")
    ):
        raise ActivityFailed(f"{name} must be a non-empty string without '/', got {show(value)}")
    return value


def _many(name: str, value: Any, what: str) -> list[Any]:
    """One value, a comma-separated string or a list -> a list (not yet checked item by item)."""
    if isinstance(value, str):
        items: list[Any] = [part.strip() for part in value.split(",")] if value else [value]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        raise ActivityFailed(
            f"{name} must be {what} or a list of them, got {type(value).__name__} {show(value)}"
        )
    if not items:
        raise ActivityFailed(f"{name} must name at least one value, got an empty list")
    return items


def require_ids(name: str, value: Any, *, max_count: int | None = None) -> list[str]:
    """A list of ids (a comma-separated string is accepted too), duplicates removed, in order."""
    items = _many(name, value, "an id")
    ids: list[str] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        try:
            require_id(f"{name}[{index}]", item)
        except ActivityFailed:
            raise ActivityFailed(
                f"{name} must be a list of non-empty strings without '/', "
                f"got {show(item)} at index {index}"
            ) from None
        if item not in seen:
            seen.add(item)
            ids.append(item)
    if max_count is not None and len(ids) > max_count:
        raise ActivityFailed(f"{name} may name at most {max_count} ids, got {len(ids)}")
    return ids


def require_text(name: str, value: Any, *, allow_empty: bool = False) -> str:
    """A string (non-empty unless ``allow_empty``)."""
    if not isinstance(value, str) or (not allow_empty and not value.strip()):
        raise ActivityFailed(f"{name} must be a non-empty string, got {show(value)}")
    return value


def require_number(
    name: str,
    value: Any,
    *,
    minimum: float = 0.0,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    numeric_text: bool = False,
) -> float:
    """A finite number (int or float, not bool) within bounds; with ``numeric_text`` a number
    written as text (``"250"``, as a configuration value from the environment is) too."""
    if numeric_text and isinstance(value, str):
        with contextlib.suppress(ValueError):
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ActivityFailed(f"{name} must be a number, got {show(value)}")
    if (exclusive_minimum and value <= minimum) or value < minimum:
        bound = f"greater than {minimum:g}" if exclusive_minimum else f"at least {minimum:g}"
        raise ActivityFailed(f"{name} must be {bound}, got {show(value)}")
    if maximum is not None and value > maximum:
        raise ActivityFailed(f"{name} must be at most {maximum:g}, got {show(value)}")
    return float(value)


def require_int(name: str, value: Any, *, minimum: int = 0, maximum: int | None = None) -> int:
    """An integer (a float with no fraction is accepted; bool is not) within bounds."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActivityFailed(f"{name} must be an integer, got {show(value)}")
    if value < minimum:
        raise ActivityFailed(f"{name} must be at least {minimum}, got {value}")
    if maximum is not None and value > maximum:
        raise ActivityFailed(f"{name} must be at most {maximum}, got {value}")
    return value


def require_bool(name: str, value: Any) -> bool:
    """A JSON boolean."""
    if not isinstance(value, bool):
        raise ActivityFailed(f"{name} must be true or false, got {show(value)}")
    return value


def require_regex(name: str, value: Any) -> str:
    """A non-empty regular expression that compiles."""
    require_text(name, value)
    try:
        re.compile(value)
    except re.error as error:
        raise ActivityFailed(
            f"{name} must be a valid regular expression, got {show(value)}: {error}"
        ) from None
    return str(value)


def require_http_status(name: str, value: Any, *, allow_zero: bool = True) -> int:
    """An HTTP status code from 100 to 599 (0 meaning "none" when ``allow_zero``)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ActivityFailed(f"{name} must be an HTTP status code, got {show(value)}")
    if (allow_zero and value == 0) or 100 <= value <= 599:
        return value
    raise ActivityFailed(f"{name} must be an HTTP status code from 100 to 599, got {value}")


def presence_name(name: str, value: Any) -> str:
    """A system presence in any spelling -> its REST spelling (``"ON_QUEUE"`` -> ``"On Queue"``)."""
    if isinstance(value, str):
        canonical = _PRESENCES_BY_KEY.get(normalise_presence(value))
        if canonical is not None:
            return canonical
    raise ActivityFailed(
        f"{name} must be a system presence ({', '.join(SYSTEM_PRESENCES)}), got {show(value)}"
    )


def presence_names(name: str, value: Any) -> list[str]:
    """One presence, a comma-separated string of them or a list -> REST spellings."""
    return [presence_name(name, item) for item in _many(name, value, "a system presence")]


def routing_status_name(name: str, value: Any) -> str:
    """A routing status in any spelling (``"off queue"``, ``"OFF_QUEUE"``) -> ``"OFF_QUEUE"``."""
    if isinstance(value, str):
        canonical = _ROUTING_BY_KEY.get(normalise_presence(value))
        if canonical is not None:
            return canonical
    raise ActivityFailed(
        f"{name} must be a routing status ({', '.join(ROUTING_STATUSES)}), got {show(value)}"
    )


def routing_status_names(name: str, value: Any) -> list[str]:
    """One routing status, a comma-separated string of them or a list -> canonical names."""
    return [routing_status_name(name, item) for item in _many(name, value, "a routing status")]


def not_found(name: str, value: str, error: Exception) -> ActivityFailed:
    """The error an activity raises when the platform answers 404 for the entity it names."""
    what = name[:-3] if name.endswith("_id") else name
    return ActivityFailed(f"{what} {value!r} was not found ({name}={value!r}): {error}")



#: What Chaos Toolkit itself passes to a control's ``configure_control``: not the control's own.
_FRAMEWORK_ARGUMENTS = frozenset(
    {"configuration", "secrets", "settings", "experiment", "event_registry"}
)


def substitutes_own_arguments[**P, R](func: Callable[P, R]) -> Callable[P, R]:
    """Decorate a control's ``configure_control`` so that its own arguments take ``${key}``
    forms from the configuration and secrets, as Chaos Toolkit does for activity arguments and
    for every other control hook (it passes ``configure_control``'s as written). A value that is
    a placeholder alone keeps the type of what it names. Chaos Toolkit still reads the wrapped
    function's signature (``functools.wraps``)::

        @substitutes_own_arguments
        def configure_control(configuration=None, secrets=None, name="cglab", **kwargs): ...
    """
    from chaoslib import substitute

    @functools.wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        own = {k: v for k, v in kwargs.items() if k not in _FRAMEWORK_ARGUMENTS}
        configuration = kwargs.get("configuration") or {}
        secrets = kwargs.get("secrets") or {}
        given = {**kwargs, **substitute(own, configuration, secrets)}
        return cast(Callable[..., R], func)(*args, **given)

    return wrapper
