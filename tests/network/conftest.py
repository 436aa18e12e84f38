"""Fixtures of the network tests: a private fault registry and a two-namespace lab per test.

Every lab is a pair of fresh network namespaces (unique names) joined by a veth pair, with UDP
and TCP echo servers in the peer namespace; faults go on ``veth-a`` in ``<name>-a``. Teardown
reverts every fault of the test's registry and deletes both namespaces, also when the test fails.
The host's own interfaces are never touched.

Tests that need sch_netem are marked ``@pytest.mark.netem`` (the marker and the skip on kernels
without netem come from tests/uml/netem_plugin.py); they also call :func:`require_netem`, which
fails instead of skipping inside user-mode-linux (``CHAOSGENESYS_IN_UML=1``) or with
``CHAOSGENESYS_REQUIRE_NETEM=1``.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

UDP_PORTS = [20000, 5000]
TCP_PORTS = [443, 8080]


def is_root() -> bool:
    return os.geteuid() == 0


def in_uml() -> bool:
    with contextlib.suppress(OSError):
        return "UML" in Path("/proc/cpuinfo").read_text()
    return False


_netem: bool | None = None


def netem_available() -> bool:
    global _netem
    if _netem is None:
        from chaosgenesys.network.probes import netem_supported

        _netem = netem_supported()
    return _netem


def require_netem() -> None:
    """Skip (on a kernel without netem) or fail (in UML / when netem is required)."""
    if netem_available():
        return
    required = {os.environ.get("CHAOSGENESYS_REQUIRE_NETEM"), os.environ.get("CHAOSGENESYS_IN_UML")}
    if in_uml() or "1" in required:
        pytest.fail("this kernel has no sch_netem although netem tests are required here")
    pytest.skip(
        "this kernel has no sch_netem: the netem tests run inside user-mode-linux "
        "(the tests/uml runner, `.ci/run`)"
    )


def loss_bounds(n: int, p: float, tail: float = 1e-6) -> tuple[float, float]:
    """Loss percentages that ``n`` datagrams, each lost with probability ``p``, fall below or
    above with probability at most ``tail`` each (the exact binomial law).

    A 99 % interval fails one run in a hundred by chance alone, and the suite runs several such
    tests on every CI run; at ``1e-6`` a failure means the fault is not doing what it says.
    """
    logs = [
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
        + k * math.log(p) + (n - k) * math.log1p(-p)
        for k in range(n + 1)
    ]
    pmf = [math.exp(value) for value in logs]
    low, below = 0, 0.0
    while below + pmf[low] <= tail:
        below += pmf[low]
        low += 1
    high, above = n, 0.0
    while above + pmf[high] <= tail:
        above += pmf[high]
        high -= 1
    return 100 * low / n, 100 * high / n


def fault_records(directory: Path) -> list[Path]:
    """The fault records in a registry folder, but for the test network's own (the ``lab``
    fixture's namespaces are recorded too, kind ``test-network``)."""
    return sorted(p for p in directory.glob("*.json") if not p.name.startswith("test-network-"))


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A private fault registry; every fault left in it is reverted at the end."""
    directory = tmp_path / "registry"
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(directory))
    yield directory
    from chaosgenesys.faults import registry

    with contextlib.suppress(Exception):
        registry.Registry(directory).revert_all()


@pytest.fixture
def lab(registry_dir: Path) -> Iterator[dict[str, Any]]:
    """Namespaces ``<name>-a`` / ``<name>-b``, veth-a/veth-b, echo servers; deleted after."""
    if not is_root():
        pytest.skip("network namespaces need root")
    from chaosgenesys.network import lab as lab_module

    name = "t" + secrets.token_hex(4)
    info = lab_module.create(name, UDP_PORTS, TCP_PORTS)
    try:
        yield info
    finally:
        from chaosgenesys.faults import registry

        with contextlib.suppress(Exception):
            registry.Registry(registry_dir).revert_all()
        lab_module.delete(name)
