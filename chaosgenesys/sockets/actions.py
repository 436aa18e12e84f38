"""Socket faults: reset live TCP connections, and reject new ones for a while.

The guide's Layer 3: cut the agent desktop's signaling channel (the notification WebSocket on
TCP 443) while the network stays up, and watch it reconnect with backoff instead of going zombie.

- :func:`reset_connections` destroys established TCP sockets with ``SOCK_DESTROY`` (sock_diag
  netlink, as ``ss -K`` does): the peer receives a real RST and the local owner's next call fails
  with ``ECONNABORTED``. Nothing is left behind, so nothing is recorded.
- :func:`reject_connections` answers new TCP connections with a reset for ``duration`` seconds
  (an nftables table of ours): reconnect attempts fail at once until the window ends. The window
  is recorded in the fault registry before it is applied and the guardian removes it at the
  deadline, even if the run dies; :func:`remove_rejections` ends windows early.

Targeting, as every network and socket action: ``destinations`` (CIDRs, addresses or host names,
IPv4 and IPv6), ``exclude``, ``ports`` (``"443"``, ``"16384-32768"`` or lists) and ``netns``.
Ports are the remote end's (the server port of an outgoing connection). One of ``destinations``
or ``ports`` is required: these actions never hit every connection of a host by accident.

Both need root (``CAP_NET_ADMIN``). Importing this module imports no netlink library.
"""

import errno
import os
import uuid
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_bool, require_int, require_number, require_text
from chaosgenesys.network.arguments import parse_direction, resolve_netns
from chaosgenesys.sockets.targets import parse_target

__all__ = ["reject_connections", "remove_rejections", "reset_connections"]

#: The fault registry's ``kind`` of a reject window.
REJECT_KIND = "nft-reject"
REJECT_REVERTER = "chaosgenesys.sockets.reject:revert"
#: Longest reject window: one day.
MAX_DURATION = 86_400.0
#: SOCK_DESTROY outcomes that are not failures: done, and gone by itself (ENOENT; ESTALE: the
#: socket was closed and its address reused by a new one, which is left alone).
_GONE = (0, errno.ENOENT, errno.ESTALE)
#: The reset sockets listed in full in the result; the count is always exact.
MAX_LISTED = 1000


def _need_net_admin(action: str) -> None:
    from chaosgenesys.network.engine import check_capability

    check_capability(action)


def reset_connections(
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    ports: list[str] = [],  # noqa: B006
    exclude: list[str] = [],  # noqa: B006
    pid: int = 0,
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Reset established TCP connections to ``destinations``/``ports``: the peer gets a real RST.

    Every established TCP socket whose remote end matches (an address in ``destinations`` and
    not in ``exclude``, a port in ``ports``) is destroyed through sock_diag ``SOCK_DESTROY``.
    ``pid`` limits the reset to the sockets that process holds (and, unless ``netns`` is given,
    looks in that process's network namespace). ``netns`` is a namespace name (``ip netns``) or
    a path such as ``/proc/PID/ns/net``. ``dry_run`` lists what would be reset and resets nothing.

    Returns ``{"reset": [{"family", "state", "local", "remote", "uid", "inode"}, ...],
    "count": N, "vanished": M, "target": {...}, "netns": ..., "dry_run": ...}`` where
    ``vanished`` counts sockets that closed by themselves before they could be reset.

    ```json
    {"type": "action", "name": "reset-agent-websocket",
     "provider": {"type": "python", "module": "chaosgenesys.sockets.actions",
                  "func": "reset_connections",
                  "arguments": {"destinations": ["api.mypurecloud.com"], "ports": ["443"]}}}
    ```
    """
    target = parse_target(destinations, ports, exclude)
    owner = require_int("pid", pid, minimum=0)
    namespace = require_text("netns", netns, allow_empty=True).strip()
    dry = require_bool("dry_run", dry_run)
    if owner and not os.path.isdir(f"/proc/{owner}"):
        raise ActivityFailed(f"pid: no process {owner} is running")
    netns_path = resolve_netns(namespace)
    if owner and netns_path is None:
        netns_path = f"/proc/{owner}/ns/net"
    if not dry:
        _need_net_admin("reset_connections")

    from chaosgenesys.sockets import diag

    inodes: set[int] | None = None
    if owner:
        try:
            inodes = diag.socket_inodes(owner)
        except OSError as error:
            raise ActivityFailed(
                f"pid: cannot read the sockets of process {owner}: {error}"
            ) from None

    matches = target.raw_matcher

    def wanted(sock: diag.TcpSocket) -> bool:
        if inodes is not None and sock.inode not in inodes:
            return False
        return matches(sock.family, sock.remote_raw, sock.remote_port)

    vanished = 0
    try:
        with diag.session(netns_path) as sock:
            found = diag.list_tcp(predicate=wanted, remote_ports=target.ports, sock=sock)
            results = diag.destroy(found, sock=sock) if found and not dry else {}
    except OSError as error:
        raise ActivityFailed(f"reset_connections: sock_diag failed: {error}") from None
    reset = found
    if results:
        refused = {code for code in results.values() if code not in _GONE}
        if refused and all(code != 0 for code in results.values()):
            code = sorted(refused)[0]
            hint = {
                errno.EPERM: "CAP_NET_ADMIN is needed in the sockets' network namespace",
                errno.EACCES: "CAP_NET_ADMIN is needed in the sockets' network namespace",
                errno.EOPNOTSUPP: "the kernel lacks CONFIG_INET_DIAG_DESTROY",
            }.get(code, os.strerror(code))
            raise ActivityFailed(
                f"reset_connections: the kernel refused SOCK_DESTROY "
                f"({diag.errno_name(code)}: {hint}); nothing was reset"
            )
        reset = [s for i, s in enumerate(found) if results.get(i) == 0]
        vanished = sum(1 for code in results.values() if code in _GONE and code)
        failed = [
            f"{found[i].remote} ({diag.errno_name(code)})"
            for i, code in results.items()
            if code not in _GONE
        ]
        if failed:
            raise ActivityFailed(
                f"reset_connections reset {len(reset)} connection(s) but the kernel refused "
                f"{len(failed)}: {', '.join(failed[:10])}"
            )
    return {
        "reset": [s.to_dict() for s in reset[:MAX_LISTED]],
        "count": len(reset),
        "vanished": vanished,
        "target": {**target.to_dict(), "pid": owner or None},
        "netns": namespace or None,
        "dry_run": dry,
    }


def reject_connections(
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    ports: list[str] = [],  # noqa: B006
    duration: float = 30.0,
    exclude: list[str] = [],  # noqa: B006
    direction: str = "egress",
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Reject new TCP connections to ``destinations``/``ports`` with a reset for ``duration`` s.

    Connection attempts (a SYN without ACK) that match are answered with a TCP reset, so the
    client's ``connect()`` fails at once (``ECONNREFUSED``) and a desktop's reconnect attempts
    fail until the window ends; established connections are untouched (reset them first with
    :func:`reset_connections`). ``direction``: ``egress`` (connections opened from this host or
    the namespaces it routes, towards the destinations; ``ports`` are the remote ports),
    ``ingress`` (connections the destinations open to local ``ports``) or ``both``.

    The window is an nftables table of its own (``inet chaosgenesys_reject_<id>``), recorded in
    the fault registry before it is applied; the guardian deletes it ``duration`` seconds later,
    or as soon as the process that made it is gone. This action returns at once. ``dry_run``
    returns the nftables document and changes nothing.

    Returns ``{"fault_id", "table", "duration", "deadline", "target", "direction", "netns"}``.

    ```json
    {"type": "action", "name": "agent-cannot-reconnect-for-20s",
     "provider": {"type": "python", "module": "chaosgenesys.sockets.actions",
                  "func": "reject_connections",
                  "arguments": {"destinations": ["api.mypurecloud.com"], "ports": ["443"],
                                "duration": 20}}}
    ```
    """
    target = parse_target(destinations, ports, exclude)
    seconds = require_number(
        "duration", duration, minimum=0.0, maximum=MAX_DURATION, exclusive_minimum=True
    )
    direction = parse_direction(direction)
    namespace = require_text("netns", netns, allow_empty=True).strip()
    dry = require_bool("dry_run", dry_run)
    netns_path = resolve_netns(namespace)

    from chaosgenesys.sockets import reject

    table = reject.TABLE_PREFIX + uuid.uuid4().hex[:12]
    document = reject.table_json(table, target, direction)
    result: dict[str, Any] = {
        "fault_id": None,
        "table": f"{reject.FAMILY} {table}",
        "duration": seconds,
        "deadline": None,
        "target": target.to_dict(),
        "direction": direction,
        "netns": namespace or None,
        "dry_run": dry,
    }
    if dry:
        return {**result, "nftables": document}
    _need_net_admin("reject_connections")
    try:
        reject.require_nftables()
    except reject.NftError as error:
        raise ActivityFailed(f"reject_connections: {error}") from None

    from chaosgenesys.faults import registry

    where = f" in netns {namespace}" if namespace else ""
    fault = registry.record(
        kind=REJECT_KIND,
        description=(
            f"reject new TCP connections ({direction}) to "
            f"{', '.join(result['target']['destinations']) or 'any address'} "
            f"ports {', '.join(result['target']['ports']) or 'any'}{where} for {seconds:g} s"
        ),
        reverter=REJECT_REVERTER,
        spec={
            "table": table,
            "family": reject.FAMILY,
            "netns": namespace or None,
            "netns_path": netns_path,
        },
        duration=seconds,
    )
    with registry.undone_on_failure(fault.id):
        try:
            reject.apply(table, target, direction, netns_path)
        except reject.NftError as error:
            raise ActivityFailed(
                f"reject_connections: nft refused the rule, nothing was applied: {error}"
            ) from None
    return {**result, "fault_id": fault.id, "deadline": fault.deadline}


def remove_rejections(
    fault_id: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """End reject windows before their deadline: ``fault_id``'s (whichever run opened it), or,
    when empty, every one this run opened (another run's windows are left alone).

    Idempotent: a window already gone is not an error. Returns ``{"removed": [fault ids]}``.

    ```json
    {"type": "action", "name": "let-the-agent-reconnect",
     "provider": {"type": "python", "module": "chaosgenesys.sockets.actions",
                  "func": "remove_rejections"}}
    ```
    """
    wanted = require_text("fault_id", fault_id, allow_empty=True)
    from chaosgenesys.faults import registry

    removed: list[str] = []
    for fault in registry.active(kind=REJECT_KIND, scope="all" if wanted else "run"):
        if wanted and fault.id != wanted:
            continue
        if registry.revert(fault.id):
            removed.append(fault.id)
    return {"removed": removed}
