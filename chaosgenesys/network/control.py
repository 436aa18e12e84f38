"""Chaos Toolkit control: a private test network for one experiment (examples, CI).

Creates the two namespaces of ``chaosgenesys.network.actions.create_test_network`` before the
experiment (echo servers included) and, after it (also on interruption: ``cleanup_control``),
reverts every network fault recorded in them and deletes them. Needs root::

    controls:
      - name: network-lab
        provider:
          type: python
          module: chaosgenesys.network.control
          arguments: {name: cgrtp, udp_ports: [20000], tcp_ports: [443]}
"""

import contextlib
import threading
from typing import Any

from chaoslib.types import Configuration, Experiment, Secrets

__all__ = ["after_experiment_control", "cleanup_control", "configure_control"]

_lock = threading.Lock()
_labs: list[str] = []


def configure_control(
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: dict[str, Any] | None = None,
    experiment: Experiment = None,
    name: str = "cglab",
    udp_ports: list[int] | None = None,
    tcp_ports: list[int] | None = None,
    **kwargs: Any,
) -> None:
    """Create the test network when the control is loaded."""
    from chaosgenesys.network.actions import create_test_network

    create_test_network(name, [str(p) for p in udp_ports or []], [str(p) for p in tcp_ports or []])
    with _lock:
        _labs.append(name)


def after_experiment_control(**kwargs: Any) -> None:
    """Revert the network faults of the test network, then delete it."""
    _tear_down()


def cleanup_control() -> None:
    """Same as :func:`after_experiment_control` (Chaos Toolkit calls it even on SIGINT)."""
    _tear_down()


def _tear_down() -> None:
    from chaosgenesys.network import lab
    from chaosgenesys.network.actions import remove_faults

    with _lock:
        names, _labs[:] = list(_labs), []
    for name in names:
        with contextlib.suppress(Exception):
            remove_faults(netns=f"{name}-a")
        lab.delete(name)
