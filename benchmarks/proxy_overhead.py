"""The fault-injecting proxy: overhead, delay precision, isolation under load, rule-change latency.

Side by side in one run, against an aiohttp keep-alive server in a subprocess (it answers
``ok`` on every path): direct, plain ``mitmdump -q`` (no addon), our proxy with no rule and with
20 non-matching rules. See benchmarks/README.md for what each figure means.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._common import (
    VENV_BIN,
    BenchmarkError,
    Figure,
    median,
    parse_args,
    percentile,
    report,
    run_main,
)

SERVER = """
import asyncio, sys
from aiohttp import web
async def ok(request):
    return web.Response(text="ok")
async def main():
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    print(site._server.sockets[0].getsockname()[1], flush=True)
    await asyncio.Event().wait()
asyncio.run(main())
"""


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def _process(command: list[str], *, read_port: bool) -> Iterator[tuple[subprocess.Popen[str], int]]:
    process = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    )
    try:
        port = 0
        if read_port:
            assert process.stdout is not None
            line = process.stdout.readline()
            if not line.strip().isdigit():
                raise BenchmarkError(f"{command[0]} did not start")
            port = int(line)
        yield process, port
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        if process.stdout is not None:
            process.stdout.close()


def _wait_listening(port: int, timeout: float = 20.0) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise BenchmarkError(f"nothing listens on port {port} after {timeout:.0f} s")


def _session() -> Any:
    import requests

    session = requests.Session()
    session.trust_env = False
    return session


def _latencies(url: str, proxy: str | None, count: int) -> list[float]:
    session = _session()
    proxies = {"http": proxy} if proxy else None
    session.get(url, proxies=proxies, timeout=10)  # warm the connection
    out = []
    for _ in range(count):
        start = time.perf_counter()
        response = session.get(url, proxies=proxies, timeout=10)
        out.append((time.perf_counter() - start) * 1000.0)
        if response.status_code != 200:
            raise BenchmarkError(f"GET {url} answered {response.status_code}")
    session.close()
    return out


async def _batches(
    proxy: str, batches: list[list[str]], stagger: float | list[float] = 0.0
) -> list[list[tuple[str, float, int]]]:
    """Each batch's requests at once (or ``stagger`` s apart), batch after batch, on one pool.

    ``stagger`` is one value for every batch or one per batch.
    """
    import aiohttp

    connector = aiohttp.TCPConnector(limit=0, force_close=False)
    results: list[list[tuple[str, float, int]]] = []
    async with aiohttp.ClientSession(connector=connector, trust_env=False) as session:

        async def one(url: str, wait: float = 0.0) -> tuple[str, float, int]:
            await asyncio.sleep(wait)
            start = time.perf_counter()
            async with session.get(url, proxy=proxy) as response:
                await response.read()
                return url, (time.perf_counter() - start) * 1000.0, response.status

        staggers = stagger if isinstance(stagger, list) else [stagger] * len(batches)
        for batch, gap in zip(batches, staggers, strict=True):
            results.append(
                list(await asyncio.gather(*(one(u, i * gap) for i, u in enumerate(batch))))
            )
    for batch_results in results:
        if any(status != 200 for _, _, status in batch_results):
            raise BenchmarkError("a request through the proxy failed")
    return results


def body() -> None:
    args = parse_args(__doc__ or "", None)
    quick = args.quick
    rounds, per_round = (3, 150) if quick else (7, 400)
    precision_n = 20 if quick else 50
    precision_rounds = 1 if quick else 2
    pools = ["fresh"] if quick else ["fresh", "warm"]
    load_rounds = 2 if quick else 5
    change_rounds = 3 if quick else 10
    notes: list[str] = []
    runtime = tempfile.mkdtemp(prefix="chaosgenesys-bench-proxy-")
    os.environ["CHAOSGENESYS_RUNTIME_DIR"] = runtime
    confdir = tempfile.mkdtemp(prefix="chaosgenesys-bench-ca-")
    from chaosgenesys.proxy import actions

    mitmdump = VENV_BIN / "mitmdump"
    if not mitmdump.exists():
        raise BenchmarkError(f"{mitmdump} not found (pip install mitmproxy)")
    with _process([sys.executable, "-c", SERVER], read_port=True) as (_, server_port):
        target = f"http://127.0.0.1:{server_port}"
        plain_port = _free_port()
        plain_cmd = [
            str(mitmdump),
            "-q",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            str(plain_port),
            "--set",
            f"confdir={confdir}",
        ]
        with _process(plain_cmd, read_port=False):
            _wait_listening(plain_port)
            ours = actions.start_proxy(name="bench", port=0, confdir=confdir)
            busy = actions.start_proxy(name="bench20", port=0, confdir=confdir)
            try:
                os.environ["CHAOSGENESYS_PROXY_DELAY_AT"] = "request"
                try:
                    old = actions.start_proxy(name="bench-req-hook", port=0, confdir=confdir)
                finally:
                    del os.environ["CHAOSGENESYS_PROXY_DELAY_AT"]
                actions.add_rules(
                    [
                        {"action": "delay", "path": f"^/never-{i}/", "delay_ms": 100}
                        for i in range(20)
                    ],
                    name="bench20",
                )
                variants = {
                    "direct": None,
                    "mitmdump": f"http://127.0.0.1:{plain_port}",
                    "ours": ours["proxy_url"],
                    "ours+20": busy["proxy_url"],
                }
                samples: dict[str, list[float]] = {k: [] for k in variants}
                url = f"{target}/api/v2/users/me"
                for round_index in range(rounds):
                    order = list(variants)
                    if round_index % 2:
                        order.reverse()
                    for key in order:
                        samples[key] += _latencies(url, variants[key], per_round)
                med = {k: median(v) for k, v in samples.items()}
                over_plain = med["ours"] - med["mitmdump"]
                over_plain20 = med["ours+20"] - med["mitmdump"]
                figures = [
                    Figure("median direct", med["direct"], "ms"),
                    Figure("median plain mitmdump", med["mitmdump"], "ms"),
                    Figure("median ours, no rule", med["ours"], "ms"),
                    Figure("median ours, 20 non-matching", med["ours+20"], "ms"),
                    Figure(
                        "ours - mitmdump (no rule)",
                        over_plain,
                        "ms",
                        "<= 0.5 ms",
                        over_plain <= 0.5,
                    ),
                    Figure(
                        "ours - mitmdump (20 rules)",
                        over_plain20,
                        "ms",
                        "<= 0.5 ms",
                        over_plain20 <= 0.5,
                    ),
                    Figure("mitmdump / direct", med["mitmdump"] / med["direct"], "x"),
                ]

                # Delay precision: 5,000 ms requested, overlapping requests started 100 ms apart;
                # the same batch undelayed just before on the same pool is the reference. Side
                # by side: our proxy (held once the upstream connection is there) and the first
                # implementation (held in the request hook, then connecting: "req-hook"), each
                # on fresh client connections (the batch opens most of them: the reference
                # batch, staggered, reuses one) and on a pool warmed by as many requests at once.
                variants_delay = {"ours": ours, "req-hook": old}
                for variant in variants_delay:
                    actions.delay_requests("^/slow$", 5000, name=variants_delay[variant]["name"])
                overshoot: dict[tuple[str, str], list[float]] = {}
                jitter: dict[tuple[str, str], list[float]] = {}
                references: list[float] = []
                cases = [(v, pool) for pool in pools for v in variants_delay]
                for round_index in range(precision_rounds):
                    for variant, pool in cases if round_index % 2 == 0 else cases[::-1]:
                        plan = [[f"{target}/plain"] * precision_n] * 2 + [
                            [f"{target}/slow"] * precision_n
                        ]
                        staggers = [0.0 if pool == "warm" else 0.1, 0.1, 0.1]
                        _, plain_batch, slow_batch = asyncio.run(
                            _batches(variants_delay[variant]["proxy_url"], plan, staggers)
                        )
                        plain_ms = [ms for _, ms, _ in plain_batch]
                        reference = median(plain_ms)
                        references.append(reference)
                        overshoot.setdefault((variant, pool), []).extend(
                            ms - reference - 5000.0 for _, ms, _ in slow_batch
                        )
                        jitter.setdefault((variant, pool), []).extend(
                            ms - reference for ms in plain_ms
                        )
                sleep_over = {}
                for variant in variants_delay:
                    proxy_name = variants_delay[variant]["name"]
                    cleared = actions.clear_rules(proxy_name)["cleared"][0]["stats"]
                    sleep_over[variant] = cleared["injected_delay_ms"] / cleared["applied"] - 5000
                undelayed = median(references)
                for variant, pool in cases:
                    values = overshoot[(variant, pool)]
                    p99 = percentile(values, 0.99)
                    label = f"{variant}, {pool} pool"
                    headline = variant == "ours"
                    figures += [
                        Figure(f"delay overshoot p50 ({label})", median(values), "ms"),
                        Figure(
                            f"delay overshoot p99 ({label})",
                            p99,
                            "ms",
                            "<= 3 ms" if headline else "",
                            (p99 <= 3.0) if headline else None,
                        ),
                        Figure(
                            f"undelayed p99 - p50 ({label})",
                            percentile(jitter[(variant, pool)], 0.99),
                            "ms",
                        ),
                    ]
                figures += [
                    Figure(f"hold overshoot in the proxy, mean ({variant})", over, "ms")
                    for variant, over in sleep_over.items()
                ]

                # 100 delayed + 100 undelayed concurrent, against 200 undelayed (warm pool).
                actions.delay_requests("^/delayed$", 1000, name="bench")
                base_p99: list[float] = []
                mixed_p99: list[float] = []
                warm = [f"{target}/warm"] * 200
                base = [f"{target}/fast"] * 100 + [f"{target}/other"] * 100
                mixed = [f"{target}/fast"] * 100 + [f"{target}/delayed"] * 100
                for index in range(load_rounds):
                    sequence = [base, mixed] if index % 2 == 0 else [mixed, base]
                    _, first, second = asyncio.run(
                        _batches(ours["proxy_url"], [warm, sequence[0], sequence[1]])
                    )
                    by_kind = {id(sequence[0]): first, id(sequence[1]): second}
                    pairs: list[tuple[list[str], list[float]]] = [
                        (base, base_p99),
                        (mixed, mixed_p99),
                    ]
                    for batch, sink in pairs:
                        fast = [ms for u, ms, _ in by_kind[id(batch)] if u.endswith("/fast")]
                        sink.append(percentile(fast, 0.99))
                actions.clear_rules("bench")
                ratio = median(mixed_p99) / median(base_p99)
                figures += [
                    Figure("undelayed p99, no delays", median(base_p99), "ms"),
                    Figure("undelayed p99, 100 delayed", median(mixed_p99), "ms"),
                    Figure("ratio with / without delays", ratio, "x", "<= 1.1", ratio <= 1.1),
                ]

                # Rule change while traffic flows.
                gaps: list[float] = []
                calls: list[float] = []
                missed = 0
                dropped = 0
                for _ in range(change_rounds):
                    log: list[tuple[float, float, int]] = []
                    stop = threading.Event()

                    def traffic(
                        log: list[tuple[float, float, int]] = log, stop: threading.Event = stop
                    ) -> None:
                        session = _session()
                        proxies = {"http": ours["proxy_url"]}
                        while not stop.is_set():
                            start = time.perf_counter()
                            try:
                                status = session.get(
                                    f"{target}/change", proxies=proxies, timeout=10
                                ).status_code
                            except Exception:
                                status = 0
                            log.append((start, time.perf_counter(), status))

                    threads = [threading.Thread(target=traffic) for _ in range(4)]
                    for thread in threads:
                        thread.start()
                    time.sleep(0.2)
                    before = time.perf_counter()
                    actions.delay_requests("^/change$", 100, name="bench")
                    returned = time.perf_counter()
                    calls.append((returned - before) * 1000.0)
                    time.sleep(0.4)
                    stop.set()
                    for thread in threads:
                        thread.join(10)
                    actions.clear_rules("bench")
                    dropped += sum(1 for *_, status in log if status != 200)
                    after = [(s, e) for s, e, _ in log if s >= returned]
                    missed += sum(1 for s, e in after if (e - s) < 0.1)
                    # The rule is in force from the start of the last request that was not
                    # delayed (a request in flight at the change); relative to the return.
                    still_fast = [s for s, e, _ in log if (e - s) < 0.1 and e > before]
                    if still_fast:
                        gaps.append((max(still_fast) - returned) * 1000.0)
                worst = max(gaps) if gaps else 0.0
                figures += [
                    Figure("delay_requests call (median)", median(calls), "ms"),
                    Figure("in force after return (max)", worst, "ms", "<= 50 ms", worst <= 50.0),
                    Figure("requests after return not delayed", missed, "", "0", missed == 0),
                    Figure("requests dropped", dropped, "", "0", dropped == 0),
                ]
            finally:
                actions.stop_proxy("bench")
                actions.stop_proxy("bench20")
                actions.stop_proxy("bench-req-hook")
    notes.append(
        f"{rounds} interleaved rounds x {per_round} sequential keep-alive GETs per variant"
    )
    notes.append(
        f"delay precision: {precision_rounds} x {precision_n} overlapping 5 s requests started "
        f"100 ms apart per case ({', '.join(pools)} pool); the undelayed batch's median "
        f"(median {undelayed:.2f} ms) subtracted; 'req-hook' = the same proxy with "
        "CHAOSGENESYS_PROXY_DELAY_AT=request (hold, then connect: the first implementation)"
    )
    notes.append(
        "overhead figures are on one machine with the client, proxy and server sharing "
        "cores; compare the columns, not absolute values"
    )
    report("proxy_overhead", figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
