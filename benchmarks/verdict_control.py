"""What the verdict control and the protocol's call collector cost a run with 50 desktops.

Issue 11's goal: the verdict control adds at most 50 ms to a run. In one process (as inside
``chaos run``): a sandbox subprocess with 50 agents, 50 synthetic desktops started through
``chaosgenesys.agent.actions.start_agents`` (one agent process per OAuth client, as the
platform allows 20 notification channels per client), and a journal of the shape a protocol
run leaves (the examples' activities, both steady states, a protocol measured by the real
probes). Then, N times, every hook the verdict control runs in a run
(``before_experiment_control`` with its argument checks, one ``after_activity_control`` per
activity, both ``after_hypothesis_control``,
``after_experiment_control`` with the protocol's figures and the 50 desktops' figures, and
``cleanup_control`` with the logged verdict), timed together; and the protocol's
``CallCollector.collect()`` (run once a second for the whole protocol), as a share of a core.

And what a user sees: ``chaos run`` of a one-probe experiment with the control and without it
(the anchor), interleaved, N times after a warm-up: the difference of the medians.

    .venv/bin/python benchmarks/verdict_control.py [--quick] [--json]
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from typing import Any

from _common import (
    BenchmarkError,
    Figure,
    generated_seed,
    median,
    parse_args,
    percentile,
    report,
    run_main,
    sandbox_process,
    user_id,
)

AGENTS = 50
CLIENTS = 3


def _journal(experiment: dict[str, Any]) -> dict[str, Any]:
    now = "2026-12-06T03:00:00.000000+00:00"

    def run(activity: dict[str, Any]) -> dict[str, Any]:
        return {"activity": activity, "output": {"ok": True}, "start": now, "end": now,
                "status": "succeeded", "duration": 0.01}

    probes = [{**run(p), "tolerance_met": True}
              for p in experiment["steady-state-hypothesis"]["probes"]]
    return {
        "chaoslib-version": "1.45.1", "experiment": experiment, "start": now, "end": now,
        "status": "completed", "deviated": False, "duration": 30.0,
        "steady_states": {"before": {"steady_state_met": True, "probes": probes},
                          "after": {"steady_state_met": True, "probes": probes}},
        "run": [run(a) for a in experiment["method"]], "rollbacks": [],
    }


def _experiment(users: list[str]) -> dict[str, Any]:
    def probe(name: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
        return {"type": "probe", "name": name, "tolerance": True,
                "provider": {"type": "python", "module": module, "func": func,
                             "arguments": arguments}}

    hypothesis = [probe(f"on-queue-{i}", "chaosgenesys.users.probes", "presence_is",
                        user_id=u, expected="On Queue") for i, u in enumerate(users[:5])]
    method = [
        probe("baseline", "chaosgenesys.protocol.probes", "measure_baseline", duration=1),
        {"type": "action", "name": "slow", "provider": {
            "type": "python", "module": "chaosgenesys.sandbox.actions",
            "func": "inject_api_fault", "arguments": {"path_pattern": "^/api", "delay_ms": 100}}},
        {"type": "action", "name": "remove", "provider": {
            "type": "python", "module": "chaosgenesys.sandbox.actions",
            "func": "clear_sandbox_faults"}},
        probe("time-to-recover", "chaosgenesys.protocol.probes", "time_to_recover",
              user_ids=users[:5]),
    ]
    return {"title": "bench", "description": "bench",
            "steady-state-hypothesis": {"title": "t", "probes": hypothesis}, "method": method}


def _hooks(experiment: dict[str, Any], journal: dict[str, Any]) -> float:
    """Every hook of the verdict control in one run; seconds."""
    from chaosgenesys.controls import verdict

    started = time.perf_counter()
    verdict.before_experiment_control(experiment, configuration={}, secrets={})
    verdict.before_method_control(experiment)
    for item in journal["run"]:
        verdict.after_activity_control(item["activity"], state=item)
    verdict.after_method_control(experiment)
    for state in journal["steady_states"].values():
        verdict.after_hypothesis_control(experiment, state=state)
    verdict.after_experiment_control(experiment, state=dict(journal))
    verdict.cleanup_control()
    return time.perf_counter() - started


def _chaos_runs(rounds: int) -> tuple[list[float], list[float]]:
    """What a user sees: wall time of ``chaos run`` of a one-probe experiment with the verdict
    control and without it (its anchor), interleaved, the order flipping every round."""
    import json
    import subprocess
    from pathlib import Path

    from _common import VENV_BIN, child_env

    probe = {"type": "probe", "name": "noop", "tolerance": 0,
             "provider": {"type": "process", "path": "true"}}
    plain = {"title": "anchor", "description": "no control",
             "steady-state-hypothesis": {"title": "t", "probes": [probe]}, "method": [probe]}
    declared = {**plain, "title": "verdict", "controls": [{
        "name": "chaosgenesys-verdict",
        "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}}]}
    with tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-") as tmp:
        files = {}
        for name, experiment in (("plain", plain), ("verdict", declared)):
            files[name] = Path(tmp) / f"{name}.json"
            files[name].write_text(json.dumps(experiment))
        times: dict[str, list[float]] = {"plain": [], "verdict": []}
        for index in range(rounds + 1):  # the first round warms the caches, not counted
            order = ("plain", "verdict") if index % 2 else ("verdict", "plain")
            for name in order:
                begun = time.perf_counter()
                done = subprocess.run(
                    [str(VENV_BIN / "chaos"), "--no-version-check", "--no-log-file", "run",
                     "--journal-path", str(Path(tmp) / f"{name}-journal.json"),
                     str(files[name])],
                    capture_output=True, text=True, timeout=120,
                    env=child_env(CHAOSGENESYS_RUNTIME_DIR=str(Path(tmp) / "runtime")),
                )
                if done.returncode != 0:
                    raise BenchmarkError(f"chaos run failed: {done.stderr[-800:]}")
                if index:
                    times[name].append(time.perf_counter() - begun)
    return times["verdict"], times["plain"]


def _body() -> None:
    args = parse_args(__doc__.splitlines()[0], sys.argv[1:])
    rounds = 5 if args.quick else 20
    os.environ["CHAOSGENESYS_RUNTIME_DIR"] = tempfile.mkdtemp(prefix="chaosgenesys-bench-")
    logging.getLogger("chaostoolkit").setLevel(logging.WARNING)  # the hooks log; not measured
    users = [user_id(i) for i in range(1, AGENTS + 1)]
    with sandbox_process(generated_seed(AGENTS, clients=CLIENTS)) as sandbox:
        configuration = {"genesys_api_url": sandbox["url"], "genesys_login_url": sandbox["url"]}
        secrets = {"client_id": "bench-client-1", "client_secret": "bench-secret-1"}
        from chaosgenesys.agent.actions import start_agents, stop_agents
        from chaosgenesys.protocol import phases
        from chaosgenesys.protocol.probes import measure_baseline, time_to_recover

        # The platform allows 20 notification channels per OAuth client: one agent process per
        # client, as a lab with 50 desktops would run them (issue 14 is about one client).
        runs = []
        share = -(-AGENTS // CLIENTS)
        for index in range(CLIENTS):
            runs.append(start_agents(
                users[index * share:(index + 1) * share], options={"sync_interval": 1},
                configuration=configuration,
                secrets={"client_id": f"bench-client-{index + 1}",
                         "client_secret": f"bench-secret-{index + 1}"}))
        try:
            from chaosgenesys.agent.this_run import running_agents

            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                agents = running_agents()
                ready = sum(1 for _, status in agents
                            for figures in (status.get("agents") or {}).values()
                            if figures.get("ready"))
                if ready >= AGENTS:
                    break
                time.sleep(0.5)
            else:
                raise BenchmarkError(f"{AGENTS} desktops did not connect within 60 s")
            measure_baseline(3, users[:5], 1, configuration, secrets)
            time_to_recover(users[:5], timeout=10, configuration=configuration, secrets=secrets)
            protocol = phases.current()
            assert protocol is not None
            collects = []
            for _ in range(rounds):
                begun = time.perf_counter()
                protocol.collector.collect()
                collects.append(time.perf_counter() - begun)
            experiment = _experiment(users)
            journal = _journal(experiment)
            timings = []
            for _ in range(rounds):
                # the protocol stays measured for every round (after_experiment reads it)
                timings.append(_hooks(experiment, journal))
            calls = len(protocol.collector.calls(0, time.time()))
        finally:
            for run in runs:
                stop_agents(run["id"])
    with_control, anchor = _chaos_runs(rounds)
    added_ms = (median(with_control) - median(anchor)) * 1000
    hooks_ms = [t * 1000 for t in timings]
    collect_ms = [t * 1000 for t in collects]
    report(
        f"The verdict control and the protocol's collector with {AGENTS} desktops",
        [
            Figure("chaos run with the verdict control (median)", median(with_control), "s"),
            Figure("chaos run without it, the anchor (median)", median(anchor), "s"),
            Figure("added by the control to a one-probe chaos run", added_ms, "ms",
                   "<= 50 ms", added_ms <= 50),
            Figure("verdict control, every hook of a run with 50 desktops (median)",
                   median(hooks_ms), "ms", "<= 50 ms", median(hooks_ms) <= 50),
            Figure("verdict control, every hook of a run (p95)", percentile(hooks_ms, 0.95),
                   "ms"),
            Figure("protocol collector, one collect() (median)", median(collect_ms), "ms"),
            Figure("protocol collector, share of a core (1 collect/s)",
                   median(collect_ms) / 10, "%"),
            Figure("calls gathered by the collector", calls),
        ],
        [f"{rounds} rounds; {AGENTS} desktops in {CLIENTS} agent processes (one per OAuth "
         "client: 20 channels per client) syncing every second; the "
         "hooks journal the protocol's three phases and the 50 desktops' figures, and log the "
         "verdict (logging level WARNING: formatting the text is measured, writing it is not)"],
        as_json=args.json,
    )


if __name__ == "__main__":
    sys.exit(run_main(_body))
