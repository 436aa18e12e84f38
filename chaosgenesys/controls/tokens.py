"""Chaos Toolkit control: no token the run obtained outlives it (the guide's PCI-DSS trap).

The guide's first trap: session tokens not invalidated after a failover test can break PCI-DSS.
A run obtains tokens of three kinds: the tooling's own (the probes' and actions' client
credentials, cached in the ``chaos`` process), the synthetic desktops' (one per agent), and the
browser sessions it logged in (the reference desktop in a Chromium the observer launched).
Declare this control and, when the experiment ends (rollbacks included), it revokes all of
them (``DELETE /api/v2/tokens/me``) and proves each no longer works (``HEAD
/api/v2/tokens/me`` answers 401)::

    "controls": [
      {"name": "chaosgenesys-verdict",
       "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}},
      {"name": "chaosgenesys-tokens",
       "provider": {"type": "python", "module": "chaosgenesys.controls.tokens"}},
      {"name": "genesys-sandbox", "provider": {...}}
    ]

Declare it **before** the sandbox control (Chaos Toolkit runs the controls' end hooks in the
order they are declared, and the sandbox must still answer); it refuses the run otherwise. It
stops this run's browser observers and synthetic agents itself (each revokes its own tokens
as it stops: they do so whatever stops them, short of SIGKILL), then revokes the tooling's. The
journal's ``experiment.extensions`` gets ``{"name": "chaosgenesys-tokens", "revoked": n,
"still_working": n, "tooling": {...}, "desktops": {...}, "browsers": {...}, "problems":
[...]}``; a token that still works after its revocation is logged at ERROR and, with
``fail_run`` (default true), ends a ``completed`` run ``failed``. On an interrupted run the
same happens in ``cleanup_control``. A run killed outright (SIGKILL) cannot revoke the tooling's
own token: it expires with its lifetime (keep the OAuth client's token lifetime short,
docs/real-org.md); the fault registry's guardian still stops the agents and observers, which
revoke theirs. A browser the observer attached to (a workstation's) is the user's session:
log out of the desktop there.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Experiment, Secrets

from chaosgenesys.arguments import require_bool
from chaosgenesys.controls.journal import add_extension
from chaosgenesys.controls.startup import StartupFailure

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "cleanup_control",
    "configure_control",
    "revoke_run_tokens",
]

logger = logging.getLogger("chaostoolkit")

EXTENSION = "chaosgenesys-tokens"
_lock = threading.Lock()
_startup = StartupFailure("the token control refused the run")
_settings: dict[str, Any] = {"fail_run": True, "done": None}


def configure_control(
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: dict[str, Any] | None = None,
    experiment: Experiment = None,
    fail_run: bool = True,
) -> None:
    """Check the control's place (before the sandbox control) and its argument."""
    with _startup.remembering("The token control could not start"):
        _settings["fail_run"] = require_bool("fail_run", fail_run)
        _settings["done"] = None
        names = [
            str((c.get("provider") or {}).get("module") or "")
            for c in (experiment or {}).get("controls") or []
            if isinstance(c, dict)
        ]
        if "chaosgenesys.controls.sandbox" in names and __name__ in names and (
            names.index("chaosgenesys.controls.sandbox") < names.index(__name__)
        ):
            raise ActivityFailed(
                "declare the chaosgenesys.controls.tokens control before "
                "chaosgenesys.controls.sandbox: the tokens are revoked at the end, while the "
                "sandbox still answers (controls end in the order they are declared)"
            )


def before_experiment_control(context: Experiment = None, **kwargs: Any) -> None:
    """Refuse the run, before anything executes, when the control is misplaced."""
    _startup.refuse_if_failed()


def _browsers() -> dict[str, Any]:
    from chaosgenesys.browser.actions import stop_observer

    summaries = stop_observer()["summaries"]
    revoked = sum(int(s.get("tokens_revoked") or 0) for s in summaries.values())
    still = sum(int(s.get("tokens_still_working") or 0) for s in summaries.values())
    return {"observers": len(summaries), "revoked": revoked, "still_working": still}


def _desktops() -> dict[str, Any]:
    """This run's synthetic desktops' tokens: those still running are stopped (each revokes its
    own as it stops), then every desktop of the run is counted, those stopped earlier in the
    run included (by an action, a duration, or the kill switch's revert)."""
    from chaosgenesys.agent.actions import stop_agents
    from chaosgenesys.agent.this_run import agent_runs

    stop_agents()
    runs = agent_runs()
    revoked = still = 0
    problems: list[str] = []
    for _run_id, status in runs:
        for user_id, summary in (status.get("agents") or {}).items():
            revoked += bool(summary.get("token_revoked"))
            still += bool(summary.get("token_still_works"))
            if summary.get("token_still_works") or (
                summary.get("token_revocation") and not summary.get("token_revoked")
            ):
                problems.append(f"desktop {user_id}: {summary.get('token_revocation')}")
    return {"runs": len(runs), "revoked": revoked, "still_working": still,
            "problems": problems}


def _tooling() -> dict[str, Any]:
    from chaosgenesys.platform.tokens import token_cache
    from chaosgenesys.revocation import revoke_token

    revoked = still = 0
    problems: list[str] = []
    taken = token_cache().take_all()
    for settings, token in taken:
        done = revoke_token(settings.api_url, token.value, timeout=min(5.0, settings.timeout),
                            verify=settings.verify_tls)
        revoked += done.revoked
        still += done.still_works
        if done.detail:
            problems.append(f"client {settings.client_id}: {done.detail}")
    return {"tokens": len(taken), "revoked": revoked, "still_working": still,
            "problems": problems}


def revoke_run_tokens() -> dict[str, Any]:
    """Stop this run's observers and agents (each revokes its tokens) and revoke the tooling's
    own tokens; what was revoked and what still works. Never raises: each part that cannot run
    is a problem in the answer."""
    report: dict[str, Any] = {"name": EXTENSION}
    problems: list[str] = []
    for part, work in (("browsers", _browsers), ("desktops", _desktops), ("tooling", _tooling)):
        try:
            report[part] = work()
        except Exception as error:  # the others must still be revoked
            report[part] = {"revoked": 0, "still_working": 0}
            problems.append(f"{part}: {type(error).__name__}: {error}")
        problems += report[part].pop("problems", [])
    report["revoked"] = sum(report[p]["revoked"] for p in ("browsers", "desktops", "tooling"))
    report["still_working"] = sum(
        report[p]["still_working"] for p in ("browsers", "desktops", "tooling")
    )
    report["problems"] = problems
    return report


def _finish(journal: Any) -> dict[str, Any] | None:
    with _lock:
        if _settings["done"] is not None:
            return None
        report = revoke_run_tokens()
        _settings["done"] = report
    if report["still_working"]:
        logger.error(
            "Tokens: %d revoked, %d STILL WORKING after their revocation (the guide's PCI-DSS "
            "trap): %s", report["revoked"], report["still_working"], "; ".join(report["problems"])
        )
    elif report["problems"]:
        logger.warning("Tokens: %d revoked; %s", report["revoked"], "; ".join(report["problems"]))
    else:
        logger.info(
            "Tokens: %d revoked (browser sessions %d, desktops %d, tooling %d), none still works",
            report["revoked"], report["browsers"]["revoked"], report["desktops"]["revoked"],
            report["tooling"]["revoked"],
        )
    add_extension(journal, report)
    failing = report["still_working"] and _settings["fail_run"]
    if failing and isinstance(journal, dict) and journal.get("status") == "completed":
        journal["status"] = "failed"
        logger.error("Tokens: the run ends failed: a token outlived it")
    return report


def after_experiment_control(context: Any, state: Any = None, **kwargs: Any) -> None:
    """Revoke every token of the run once it has run, rollbacks included."""
    _finish(state)


def cleanup_control() -> None:
    """The same on a run that was interrupted before it ended (Chaos Toolkit calls this at the
    end of every run: after ``after_experiment_control`` there is nothing left to do)."""
    _finish(None)
