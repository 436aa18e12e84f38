"""Chaos Toolkit control: one embedded Genesys Cloud sandbox for one experiment.

Declare it in the experiment and every chaosgenesys activity talks to a fresh sandbox on a free
loopback port, with no Genesys org and no secrets block::

    "controls": [
      {
        "name": "genesys-sandbox",
        "provider": {
          "type": "python",
          "module": "chaosgenesys.controls.sandbox",
          "arguments": {"seed": "examples/seed.yaml"}
        }
      }
    ]

``seed`` is a path to a seed file (YAML or JSON, see ``docs/sandbox.md``) or the seed itself as
an inline mapping; without it the default seed is used. ``port`` picks the port (default: a free
one). When the experiment starts, the control starts the sandbox, points ``genesys_api_url`` and
``genesys_login_url`` at it and makes the seeded OAuth client the default credentials for it. The
sandbox stops after the experiment, and also when the run is interrupted (``cleanup_control``).

``session_grace_seconds``, ``presence_renew_seconds`` and ``renew_on_queue`` set the platform's
reaction to a lost agent session (``docs/platform-reaction.md``; default: the seed's, else 30 s,
60 s and false).

``desktop_token_lifetime`` (seconds) sets the lifetime of the tokens the reference web desktop
(``/desktop/``, its built-in client ``chaosgenesys-desktop``) obtains, from its first login on:
short lifetimes make token-expiry experiments with the desktop in a browser quick (default
86400).

``agents`` (a list of user ids) also starts synthetic agent desktops for the experiment once the
sandbox runs, before the steady state is first checked, and stops them after the experiment (and
on interruption), before the sandbox: ``chaosgenesys.agent.actions.start_agents`` with
``agent_options`` (agent timings, ``docs/agent.md``). Their mode is the configuration key
``agent_mode`` (``resilient`` or ``naive``; default ``resilient``), so one experiment runs
against either desktop: ``chaos run --var agent_mode=naive experiment.json``. The arguments
take ``${key}`` forms from the configuration and secrets, as activity arguments do (Chaos
Toolkit leaves ``configure_control``'s arguments as written; this control substitutes them)::

    "configuration": {"agent_mode": "resilient",
                      "agent_1": "0b6b3c5e-0000-4000-8000-000000000001"},
    "controls": [{"name": "genesys-sandbox", "provider": {
        "type": "python", "module": "chaosgenesys.controls.sandbox",
        "arguments": {"seed": "examples/seed.yaml", "heartbeat_interval": 1.0,
                      "session_grace_seconds": 1, "agents": ["${agent_1}"],
                      "agent_options": {"ping_interval": 1, "heartbeat_interval": 1}}}}]
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed, InvalidControl
from chaoslib.types import Configuration, Experiment, Secrets

from chaosgenesys.arguments import (
    require_bool,
    require_int,
    require_number,
    substitutes_own_arguments,
)
from chaosgenesys.controls.startup import StartupFailure

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.sandbox.runner import Sandbox

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "cleanup_control",
    "configure_control",
    "running_agents",
    "running_sandbox",
    "validate_control",
]

logger = logging.getLogger("chaostoolkit")

_lock = threading.Lock()
_running: Sandbox | None = None
#: What stopped the last configure_control, for before_experiment_control.
_startup = StartupFailure("the Genesys sandbox did not start")
#: The synthetic agent run this control started (``start_agents``' answer), if any.
_agents: dict[str, Any] | None = None
_MODES = ("resilient", "naive")


def running_sandbox() -> Sandbox | None:
    """The sandbox this control started in this process, if it is running."""
    return _running


@substitutes_own_arguments
def configure_control(
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: dict[str, Any] | None = None,
    experiment: Experiment = None,
    seed: str | dict[str, Any] | None = None,
    port: int = 0,
    heartbeat_interval: float = 30.0,
    rate_limit_per_minute: int = 300,
    session_grace_seconds: float | None = None,
    presence_renew_seconds: float | None = None,
    renew_on_queue: bool | None = None,
    agents: list[str] | None = None,
    agent_options: dict[str, Any] | None = None,
    desktop_token_lifetime: int = 0,
) -> None:
    """Start the sandbox, point the experiment's configuration at it, start ``agents``.

    Chaos Toolkit only logs an exception raised here (at debug level) and runs on, so the error
    is also logged and kept: :func:`before_experiment_control` then stops the run before any
    activity, with the reason.
    """
    global _running
    with _startup.remembering("The Genesys sandbox control could not start"):
        _check_arguments(
            {
                "seed": seed,
                "port": port,
                "heartbeat_interval": heartbeat_interval,
                "rate_limit_per_minute": rate_limit_per_minute,
                "session_grace_seconds": session_grace_seconds,
                "presence_renew_seconds": presence_renew_seconds,
                "renew_on_queue": renew_on_queue,
                "desktop_token_lifetime": desktop_token_lifetime,
            }
        )
        mode = _check_agents(configuration, agents, agent_options)
        from chaosgenesys.platform.settings import register_default_credentials
        from chaosgenesys.sandbox import Sandbox

        with _lock:
            _stop_running()
            try:
                sandbox = Sandbox(
                    seed=seed,
                    port=port,
                    heartbeat_interval=heartbeat_interval,
                    rate_limit_per_minute=rate_limit_per_minute,
                    session_grace_seconds=session_grace_seconds,
                    presence_renew_seconds=presence_renew_seconds,
                    renew_on_queue=renew_on_queue,
                )
            except ValueError as error:
                if type(error) is not ValueError:  # SeedError and friends: keep their type
                    raise
                raise ActivityFailed(f"sandbox control: {error}") from None
            sandbox.start()  # a failure is logged by _startup.remembering
            if desktop_token_lifetime:
                from chaosgenesys.sandbox.seed import DESKTOP_CLIENT_ID

                sandbox.set_token_lifetime(DESKTOP_CLIENT_ID, int(desktop_token_lifetime))
            _running = sandbox
        if configuration is not None:
            for key in ("genesys_api_url", "genesys_login_url"):
                previous = configuration.get(key)
                if previous and previous != sandbox.url:
                    logger.info("Sandbox control: %s %s replaced by the sandbox", key, previous)
                configuration[key] = sandbox.url
        register_default_credentials(sandbox.url, sandbox.client_id, sandbox.client_secret)
        logger.info("Genesys sandbox running at %s", sandbox.url)
        if agents:
            _start_agents(agents, mode, agent_options, configuration, secrets)


def before_experiment_control(context: Experiment = None, **kwargs: Any) -> None:
    """Stop the run, before anything executes, when the sandbox could not start."""
    _startup.refuse_if_failed()



#: The control's own arguments (``configure_control``'s, beside what Chaos Toolkit passes).
ARGUMENTS = (
    "seed",
    "port",
    "heartbeat_interval",
    "rate_limit_per_minute",
    "session_grace_seconds",
    "presence_renew_seconds",
    "renew_on_queue",
    "agents",
    "agent_options",
    "desktop_token_lifetime",
)


def _check_arguments(values: dict[str, Any]) -> None:
    """The sandbox's own arguments among ``values``, each checked by name (``None``: left to
    the seed), ActivityFailed naming the first that is wrong."""
    seed = values.get("seed")
    if seed is not None and not isinstance(seed, str | dict):
        kind = type(seed).__name__
        raise ActivityFailed(f"seed must be a path to a seed file or an inline mapping, got {kind}")
    if "port" in values:
        require_int("port", values["port"], maximum=65535)
    if "heartbeat_interval" in values:
        require_number("heartbeat_interval", values["heartbeat_interval"], exclusive_minimum=True)
    if "rate_limit_per_minute" in values:
        require_int("rate_limit_per_minute", values["rate_limit_per_minute"])
    for name in ("session_grace_seconds", "presence_renew_seconds"):
        if values.get(name) is not None:
            require_number(name, values[name])
    if values.get("renew_on_queue") is not None:
        require_bool("renew_on_queue", values["renew_on_queue"])
    if values.get("desktop_token_lifetime"):
        require_int(
            "desktop_token_lifetime", values["desktop_token_lifetime"], minimum=1,
            maximum=48 * 3600,
        )


def validate_control(control: dict[str, Any]) -> None:
    """``chaos validate``: the arguments are known and, those that are not ``${...}``
    substitutions, well formed (a seed file that is not there is named too)."""
    from pathlib import Path

    arguments = (control.get("provider") or {}).get("arguments") or {}
    if not isinstance(arguments, dict):
        raise InvalidControl("sandbox control: arguments must be a mapping")
    unknown = set(arguments) - set(ARGUMENTS)
    if unknown:
        raise InvalidControl(
            f"sandbox control: unknown argument(s) {', '.join(sorted(unknown))} "
            f"(known: {', '.join(ARGUMENTS)})"
        )
    given = {name: value for name, value in arguments.items() if "${" not in str(value)}
    try:
        _check_arguments(given)
        _check_agent_arguments(given.get("agents"), given.get("agent_options"))
    except ActivityFailed as error:
        raise InvalidControl(f"sandbox control: {error}") from None
    seed = given.get("seed")
    if isinstance(seed, str) and not Path(seed).is_file():
        raise InvalidControl(
            f"sandbox control: seed {seed!r} is not a file (a path is read from the directory "
            f"chaos runs in, {Path.cwd()})"
        )


def _check_agent_arguments(agents: Any, agent_options: Any) -> None:
    """``agents`` a list of user ids and ``agent_options`` a mapping, each when given."""
    if agents is not None and (
        not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents)
    ):
        raise ActivityFailed(f"agents must be a list of user ids, got {agents!r}")
    if agent_options is not None and not isinstance(agent_options, dict):
        raise ActivityFailed(f"agent_options must be a mapping, got {agent_options!r}")


def _check_agents(configuration: Configuration, agents: Any, agent_options: Any) -> str:
    """The agent mode (from the configuration), after checking the agent arguments."""
    mode = (configuration or {}).get("agent_mode") or "resilient"
    if not agents:
        return str(mode)
    _check_agent_arguments(agents, agent_options)
    if mode not in _MODES:
        raise ActivityFailed(
            f"configuration agent_mode must be one of {', '.join(_MODES)}, got {mode!r}"
        )
    return str(mode)


def _start_agents(
    agents: list[str],
    mode: str,
    options: dict[str, Any] | None,
    configuration: Configuration,
    secrets: Secrets,
) -> None:
    global _agents
    from chaosgenesys.agent.actions import start_agents

    try:
        run = start_agents(
            agents,
            mode=mode,
            options=dict(options or {}),
            configuration=configuration,
            secrets=secrets,
        )
    except Exception as error:
        logger.error("Sandbox control: the synthetic agents could not start: %s", error)
        with _lock:
            _stop_running()
        raise
    with _lock:
        _agents = run
    logger.info(
        "Sandbox control: %d synthetic agent(s) running in %s mode (run %s)",
        len(agents),
        mode,
        run.get("id"),
    )


def running_agents() -> dict[str, Any] | None:
    """The synthetic agent run this control started (``start_agents``' answer), if any."""
    return _agents


def after_experiment_control(**kwargs: Any) -> None:
    """Stop the agents and the sandbox once the experiment, its rollbacks included, has run."""
    with _lock:
        _stop_running()


def cleanup_control() -> None:
    """Stop the sandbox if it still runs (Chaos Toolkit calls this even on interruption)."""
    with _lock:
        _stop_running()


def _stop_running() -> None:
    global _running, _agents
    agents, _agents = _agents, None
    # Only the agent run this control started: stop_agents without a run id would stop every
    # run's agents, another experiment's included.
    if agents is not None and agents.get("id"):
        from chaosgenesys.agent.actions import stop_agents

        try:
            stop_agents(str(agents["id"]))
        except Exception as error:  # the sandbox must stop even so
            logger.error("Sandbox control: could not stop the synthetic agents: %s", error)
        else:
            logger.info("Sandbox control: synthetic agents (run %s) stopped", agents.get("id"))
    sandbox, _running = _running, None
    if sandbox is None:
        return
    from chaosgenesys.platform.settings import clear_default_credentials

    clear_default_credentials(sandbox.url)
    sandbox.stop()
    logger.info("Genesys sandbox at %s stopped", sandbox.url)
