"""Network fault actions: netem delay/jitter/loss, bandwidth throttling, blackholes.

Every action takes the shared targeting arguments (docs/network.md): ``interface`` (default: the one
that routes to the first destination), ``destinations`` (CIDRs, addresses, host names; empty =
all traffic), ``exclude``, ``protocol`` (``tcp``/``udp``/``""``), ``ports`` (``"443"``,
``"16384-32768"``), ``direction`` (``egress``/``ingress``/``both``), ``duration`` (seconds; 0 =
until removed; the guardian reverts at the deadline even if the run dies) and ``netns``, plus
``dry_run`` (return the exact plan, change nothing). Each fault is recorded in the fault registry
before it is applied; ``remove_faults`` (or ``chaosgenesys cleanup``) reverts it and puts the
interface's original root qdisc back.

Example (the guide's Layer 1)::

    {
      "type": "action",
      "name": "genesys-link-degraded",
      "provider": {
        "type": "python",
        "module": "chaosgenesys.network.actions",
        "func": "apply_netem",
        "arguments": {"delay_ms": 200, "loss_percent": 2,
                      "destinations": ["34.195.0.0/16", "35.180.0.0/16"], "duration": 60}
      }
    }

Importing this module does not import pyroute2 or open any socket.
"""

import re
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_int, require_number, require_text
from chaosgenesys.network.activity_args import MAX_RATE as MAX_RATE
from chaosgenesys.network.activity_args import (
    SCALE,
    build_spec,
    lab_ports,
    parse_fault_ids,
    parse_rate,
    percent,
    targeting,
)

__all__ = [
    "add_latency",
    "add_packet_loss",
    "apply_netem",
    "blackhole",
    "create_test_network",
    "delete_test_network",
    "remove_faults",
    "throttle_bandwidth",
]

#: The largest queue a tbf leaf can hold, bytes (``struct tc_tbf_qopt.limit`` is a u32).
MAX_TBF_LIMIT = 0xFFFFFFFF


def _public(plan: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in plan.items() if k != "spec"}


def _netem(spec: Any, what: str, kind: str, common: dict[str, Any]) -> dict[str, Any]:
    from chaosgenesys.network.engine import apply_tc
    from chaosgenesys.network.tc_tree import UNLIMITED, Leaf

    leaf = Leaf("netem", spec.options(), UNLIMITED, spec.describe())
    plan = apply_tc(kind=kind, what=what, leaf=leaf, **common)
    plan["netem"] = spec.to_dict()
    return _public(plan)


def apply_netem(
    delay_ms: float = 0,
    jitter_ms: float = 0,
    delay_correlation: float = 0,
    distribution: str = "",
    loss_percent: float = 0,
    loss_correlation: float = 0,
    loss_model: str = "random",
    ge_p: float = 0,
    ge_r: float = 100,
    ge_loss_bad: float = 100,
    ge_loss_good: float = 0,
    duplicate_percent: float = 0,
    duplicate_correlation: float = 0,
    corrupt_percent: float = 0,
    corrupt_correlation: float = 0,
    reorder_percent: float = 0,
    reorder_correlation: float = 0,
    reorder_gap: int = 0,
    rate: str = "",
    limit: int = 0,
    interface: str = "",
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    exclude: list[str] = [],  # noqa: B006
    protocol: str = "",
    ports: list[str] = [],  # noqa: B006
    direction: str = "egress",
    duration: float = 0,
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Every netem impairment at once on the targeted traffic.

    ``loss_model`` ``random`` uses ``loss_percent`` (+ ``loss_correlation``); ``gemodel`` is the
    Gilbert-Elliott model: ``ge_p`` % chance to go from the good to the bad state, ``ge_r`` % to
    come back, ``ge_loss_bad`` / ``ge_loss_good`` % loss in each state. ``distribution``
    (``normal``, ``pareto``, ``paretonormal``, ``uniform``) shapes the jitter. ``rate`` is netem's
    own rate limit (``"2mbit"``). ``limit`` (packets; 0 = sized from rate x delay, >= 1000).

    Returns the plan: ``fault_id``, ``commands`` (the equivalent ``tc`` lines), ``netem``...
    """
    if loss_model not in ("random", "gemodel"):
        raise ActivityFailed(f"loss_model must be 'random' or 'gemodel', got {loss_model!r}")
    gemodel = loss_model == "gemodel"
    if gemodel and not ge_p:
        raise ActivityFailed("loss_model 'gemodel' needs ge_p > 0 (good -> bad transitions, %)")
    spec = build_spec(
        delay_ms=require_number("delay_ms", delay_ms, maximum=3_600_000),
        jitter_ms=require_number("jitter_ms", jitter_ms, maximum=3_600_000),
        delay_correlation=percent("delay_correlation", delay_correlation),
        distribution=require_text("distribution", distribution, allow_empty=True).lower(),
        loss_percent=percent("loss_percent", loss_percent),
        loss_correlation=percent("loss_correlation", loss_correlation),
        ge_p=percent("ge_p", ge_p) if gemodel else 0.0,
        ge_r=percent("ge_r", ge_r),
        ge_loss_bad=percent("ge_loss_bad", ge_loss_bad),
        ge_loss_good=percent("ge_loss_good", ge_loss_good),
        duplicate_percent=percent("duplicate_percent", duplicate_percent),
        duplicate_correlation=percent("duplicate_correlation", duplicate_correlation),
        corrupt_percent=percent("corrupt_percent", corrupt_percent),
        corrupt_correlation=percent("corrupt_correlation", corrupt_correlation),
        reorder_percent=percent("reorder_percent", reorder_percent),
        reorder_correlation=percent("reorder_correlation", reorder_correlation),
        reorder_gap=require_int("reorder_gap", reorder_gap),
        rate=parse_rate("rate", rate) if rate not in ("", 0, None) else 0,
        limit=require_int("limit", limit, maximum=10_000_000),
    )
    common = targeting(
        destinations, exclude, protocol, ports, direction, duration, interface, netns, dry_run
    )
    return _netem(spec, "netem", "netem", common)


def add_latency(
    delay_ms: float,
    jitter_ms: float = 0,
    correlation: float = 0,
    distribution: str = "",
    interface: str = "",
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    exclude: list[str] = [],  # noqa: B006
    protocol: str = "",
    ports: list[str] = [],  # noqa: B006
    direction: str = "egress",
    duration: float = 0,
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Delay the targeted packets by ``delay_ms`` ± ``jitter_ms`` (netem; needs sch_netem).

    Example::

        {"type": "action", "name": "200ms-to-genesys",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "add_latency",
                      "arguments": {"delay_ms": 200, "jitter_ms": 20,
                                    "destinations": ["34.195.0.0/16"], "duration": 60}}}
    """
    spec = build_spec(
        delay_ms=require_number("delay_ms", delay_ms, maximum=3_600_000),
        jitter_ms=require_number("jitter_ms", jitter_ms, maximum=3_600_000),
        delay_correlation=percent("correlation", correlation),
        distribution=require_text("distribution", distribution, allow_empty=True).lower(),
    )
    common = targeting(
        destinations, exclude, protocol, ports, direction, duration, interface, netns, dry_run
    )
    return _netem(spec, f"latency {spec.delay_ms:g}ms", "netem", common)


def add_packet_loss(
    loss_percent: float,
    correlation: float = 0,
    method: str = "auto",
    interface: str = "",
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    exclude: list[str] = [],  # noqa: B006
    protocol: str = "",
    ports: list[str] = [],  # noqa: B006
    direction: str = "egress",
    duration: float = 0,
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Drop ``loss_percent`` % of the targeted packets.

    ``method``: ``netem`` (random loss with ``correlation``), ``nftables`` (a random drop rule in
    a netdev table on the interface; no correlation; works without sch_netem) or ``auto``
    (netem, falling back to nftables when the kernel has no sch_netem; the result says which).

    Example::

        {"type": "action", "name": "2-percent-loss",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "add_packet_loss",
                      "arguments": {"loss_percent": 2, "destinations": ["35.180.0.0/16"],
                                    "method": "auto", "duration": 60}}}
    """
    loss = percent("loss_percent", loss_percent)
    corr = percent("correlation", correlation)
    if method not in ("auto", "netem", "nftables"):
        raise ActivityFailed(f"method must be 'auto', 'netem' or 'nftables', got {method!r}")
    if method == "nftables" and corr:
        raise ActivityFailed("correlation needs method 'netem' (nftables drops independently)")
    common = targeting(
        destinations, exclude, protocol, ports, direction, duration, interface, netns, dry_run
    )
    if method in ("auto", "netem"):
        spec = build_spec(loss_percent=loss, loss_correlation=corr)
        try:
            plan = _netem(spec, f"loss {loss:g}%", "netem", common)
            plan["method"] = "netem"
            return plan
        except ActivityFailed as error:
            from chaosgenesys.network.engine import NoNetem

            if method == "netem" or not isinstance(error, NoNetem) or corr:
                raise
    from chaosgenesys.network.nft_faults import apply_nft

    plan = apply_nft(
        kind="nft-loss", what=f"loss {loss:g}% (nftables)", loss_percent=loss, **common
    )
    plan["method"] = "nftables"
    return _public(plan)


def throttle_bandwidth(
    rate: str,
    burst: str = "",
    latency_ms: float = 50,
    interface: str = "",
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    exclude: list[str] = [],  # noqa: B006
    protocol: str = "",
    ports: list[str] = [],  # noqa: B006
    direction: str = "egress",
    duration: float = 0,
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Limit the targeted traffic to ``rate`` (``"256kbit"``, ``"2mbit"``, ``"1mbps"`` = bytes).

    The fault's htb class shapes at ``rate`` (ceil = rate, it borrows nothing) and its tbf leaf
    holds at most ``latency_ms`` of queue at that rate (then drops), ``burst`` (bytes, e.g.
    ``"10kb"``; default 10 ms at rate, at least 2 frames). No sch_netem needed.

    Example (guide edge case 2: media starves, signalling stays clean)::

        {"type": "action", "name": "throttle-rtp",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "throttle_bandwidth",
                      "arguments": {"rate": "64kbit", "protocol": "udp",
                                    "ports": ["16384-32768"], "duration": 60}}}
    """
    from chaosgenesys.network import tc

    bytes_per_s = parse_rate("rate", rate)
    if burst in ("", 0, None):
        burst_bytes = max(bytes_per_s // 100, 3200)
    else:
        match = re.match(r"^\s*(\d+)\s*([km]?)b?\s*$", str(burst), re.IGNORECASE)
        if not match:
            raise ActivityFailed(f"burst must be a size in bytes such as '10kb', got {burst!r}")
        burst_bytes = int(match.group(1)) * int(SCALE[match.group(2).lower()])
        if burst_bytes < 1600:
            raise ActivityFailed(f"burst must be at least 1600 bytes (one frame), got {burst!r}")
    latency = require_number("latency_ms", latency_ms, minimum=1, maximum=60_000)
    limit = max(int(bytes_per_s * latency / 1000) + burst_bytes, 2 * 1514)
    if burst_bytes > MAX_TBF_LIMIT or limit > MAX_TBF_LIMIT:
        raise ActivityFailed(
            f"rate x latency_ms + burst is more than tbf can queue (4 GiB): rate={rate!r}, "
            f"latency_ms={latency_ms!r}, burst={burst!r}; lower latency_ms or burst"
        )
    common = targeting(
        destinations, exclude, protocol, ports, direction, duration, interface, netns, dry_run
    )
    from chaosgenesys.network.engine import apply_tc
    from chaosgenesys.network.tc_tree import Leaf

    leaf = Leaf(
        "tbf",
        tc.tbf_options(bytes_per_s, burst_bytes, limit),
        bytes_per_s,
        f"tbf rate {bytes_per_s * 8}bit burst {burst_bytes}b limit {limit}b",
    )
    plan = apply_tc(kind="throttle", what=f"throttle {bytes_per_s * 8}bit", leaf=leaf, **common)
    plan["rate_bytes_per_second"] = bytes_per_s
    return _public(plan)


def blackhole(
    interface: str = "",
    destinations: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    exclude: list[str] = [],  # noqa: B006
    protocol: str = "",
    ports: list[str] = [],  # noqa: B006
    direction: str = "egress",
    duration: float = 0,
    netns: str = "",
    dry_run: bool = False,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Drop every targeted packet (an nftables netdev drop rule on the interface).

    Example::

        {"type": "action", "name": "genesys-unreachable",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "blackhole",
                      "arguments": {"destinations": ["34.195.0.0/16"], "protocol": "tcp",
                                    "ports": ["443"], "duration": 30}}}
    """
    common = targeting(
        destinations, exclude, protocol, ports, direction, duration, interface, netns, dry_run
    )
    from chaosgenesys.network.nft_faults import apply_nft

    return _public(apply_nft(kind="blackhole", what="blackhole", loss_percent=100.0, **common))


def remove_faults(
    fault_ids: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    interface: str = "",
    netns: str = "",
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> list[dict[str, Any]]:
    """Revert network faults: the ones named, else every one of this run (on
    ``interface``/``netns``).

    ``fault_ids`` is a list of fault ids (one id as a string is taken as that one id). Named
    faults are reverted whichever run recorded them. Without ids, ``scope`` says whose: ``run``
    (the default) reverts only the faults this run recorded (this process, or a process it
    started), so a run never undoes another run's faults in a shared registry; ``all`` reverts
    every run's network faults. A natural rollback::

        {"type": "action", "name": "remove-network-faults",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "remove_faults"}}
    """
    from chaosgenesys.faults import registry
    from chaosgenesys.network.reverters import NETWORK_REVERTERS

    wanted = set(parse_fault_ids(fault_ids))
    interface = require_text("interface", interface, allow_empty=True)
    netns = require_text("netns", netns, allow_empty=True)
    scope = registry.check_scope(scope)
    done: list[dict[str, Any]] = []
    errors: list[str] = []
    store = registry.Registry()  # one for the call: it resolves its directory once

    def fits(fault: Any) -> bool:
        if fault.reverter not in NETWORK_REVERTERS:
            return False
        if interface and fault.spec.get("interface") != interface:
            return False
        return not netns or (fault.spec.get("netns") or "") == netns

    if len(wanted) == 1:
        # Its record is read once, under the lock; not an id, not recorded or unreadable, it
        # names nothing (as in a scan).
        ids = [fault_id for fault_id in wanted if registry.is_fault_id(fault_id)]
    elif wanted:
        ids = [fault.id for fault in _named(store, wanted)]  # oldest first
    else:
        owner = registry.run_owner()
        ids = [
            fault.id
            for fault in store.active()
            if fits(fault) and (scope != "run" or fault.belongs_to(owner))
        ]
    for fault_id in ids:
        try:
            reverted = store.revert_if(fault_id, fits)
        except registry.UnreadableRecord:
            continue
        except ActivityFailed as error:
            errors.append(str(error))
            continue
        if reverted is not None:
            done.append(
                {"id": reverted.id, "kind": reverted.kind, "description": reverted.description}
            )
    if errors:
        raise ActivityFailed("; ".join(errors))
    return done


def _named(store: Any, fault_ids: set[str]) -> list[Any]:
    """The records of the faults named, oldest first, each read by its id (no scan of the whole
    registry); one not recorded, unreadable or not an id names nothing, as in a scan."""
    found = []
    for fault_id in fault_ids:
        try:
            fault = store.get(fault_id)
        except ActivityFailed:
            continue
        if fault is not None:
            found.append(fault)
    return sorted(found, key=lambda fault: (fault.created_at, fault.id))


def create_test_network(
    name: str = "cglab",
    udp_ports: list[str] = [],  # noqa: B006 - never mutated; chaos init needs a plain type
    tcp_ports: list[str] = [],  # noqa: B006
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Two network namespaces joined by a veth pair, with echo servers (for examples and CI).

    ``<name>-a`` holds ``veth-a`` (10.200.0.1/24, fd42::1/64), ``<name>-b`` holds ``veth-b``
    (10.200.0.2/24, fd42::2/64) and UDP/TCP echo servers on the given ports (threads of this
    process). Apply faults with ``interface: veth-a, netns: <name>-a``; measure with
    ``chaosgenesys.network.probes.measure_udp`` / ``measure_tcp``. Needs root. A name that
    another live process holds is refused, and nothing changes (docs/network.md).

    Example::

        {"type": "action", "name": "lab",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "create_test_network",
                      "arguments": {"name": "cglab", "udp_ports": ["20000"],
                                    "tcp_ports": ["443"]}}}
    """
    from chaosgenesys.network import lab

    if not re.fullmatch(r"[a-z][a-z0-9]{0,11}", str(name)):
        raise ActivityFailed(f"name must be 1-12 lower-case letters/digits, got {name!r}")
    udp = lab_ports("udp_ports", udp_ports)
    tcp = lab_ports("tcp_ports", tcp_ports)
    return lab.create(name, udp, tcp)


def delete_test_network(
    name: str = "cglab", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Stop the echo servers and delete the namespaces of :func:`create_test_network`.

    Example::

        {"type": "action", "name": "lab-gone",
         "provider": {"type": "python", "module": "chaosgenesys.network.actions",
                      "func": "delete_test_network", "arguments": {"name": "cglab"}}}
    """
    from chaosgenesys.network import lab

    return lab.delete(str(name))
