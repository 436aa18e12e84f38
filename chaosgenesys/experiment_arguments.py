"""The types of the arguments an experiment gives to chaosgenesys activities, checked up front.

Chaos Toolkit checks that an activity's argument *names* match its function (``chaos
validate``), not their types: ``"delay_ms": "5s"`` passes validation and fails only when the
action runs, after the steady state was read and perhaps other faults were applied. This module
reads every activity of an experiment whose provider is a chaosgenesys module and checks each
given value against the function's annotation, the way the activities' own checks read them:

========== =====================================================================
annotation accepted
========== =====================================================================
``float``  a finite number (not a boolean)
``int``    an integer, or a number with no fraction (not a boolean)
``bool``   ``true`` or ``false``
``dict``   an object
``list``   a list, or a string (activities take ``"a,b"`` for ``["a", "b"]``)
``str``    not checked here (several take a list too); the activity checks it
========== =====================================================================

A value that is still a ``${...}`` placeholder after substitution is not checked (it is only
known at run time). Used by :mod:`chaosgenesys.controls.verdict`, at ``chaos validate`` and again
before the experiment starts with the configuration substituted::

    problems = argument_problems(experiment, configuration, secrets)
    # ["activity 'add-latency' (chaosgenesys.network.actions.add_latency): delay_ms must be a
    #   number, got '5s'"]
"""

from __future__ import annotations

import importlib
import inspect
import math
import re
import typing
from collections.abc import Iterator
from typing import Any

from chaosgenesys.shown import show

__all__ = ["activities_of", "argument_problems"]


def activities_of(experiment: Any) -> Iterator[dict[str, Any]]:
    """Every activity declared in the experiment: steady-state probes, method, rollbacks."""
    if not isinstance(experiment, dict):
        return
    hypothesis = experiment.get("steady-state-hypothesis")
    groups: list[Any] = [
        hypothesis.get("probes") if isinstance(hypothesis, dict) else None,
        experiment.get("method"),
        experiment.get("rollbacks"),
    ]
    for group in groups:
        if isinstance(group, list):
            yield from (activity for activity in group if isinstance(activity, dict))


def _type_problem(name: str, annotation: Any, value: Any) -> str | None:
    """Why ``value`` does not fit ``annotation``, or None when it does (or is not checked)."""
    origin = typing.get_origin(annotation) or annotation
    if origin is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            return f"{name} must be a number, got {show(value, 80)}"
        if not math.isfinite(value):
            return f"{name} must be a finite number, got {show(value, 80)}"
    elif origin is int:
        if isinstance(value, bool) or not (
            isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        ):
            return f"{name} must be an integer, got {show(value, 80)}"
    elif origin is bool:
        if not isinstance(value, bool):
            return f"{name} must be true or false, got {show(value, 80)}"
    elif origin is dict:
        if not isinstance(value, dict):
            return f"{name} must be an object, got {show(value, 80)}"
    elif origin is list and not isinstance(value, list | str):
        return f"{name} must be a list, got {show(value, 80)}"
    return None


def _unresolved(value: Any) -> bool:
    """A placeholder (or a structure holding one) that substitution could not fill."""
    if isinstance(value, str):
        return "${" in value
    if isinstance(value, list):
        return any(_unresolved(item) for item in value)
    if isinstance(value, dict):
        return any(_unresolved(item) for item in value.values())
    return False


_PLACEHOLDER = re.compile(r"^\$\{([^${}]+)\}$")


def _missing_keys(value: Any) -> list[str]:
    """The keys of the values that are a whole ``${key}`` placeholder still (substitution found
    no such key), in ``value`` or the lists and objects it holds."""
    if isinstance(value, str):
        found = _PLACEHOLDER.match(value)
        return [found.group(1)] if found else []
    if isinstance(value, list):
        return [key for item in value for key in _missing_keys(item)]
    if isinstance(value, dict):
        return [key for item in value.values() for key in _missing_keys(item)]
    return []


def _function(module: str, func: str) -> Any:
    try:
        return getattr(importlib.import_module(module), func, None)
    except ImportError:
        return None


def _plain_configuration(experiment: dict[str, Any]) -> dict[str, Any]:
    """The configuration values written in the experiment itself (not env or other lookups)."""
    configuration = experiment.get("configuration")
    if not isinstance(configuration, dict):
        return {}
    return {key: value for key, value in configuration.items() if not isinstance(value, dict)}


def argument_problems(
    experiment: Any,
    configuration: dict[str, Any] | None = None,
    secrets: dict[str, Any] | None = None,
) -> list[str]:
    """One line per chaosgenesys activity argument whose value does not fit its type.

    Arguments are substituted first with ``configuration`` and ``secrets`` (as Chaos Toolkit
    does just before an activity runs); without a configuration, with the plain values of the
    experiment's own ``configuration`` block. Activities of other extensions are not looked at.
    Given the run's ``configuration`` (the run is about to start: nothing can define a key
    later), an argument that is still a whole ``${key}`` placeholder is a problem too: no
    configuration key or secret is named ``key`` (``chaos run --var key=...`` does not add one:
    chaoslib's ``load_configuration`` only changes the keys the experiment declares).
    """
    from chaoslib import substitute

    if not isinstance(experiment, dict):
        return []
    final = configuration is not None
    if configuration is None:
        configuration = _plain_configuration(experiment)
    problems: list[str] = []
    for activity in activities_of(experiment):
        provider = activity.get("provider")
        if not isinstance(provider, dict) or provider.get("type") != "python":
            continue
        module, func = provider.get("module"), provider.get("func")
        if not (isinstance(module, str) and module.startswith("chaosgenesys.")):
            continue
        function = _function(module, str(func))
        arguments = provider.get("arguments")
        if function is None or not isinstance(arguments, dict):
            continue  # chaos validate reports a missing function; no arguments, nothing to check
        try:
            hints = typing.get_type_hints(function)
        except (NameError, TypeError):
            hints = {}
        parameters = inspect.signature(function).parameters
        given = substitute(arguments, configuration or {}, secrets or {})
        for name, value in given.items():
            missing = _missing_keys(value) if final and name in parameters else []
            if missing:
                keys = ", ".join(dict.fromkeys(missing))
                problems.append(
                    f"activity {activity.get('name')!r} ({module}.{func}): {name} is "
                    f"{show(value, 80)}, and no configuration key or secret is named {keys} "
                    f"(declare it in the experiment's configuration: chaos run --var only "
                    f"changes a key declared there)"
                )
                continue
            if name not in parameters or name not in hints or _unresolved(value):
                continue
            problem = _type_problem(name, hints[name], value)
            if problem:
                problems.append(f"activity {activity.get('name')!r} ({module}.{func}): {problem}")
    return problems
