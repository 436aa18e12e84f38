"""chaosgenesys: a Chaos Toolkit extension for the Genesys Cloud agent desktop.

Experiments reference activities by module path, for example::

    {
      "type": "probe",
      "name": "agent-is-on-queue",
      "provider": {
        "type": "python",
        "module": "chaosgenesys.users.probes",
        "func": "presence_is",
        "arguments": {"user_id": "${agent_id}", "expected": "On Queue"}
      }
    }

Importing this package is cheap: it pulls in no HTTP, netlink or proxy library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from chaoslib.types import DiscoveredActivities, Discovery

__all__ = ["ACTION_MODULES", "PROBE_MODULES", "__version__", "discover", "load_exported_activities"]
__version__ = "0.1.0"

#: Modules whose public functions are Chaos Toolkit actions.
ACTION_MODULES: tuple[str, ...] = (
    "chaosgenesys.users.actions",
    "chaosgenesys.auth.actions",
    "chaosgenesys.sandbox.actions",
    "chaosgenesys.faults.actions",
    "chaosgenesys.agent.actions",
    "chaosgenesys.network.actions",
    "chaosgenesys.proxy.actions",
    "chaosgenesys.sockets.actions",
    "chaosgenesys.browser.actions",
)

#: Modules whose public functions are Chaos Toolkit probes.
PROBE_MODULES: tuple[str, ...] = (
    "chaosgenesys.users.probes",
    "chaosgenesys.conversations.probes",
    "chaosgenesys.routing.probes",
    "chaosgenesys.auth.probes",
    "chaosgenesys.notifications.probes",
    "chaosgenesys.faults.probes",
    "chaosgenesys.agent.probes",
    "chaosgenesys.network.probes",
    "chaosgenesys.proxy.probes",
    "chaosgenesys.sockets.probes",
    "chaosgenesys.browser.probes",
    "chaosgenesys.protocol.probes",
)


def discover(discover_system: bool = True) -> Discovery:
    """Describe the extension and every activity it exports (``chaos discover``)."""
    from chaoslib.discovery.discover import initialize_discovery_result

    discovery: Discovery = initialize_discovery_result("chaosgenesys", __version__, "genesys")
    discovery["activities"].extend(load_exported_activities())
    return discovery


def load_exported_activities() -> list[DiscoveredActivities]:
    """Every activity of the extension, probes typed as probes and actions as actions."""
    from chaoslib.discovery.discover import discover_actions, discover_probes

    activities: list[DiscoveredActivities] = []
    for module in ACTION_MODULES:
        activities.extend(discover_actions(module))
    for module in PROBE_MODULES:
        activities.extend(discover_probes(module))
    return activities
