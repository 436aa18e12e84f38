"""Chaos Toolkit control: a private test network for one experiment (examples, CI).

Creates the two namespaces of ``chaosgenesys.network.actions.create_test_network`` before the
experiment (echo servers included) and, after it (also on interruption: ``cleanup_control``),
reverts every network fault this run recorded in them and deletes them. Needs root::

    controls:
      - name: network-lab
        provider:
          type: python
          module: chaosgenesys.network.control
          arguments: {name: cgrtp, udp_ports: [20000], tcp_ports: [443]}

**The workstation and the Genesys Cloud edge.** With ``edge_port`` the lab also gets an edge: a
TCP relay listening on that port in ``<name>-b`` (10.200.0.2, fd42::2) that forwards to the
Genesys API of the experiment's configuration (``genesys_api_url``, which the
``chaosgenesys.controls.sandbox`` control sets to the embedded sandbox: declare that control
first). With ``agents`` (user ids) the control then starts synthetic agent desktops in
``<name>-a``, the workstation, pointed at the edge (``http://10.200.0.2:<edge_port>``), and stops
them after the experiment and on interruption. The agents' HTTP and WebSocket traffic crosses
``veth-a`` in ``<name>-a``, where network faults apply, and ends at the edge as it ends at
Genesys Cloud's load balancers; the sandbox, and every probe that reads it from the chaos
process (the API as the source of truth), stay on the host's loopback and see no fault::

    controls:
      - name: genesys-sandbox          # first: it sets genesys_api_url
        provider: {type: python, module: chaosgenesys.controls.sandbox,
                   arguments: {seed: examples/seed.yaml, heartbeat_interval: 1.0}}
      - name: network-lab
        provider:
          type: python
          module: chaosgenesys.network.control
          arguments:
            name: cgl1
            udp_ports: [20000]
            edge_port: 443
            agents: ["0b6b3c5e-0000-4000-8000-000000000001"]
            agent_options: {ping_interval: 1, heartbeat_interval: 1}

The agents' mode is the configuration key ``agent_mode`` (``resilient`` default, or ``naive``),
as for the sandbox control. The arguments take ``${key}`` forms from the configuration and
secrets, as the sandbox control's do: ``name: ${lab_name}`` with ``lab_name`` in the
configuration lets two runs of one experiment on one machine use two labs
(``chaos run --var lab_name=cgl2 ...``).

Why this control lives in ``network/`` and not in ``controls/`` with the others: experiment
files name it by this module path (``chaosgenesys.network.control``), which is part of the
public contract, and it is the lab's own lifecycle, beside ``lab.py``. In this package
"control" means a Chaos Toolkit control; the proxy's process and its HTTP endpoint are "the
proxy" and "its control endpoint" (``proxy/control.py``, ``proxy/control_server.py``).
"""

import contextlib
import logging
import threading
import urllib.parse
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Experiment, Secrets

from chaosgenesys.arguments import substitutes_own_arguments
from chaosgenesys.controls.startup import StartupFailure

__all__ = [
    "after_experiment_control",
    "before_experiment_control",
    "cleanup_control",
    "configure_control",
    "lab_state",
]

logger = logging.getLogger("chaostoolkit")

_lock = threading.Lock()
_labs: list[str] = []
#: Agent run ids (``start_agents``' answer ``id``) this control started.
_agent_runs: list[str] = []
_state: dict[str, dict[str, Any]] = {}
_MODES = ("resilient", "naive")
#: What stopped the last configure_control, for before_experiment_control.
_startup = StartupFailure("the network lab was not created")


def lab_state() -> dict[str, dict[str, Any]]:
    """The labs this control created in this process: namespaces, edge, agent run (by name)."""
    with _lock:
        return {name: dict(value) for name, value in _state.items()}


@substitutes_own_arguments
def configure_control(
    configuration: Configuration = None,
    secrets: Secrets = None,
    settings: dict[str, Any] | None = None,
    experiment: Experiment = None,
    name: str = "cglab",
    udp_ports: list[int] | None = None,
    tcp_ports: list[int] | None = None,
    edge_port: int = 0,
    agents: list[str] | None = None,
    agent_options: dict[str, Any] | None = None,
    **kwargs: Any,
) -> None:
    """Create the test network (and its edge and agents) when the control is loaded.

    Chaos Toolkit only logs an exception raised here (at debug level) and runs on, so the error
    is also logged and kept: :func:`before_experiment_control` then stops the run before any
    activity, with the reason (a run without its lab would measure nothing).
    """
    with _startup.remembering("The network lab control could not create its lab"):
        _configure(
            configuration, secrets, name, udp_ports, tcp_ports, edge_port, agents, agent_options
        )


def before_experiment_control(context: Experiment = None, **kwargs: Any) -> None:
    """Stop the run, before anything executes, when the lab could not be created."""
    _startup.refuse_if_failed()



def _configure(
    configuration: Configuration,
    secrets: Secrets,
    name: Any,
    udp_ports: Any,
    tcp_ports: Any,
    edge_port: Any,
    agents: Any,
    agent_options: Any,
) -> None:
    from chaosgenesys.network import lab
    from chaosgenesys.network.actions import create_test_network

    target, mode = _check(configuration, edge_port, agents, agent_options)
    for argument, value in (("udp_ports", udp_ports), ("tcp_ports", tcp_ports)):
        if value is not None and not isinstance(value, list):
            raise ActivityFailed(f"{argument} must be a list of port numbers, got {value!r}")
    with _lock:
        _labs.append(name)
    try:
        state = create_test_network(
            name, [str(p) for p in udp_ports or []], [str(p) for p in tcp_ports or []]
        )
        if target is not None:
            edge = lab.start_edge(name, edge_port, target)
            state["edge"] = edge
            logger.info(
                "Network lab %s: edge %s in %s relays to %s",
                name,
                edge["url"],
                edge["netns"],
                edge["target"],
            )
            if agents:
                state["agents"] = _start_agents(
                    name, edge["url"], agents, mode, agent_options, configuration, secrets
                )
        with _lock:
            _state[name] = state
    except BaseException:
        _tear_down()
        raise


def _check(
    configuration: Configuration, edge_port: Any, agents: Any, agent_options: Any
) -> tuple[tuple[str, int] | None, str]:
    """The edge's target (host, port) from ``genesys_api_url`` and the agents' mode."""
    if isinstance(edge_port, bool) or not isinstance(edge_port, int) or not 0 <= edge_port < 65536:
        raise ActivityFailed(f"edge_port must be a port number (0 = no edge), got {edge_port!r}")
    if agents and not edge_port:
        raise ActivityFailed("agents need an edge to talk to: set edge_port (e.g. 443)")
    if agents is not None and (
        not isinstance(agents, list) or not all(isinstance(a, str) and a for a in agents)
    ):
        raise ActivityFailed(f"agents must be a list of user ids, got {agents!r}")
    if agent_options is not None and not isinstance(agent_options, dict):
        raise ActivityFailed(f"agent_options must be a mapping, got {agent_options!r}")
    mode = str((configuration or {}).get("agent_mode") or "resilient")
    if mode not in _MODES:
        raise ActivityFailed(f"configuration agent_mode must be one of {_MODES}, got {mode!r}")
    if not edge_port:
        return None, mode
    api = str((configuration or {}).get("genesys_api_url") or "")
    login = str((configuration or {}).get("genesys_login_url") or api)
    parts = urllib.parse.urlsplit(api)
    if parts.scheme != "http" or not parts.hostname or not parts.port:
        raise ActivityFailed(
            "network lab edge: genesys_api_url must be the http://host:port of the embedded "
            f"sandbox (declare the chaosgenesys.controls.sandbox control first), got {api!r}"
        )
    if login.rstrip("/") != api.rstrip("/"):
        raise ActivityFailed(
            f"network lab edge: genesys_login_url ({login!r}) must be genesys_api_url ({api!r})"
        )
    return (parts.hostname, parts.port), mode


def _start_agents(
    name: str,
    edge_url: str,
    agents: list[str],
    mode: str,
    options: dict[str, Any] | None,
    configuration: Configuration,
    secrets: Secrets,
) -> dict[str, Any]:
    """Synthetic agents in ``<name>-a`` that reach Genesys (the sandbox) through the edge."""
    from chaosgenesys.agent.actions import start_agents
    from chaosgenesys.platform.settings import settings_from

    settings = settings_from(configuration, secrets)  # the sandbox's credentials
    through_edge = dict(configuration or {})
    through_edge.pop("genesys_region", None)
    through_edge["genesys_api_url"] = through_edge["genesys_login_url"] = edge_url
    run = start_agents(
        agents,
        mode=mode,
        netns=f"{name}-a",
        options=dict(options or {}),
        configuration=through_edge,
        secrets={"client_id": settings.client_id, "client_secret": settings.client_secret},
    )
    with _lock:
        _agent_runs.append(str(run["id"]))
    logger.info(
        "Network lab %s: %d synthetic agent(s) in %s-a through %s (run %s)",
        name,
        len(agents),
        name,
        edge_url,
        run["id"],
    )
    return run


def after_experiment_control(**kwargs: Any) -> None:
    """Stop the lab's agents, revert the network faults of the test network, delete it."""
    _tear_down()


def cleanup_control() -> None:
    """Same as :func:`after_experiment_control` (Chaos Toolkit calls it even on SIGINT)."""
    _tear_down()


def _tear_down() -> None:
    from chaosgenesys.network import lab
    from chaosgenesys.network.actions import remove_faults

    with _lock:
        names, _labs[:] = list(_labs), []
        runs, _agent_runs[:] = list(_agent_runs), []
        _state.clear()
    if runs:
        from chaosgenesys.agent.actions import stop_agents

        for run in runs:
            try:
                stop_agents(run)
            except Exception as error:  # the namespaces must go even so
                logger.error("Network lab: could not stop the synthetic agents %s: %s", run, error)
    for name in names:
        with contextlib.suppress(Exception):
            # This run's faults only: the lab is this run's, but another run's fault recorded
            # in it is that run's to revert (its reverter copes with the namespace gone).
            remove_faults(netns=f"{name}-a", scope="run")
        lab.delete(name)
