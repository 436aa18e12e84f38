"""netem parameters: checked, sized, and packed as ``tc`` packs them (``struct tc_netem_qopt``).

pyroute2 0.9.7's netem encoder is not used: ``rate=`` produces an invalid message (it leaks into
a top-level ``TCA_RATE``), delay and jitter are integers in microseconds, and a ``replace`` keeps
attributes of the old qdisc. Here every attribute is always sent (correlations, reorder, corrupt,
rate, 64-bit latency and jitter in nanoseconds), so a netem qdisc is exactly what the spec says.

Delay distributions (``normal``, ``pareto``, ``paretonormal``) are tables of 4096 signed 16-bit
values scaled by ``NETEM_DIST_SCALE`` (8192), computed here the way iproute2's ``netem/normal.c``,
``pareto.c`` and ``paretonormal.c`` compute the ``/usr/lib/tc/*.dist`` files (which are often not
installed). ``uniform`` is netem's built-in jitter without a table.
"""

import functools
import math
import statistics
import struct
from array import array
from dataclasses import asdict, dataclass
from typing import Any

from chaosgenesys.network.nl import Attr, attr
from chaosgenesys.network.tc import U32_MAX, prob

__all__ = ["DISTRIBUTIONS", "NetemSpec", "distribution_table"]

DISTRIBUTIONS = ("normal", "pareto", "paretonormal", "uniform")
NETEM_DIST_SCALE = 8192
_TABLE = 4096
#: Packets of this size are assumed when the queue limit is sized from rate x delay.
_PACKET = 1500
#: The rate assumed for sizing the queue when netem has no rate of its own (1 Gbit/s).
_DEFAULT_RATE = 125_000_000


def _clamp16(value: float) -> int:
    return max(-32768, min(32767, round(value)))


def _pareto_value(i: int) -> int:
    # iproute2 netem/pareto.c: a = 3, i from 65536 down in steps of 16 (4096 values).
    dvalue = 1.0 / math.pow(i / 65536.0, 1.0 / 3.0)
    dvalue = (dvalue - 1.5) * (4.0 / 3.0) * NETEM_DIST_SCALE
    return round(min(dvalue, 32767.0))


@functools.lru_cache(maxsize=8)
def distribution_table(name: str) -> bytes:
    """The ``TCA_NETEM_DELAY_DIST`` payload for ``name`` (empty for ``uniform``)."""
    values: list[int]
    if name == "uniform":
        return b""
    normal = statistics.NormalDist()
    # normal.c keeps, for each table index i (0..16383), the largest x whose CDF rounds to i,
    # i.e. the inverse CDF at (i + 0.5) / 16384; then it prints every fourth entry.
    norm = [
        _clamp16(normal.inv_cdf((4 * k + 0.5) / 16384) * NETEM_DIST_SCALE) for k in range(_TABLE)
    ]
    if name == "normal":
        values = norm
    elif name == "pareto":
        values = [_pareto_value(65536 - 16 * k) for k in range(_TABLE)]
    elif name == "paretonormal":
        values = [
            _clamp16(int((norm[k] + 3 * _pareto_value(65536 - 16 * k)) / 4)) for k in range(_TABLE)
        ]
    else:  # pragma: no cover - checked by the caller
        raise ValueError(name)
    return array("h", values).tobytes()


@dataclass(frozen=True)
class NetemSpec:
    """Every netem parameter; percentages are 0-100, times milliseconds, rate bytes/second."""

    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    delay_correlation: float = 0.0
    distribution: str = ""
    loss_percent: float = 0.0
    loss_correlation: float = 0.0
    #: Gilbert-Elliott: p (good -> bad), r (bad -> good), loss in the bad and in the good state.
    ge_p: float = 0.0
    ge_r: float = 0.0
    ge_loss_bad: float = 100.0
    ge_loss_good: float = 0.0
    duplicate_percent: float = 0.0
    duplicate_correlation: float = 0.0
    corrupt_percent: float = 0.0
    corrupt_correlation: float = 0.0
    reorder_percent: float = 0.0
    reorder_correlation: float = 0.0
    reorder_gap: int = 0
    rate: int = 0
    limit: int = 0

    @property
    def gilbert_elliott(self) -> bool:
        return self.ge_p > 0

    def effective_distribution(self) -> str:
        """The distribution sent: none without jitter, ``normal`` when jitter has none named."""
        if self.jitter_ms <= 0:
            return ""
        return self.distribution or "normal"

    def queue_limit(self) -> int:
        """The queue limit in packets: given, or sized from rate x (delay + 4 jitter), >= 1000.

        A netem queue holds every packet for the delay, so at ``rate`` bytes/s it must hold
        ``rate * delay / 1500`` packets (with 50 % headroom), or netem itself drops packets
        nobody asked it to drop.
        """
        if self.limit:
            return self.limit
        rate = self.rate or _DEFAULT_RATE
        window = (self.delay_ms + 4 * self.jitter_ms) / 1000.0
        return max(1000, min(1_000_000, math.ceil(rate * window / _PACKET * 1.5)))

    def describe(self) -> str:
        """The ``tc qdisc ... netem`` arguments that do the same."""
        parts = [f"limit {self.queue_limit()}"]
        if self.delay_ms or self.jitter_ms:
            parts.append(f"delay {self.delay_ms:g}ms")
            if self.jitter_ms:
                parts.append(f"{self.jitter_ms:g}ms")
                if self.delay_correlation:
                    parts.append(f"{self.delay_correlation:g}%")
                parts.append(f"distribution {self.effective_distribution()}")
        if self.gilbert_elliott:
            parts.append(
                f"loss gemodel {self.ge_p:g}% {self.ge_r:g}% "
                f"{100 - self.ge_loss_bad:g}% {self.ge_loss_good:g}%"
            )
        elif self.loss_percent:
            parts.append(f"loss random {self.loss_percent:g}%")
            if self.loss_correlation:
                parts.append(f"{self.loss_correlation:g}%")
        for name, value, corr in (
            ("duplicate", self.duplicate_percent, self.duplicate_correlation),
            ("corrupt", self.corrupt_percent, self.corrupt_correlation),
            ("reorder", self.reorder_percent, self.reorder_correlation),
        ):
            if value:
                parts.append(f"{name} {value:g}%" + (f" {corr:g}%" if corr else ""))
        if self.reorder_percent and self.reorder_gap > 1:
            parts.append(f"gap {self.reorder_gap}")
        if self.rate:
            parts.append(f"rate {self.rate * 8}bit")
        return "netem " + " ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def options(self) -> bytes:
        """The ``TCA_OPTIONS`` payload: ``struct tc_netem_qopt`` then the netem attributes."""
        latency_ns = round(self.delay_ms * 1e6)
        jitter_ns = round(self.jitter_ms * 1e6)
        gap = max(self.reorder_gap, 1) if self.reorder_percent else 0
        qopt = struct.pack(
            "=IIIIII",
            min(U32_MAX, latency_ns // 64),
            self.queue_limit(),
            0 if self.gilbert_elliott else prob(self.loss_percent),
            gap,
            prob(self.duplicate_percent),
            min(U32_MAX, jitter_ns // 64),
        )
        attrs: list[Attr] = [
            Attr(
                1,
                struct.pack(
                    "=III",
                    prob(self.delay_correlation),
                    prob(self.loss_correlation),
                    prob(self.duplicate_correlation),
                ),
            ),
            Attr(3, struct.pack("=II", prob(self.reorder_percent), prob(self.reorder_correlation))),
            Attr(4, struct.pack("=II", prob(self.corrupt_percent), prob(self.corrupt_correlation))),
        ]
        if self.gilbert_elliott:
            gemodel = struct.pack(
                "=IIII",
                prob(self.ge_p),
                prob(self.ge_r),
                prob(100.0 - self.ge_loss_bad),  # the kernel's "h" is 1 - loss in the bad state
                prob(self.ge_loss_good),
            )
            attrs.append(Attr(5, [Attr(2, gemodel)]))  # TCA_NETEM_LOSS { NETEM_LOSS_GE }
        attrs.append(Attr(6, struct.pack("=IiIi", min(self.rate, U32_MAX), 0, 0, 0)))
        if self.rate > U32_MAX:
            attrs.append(attr(8, self.rate, "=Q"))
        attrs.append(attr(10, latency_ns, "=q"))
        attrs.append(attr(11, jitter_ns, "=q"))
        table = distribution_table(self.effective_distribution() or "uniform")
        if table:
            attrs.append(Attr(2, table))
        return qopt + b"".join(a.pack() for a in attrs)
