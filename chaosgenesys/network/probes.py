"""Network probes: what faults are active, whether the kernel has netem, measured RTT and loss.

Example::

    {
      "type": "probe",
      "name": "one-network-fault-active",
      "tolerance": {"type": "jsonpath", "path": "$.count", "expect": 1},
      "provider": {"type": "python", "module": "chaosgenesys.network.probes",
                   "func": "list_faults", "arguments": {"netns": "cglab-a"}}
    }

Importing this module does not import pyroute2 or open any socket.
"""

import subprocess
import sys
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_int, require_number, require_text
from chaosgenesys.network.arguments import resolve_netns

__all__ = ["list_faults", "measure_http", "measure_tcp", "measure_udp", "netem_supported"]

_NETEM_CHECK = """
import os, sys
os.unshare(os.CLONE_NEWNET)
from chaosgenesys.network import netem, tc
from chaosgenesys.network.nl import NetlinkError, RtSocket
spec = netem.NetemSpec(delay_ms=1)
with RtSocket() as sock:
    try:
        sock.batch([tc.qdisc(1, "netem", tc.handle(1), tc.TC_H_ROOT, spec.options(), "")])
    except NetlinkError as error:
        print(error.errno, error.strerror)
        sys.exit(3)
print("ok")
"""


def list_faults(
    interface: str = "",
    netns: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Network faults in the registry, and the kernel's view of the interface(s).

    Returns ``{"count": n, "faults": [records], "kernel": {interface: {"qdiscs": [...],
    "chaosgenesys_tree": bool, "fault_classes": [...]}}, "nftables_tables": [...]}``; netem
    qdiscs are decoded (``delay_ms``, ``loss_percent``...).
    """
    from chaosgenesys.faults import registry
    from chaosgenesys.network import nft, tc_state
    from chaosgenesys.network.reverters import NETWORK_REVERTERS

    interface = require_text("interface", interface, allow_empty=True)
    netns = require_text("netns", netns, allow_empty=True)
    resolve_netns(netns)
    faults = [
        f.to_dict()
        for f in registry.active()
        if f.reverter in NETWORK_REVERTERS
        and (not netns or (f.spec.get("netns") or "") == netns)
        and (not interface or f.spec.get("interface") == interface)
    ]
    kernel = tc_state.kernel_view(interface, netns)
    with tc_state.netns_context(netns):
        tables = nft.list_tables()
    return {"count": len(faults), "faults": faults, "kernel": kernel, "nftables_tables": tables}


def netem_supported(configuration: Configuration = None, secrets: Secrets = None) -> bool:
    """Whether this kernel can create a netem qdisc (tried in a throwaway network namespace).

    Example::

        {"type": "probe", "name": "kernel-has-netem", "tolerance": true,
         "provider": {"type": "python", "module": "chaosgenesys.network.probes",
                      "func": "netem_supported"}}
    """
    done = subprocess.run(
        [sys.executable, "-c", _NETEM_CHECK], capture_output=True, text=True, timeout=30
    )
    if done.returncode == 0:
        return True
    if done.returncode == 3:
        return False
    raise ActivityFailed(
        "netem_supported could not check (a new network namespace needs CAP_SYS_ADMIN): "
        + done.stderr.strip()[-500:]
    )


def measure_udp(
    address: str,
    port: int,
    count: int = 100,
    interval_ms: float = 10,
    size: int = 64,
    netns: str = "",
    timeout_ms: float = 1000,
    min_loss_percent: float = 0,
    max_loss_percent: float = 100,
    min_rtt_ms: float = 0,
    max_rtt_ms: float = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Round-trip times and loss of ``count`` datagrams to a UDP echo server.

    Returns ``{"sent", "received", "loss_percent", "rtt_ms": {"min", "mean", "median", "p95",
    "max", "stdev"}, "ok"}``; ``ok`` is whether the loss is within ``min_loss_percent`` ..
    ``max_loss_percent`` and the median RTT within ``min_rtt_ms`` .. ``max_rtt_ms`` (0 = no
    upper bound). The echo servers of ``create_test_network`` answer on its UDP ports.

    Example::

        {"type": "probe", "name": "rtt-under-250ms",
         "tolerance": {"type": "jsonpath", "path": "$.rtt_ms.median", "expect": 250},
         "provider": {"type": "python", "module": "chaosgenesys.network.probes",
                      "func": "measure_udp",
                      "arguments": {"address": "10.200.0.2", "port": 20000,
                                    "netns": "cglab-a"}}}
    """
    from chaosgenesys.network import lab

    bounds = (
        require_number("min_loss_percent", min_loss_percent, maximum=100),
        require_number("max_loss_percent", max_loss_percent, maximum=100),
        require_number("min_rtt_ms", min_rtt_ms),
        require_number("max_rtt_ms", max_rtt_ms),
    )
    result = lab.measure_udp(
        require_text("address", address),
        require_int("port", port, minimum=1, maximum=65535),
        require_int("count", count, minimum=1, maximum=100_000),
        require_number("interval_ms", interval_ms, maximum=60_000),
        require_int("size", size, minimum=12, maximum=65000),
        require_text("netns", netns, allow_empty=True),
        require_number("timeout_ms", timeout_ms, minimum=1, maximum=600_000),
    )
    median = result["rtt_ms"].get("median")
    rtt_ok = median is None or (median >= bounds[2] and (not bounds[3] or median <= bounds[3]))
    result["ok"] = bool(bounds[0] <= result["loss_percent"] <= bounds[1] and rtt_ok)
    return result


def measure_tcp(
    address: str,
    port: int,
    count: int = 20,
    size: int = 64,
    netns: str = "",
    max_rtt_ms: float = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Connect time and ``count`` request/echo round trips to a TCP echo server.

    ``ok`` in the result: connected, and the median round trip under ``max_rtt_ms`` (0 = any).

    Example::

        {"type": "probe", "name": "signalling-clean",
         "tolerance": {"type": "jsonpath", "path": "$.connected", "expect": true},
         "provider": {"type": "python", "module": "chaosgenesys.network.probes",
                      "func": "measure_tcp",
                      "arguments": {"address": "10.200.0.2", "port": 443,
                                    "netns": "cglab-a"}}}
    """
    from chaosgenesys.network import lab

    limit = require_number("max_rtt_ms", max_rtt_ms)
    result = lab.measure_tcp(
        require_text("address", address),
        require_int("port", port, minimum=1, maximum=65535),
        require_int("count", count, minimum=1, maximum=100_000),
        require_int("size", size, minimum=1, maximum=65000),
        require_text("netns", netns, allow_empty=True),
    )
    median = result["rtt_ms"].get("median")
    result["ok"] = bool(
        result["connected"] and (not limit or (median is not None and median <= limit))
    )
    return result


def measure_http(
    url: str,
    count: int = 10,
    interval_ms: float = 0,
    netns: str = "",
    timeout_ms: float = 5000,
    min_median_ms: float = 0,
    max_median_ms: float = 0,
    max_p95_ms: float = 0,
    max_errors: int = 0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Round-trip times of ``count`` HTTP GETs to ``url``, sent from network namespace ``netns``.

    One keep-alive connection (reopened when the server closes it); any HTTP answer counts (a
    401 from an API path without a token is a full round trip through the network, the edge
    and the server). Returns ``{"requests", "answered", "errors", "statuses", "connects",
    "connect_ms", "latency_ms": {"min", "mean", "median", "p95", "max", "stdev"}, "ok"}``;
    ``ok``: at most ``max_errors`` errors and the median within ``min_median_ms`` ..
    ``max_median_ms`` and the p95 under ``max_p95_ms`` (0 = no upper bound). Through the edge of
    the network lab control it is the workstation's view of the API's latency.

    Example::

        {"type": "probe", "name": "api-latency-from-the-workstation",
         "tolerance": {"type": "jsonpath", "path": "$.ok", "expect": true},
         "provider": {"type": "python", "module": "chaosgenesys.network.probes",
                      "func": "measure_http",
                      "arguments": {"url": "http://10.200.0.2:443/api/v2/users/me",
                                    "netns": "cgl1-a", "count": 10, "max_median_ms": 400}}}
    """
    from chaosgenesys.network import lab

    bounds = (
        require_number("min_median_ms", min_median_ms),
        require_number("max_median_ms", max_median_ms),
        require_number("max_p95_ms", max_p95_ms),
        require_int("max_errors", max_errors, minimum=0, maximum=100_000),
    )
    result = lab.measure_http(
        require_text("url", url),
        require_int("count", count, minimum=1, maximum=10_000),
        require_number("interval_ms", interval_ms, maximum=60_000),
        require_text("netns", netns, allow_empty=True),
        require_number("timeout_ms", timeout_ms, minimum=1, maximum=600_000),
    )
    latency = result["latency_ms"]
    median, p95 = latency.get("median"), latency.get("p95")
    result["ok"] = bool(
        result["answered"]
        and result["errors"] <= bounds[3]
        and median is not None
        and median >= bounds[0]
        and (not bounds[1] or median <= bounds[1])
        and (not bounds[2] or (p95 is not None and p95 <= bounds[2]))
    )
    return result
