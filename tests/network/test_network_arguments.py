"""Targeting and argument checks (no kernel needed), and the lazy-import rule."""

from __future__ import annotations

import subprocess
import sys

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.network import actions
from chaosgenesys.network.arguments import parse_ports
from chaosgenesys.network.targeting import port_blocks, target


def _covered(blocks: list[tuple[int, int]]) -> set[int]:
    ports: set[int] = set()
    for value, mask in blocks:
        size = (~mask & 0xFFFF) + 1
        assert value & ~mask & 0xFFFF == 0, "block not aligned"
        ports.update(range(value, value + size))
    return ports


@pytest.mark.parametrize(
    ("first", "last"), [(443, 443), (16384, 32768), (1, 65535), (1000, 1999), (9, 10)]
)
def test_port_blocks_cover_the_range_exactly(first: int, last: int) -> None:
    assert _covered(port_blocks(first, last)) == set(range(first, last + 1))


def test_rtp_range_is_two_blocks() -> None:
    assert port_blocks(16384, 32768) == [(16384, 0xC000), (32768, 0xFFFF)]


def test_ports_parse_lists_and_merge() -> None:
    assert parse_ports(["443", 8443, "8000-8100", "8050-8200"]) == [
        (443, 443),
        (8000, 8200),
        (8443, 8443),
    ]
    assert parse_ports("443,80") == [(80, 80), (443, 443)]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"ports": "9-3"}, "ports: a port range must go from low to high, got '9-3'"),
        ({"ports": "70000"}, "between 1 and 65535"),
        ({"ports": "https"}, "'https'"),
        (
            {"destinations": ["10.0.0.0/33"]},
            "destinations must hold valid CIDRs or addresses, got '10.0.0.0/33'",
        ),
        ({"destinations": ["10.0.0.300"]}, "'10.0.0.300'"),
        ({"destinations": ["no-such-host.invalid"]}, "'no-such-host.invalid'"),
        ({"protocol": "icmp"}, "protocol must be"),
    ],
)
def test_bad_targeting_names_argument_and_value(kwargs: dict[str, object], needle: str) -> None:
    arguments: dict[str, object] = {
        "destinations": [],
        "exclude": [],
        "protocol": "",
        "ports": [],
    }
    arguments.update(kwargs)
    with pytest.raises(ActivityFailed) as caught:
        target(**arguments)
    assert needle in str(caught.value)


def test_exclude_is_subtracted_not_ored() -> None:
    t = target(["10.0.0.0/24"], ["10.0.0.5"], "tcp", ["443"])
    networks = t.networks
    assert "10.0.0.5/32" not in networks
    assert "10.0.0.4/32" in networks
    # Every filter has protocol AND port AND address keys in one selector.
    for _ethertype, keys, _text in t.u32_matches(False):
        offsets = {k.off for k in keys}
        assert {0, 8, 16, 20} <= offsets


def test_exclude_everything_refused() -> None:
    with pytest.raises(ActivityFailed, match="removes every destination"):
        target(["10.0.0.0/24"], ["10.0.0.0/16"], "", [])


def test_host_names_resolve_to_every_address() -> None:
    t = target(["localhost"], [], "", [])
    assert "127.0.0.1/32" in t.networks


@pytest.mark.parametrize(
    ("call", "needle"),
    [
        (lambda: actions.add_packet_loss(120, dry_run=True), "loss_percent must be at most 100"),
        (lambda: actions.add_latency(-5, dry_run=True), "delay_ms must be at least 0"),
        (lambda: actions.throttle_bandwidth("fast", dry_run=True), "rate must be a rate"),
        (
            lambda: actions.throttle_bandwidth("100tbit", interface="lo", dry_run=True),
            "rate must be at most 100gbit (12.5 GB/s, the rate of the fault tree's root class: "
            "a faster limit would never bind), got '100tbit'",
        ),
        (
            lambda: actions.throttle_bandwidth("1tbit", interface="lo", dry_run=True),
            "rate must be at most 100gbit",
        ),
        (
            lambda: actions.apply_netem(delay_ms=5, rate="200gbit", dry_run=True),
            "rate must be at most 100gbit",
        ),
        (
            lambda: actions.throttle_bandwidth(
                "100gbit", latency_ms=60000, interface="lo", dry_run=True
            ),
            "more than tbf can queue (4 GiB): rate='100gbit', latency_ms=60000",
        ),
        (
            lambda: actions.throttle_bandwidth(
                "1mbit", burst="9999999999kb", interface="lo", dry_run=True
            ),
            "burst='9999999999kb'",
        ),
        (
            lambda: actions.create_test_network(udp_ports=["abc"]),
            "udp_ports must hold port numbers (1-65535), got 'abc' at index 0",
        ),
        (
            lambda: actions.create_test_network(tcp_ports=["443", "70000"]),
            "tcp_ports must hold port numbers from 1 to 65535, got '70000' at index 1",
        ),
        (
            lambda: actions.create_test_network(udp_ports=[True]),
            "udp_ports must hold port numbers (1-65535), got True at index 0",
        ),
        (
            lambda: actions.create_test_network(tcp_ports="443"),  # type: ignore[arg-type]
            "tcp_ports must be a list of port numbers, got '443'",
        ),
        (lambda: actions.add_latency(10, direction="up", dry_run=True), "direction must be"),
        (
            lambda: actions.add_latency(10, distribution="normal", dry_run=True),
            "give jitter_ms > 0",
        ),
        (
            lambda: actions.apply_netem(delay_ms=10, distribution="gauss", jitter_ms=1),
            "distribution must be one of",
        ),
        (lambda: actions.apply_netem(loss_model="gemodel"), "needs ge_p > 0"),
        (lambda: actions.apply_netem(reorder_percent=5), "needs delay_ms > 0"),
        (
            lambda: actions.add_latency(10, interface="nosuchif0", dry_run=True),
            "interface 'nosuchif0' does not exist",
        ),
        (
            lambda: actions.add_latency(10, interface="lo", netns="nosuchns-x", dry_run=True),
            "netns 'nosuchns-x' does not exist",
        ),
    ],
)
def test_bad_input_is_activity_failed(call: object, needle: str) -> None:
    with pytest.raises(ActivityFailed) as caught:
        call()  # type: ignore[operator]
    assert needle in str(caught.value)


def test_activity_modules_do_not_import_pyroute2() -> None:
    code = (
        "import sys, chaosgenesys.network.actions, chaosgenesys.network.probes,"
        " chaosgenesys.network.arguments, chaosgenesys.sockets.targets;"
        "print([m for m in sys.modules if m.startswith(('pyroute2', 'chaosgenesys.network.tc',"
        " 'chaosgenesys.network.nl', 'chaosgenesys.network.targeting'))])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_no_cap_net_admin_is_refused_before_anything(tmp_path: object) -> None:
    code = (
        "import ctypes, sys\n"
        "libc = ctypes.CDLL(None)\n"
        # Drop every capability of this process (capset with empty sets).
        "hdr = (ctypes.c_uint32 * 2)(0x20080522, 0)\n"
        "data = (ctypes.c_uint32 * 6)()\n"
        "assert libc.capset(hdr, data) == 0\n"
        "from chaoslib.exceptions import ActivityFailed\n"
        "from chaosgenesys.network import actions\n"
        "try:\n"
        "    actions.throttle_bandwidth('1mbit', interface='lo')\n"
        "except ActivityFailed as e:\n"
        "    print(e)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "CAP_NET_ADMIN" in done.stdout


@pytest.mark.parametrize(
    ("destinations", "exclude", "ports", "needle"),
    [
        (["10.0.0.0/33"], [], ["443"], "destinations must hold valid CIDRs or addresses"),
        (["no-such-host.invalid"], [], ["443"], "'no-such-host.invalid', which does not resolve"),
        ([42], [], ["443"], "destinations must hold CIDRs, addresses or host names, got 42"),
        (["10.0.0.1", ""], [], ["443"], "got '' at index 1"),
        (",", [], ["443"], "destinations resolves to nothing: ','"),
        ([], ["fd00::/129"], ["443"], "exclude must hold valid CIDRs or addresses"),
        (["10.0.0.0/24"], ["10.0.0.0/16"], ["443"], "exclude removes every destination"),
        (["10.0.0.1"], [], ["9-3"], "ports: a port range must go from low to high, got '9-3'"),
        (["10.0.0.1"], [], ["0"], "ports must be between 1 and 65535, got '0'"),
        (["10.0.0.1"], [], [True], "ports must hold port numbers or ranges"),
    ],
)
def test_network_and_socket_targets_refuse_alike(
    destinations: object, exclude: object, ports: object, needle: str
) -> None:
    """One parser: the network and the socket actions give the same message for the same value."""
    from chaosgenesys.sockets.targets import parse_target

    messages = []
    for parse in (
        lambda: target(destinations, exclude, "tcp", ports),
        lambda: parse_target(destinations, ports, exclude),
    ):
        with pytest.raises(ActivityFailed) as caught:
            parse()
        messages.append(str(caught.value))
    assert messages[0] == messages[1]
    assert needle in messages[0]


def test_network_and_socket_targets_resolve_alike() -> None:
    from chaosgenesys.sockets.targets import parse_target

    net = target(["10.0.0.9", "localhost", "10.0.0.0/30"], [], "", ["443, 80", 8080])
    sock = parse_target(["10.0.0.9", "localhost", "10.0.0.0/30"], ["443, 80", 8080], [])
    assert list(net.networks) == [str(n) for n in sock.destinations]
    assert "127.0.0.1/32" in net.networks
    assert net.ports == sock.ports == ((80, 80), (443, 443), (8080, 8080))


def test_direction_is_parsed_the_same_everywhere() -> None:
    from chaosgenesys.network.arguments import parse_direction

    assert parse_direction(" Ingress ") == "ingress"
    with pytest.raises(ActivityFailed, match="direction must be one of 'egress', 'ingress'"):
        parse_direction("up")
