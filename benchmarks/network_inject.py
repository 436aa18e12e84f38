"""Inject and revert a targeted tc tree: one netlink batch against `tc` per command and `tc -batch`.

Two chaosgenesys figures: the engine alone (``apply_tc``'s netlink work, no registry) and what a
user calls, ``throttle_bandwidth`` then ``remove_faults`` (the fault registry, the guardian
check, the namespace switch and the capability check included), warm, cold (right after another
method's processes) and as the first call of a new Python process.

The tree: root htb + default class + a 1 Mbit/s class with a tbf leaf + u32 filters for 10
destinations x the RTP port range 16384-32768 (2 aligned blocks) = 20 filters, on a veth in a
private network namespace. The `tc` command lines build the same tree as chaosgenesys does
(same keys, handles, rates and bursts; checked by comparing `tc -d` dumps of both). Each method
injects, then reverts (restores the default root qdisc); rounds are interleaved and the order
rotates every round. Needs root; touches only its own namespace.

Beside them, the **floor** of the public call: the system calls its guarantees need (namespace
switch, lock, socket, one qdisc dump, the record created and renamed, the guardian's lock, the
batch and its acks; for the revert the record read, one dump, the restore, the unlink), made
with prebuilt messages and no code of ours between (``_Floor``). The public call minus the floor
is what our Python costs.
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from _common import BenchmarkError, Figure, median, parse_args, report, run_main

DEV = "veth-a"
DESTINATIONS = [f"10.77.{i}.{i + 1}" for i in range(10)]
PORTS = "16384-32768"
BLOCKS = [(16384, 0xC000), (32768, 0xFFFF)]


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"ip {' '.join(args)}: {done.stderr.strip()}")


def tc_lines(dev: str) -> list[str]:
    """The tree as `tc` commands: what chaosgenesys sends, key for key (``tc -d`` shows both)."""
    lines = [
        f"qdisc replace dev {dev} root handle c4a0: htb default 1",
        f"class add dev {dev} parent c4a0: classid c4a0:1 htb rate 100gbit "
        "burst 125000000 cburst 125000000 quantum 200000",
        f"class add dev {dev} parent c4a0: classid c4a0:10 htb rate 1mbit "
        "burst 3200 cburst 3200 quantum 12500",
        f"qdisc add dev {dev} parent c4a0:10 handle c010: tbf rate 1mbit burst 3200 limit 9450",
    ]
    node = 0
    for address in DESTINATIONS:
        for value, mask in BLOCKS:
            node += 1
            lines.append(
                f"filter add dev {dev} parent c4a0: protocol ip prio 32 handle ::{node:x} u32 "
                "match u32 0x05000000 0x0f000000 at 0 "
                f"match ip protocol 17 0xff match ip dst {address}/32 "
                f"match ip dport {value} 0x{mask:04x} flowid c4a0:10"
            )
    return lines


def body() -> None:
    args = parse_args(__doc__ or "", sys.argv[1:])
    if os.geteuid() != 0:
        raise BenchmarkError("needs root (a private network namespace)")
    rounds = 15 if args.quick else 60
    netns = "cgbench" + secrets.token_hex(3)
    _ip("netns", "add", netns)
    try:
        _ip("-n", netns, "link", "add", DEV, "type", "veth", "peer", "name", "veth-b")
        _ip("-n", netns, "link", "set", DEV, "up")
        _measure(netns, rounds, args.json)
    finally:
        subprocess.run(["ip", "netns", "del", netns], capture_output=True)


def _tc_dump() -> str:
    """The tree as the kernel has it, without what differs by construction (kernel counters)."""
    out = []
    for what in ("qdisc", "class", "filter"):
        done = subprocess.run(
            ["tc", "-d", what, "show", "dev", DEV], capture_output=True, text=True, check=True
        )
        out.append(done.stdout)
    return "".join(out)


Timer = Callable[[], tuple[float, ...]]


def _measure(netns: str, rounds: int, as_json: bool) -> None:
    from chaosgenesys.network import engine, tc, tc_state, tc_tree
    from chaosgenesys.network.actions import remove_faults, throttle_bandwidth
    from chaosgenesys.network.nl import RtSocket, in_netns
    from chaosgenesys.network.targeting import target

    lines = tc_lines(DEV)
    revert_line = ["tc", "qdisc", "del", "dev", DEV, "root"]
    rate = 125_000
    leaf = tc_tree.Leaf("tbf", tc.tbf_options(rate, 3200, 9450), rate, "tbf rate 1mbit")
    parts: list[tuple[float, float, float]] = []  # ours: arguments, build, send + acks

    first_call = _first_call_in_a_new_process(netns)
    with tempfile.TemporaryDirectory() as tmp, in_netns(netns):
        os.environ["CHAOSGENESYS_RUNTIME_DIR"] = str(Path(tmp) / "registry")
        # tc runs as a child of this thread, which is inside the namespace: no `ip netns exec`.
        batch_in = Path(tmp) / "inject.tc"
        batch_in.write_text("\n".join(lines) + "\n")
        empty = Path(tmp) / "empty.tc"
        empty.write_text("")

        def tc_each() -> tuple[float, float]:
            t0 = time.perf_counter()
            for line in lines:
                subprocess.run(["tc", *line.split()], check=True, stderr=subprocess.DEVNULL)
            t1 = time.perf_counter()
            subprocess.run(revert_line, check=True)
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1

        def tc_batch() -> tuple[float, float]:
            t0 = time.perf_counter()
            subprocess.run(["tc", "-batch", str(batch_in)], check=True, stderr=subprocess.DEVNULL)
            t1 = time.perf_counter()
            subprocess.run(revert_line, check=True)
            t2 = time.perf_counter()
            return t1 - t0, t2 - t1

        def tc_empty() -> tuple[float, float]:
            # The floor of any tc process: start-up, netlink socket, nothing to send.
            t0 = time.perf_counter()
            subprocess.run(["tc", "-batch", str(empty)], check=True)
            return time.perf_counter() - t0, 0.0

        def ours() -> tuple[float, float]:
            # What apply_tc does for the tree, without the fault registry: parse the targeting
            # arguments, resolve the interface, open a socket, build, one send, read the acks.
            t0 = time.perf_counter()
            goal_target = target(DESTINATIONS, [], "udp", [PORTS])
            index = tc_state.interface_index(DEV)
            with RtSocket() as sock:
                t1 = time.perf_counter()
                messages = tc_tree.tree_messages(
                    index, DEV, 0x10, leaf, goal_target, with_root=True, ingress=False
                )
                t2 = time.perf_counter()
                sock.batch(messages)
            t3 = time.perf_counter()
            # Revert as revert_spec does: resolve, open a socket, one dump, one delete.
            index = tc_state.interface_index(DEV)
            with RtSocket() as sock:
                engine._revert_device(sock, index, DEV, 0x10, {"default": True})
            t4 = time.perf_counter()
            parts.append((t1 - t0, t2 - t1, t3 - t2))
            return t3 - t0, t4 - t3

        floor = _Floor(Path(tmp) / "floor", netns, tc_tree.tree_messages(
            tc_state.interface_index(DEV), DEV, 0x10, leaf,
            target(DESTINATIONS, [], "udp", [PORTS]), with_root=True, ingress=False,
        ), [tc_tree.restore_message(tc_state.interface_index(DEV), DEV, {"default": True})],
            [tc.htb_root(tc_state.interface_index(DEV), tc.handle(0xC4A0), 1, "bare root")])

        def public() -> tuple[float, float]:
            # What a user calls: the same tree through the public activity, its record in the
            # fault registry (a directory on this machine's disk), then remove_faults by id.
            t0 = time.perf_counter()
            done = throttle_bandwidth(
                rate="1mbit", interface=DEV, destinations=DESTINATIONS, protocol="udp",
                ports=[PORTS], netns=netns,
            )
            t1 = time.perf_counter()
            remove_faults(fault_ids=[done["fault_id"]])
            return t1 - t0, time.perf_counter() - t1

        methods: dict[str, Timer] = {
            "each": tc_each,
            "batch": tc_batch,
            "empty": tc_empty,
            "ours": ours,
            "public": public,
            "floor": floor.cycle,
        }
        # Same tree on both sides: the kernel's own dump after tc -batch and after ours.
        subprocess.run(["tc", "-batch", str(batch_in)], check=True, stderr=subprocess.DEVNULL)
        dump_tc = _tc_dump()
        subprocess.run(revert_line, check=True)
        with RtSocket() as sock:
            goal_target = target(DESTINATIONS, [], "udp", [PORTS])
            sock.batch(
                tc_tree.tree_messages(
                    tc_state.interface_index(DEV),
                    DEV,
                    0x10,
                    leaf,
                    goal_target,
                    with_root=True,
                    ingress=False,
                )
            )
        dump_ours = _tc_dump()
        subprocess.run(revert_line, check=True)
        fault = throttle_bandwidth(rate="1mbit", interface=DEV, destinations=DESTINATIONS,
                                   protocol="udp", ports=[PORTS], netns=netns)
        dump_public = _tc_dump()
        remove_faults(fault_ids=[fault["fault_id"]])
        n_filters = dump_ours.count("*flowid")
        same_tree = dump_tc == dump_ours == dump_public and n_filters == 2 * len(DESTINATIONS)

        root_change = floor.root_change(rounds * 4)
        for method in methods.values():  # warm-up: page cache, imports, first allocations
            method()
            method()
        # Each round runs every method twice in a row: the first call comes right after another
        # method ran (cold: CPU caches hold another process, as in a chaos run that shells out
        # or imports between faults), the second right after itself (warm, both sides alike).
        cold: dict[str, list[tuple[float, ...]]] = {name: [] for name in methods}
        warm: dict[str, list[tuple[float, ...]]] = {name: [] for name in methods}
        parts_warm: list[tuple[float, float, float]] = []
        order = list(methods)
        for round_ in range(rounds):
            shift = round_ % len(order)
            for name in order[shift:] + order[:shift]:
                cold[name].append(methods[name]())
                warm[name].append(methods[name]())
                if name == "ours":
                    parts_warm.append(parts[-1])

    def med(results: dict[str, list[tuple[float, ...]]], name: str, which: int = 0) -> float:
        return median([r[which] for r in results[name]])

    ms = 1000.0
    batch_warm, batch_cold = med(warm, "batch"), med(cold, "batch")
    ours_warm, ours_cold = med(warm, "ours"), med(cold, "ours")
    ratio_warm, ratio_cold = batch_warm / ours_warm, batch_cold / ours_cold
    paired = median([b[0] / o[0] for b, o in zip(warm["batch"], warm["ours"], strict=True)])
    revert_ours = med(warm, "ours", 1)
    public_warm, public_cold = med(warm, "public"), med(cold, "public")
    public_revert = med(warm, "public", 1)
    breakdown = " / ".join(f"{median([p[i] for p in parts_warm]) * ms:.3f}" for i in range(3))

    def pair(results_warm: float, results_cold: float) -> str:
        return f"{results_warm * ms:.3f} ({results_cold * ms:.3f})"

    figures = [
        Figure("filters in the tree", n_filters, "", "", None),
        Figure(
            "same tree: `tc -d` dump after tc -batch = engine = public call",
            "yes" if same_tree else "NO",
            "",
            "yes",
            same_tree,
        ),
        Figure(
            "inject: tc per command, warm (cold)", pair(med(warm, "each"), med(cold, "each")), "ms"
        ),
        Figure("inject: tc -batch, warm (cold)", pair(batch_warm, batch_cold), "ms"),
        Figure(
            "  an empty `tc -batch` (process floor), warm (cold)",
            pair(med(warm, "empty"), med(cold, "empty")),
            "ms",
        ),
        Figure("inject: chaosgenesys, warm", ours_warm * ms, "ms", "<= 1 ms", ours_warm <= 1e-3),
        Figure("inject: chaosgenesys, cold", ours_cold * ms, "ms", "<= 1 ms", ours_cold <= 1e-3),
        Figure("  warm: arguments + interface + socket / build / send + acks", breakdown, "ms"),
        Figure("inject speed-up vs tc -batch, warm", ratio_warm, "x", ">= 4x", ratio_warm >= 4),
        Figure("  median of the per-round ratios, warm", paired, "x"),
        Figure("inject speed-up vs tc -batch, cold", ratio_cold, "x"),
        Figure("inject speed-up vs tc per command, warm", med(warm, "each") / ours_warm, "x"),
        Figure("public: throttle_bandwidth, warm", public_warm * ms, "ms"),
        Figure("public: throttle_bandwidth, cold", public_cold * ms, "ms"),
        Figure("public: first call in a new process (import excluded)", first_call[0] * ms, "ms"),
        Figure("public inject speed-up vs tc -batch, warm", batch_warm / public_warm, "x",
               ">= 4x", batch_warm / public_warm >= 4),
        Figure("public inject speed-up vs tc -batch, cold", batch_cold / public_cold, "x",
               ">= 2x", batch_cold / public_cold >= 2),
        Figure("public: remove_faults by id, warm", public_revert * ms, "ms", "<= 0.3 ms",
               public_revert <= 0.3e-3),
        Figure("  floor of the guarantees: inject / revert, warm (cold)",
               f"{med(warm, 'floor') * ms:.3f} / {med(warm, 'floor', 1) * ms:.3f} "
               f"({med(cold, 'floor') * ms:.3f} / {med(cold, 'floor', 1) * ms:.3f})", "ms"),
        Figure("    of which the kernel (batch / restore, send to ack), warm",
               f"{med(warm, 'floor', 2) * ms:.3f} / {med(warm, 'floor', 3) * ms:.3f}", "ms"),
        Figure("    kernel: a bare htb root put on / taken off, device up (down)",
               f"{root_change['up'][0] * ms:.3f} / {root_change['up'][1] * ms:.3f} "
               f"({root_change['down'][0] * ms:.3f} / {root_change['down'][1] * ms:.3f})", "ms"),
        Figure("  tc -batch / floor inject, warm", batch_warm / med(warm, "floor"), "x"),
        Figure("  public - floor: inject / revert, warm",
               f"{(public_warm - med(warm, 'floor')) * ms:.3f} / "
               f"{(public_revert - med(warm, 'floor', 1)) * ms:.3f}", "ms"),
        Figure("public: first remove_faults in a new process", first_call[1] * ms, "ms"),
        Figure("revert: tc qdisc del, warm", med(warm, "batch", 1) * ms, "ms"),
        Figure(
            "revert: chaosgenesys (dump + restore), warm",
            revert_ours * ms,
            "ms",
            "<= 0.3 ms",
            revert_ours <= 0.3e-3,
        ),
    ]
    notes = [
        f"medians of {rounds} rounds; in each round every method runs twice in a row (order "
        "rotating): cold = the first call, right after another method's processes ran; warm = "
        "the second, right after itself. The 4x goal compares warm with warm",
        "tc figures are whole tc processes started from a thread already inside the namespace "
        "(no `ip netns exec`), as a chaos tool that shells out pays them",
        "chaosgenesys inject = target() on the raw arguments + if_nametoindex + a new netlink "
        "socket + building the messages + one send + reading every ack (apply_tc without the "
        "fault registry); revert = a new socket + one qdisc dump + one delete of the root",
        "public = chaosgenesys.network.actions.throttle_bandwidth (argument checks, capability "
        "check, namespace switch, registry lock, the record written, the guardian checked, the "
        "netlink work) then remove_faults(fault_ids=[id]); the registry directory is on this "
        "machine's disk (a temporary directory); first call = a new Python process, modules "
        "already imported, its first throttle_bandwidth and remove_faults (the guardian it "
        "starts included)",
        "floor = the system work the public call's guarantees need, with no code of ours between "
        "(benchmarks/network_inject.py _Floor): inject = into the namespace, the lock, a new "
        "socket, if_nametoindex, one qdisc dump, the record created and renamed, the guardian's "
        "lock checked, the same tree's messages (built once, before the clock) sent and acked, "
        "out of the namespace; revert = in, the lock, the record read, a socket, one dump, the "
        "restore, the record unlinked, out. What the public call takes beyond it is our Python: "
        "argument checks, building the messages, planning, the record's object and the returned "
        "plan",
        "of which the kernel = the floor's batch and its restore, each from the send to the ack; "
        "a bare root = an htb root alone (no class, no filter) put on and taken off, on the "
        "device up, then down, then up again (the second pass shown): a root change on a device "
        "that is up stops and restarts its queues (the kernel's qdisc_graft -> dev_deactivate, "
        "which waits for an RCU grace period), so every inject and every revert of a first "
        "fault pays it, whoever sends the message",
    ]
    report("network_inject: targeted tc tree", figures, notes, as_json=as_json)


class _Floor:
    """The public call's system work alone: every system call its guarantees need, in the
    order it makes them, with prebuilt messages and as little Python as can make them."""

    def __init__(
        self,
        directory: Path,
        netns: str,
        inject: list[Any],
        restore: list[Any],
        bare_root: list[Any],
    ) -> None:
        import struct

        directory.mkdir()
        self.directory = str(directory)
        self.netns_path = f"/run/netns/{netns}"
        (directory / "registry.lock").touch()
        (directory / "guardian.lock").touch()
        header = struct.Struct("=IHHII")
        self.header = header
        from chaosgenesys.network import nl, tc

        def packed(messages: list[Any]) -> bytes:
            buffer = bytearray()
            for index, message in enumerate(messages):
                body = message.body()
                last = index == len(messages) - 1
                flags = message.flags if last else message.flags & ~nl.NLM_F_ACK
                buffer += header.pack(16 + len(body), message.type, flags, index + 1, 0) + body
            return bytes(buffer)

        self.inject = packed(inject)
        self.restore = packed(restore)
        self.bare_root = packed(bare_root)
        request = tc.tcmsg(0)
        self.dump = header.pack(
            16 + len(request), tc.RTM_GETQDISC, nl.NLM_F_REQUEST | nl.NLM_F_DUMP, 1, 0
        ) + request
        self.spec = {"netns": netns, "interface": DEV, "direction": "egress", "minor": 16,
                     "devices": [{"name": DEV, "role": "egress", "created_root": True,
                                  "original_root": {"default": True, "kind": "noqueue"}}],
                     "ifb": None, "target": {"destinations": DESTINATIONS, "ports": [PORTS]},
                     "leaf": "tbf rate 1000000bit burst 3200b limit 9450b"}

    def _answer(self, sock: socket.socket) -> None:
        """Read until the kernel's last answer (an ack, an error or the end of a dump)."""
        while True:
            data = sock.recv(1 << 16)
            offset = 0
            while offset + 16 <= len(data):
                length, kind, _flags, _seq, _pid = self.header.unpack_from(data, offset)
                if kind in (2, 3):  # NLMSG_ERROR (an ack) or NLMSG_DONE
                    return
                offset += (length + 3) & ~3

    def _enter(self) -> tuple[int, int]:
        """Into the namespace (the thread's own kept to come back to), the lock taken."""
        import fcntl

        own = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
        there = os.open(self.netns_path, os.O_RDONLY)
        os.setns(there, os.CLONE_NEWNET)
        os.close(there)
        lock = os.open(f"{self.directory}/registry.lock", os.O_RDWR)
        fcntl.flock(lock, fcntl.LOCK_EX)
        return own, lock

    def _leave(self, own: int, lock: int) -> None:
        os.close(lock)
        os.setns(own, os.CLONE_NEWNET)
        os.close(own)

    def root_change(self, rounds: int) -> dict[str, tuple[float, float]]:
        """Medians (put on, taken off) of a bare htb root (no class, no filter) on the device,
        with the device up and with it down: what replacing a root costs the kernel itself.
        Called from a thread inside the namespace."""
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, 0))
        found: dict[str, tuple[float, float]] = {}
        try:
            for state in ("up", "down", "up"):
                _ip("link", "set", DEV, state)
                on: list[float] = []
                off: list[float] = []
                for _ in range(rounds):
                    t0 = time.perf_counter()
                    sock.send(self.bare_root)
                    self._answer(sock)
                    t1 = time.perf_counter()
                    sock.send(self.restore)
                    self._answer(sock)
                    on.append(t1 - t0)
                    off.append(time.perf_counter() - t1)
                found[state] = (median(on), median(off))  # "up": the second, warmer pass
        finally:
            _ip("link", "set", DEV, "up")
            sock.close()
        return found

    def cycle(self) -> tuple[float, float, float, float]:
        """(inject, revert, the kernel's share of each): the kernel's share is the tree's batch
        and the restore, each from its send to its ack."""
        import fcntl
        import json

        t0 = time.perf_counter()
        own, lock = self._enter()
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, 0))
        socket.if_nametoindex(DEV)
        sock.send(self.dump)
        self._answer(sock)
        fault_id = "throttle-" + os.urandom(6).hex()
        record = {"id": fault_id, "kind": "throttle", "created_at": time.time(),
                  "owner_pid": os.getpid(), "spec": self.spec}
        path = f"{self.directory}/{fault_id}.json"
        fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.write(fd, json.dumps(record).encode())
        os.close(fd)
        os.replace(path + ".tmp", path)
        guardian = os.open(f"{self.directory}/guardian.lock", os.O_RDONLY)
        fcntl.flock(guardian, fcntl.LOCK_SH | fcntl.LOCK_NB)
        fcntl.flock(guardian, fcntl.LOCK_UN)
        os.close(guardian)
        k0 = time.perf_counter()
        sock.send(self.inject)
        self._answer(sock)
        kernel_inject = time.perf_counter() - k0
        sock.close()
        self._leave(own, lock)
        t1 = time.perf_counter()
        own, lock = self._enter()
        fd = os.open(path, os.O_RDONLY)
        json.loads(os.read(fd, 1 << 16))
        os.close(fd)
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        sock.bind((0, 0))
        socket.if_nametoindex(DEV)
        sock.send(self.dump)
        self._answer(sock)
        k0 = time.perf_counter()
        sock.send(self.restore)
        self._answer(sock)
        kernel_revert = time.perf_counter() - k0
        sock.close()
        os.unlink(path)
        self._leave(own, lock)
        return t1 - t0, time.perf_counter() - t1, kernel_inject, kernel_revert


_FIRST_CALL = """
import json, os, sys, time
from chaosgenesys.network.actions import remove_faults, throttle_bandwidth
import chaosgenesys.faults.registry, chaosgenesys.network.engine  # imports: not timed
t0 = time.perf_counter()
done = throttle_bandwidth(rate="1mbit", interface=sys.argv[1], destinations=json.loads(sys.argv[2]),
                          protocol="udp", ports=[sys.argv[3]], netns=sys.argv[4])
t1 = time.perf_counter()
remove_faults(fault_ids=[done["fault_id"]])
print(json.dumps([t1 - t0, time.perf_counter() - t1]))
"""


def _first_call_in_a_new_process(netns: str, runs: int = 5) -> tuple[float, float]:
    """Median (inject, revert) seconds of the first public call in a new Python process (its
    imports done before the clock starts), each with a registry directory of its own."""
    import json

    results = []
    for _ in range(runs):
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(Path(tmp) / "registry")}
            done = subprocess.run(
                [sys.executable, "-c", _FIRST_CALL, DEV, json.dumps(DESTINATIONS), PORTS, netns],
                capture_output=True, text=True, env=env, timeout=60,
            )
            if done.returncode != 0:
                raise BenchmarkError(f"first call: {done.stderr.strip()[-500:]}")
            results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return median([r[0] for r in results]), median([r[1] for r in results])


if __name__ == "__main__":
    sys.exit(run_main(body))
