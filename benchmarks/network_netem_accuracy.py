"""Requested against measured netem delay and loss, on a kernel that has sch_netem.

Two private network namespaces joined by a veth pair, a UDP echo server in the second; each
setting is applied with the chaosgenesys activity (``add_latency`` / ``add_packet_loss(method=
"netem")`` on the first namespace's veth, towards the echo server's address), measured with
paced UDP probes (sequence numbers, one probe every 4 ms), then removed (``remove_faults``).

- Delay: measured = mean probe round trip under the fault - mean round trip without it (the
  fault delays only the way out). **Goal: within 2 % of the requested delay.**
- Loss: probes without an echo. **Goal: the count inside the central 99 % interval of
  Binomial(n, requested)** (exact, not a normal approximation).
- Baseline, no fault: **goal 0 probes lost** (the pacing is slow enough that the kernel and the
  echo server drop nothing themselves: in user-mode-linux datagrams sent less than about 2 ms
  apart are lost).

This machine's kernel has no sch_netem: the script then runs itself inside Debian's
user-mode-linux kernel (``scripts/uml-run``, about 3 s to boot and import) and prints the table
that the run inside produced. Needs root; touches only its own namespaces.
"""

from __future__ import annotations

import contextlib
import math
import os
import secrets
import select
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from _common import ROOT, BenchmarkError, Figure, parse_args, report, run_main

ADDRESS_A, ADDRESS_B = "10.203.0.1", "10.203.0.2"
PORT = 20000
#: Probe spacing: user-mode-linux loses datagrams sent less than about 2 ms apart.
INTERVAL = 0.004
DELAYS_MS = (50.0, 100.0, 200.0)
LOSSES_PERCENT = (2.0, 10.0, 20.0)
INNER_OPTION = "--inner-report"
UML_TIMEOUT = 600


# -- statistics ---------------------------------------------------------------------------------


def _binomial_cdf(n: int, p: float) -> list[float]:
    """P(X <= k) for k = 0..n, X ~ Binomial(n, p), computed in log space."""
    cdf, total = [], 0.0
    log_p, log_q = math.log(p), math.log1p(-p)
    for k in range(n + 1):
        log_pmf = (
            math.lgamma(n + 1)
            - math.lgamma(k + 1)
            - math.lgamma(n - k + 1)
            + k * log_p
            + (n - k) * log_q
        )
        total += math.exp(log_pmf)
        cdf.append(total)
    return cdf


def binomial_interval(n: int, p: float, level: float = 0.99) -> tuple[int, int]:
    """The central ``level`` interval [lo, hi] of the number of successes of Binomial(n, p)."""
    cdf = _binomial_cdf(n, p)
    tail = (1 - level) / 2
    lo = next(k for k, c in enumerate(cdf) if c > tail)
    hi = next(k for k, c in enumerate(cdf) if c >= 1 - tail)
    return lo, hi


# -- the test network --------------------------------------------------------------------------


def _run(*command: str) -> None:
    done = subprocess.run(list(command), capture_output=True, text=True)
    if done.returncode != 0:
        raise BenchmarkError(f"{' '.join(command)}: {done.stderr.strip()}")


@contextmanager
def test_network() -> Iterator[tuple[str, str]]:
    """Namespaces ``<x>-a`` (veth-a, ADDRESS_A) and ``<x>-b`` (veth-b, ADDRESS_B); deleted after."""
    name = "cgacc" + secrets.token_hex(3)
    ns_a, ns_b = f"{name}-a", f"{name}-b"
    try:
        _run("ip", "netns", "add", ns_a)
        _run("ip", "netns", "add", ns_b)
        _run("ip", "-n", ns_a, "link", "add", "veth-a", "type", "veth", "peer", "name", "veth-b",
             "netns", ns_b)  # fmt: skip
        for ns, dev, address in ((ns_a, "veth-a", ADDRESS_A), (ns_b, "veth-b", ADDRESS_B)):
            _run("ip", "-n", ns, "addr", "add", f"{address}/24", "dev", dev)
            _run("ip", "-n", ns, "link", "set", dev, "up")
            _run("ip", "-n", ns, "link", "set", "lo", "up")
        yield ns_a, ns_b
    finally:
        for ns in (ns_a, ns_b):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def _echo(sock: socket.socket, stop: threading.Event) -> None:
    while not stop.is_set():
        try:
            data, peer = sock.recvfrom(2048)
        except TimeoutError:
            continue
        except OSError:
            return
        sock.sendto(data, peer)


def probe(sock: socket.socket, count: int, wait: float) -> tuple[list[float], int]:
    """``count`` probes, one every INTERVAL; round trips (s) of the echoed ones, and lost ones.

    Echoes are read while probes go out; after the last one, ``wait`` seconds for stragglers.
    """
    sent: dict[int, float] = {}
    rtts: dict[int, float] = {}
    start = time.perf_counter() + 0.01
    seq = 0
    padding = bytes(60)
    end = math.inf
    while True:
        now = time.perf_counter()
        if seq < count and now >= start + seq * INTERVAL:
            sent[seq] = time.perf_counter()
            sock.send(struct.pack("!I", seq) + padding)
            seq += 1
            if seq == count:
                end = time.perf_counter() + wait
            continue
        if seq == count and (now >= end or len(rtts) == count):
            break
        timeout = (start + seq * INTERVAL if seq < count else end) - now
        ready, _, _ = select.select([sock], [], [], max(0.0, timeout))
        while ready:
            try:
                data = sock.recv(2048, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            arrived = time.perf_counter()
            (number,) = struct.unpack_from("!I", data)
            if number in sent and number not in rtts:
                rtts[number] = arrived - sent[number]
    return [rtts[n] for n in sorted(rtts)], count - len(rtts)


# -- measuring ---------------------------------------------------------------------------------


def _wait_for_guardian(timeout: float = 20.0) -> None:
    """Until the registry's guardian holds its lock (it writes its pid into guardian.lock)."""
    lock = Path(os.environ["CHAOSGENESYS_RUNTIME_DIR"]) / "guardian.lock"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            if lock.read_text().strip().isdigit():
                time.sleep(0.3)  # its first scan
                return
        time.sleep(0.05)
    raise BenchmarkError(f"no fault guardian took {lock} within {timeout:.0f} s")


def _kernel_has_netem() -> bool:
    if os.environ.get("CHAOSGENESYS_IN_UML"):
        return True
    from chaosgenesys.network.probes import netem_supported

    return bool(netem_supported())


def body() -> None:
    argv = sys.argv[1:]
    inner_report = ""
    if INNER_OPTION in argv:
        at = argv.index(INNER_OPTION)
        inner_report = argv[at + 1]
        del argv[at : at + 2]
    args = parse_args(__doc__ or "", argv)
    if os.geteuid() != 0:
        raise BenchmarkError("needs root (network namespaces, CAP_NET_ADMIN)")
    if not _kernel_has_netem():
        _through_uml(argv)
        return
    if inner_report:
        # Inside UML: the table goes to a file on the host (the console carries kernel noise).
        sys.stdout = open(inner_report, "w", encoding="utf-8")  # noqa: SIM115
    with tempfile.TemporaryDirectory(prefix="cgacc-", ignore_cleanup_errors=True) as runtime:
        os.environ["CHAOSGENESYS_RUNTIME_DIR"] = runtime  # our own fault registry
        _measure(args.quick, args.json)
    sys.stdout.flush()


def _through_uml(argv: list[str]) -> None:
    """Run this script inside user-mode-linux and print the table that run produced."""
    runner = ROOT / "scripts" / "uml-run"
    print("this kernel has no sch_netem: running inside user-mode-linux", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="cgacc-uml-") as results:
        report_file = Path(results) / "report.txt"
        started = time.monotonic()
        done = subprocess.run(
            [
                str(runner),
                "--timeout",
                str(UML_TIMEOUT),
                "--bind",
                results,
                "--",
                sys.executable,
                str(Path(__file__).resolve()),
                *argv,
                INNER_OPTION,
                str(report_file),
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=UML_TIMEOUT + 60,
        )
        elapsed = time.monotonic() - started
        console = (done.stdout + done.stderr).replace("\r", "")
        if done.returncode == 127:
            raise BenchmarkError(
                "user-mode-linux is not installed (run scripts/bootstrap): " + console[-500:]
            )
        text = report_file.read_text(encoding="utf-8") if report_file.exists() else ""
        if done.returncode != 0 or "==" not in text:
            raise BenchmarkError(
                f"the run inside user-mode-linux exited {done.returncode}:\n{console[-3000:]}"
            )
    for line in text.splitlines():
        if line.startswith('{"benchmark"'):
            continue
        print(line)
    print(f"  note: measured inside user-mode-linux; the whole run, boot included, took "
          f"{elapsed:.1f} s")  # fmt: skip
    json_lines = [line for line in text.splitlines() if line.startswith('{"benchmark"')]
    for line in json_lines:
        print(line)
    sys.stdout.flush()


def _measure(quick: bool, as_json: bool) -> None:
    from chaosgenesys.network import actions
    from chaosgenesys.network.nl import in_netns

    n_base, n_delay, n_loss = (100, 150, 400) if quick else (300, 500, 2000)
    figures: list[Figure] = []
    stop = threading.Event()
    with test_network() as (ns_a, ns_b):
        with in_netns(ns_b):
            server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            server.bind((ADDRESS_B, PORT))
            server.settimeout(0.2)
        with in_netns(ns_a):
            client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            client.connect((ADDRESS_B, PORT))
        echo = threading.Thread(target=_echo, args=(server, stop), daemon=True)
        echo.start()
        try:
            # A fault of our own on the echo side's loopback, kept for the whole run, keeps one
            # fault guardian alive: a guardian starting during a measurement (a Python start-up
            # on UML's one CPU) would show up as delay.
            actions.add_latency(1, destinations=["127.0.0.99"], interface="lo", netns=ns_b)
            _wait_for_guardian()
            probe(client, 20, 0.5)  # ARP, first packets
            rtts, lost = probe(client, n_base, 0.5)
            if not rtts:
                raise BenchmarkError("no echo came back without a fault")
            base = statistics.fmean(rtts)
            figures.append(
                Figure(
                    "baseline, no fault: lost probes; mean round trip",
                    f"{lost} of {n_base}; {base * 1000:.3f} ms",
                    "",
                    "0 lost",
                    lost == 0,
                )
            )
            target = {"destinations": [ADDRESS_B], "interface": "veth-a", "netns": ns_a}
            for delay in DELAYS_MS:
                plan = actions.add_latency(delay, **target)
                try:
                    rtts, lost = probe(client, n_delay, 2 * delay / 1000 + 0.5)
                finally:
                    actions.remove_faults([plan["fault_id"]], netns=ns_a)
                if not rtts:
                    raise BenchmarkError(f"no echo came back with {delay} ms of delay")
                measured = (statistics.fmean(rtts) - base) * 1000
                error = (measured - delay) / delay * 100
                spread = statistics.pstdev(rtts) * 1000
                figures.append(
                    Figure(
                        f"delay {delay:g} ms: measured mean (error; stdev; lost)",
                        f"{measured:.2f} ms ({error:+.2f} %; {spread:.2f} ms; {lost})",
                        "",
                        "within 2 %",
                        abs(error) <= 2.0,
                    )
                )
            for loss in LOSSES_PERCENT:
                plan = actions.add_packet_loss(loss, method="netem", **target)
                try:
                    rtts, lost = probe(client, n_loss, 0.5)
                finally:
                    actions.remove_faults([plan["fault_id"]], netns=ns_a)
                lo, hi = binomial_interval(n_loss, loss / 100)
                figures.append(
                    Figure(
                        f"loss {loss:g} %: lost of {n_loss} (measured %)",
                        f"{lost} ({lost / n_loss * 100:.2f} %)",
                        "",
                        f"99 % interval {lo}-{hi}",
                        lo <= lost <= hi,
                    )
                )
        finally:
            actions.remove_faults(netns=ns_b)
            stop.set()
            echo.join(timeout=2)
            client.close()
            server.close()
    kernel = os.uname().release
    notes = [
        f"kernel {kernel}{' (user-mode-linux)' if os.environ.get('CHAOSGENESYS_IN_UML') else ''}"
        f"; probes of 64 bytes every {INTERVAL * 1000:g} ms; {n_base} without a fault, "
        f"{n_delay} per delay, {n_loss} per loss setting",
        "each setting applied with chaosgenesys.network.actions (add_latency, add_packet_loss "
        "method=netem) on veth-a towards the echo server, removed with remove_faults",
        "delay = mean round trip with the fault - mean without (the fault delays the way out "
        "only); loss interval: central 99 % of Binomial(n, requested), exact",
    ]
    report("network_netem_accuracy: requested against measured", figures, notes, as_json=as_json)


if __name__ == "__main__":
    sys.exit(run_main(body))
