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
"""

from __future__ import annotations

import logging
import threading
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Experiment, Secrets

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.sandbox.runner import Sandbox

__all__ = ["after_experiment_control", "cleanup_control", "configure_control", "running_sandbox"]

logger = logging.getLogger("chaostoolkit")

_lock = threading.Lock()
_running: Sandbox | None = None


def running_sandbox() -> Sandbox | None:
    """The sandbox this control started in this process, if it is running."""
    return _running


def configure_control(
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: dict[str, Any] | None = None,
    experiment: Experiment = None,
    seed: str | dict[str, Any] | None = None,
    port: int = 0,
    heartbeat_interval: float = 30.0,
    rate_limit_per_minute: int = 300,
) -> None:
    """Start the sandbox and point the experiment's configuration at it."""
    global _running
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ActivityFailed(f"port must be an integer from 0 to 65535, got {port!r}")
    if seed is not None and not isinstance(seed, str | dict):
        raise ActivityFailed(
            f"seed must be a path to a seed file or an inline mapping, got {type(seed).__name__}"
        )
    from chaosgenesys.platform.settings import register_default_credentials
    from chaosgenesys.sandbox import Sandbox

    with _lock:
        _stop_running()
        sandbox = Sandbox(
            seed=seed,
            port=port,
            heartbeat_interval=heartbeat_interval,
            rate_limit_per_minute=rate_limit_per_minute,
        )
        try:
            sandbox.start()
        except Exception as error:
            logger.error("The Genesys sandbox could not start: %s", error)
            raise
        _running = sandbox
    if configuration is not None:
        for key in ("genesys_api_url", "genesys_login_url"):
            previous = configuration.get(key)
            if previous and previous != sandbox.url:
                logger.info("Sandbox control: %s %s replaced by the sandbox", key, previous)
            configuration[key] = sandbox.url
    register_default_credentials(sandbox.url, sandbox.client_id, sandbox.client_secret)
    logger.info("Genesys sandbox running at %s", sandbox.url)


def after_experiment_control(**kwargs: Any) -> None:
    """Stop the sandbox once the experiment, its rollbacks included, has run."""
    with _lock:
        _stop_running()


def cleanup_control() -> None:
    """Stop the sandbox if it still runs (Chaos Toolkit calls this even on interruption)."""
    with _lock:
        _stop_running()


def _stop_running() -> None:
    global _running
    sandbox, _running = _running, None
    if sandbox is None:
        return
    from chaosgenesys.platform.settings import clear_default_credentials

    clear_default_credentials(sandbox.url)
    sandbox.stop()
    logger.info("Genesys sandbox at %s stopped", sandbox.url)
