"""A ``netns`` that is not a network namespace is refused, named, before anything is recorded.

``/etc/passwd`` (not a namespace file at all) and ``/proc/self/ns/uts`` (a namespace, of another
type) used to reach ``setns`` and fail there with a bare ``OSError``; ``reject_connections``
recorded its window first, and that record could never be reverted. Every action and probe that
takes ``netns`` now answers ActivityFailed naming the argument and the value, and the fault
registry stays empty.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network import actions, probes
from chaosgenesys.network.arguments import resolve_netns
from chaosgenesys.sockets import actions as socket_actions
from chaosgenesys.sockets import probes as socket_probes

NOT_NETWORK = ["/etc/passwd", "/proc/self/ns/uts", "/dev/null", "/tmp"]
TARGET: dict[str, Any] = {"destinations": ["10.251.0.1"], "ports": ["443"]}

CALLS: dict[str, Callable[[str], Any]] = {
    "add_latency": lambda ns: actions.add_latency(50, interface="lo", netns=ns, **TARGET),
    "apply_netem": lambda ns: actions.apply_netem(delay_ms=50, interface="lo", netns=ns),
    "add_packet_loss": lambda ns: actions.add_packet_loss(10, interface="lo", netns=ns, **TARGET),
    "add_packet_loss_nft": lambda ns: actions.add_packet_loss(
        10, method="nftables", interface="lo", netns=ns, **TARGET
    ),
    "throttle_bandwidth": lambda ns: actions.throttle_bandwidth(
        "1mbit", interface="lo", netns=ns, **TARGET
    ),
    "blackhole": lambda ns: actions.blackhole(interface="lo", netns=ns, **TARGET),
    "reset_connections": lambda ns: socket_actions.reset_connections(netns=ns, **TARGET),
    "reject_connections": lambda ns: socket_actions.reject_connections(
        netns=ns, duration=30, **TARGET
    ),
    "list_connections": lambda ns: socket_probes.list_connections(netns=ns, **TARGET),
    "list_faults": lambda ns: probes.list_faults(netns=ns),
    "measure_udp": lambda ns: probes.measure_udp("10.251.0.1", 20000, count=1, netns=ns),
    "measure_tcp": lambda ns: probes.measure_tcp("10.251.0.1", 443, count=1, netns=ns),
    "measure_http": lambda ns: probes.measure_http("http://10.251.0.1:80/", count=1, netns=ns),
}


def _recorded(directory: Path) -> list[dict[str, Any]]:
    from chaosgenesys.faults import registry

    return [fault.to_dict() for fault in registry.Registry(directory).active()]


@pytest.mark.parametrize("netns", NOT_NETWORK)
@pytest.mark.parametrize("name", sorted(CALLS))
def test_a_file_that_is_no_network_namespace_is_refused_and_nothing_recorded(
    name: str, netns: str, registry_dir: Path
) -> None:
    with pytest.raises(ActivityFailed) as caught:
        CALLS[name](netns)
    message = str(caught.value)
    assert f"netns {netns!r} is not a network namespace" in message
    assert _recorded(registry_dir) == []
    assert not list(registry_dir.glob("*.json"))


def test_the_namespace_type_is_named() -> None:
    with pytest.raises(ActivityFailed, match=r"/proc/self/ns/uts is a uts namespace"):
        resolve_netns("/proc/self/ns/uts")
    with pytest.raises(ActivityFailed, match=r"/etc/passwd is not a namespace file"):
        resolve_netns("/etc/passwd")


def test_a_network_namespace_path_and_name_are_accepted(lab: dict[str, Any]) -> None:
    assert resolve_netns("/proc/self/ns/net") == "/proc/self/ns/net"
    assert resolve_netns(lab["netns"]) == f"/run/netns/{lab['netns']}"
    assert resolve_netns("") is None


def test_a_stale_name_under_run_netns_is_refused(tmp_path: Path) -> None:
    """A plain file under /run/netns (left by a failed ``ip netns add``) is no namespace."""
    run = Path("/run/netns")
    run.mkdir(parents=True, exist_ok=True)
    stale = run / f"cgstale{tmp_path.name[-6:].replace('_', '')}"
    stale.write_text("")
    try:
        with pytest.raises(ActivityFailed, match="is not a network namespace"):
            resolve_netns(stale.name)
    finally:
        stale.unlink()


def test_start_agents_refuses_a_netns_that_is_not_a_named_network_namespace(
    tmp_path: Path, registry_dir: Path
) -> None:
    """The agents run under ``ip netns exec NAME``: a path is refused, and so is a name under
    /run/netns that is not a network namespace; no agent run is started or recorded."""
    from chaosgenesys.agent import actions as agent_actions

    start = agent_actions.start_agents
    with pytest.raises(ActivityFailed, match=r"netns must be the name of a namespace"):
        start(["u1"], netns="/proc/self/ns/uts")
    run = Path("/run/netns")
    run.mkdir(parents=True, exist_ok=True)
    stale = run / f"cgagent{tmp_path.name[-6:].replace('_', '')}"
    stale.write_text("")
    try:
        with pytest.raises(ActivityFailed, match=r"is not a network namespace"):
            start(["u1"], netns=stale.name)
    finally:
        stale.unlink()
    assert _recorded(registry_dir) == []
