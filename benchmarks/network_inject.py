"""Inject and revert a targeted tc tree: one netlink batch against `tc` per command and `tc -batch`.

The tree: root htb + default class + a 1 Mbit/s class with a tbf leaf + u32 filters for 10
destinations x the RTP port range 16384-32768 (2 aligned blocks) = 20 filters, on a veth in a
private network namespace. Each method injects, then reverts (restores the default root qdisc);
rounds are interleaved. Needs root; touches only its own namespace.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import BenchmarkError, Figure, median, parse_args, report, run_main

DESTINATIONS = [f"10.77.{i}.{i + 1}" for i in range(10)]
BLOCKS = [(16384, 0xC000), (32768, 0xFFFF)]


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def tc_lines(dev: str) -> list[str]:
    lines = [
        f"qdisc replace dev {dev} root handle c4a0: htb default 1",
        f"class add dev {dev} parent c4a0: classid c4a0:1 htb rate 100gbit",
        f"class add dev {dev} parent c4a0: classid c4a0:10 htb rate 1mbit",
        f"qdisc add dev {dev} parent c4a0:10 handle c010: tbf rate 1mbit burst 3200 limit 9450",
    ]
    for address in DESTINATIONS:
        for value, mask in BLOCKS:
            lines.append(
                f"filter add dev {dev} parent c4a0: protocol ip prio 32 u32 "
                f"match ip protocol 17 0xff match ip dst {address}/32 "
                f"match ip dport {value} 0x{mask:04x} flowid c4a0:10"
            )
    return lines


def body() -> None:
    args = parse_args(__doc__ or "", sys.argv[1:])
    if os.geteuid() != 0:
        raise BenchmarkError("needs root (a private network namespace)")
    rounds = 10 if args.quick else 40
    netns = "cgbench" + secrets.token_hex(3)
    _ip("netns", "add", netns)
    try:
        _ip("-n", netns, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b")
        _ip("-n", netns, "link", "set", "veth-a", "up")
        _measure(netns, rounds, args.json)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def _measure(netns: str, rounds: int, as_json: bool) -> None:
    from chaosgenesys.network import engine, tc
    from chaosgenesys.network.nl import RtSocket, in_netns
    from chaosgenesys.network.targeting import target

    lines = tc_lines("veth-a")
    revert_line = "qdisc del dev veth-a root"
    with tempfile.TemporaryDirectory() as tmp, in_netns(netns):
        # tc runs as a child of this thread, which is inside the namespace: no `ip netns exec`.
        batch_in = Path(tmp) / "inject.tc"
        batch_in.write_text("\n".join(lines) + "\n")

        def tc_each() -> tuple[float, float]:
            t0 = time.perf_counter()
            for line in lines:
                subprocess.run(["tc", *line.split()], check=True, stderr=subprocess.DEVNULL)
            t1 = time.perf_counter()
            subprocess.run(["tc", *revert_line.split()], check=True)
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1

        def tc_batch() -> tuple[float, float]:
            t0 = time.perf_counter()
            subprocess.run(["tc", "-batch", str(batch_in)], check=True, stderr=subprocess.DEVNULL)
            t1 = time.perf_counter()
            subprocess.run(["tc", *revert_line.split()], check=True)
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1

        rate = 125_000
        leaf = engine.Leaf("tbf", tc.tbf_options(rate, 3200, 9450), rate, "tbf rate 1mbit")
        goal_target = target(DESTINATIONS, [], "udp", ["16384-32768"])

        with RtSocket() as sock:
            index = engine._ifindex("veth-a")

            def ours() -> tuple[float, float]:
                t0 = time.perf_counter()
                messages = engine._tree_messages(
                    index, "veth-a", 0x10, leaf, goal_target, with_root=True, ingress=False
                )
                sock.batch(messages)
                t1 = time.perf_counter()
                engine._revert_device(sock, index, "veth-a", 0x10, {"default": True})
                t2 = time.perf_counter()
                return t1 - t0, t2 - t1

            n_filters = sum(
                1
                for m in engine._tree_messages(
                    index, "veth-a", 0x10, leaf, goal_target, with_root=True, ingress=False
                )
                if m.type == tc.RTM_NEWTFILTER
            )
            results: dict[str, list[tuple[float, float]]] = {"each": [], "batch": [], "ours": []}
            for method in (tc_each, tc_batch, ours):  # warm-up
                method()
            for _ in range(rounds):
                results["each"].append(tc_each())
                results["batch"].append(tc_batch())
                results["ours"].append(ours())

    empty = 0.0
    each_in = median([a for a, _ in results["each"]]) - empty
    each_out = median([b for _, b in results["each"]]) - empty
    batch_in_s = median([a for a, _ in results["batch"]]) - empty
    batch_out = median([b for _, b in results["batch"]]) - empty
    ours_in = median([a for a, _ in results["ours"]])
    ours_out = median([b for _, b in results["ours"]])
    ms = 1000.0
    figures = [
        Figure("filters in the tree", n_filters, "", "", None),
        Figure("inject: tc per command", each_in * ms, "ms", "", None),
        Figure("inject: tc -batch", batch_in_s * ms, "ms", "", None),
        Figure("inject: one netlink batch (ours)", ours_in * ms, "ms", "<= 1 ms", ours_in <= 1e-3),
        Figure(
            "inject speed-up vs tc -batch",
            batch_in_s / ours_in,
            "x",
            ">= 4x",
            batch_in_s / ours_in >= 4,
        ),
        Figure("inject speed-up vs tc per command", each_in / ours_in, "x", "", None),
        Figure("revert: tc qdisc del", batch_out * ms, "ms", "", None),
        Figure(
            "revert: ours (dump + restore)", ours_out * ms, "ms", "<= 0.3 ms", ours_out <= 0.3e-3
        ),
        Figure("revert: tc per command (same)", each_out * ms, "ms", "", None),
    ]
    notes = [
        f"median of {rounds} interleaved rounds; tc figures are whole tc processes (started from "
        "a thread already inside the namespace), as a chaos tool that shells out pays them",
        "ours = building the messages + one send + reading every ack; revert = dump root and "
        "classes, then one delete of the root",
    ]
    report("network_inject: targeted tc tree", figures, notes, as_json=as_json)


if __name__ == "__main__":
    sys.exit(run_main(body))
