"""The checks of the network fault activities' own arguments (rates, netem options, fault ids,
a lab's ports), each an ``ActivityFailed`` naming the argument and the value, raised before
anything changes; what a fault targets is parsed by ``arguments.py`` and ``targeting.py``::

    from chaosgenesys.network.activity_args import parse_rate

    parse_rate("rate", "1mbit")    # 125000 bytes/second
"""

from __future__ import annotations

import re
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.arguments import require_bool, require_number, require_text
from chaosgenesys.network.arguments import parse_direction, resolve_netns

__all__ = [
    "MAX_RATE",
    "build_spec",
    "lab_ports",
    "parse_fault_ids",
    "parse_rate",
    "percent",
    "targeting",
]

RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(bit|bps|b)?\s*$", re.IGNORECASE)
SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
#: The fastest rate a fault can have, bytes/second: the fault tree's root htb class (100 Gbit/s,
#: ``engine.UNLIMITED``), which every fault class sits under.
MAX_RATE = 12_500_000_000

def parse_rate(name: str, value: Any) -> int:
    """``"1mbit"``, ``"256kbit"``, ``"10mbps"`` (bytes), ``1000000`` (bit/s) -> bytes/second."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        text = f"{value}bit"
    elif isinstance(value, str):
        text = value
    else:
        raise ActivityFailed(f"{name} must be a rate such as '1mbit', got {value!r}")
    match = RATE.match(text)
    if not match:
        raise ActivityFailed(
            f"{name} must be a rate such as '1mbit', '256kbit' or '2mbps' (bytes), got {value!r}"
        )
    number = float(match.group(1)) * SCALE[match.group(2).lower()]
    unit = (match.group(3) or "bit").lower()
    rate = int(number if unit == "bps" else number / 8)
    if rate < 1:
        raise ActivityFailed(f"{name} must be at least 8bit, got {value!r}")
    if rate > MAX_RATE:
        raise ActivityFailed(
            f"{name} must be at most 100gbit (12.5 GB/s, the rate of the fault tree's root "
            f"class: a faster limit would never bind), got {value!r}"
        )
    return rate


def targeting(
    destinations: Any,
    exclude: Any,
    protocol: Any,
    ports: Any,
    direction: Any,
    duration: Any,
    interface: Any,
    netns: Any,
    dry_run: Any,
) -> dict[str, Any]:
    """The arguments every network fault takes (what it targets, where, for how long), each
    checked and named; the namespace is refused before anything changes."""
    from chaosgenesys.network.targeting import target

    checked = {
        "target": target(destinations, exclude, protocol, ports),
        "direction": parse_direction(direction),
        "duration": require_number("duration", duration),
        "interface": require_text("interface", interface, allow_empty=True).strip(),
        "netns": require_text("netns", netns, allow_empty=True).strip(),
        "dry_run": require_bool("dry_run", dry_run),
    }
    resolve_netns(checked["netns"])  # refused before anything changes, as by the socket actions
    return checked


def percent(name: str, value: Any) -> float:
    """A percentage, 0-100."""
    return require_number(name, value, maximum=100.0)


def build_spec(**values: Any) -> Any:
    """A ``NetemSpec`` from the activities' netem arguments, the combinations netem refuses
    refused here by name."""
    from chaosgenesys.network.netem import DISTRIBUTIONS, NetemSpec

    distribution = values.get("distribution", "")
    if distribution not in ("", *DISTRIBUTIONS):
        raise ActivityFailed(
            f"distribution must be one of {', '.join(DISTRIBUTIONS)} (or ''), got {distribution!r}"
        )
    if distribution and not values.get("jitter_ms"):
        raise ActivityFailed(
            f"distribution {distribution!r} shapes the jitter: give jitter_ms > 0 as well"
        )
    if values.get("reorder_percent") and not values.get("delay_ms"):
        raise ActivityFailed("reorder_percent needs delay_ms > 0 (netem reorders by not delaying)")
    return NetemSpec(**values)


def parse_fault_ids(value: Any) -> list[str]:
    """``fault_ids`` as a list of ids: one id string is one id; ActivityFailed otherwise."""
    if isinstance(value, str):
        value = [value] if value.strip() else []
    if not isinstance(value, list | tuple) or not all(
        isinstance(item, str) and item.strip() for item in value
    ):
        shown = repr(value)
        raise ActivityFailed(
            "fault_ids must be a list of fault ids (or one id), got "
            + (shown if len(shown) <= 120 else shown[:117] + "...")
        )
    return [item.strip() for item in value]


def lab_ports(name: str, value: Any) -> list[int]:
    """A list of port numbers (integers or digit strings, 1-65535); the bad one is named."""
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        raise ActivityFailed(f"{name} must be a list of port numbers, got {value!r}")
    ports: list[int] = []
    for index, item in enumerate(value):
        text = item.strip() if isinstance(item, str) else None
        if isinstance(item, int) and not isinstance(item, bool):
            port = item
        elif text and text.isascii() and text.isdigit():
            port = int(text)
        else:
            raise ActivityFailed(
                f"{name} must hold port numbers (1-65535), got {item!r} at index {index}"
            )
        if not 1 <= port <= 65535:
            raise ActivityFailed(
                f"{name} must hold port numbers from 1 to 65535, got {item!r} at index {index}"
            )
        ports.append(port)
    return ports
