"""Chaos Toolkit control: before any fault, prove the OAuth client and the org are ready.

The guide's prerequisites, checked rather than hoped for: the region answers, the token holds
the scopes and its client's roles the permissions every activity of the experiment needs, each
test agent is a member of no queue but the chaos queue, the org is the one you named. Declare it
after the verdict control and before any control that changes something (the sandbox control,
which only starts a local sandbox, may come first)::

    "controls": [
      {"name": "chaosgenesys-verdict",
       "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}},
      {"name": "genesys-preflight",
       "provider": {"type": "python", "module": "chaosgenesys.controls.preflight",
                    "arguments": {"user_ids": ["${agent_1}"], "queue_id": "${chaos_queue}",
                                  "organization_id": "${organization_id}"}}}
    ]

Arguments (all optional): ``user_ids`` (the test agents: their queues are checked),
``queue_id`` (the chaos queue: the one queue they may belong to), ``organization_id`` (the run
is refused when the token is for another org), ``check_roles`` (default true: reading the
client's roles needs ``oauth:client:view`` and ``authorization:role:view``),
``unknown_activities`` (``refuse``, the default, or ``note``: what to do with another
extension's activities, whose needs are not known here).

Before the experiment (``before_experiment_control``, before the steady state is first read)
it runs :func:`chaosgenesys.preflight.check` and logs the table; when anything is missing it
raises ``InterruptExecution`` with the table (what is missing, who needs it, how to grant it):
the journal ends ``interrupted`` and nothing was injected. The journal's
``experiment.extensions`` gets ``{"name": "chaosgenesys-preflight", "passed", "organization",
"client", "rows": [{"check", "subject", "status", "needed_by", "fix"}]}``. Nothing is changed
on the org. ``docs/real-org.md`` walks through granting what it asks for.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed, InterruptExecution, InvalidControl
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_bool, require_id, require_ids, require_text
from chaosgenesys.controls.journal import add_extension

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "last_result",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-preflight"
ARGUMENTS = frozenset(
    {"user_ids", "queue_id", "organization_id", "check_roles", "unknown_activities"}
)
_lock = threading.Lock()
_last: dict[str, Any] | None = None


def _arguments(
    user_ids: Any, queue_id: Any, organization_id: Any, check_roles: Any, unknown: Any
) -> tuple[list[str], str, str, bool, str]:
    users = require_ids("user_ids", user_ids) if user_ids not in (None, []) else []
    queue = require_id("queue_id", queue_id) if queue_id not in (None, "") else ""
    org = require_text("organization_id", organization_id, allow_empty=True).strip()
    roles = require_bool("check_roles", check_roles)
    if unknown not in ("refuse", "note"):
        raise ActivityFailed(f"unknown_activities must be refuse or note, got {unknown!r}")
    return users, queue, org, roles, str(unknown)


def before_experiment_control(
    context: Any,
    user_ids: list[str] | None = None,
    queue_id: str = "",
    organization_id: str = "",
    check_roles: bool = True,
    unknown_activities: str = "refuse",
    configuration: Configuration = None,
    secrets: Secrets = None,
    **kwargs: Any,
) -> None:
    """Refuse the run (``InterruptExecution`` with the table) unless every check passes."""
    global _last
    from chaosgenesys.preflight import check, format_table

    with _lock:
        _last = None
    try:
        users, queue, org, roles, unknown = _arguments(
            user_ids, queue_id, organization_id, check_roles, unknown_activities
        )
    except ActivityFailed as error:
        refusal = f"preflight control: {error}"
        with _lock:  # journaled: the verdict says why nothing ran
            _last = {"passed": False, "refused": refusal, "rows": []}
        raise InterruptExecution(refusal) from None
    result = check(context, configuration, secrets, users, queue, org, roles, unknown)
    with _lock:
        _last = result.to_dict()
    table = format_table(result.rows)
    if result.passed:
        logger.info("Preflight: ready to run against %s\n%s",
                    result.organization.get("name") or "the org", table)
        return
    logger.error("Preflight: %d problem(s), refusing the run\n%s", len(result.missing), table)
    raise InterruptExecution(
        f"preflight control: refusing the run, nothing was injected; "
        f"{len(result.missing)} problem(s):\n{table}"
    )


def after_experiment_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Journal what the preflight found."""
    with _lock:
        found = dict(_last) if _last is not None else None
    if found is not None:
        add_extension(state, {"name": EXTENSION, **found})


def last_result() -> dict[str, Any] | None:
    """What the last preflight in this process found (``None``: none ran)."""
    with _lock:
        return dict(_last) if _last is not None else None


def validate_control(control: dict[str, Any]) -> None:
    """``chaos validate``: known arguments, well formed unless ``${...}`` substitutions."""
    arguments = (control.get("provider") or {}).get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidControl("preflight control: arguments must be a mapping")
    unknown = set(arguments) - ARGUMENTS
    if unknown:
        raise InvalidControl(f"preflight control: unknown argument(s) {', '.join(sorted(unknown))}")
    plain = {k: v for k, v in arguments.items() if "${" not in str(v)}
    try:
        _arguments(
            plain.get("user_ids"), plain.get("queue_id"), plain.get("organization_id", ""),
            plain.get("check_roles", True), plain.get("unknown_activities", "refuse"),
        )
    except ActivityFailed as error:
        raise InvalidControl(f"preflight control: {error}") from None
