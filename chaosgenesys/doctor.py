"""What this machine can run: the checks behind ``chaosgenesys doctor``.

A pipeline runs ``chaosgenesys doctor --only network`` before an experiment that needs network
faults and learns, before anything is injected, whether it can work here and what to install or
grant when it cannot. Each :class:`Check` says whether one capability works, what needs it, and
the reason when it does not (the activities' own error messages, which say how to get it).

The kernel checks are not guessed from version numbers or module lists: they run the package's
own activities for real, in a throwaway pair of network namespaces (``cgdoctor<pid>-a`` and
``cgdoctor<pid>-b``, joined by a veth pair, as ``create_test_network`` makes them), and revert
each fault at once. Every fault, and the test network itself, is recorded in the fault registry
first, so even a doctor killed halfway leaves nothing applied and no namespace once the guardian
has looked; otherwise the namespaces are deleted at the end. Nothing touches the machine's own
interfaces, qdiscs or firewall.

::

    from chaosgenesys.doctor import run_checks

    for check in run_checks(groups=["network"]):
        print(check.name, check.ok, check.detail)
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from typing import Any

from chaoslib.exceptions import ActivityFailed

__all__ = ["GROUPS", "LAB", "Check", "run_checks"]

#: The groups of checks, in the order they run.
GROUPS = ("platform", "proxy", "browser", "network", "sockets")
#: The prefix of the doctor's throwaway test network, ``cgdoctor<pid>`` (namespaces
#: ``cgdoctor<pid>-a`` / ``-b``): one per doctor process, so two doctors at once (two pipelines
#: on one runner) neither refuse nor delete each other's.
LAB = "cgdoctor"


def _lab_name() -> str:
    return f"{LAB}{os.getpid()}"


def _netns() -> str:
    return f"{_lab_name()}-a"

_PEER = "10.200.0.2"
_ECHO_PORT = 7
#: Faults the doctor applies end by themselves after this long, whatever happens to it.
_FAULT_SECONDS = 60.0


@dataclass
class Check:
    """One capability: ``ok`` True (works here), False (does not: ``detail`` says why and how
    to get it) or None (not checked: a prerequisite failed)."""

    group: str
    name: str
    needed_for: str
    ok: bool | None
    detail: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _version(distribution: str) -> tuple[int, ...] | None:
    try:
        text = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    parts: list[int] = []
    for piece in text.split(".")[:3]:
        digits = "".join(c for c in piece if c.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts)


def _show(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


def _platform_checks() -> list[Check]:
    from chaosgenesys.faults.registry import registry_dir

    checks: list[Check] = []
    python = sys.version_info[:3]
    checks.append(
        Check(
            "platform",
            "Python 3.12 or newer",
            "everything (chaostoolkit 1.21 and chaostoolkit-lib 1.45 need it)",
            python >= (3, 12),
            f"{_show(python)} at {sys.executable}",
        )
    )
    for distribution, minimum in (("chaostoolkit", (1, 21)), ("chaostoolkit-lib", (1, 45))):
        found = _version(distribution)
        checks.append(
            Check(
                "platform",
                f"{distribution} {_show(minimum)} or newer",
                "chaos run" if distribution == "chaostoolkit" else "every activity and control",
                found is not None and found >= minimum,
                f"{_show(found)} installed"
                if found
                else f"not installed: pip install '{distribution}>={_show(minimum)}'",
            )
        )
    directory = registry_dir()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        writable = os.access(directory, os.W_OK | os.X_OK)
        detail = f"{directory}" + ("" if writable else ": not writable")
    except OSError as error:
        writable, detail = False, f"{directory}: {error.strerror}"
    checks.append(
        Check(
            "platform",
            "runtime directory (fault registry, agent runs)",
            "every fault, the guardian, synthetic agents; set CHAOSGENESYS_RUNTIME_DIR to move it",
            writable,
            detail,
        )
    )
    return checks


def _proxy_checks() -> list[Check]:
    found = _version("mitmproxy") if importlib.util.find_spec("mitmproxy") else None
    if found is None:
        ok, detail = False, "not installed: pip install 'chaosgenesys[proxy]'"
    elif found[:1] != (12,):
        ok, detail = False, (
            f"{_show(found)} installed; the proxy's addon is written for mitmproxy 12: "
            "pip install 'mitmproxy>=12,<13'"
        )
    else:
        ok, detail = True, f"{_show(found)} installed"
    return [
        Check(
            "proxy",
            "mitmproxy 12",
            "chaosgenesys.proxy (delay, fail, reset, throttle requests; close WebSockets)",
            ok,
            detail,
        )
    ]


def _browser_checks() -> list[Check]:
    """A headless Chromium launched here opens its DevTools port (what ``start_observer`` with
    ``open_url`` does), then is stopped, its profile removed."""
    import json
    import shutil
    import urllib.request

    from chaosgenesys.browser.chromium import ENV_CHROMIUM, LaunchedBrowser, chromium_path

    name = "Chromium with a DevTools port"
    needed_for = (
        "start_observer(open_url=...) and the browser faults on the browser it launches (a "
        "browser you start yourself with --remote-debugging-port needs none here)"
    )
    path = chromium_path()
    if shutil.which(path) is None:
        return [Check("browser", name, needed_for, False,
                      f"{path} not found: install Chromium (scripts/bootstrap: apt-get install "
                      f"chromium) or set {ENV_CHROMIUM} to a Chromium, Chrome or Edge binary")]
    try:
        browser = LaunchedBrowser(timeout=20.0)
    except Exception as error:  # ActivityFailed: it did not open its port
        return [Check("browser", name, needed_for, False, str(error))]
    try:
        port = browser.ws_url.split("//", 1)[1].split("/", 1)[0]
        with urllib.request.urlopen(f"http://{port}/json/version", timeout=5) as answer:
            version = str(json.loads(answer.read()).get("Browser") or "?")
        return [Check("browser", name, needed_for, True,
                      f"{version} at {path}: launched headless, DevTools answered, stopped")]
    except (OSError, ValueError) as error:
        return [Check("browser", name, needed_for, False,
                      f"{path} launched but its DevTools port did not answer: {error}")]
    finally:
        browser.stop()


def _attempt(group: str, name: str, needed_for: str, action: Callable[[], str]) -> Check:
    try:
        return Check(group, name, needed_for, True, action())
    except (ActivityFailed, OSError) as error:
        return Check(group, name, needed_for, False, str(error) or type(error).__name__)


def _revert(result: dict[str, Any]) -> None:
    from chaosgenesys.faults import registry

    if result.get("fault_id"):
        registry.revert(str(result["fault_id"]))


def _applied(result: dict[str, Any], what: str) -> str:
    """Revert the fault the activity applied; describe what worked."""
    _revert(result)
    return f"{what}: applied and reverted in netns {_netns()}"


def _kernel_checks(groups: set[str]) -> list[Check]:
    from chaosgenesys.network import lab
    from chaosgenesys.network.nl import has_net_admin

    wanted = [entry for entry in _KERNEL_CHECKS if entry[0] in groups]
    if not has_net_admin():
        reason = (
            "not checked: network and socket faults need CAP_NET_ADMIN (run as root, or "
            "grant the capability); the checks need root to create their namespaces"
        )
        capability = [
            Check(group, "CAP_NET_ADMIN", "every network and socket fault", False, reason)
            for group in ("network", "sockets")
            if group in groups
        ]
        return capability + [Check(g, n, f, None, reason) for g, n, f, _ in wanted]
    try:
        lab.create(_lab_name(), [], [_ECHO_PORT])
    except (ActivityFailed, OSError) as error:
        reason = f"not checked: the test namespaces could not be created ({error})"
        return [Check(g, n, f, None, reason) for g, n, f, _ in wanted]
    try:
        return [_attempt(g, n, f, check) for g, n, f, check in wanted]
    finally:
        lab.delete(_lab_name())


def _throttle(direction: str) -> str:
    from chaosgenesys.network.actions import throttle_bandwidth

    result = throttle_bandwidth(
        "10mbit",
        interface="veth-a",
        netns=_netns(),
        destinations=[_PEER],
        protocol="udp",
        ports=["9"],
        direction=direction,
        duration=_FAULT_SECONDS,
    )
    what = "htb tree" if direction == "egress" else "ingress redirected through an ifb device"
    return _applied(result, what)


def _netem() -> str:
    from chaosgenesys.network.actions import apply_netem

    result = apply_netem(
        delay_ms=1,
        loss_percent=1,
        interface="veth-a",
        netns=_netns(),
        destinations=[_PEER],
        duration=_FAULT_SECONDS,
    )
    return _applied(result, "netem qdisc")


def _nftables_loss(direction: str) -> str:
    from chaosgenesys.network.actions import add_packet_loss

    result = add_packet_loss(
        1,
        method="nftables",
        interface="veth-a",
        netns=_netns(),
        destinations=[_PEER],
        direction=direction,
        duration=_FAULT_SECONDS,
    )
    return _applied(result, f"nftables drop on the {direction} hook")


def _connect() -> socket.socket:
    from chaosgenesys.network.nl import in_netns

    with in_netns(_netns()):
        client = socket.create_connection((_PEER, _ECHO_PORT), timeout=5)
    return client


def _reset_check() -> str:
    from chaosgenesys.sockets.actions import reset_connections

    client = _connect()
    try:
        result = reset_connections(
            destinations=[_PEER], ports=[str(_ECHO_PORT)], netns=_netns()
        )
        if result["count"] != 1:
            raise ActivityFailed(f"one connection to reset, {result['count']} reset")
        try:
            client.sendall(b"x")
            client.recv(1)
        except OSError:
            return "a live TCP connection was destroyed (its peer got a reset)"
        raise ActivityFailed("the destroyed connection still worked")
    finally:
        client.close()


def _reject_check() -> str:
    from chaosgenesys.sockets.actions import reject_connections

    result = reject_connections(
        destinations=[_PEER], ports=[str(_ECHO_PORT)], duration=_FAULT_SECONDS, netns=_netns()
    )
    try:
        try:
            _connect().close()
        except ConnectionRefusedError:
            return "a new connection was answered with a reset, then the window was removed"
        raise ActivityFailed("a new connection went through the reject window")
    finally:
        _revert(result)


#: (group, name, what needs it, the check: applies and reverts, returns what worked).
_KERNEL_CHECKS: tuple[tuple[str, str, str, Callable[[], str]], ...] = (
    (
        "network",
        "throttle_bandwidth: htb, tbf and u32 filters",
        "throttle_bandwidth (egress)",
        lambda: _throttle("egress"),
    ),
    (
        "network",
        "direction ingress: ifb and mirred",
        "every network fault with direction ingress",
        lambda: _throttle("ingress"),
    ),
    ("network", "sch_netem", "add_latency, add_packet_loss (netem), apply_netem", _netem),
    (
        "network",
        "nftables netdev egress hook",
        "nftables loss and blackhole, egress",
        lambda: _nftables_loss("egress"),
    ),
    (
        "network",
        "nftables netdev ingress hook",
        "nftables loss and blackhole, ingress",
        lambda: _nftables_loss("ingress"),
    ),
    ("sockets", "SOCK_DESTROY (sock_diag)", "reset_connections", _reset_check),
    ("sockets", "nftables reject with tcp reset", "reject_connections", _reject_check),
)


def run_checks(groups: Iterable[str] = GROUPS) -> list[Check]:
    """Run the checks of ``groups`` (see :data:`GROUPS`), in order."""
    selected = set(groups)
    unknown = selected - set(GROUPS)
    if unknown:
        raise ValueError(f"unknown group(s) {sorted(unknown)}: choose from {', '.join(GROUPS)}")
    checks: list[Check] = []
    if "platform" in selected:
        checks += _platform_checks()
    if "proxy" in selected:
        checks += _proxy_checks()
    if "browser" in selected:
        checks += _browser_checks()
    if selected & {"network", "sockets"}:
        checks += _kernel_checks(selected)
    return checks
