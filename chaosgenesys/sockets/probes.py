"""Socket probes: which TCP connections to a destination are established right now.

Use them around :mod:`chaosgenesys.sockets.actions`: before a reset (the agent holds its
WebSocket), and after it (the agent reconnected: a new connection, from a new local port).
Reading sock_diag needs no privilege in this process's namespace; entering another ``netns``
needs root. Importing this module imports no netlink library.
"""

import os
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_int, require_text
from chaosgenesys.network.arguments import resolve_netns
from chaosgenesys.sockets.targets import parse_target

__all__ = ["list_connections"]


def list_connections(
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    ports: list[str] = [],  # noqa: B006
    exclude: list[str] = [],  # noqa: B006
    pid: int = 0,
    netns: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Established TCP connections whose remote end matches ``destinations``/``ports``.

    Same targeting as :func:`chaosgenesys.sockets.actions.reset_connections`. Returns
    ``{"count": N, "connections": [{"family", "state", "local", "remote", "uid", "inode"}]}``.

    ```json
    {"type": "probe", "name": "agent-websocket-is-up",
     "tolerance": {"type": "jsonpath", "path": "$.count", "expect": 1},
     "provider": {"type": "python", "module": "chaosgenesys.sockets.probes",
                  "func": "list_connections",
                  "arguments": {"destinations": ["127.0.0.1"], "ports": ["443"]}}}
    ```
    """
    target = parse_target(destinations, ports, exclude)
    owner = require_int("pid", pid, minimum=0)
    namespace = require_text("netns", netns, allow_empty=True).strip()
    if owner and not os.path.isdir(f"/proc/{owner}"):
        raise ActivityFailed(f"pid: no process {owner} is running")
    netns_path = resolve_netns(namespace)
    if owner and netns_path is None:
        netns_path = f"/proc/{owner}/ns/net"

    from chaosgenesys.sockets import diag

    inodes = diag.socket_inodes(owner) if owner else None
    try:
        found = diag.list_tcp(
            netns_path,
            predicate=lambda s: (
                (inodes is None or s.inode in inodes)
                and target.matches_raw(s.family, s.remote_raw, s.remote_port)
            ),
        )
    except OSError as error:
        raise ActivityFailed(f"list_connections could not list TCP sockets: {error}") from None
    return {"count": len(found), "connections": [s.to_dict() for s in found]}
