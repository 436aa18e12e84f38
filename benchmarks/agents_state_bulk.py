"""``agents_state`` for 500 agents against 500 single reads, side by side in one run.

An in-process ``Sandbox(seed=..., rate_limit_per_minute=0)`` holds 500 generated On Queue agents
in one queue. Measured:

- ``chaosgenesys.users.probes.agents_state(user_ids)`` for all 500: HTTP requests the sandbox
  saw (``sandbox.requests()`` before/after; goal ≤ 10) and wall time (median of R runs);
- the same state read one user at a time with the probes, ``get_presence`` +
  ``get_routing_status`` per user: requests and wall time;
- speed-up = single reads / bulk (goal ≥ 10x);
- ``agents_state`` once more against a sandbox with the default 300 requests/minute rate limit
  and a fresh token: 429 answers (goal: zero; read from the client's metrics, whose records
  keep every call's final status and its retry count). As a control, 320 raw GETs with one
  fresh token against the same sandbox must get some 429s, showing the limiter is on.

The token is fetched before anything is timed (one warm-up probe), so no figure includes it.

Run: ``.venv/bin/python benchmarks/agents_state_bulk.py [--quick]`` (R = 5 bulk, 3 single;
quick 3 and 1).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any

from _common import (
    BenchmarkError,
    Figure,
    fetch_token,
    generated_seed,
    median,
    parse_args,
    report,
    run_main,
    seed_clients,
    user_id,
)

AGENTS = 500
#: Raw requests of the rate-limiter control: more than 300 in well under a minute.
CONTROL_BURST = 320
REQUEST_GOAL = 10
SPEEDUP_GOAL = 10.0
TITLE = "agents_state_bulk: agents_state(500 ids) vs 500 single reads"
#: Requests of the platform API (the token endpoint is not counted; it is warmed up anyway).
API_PATHS = r"^/api/v2/"


def _load() -> tuple[Any, Any]:
    try:
        from chaosgenesys.sandbox import Sandbox
        from chaosgenesys.users import probes
    except ImportError as error:
        raise BenchmarkError(f"cannot import the sandbox or the probes: {error}") from error
    return Sandbox, probes


def _configuration(sandbox: Any) -> dict[str, Any]:
    return {
        "genesys_api_url": sandbox.url,
        "genesys_login_url": sandbox.url,
        "genesys_timeout": 10,
    }


def _measure(sandbox: Any, action: Callable[[], Any]) -> tuple[float, int, Any]:
    """Wall time, API requests the sandbox saw, and the result of ``action()``."""
    before = sandbox.requests(path_regex=API_PATHS)
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    return elapsed, sandbox.requests(path_regex=API_PATHS) - before, result


def _raw_burst(sandbox: Any, client_id: str, client_secret: str, agent: str, count: int) -> int:
    """429 answers to ``count`` raw GETs with one fresh token (no client retries): the control
    that shows the limiter is on, so that zero 429s above means something."""
    import requests

    token = fetch_token(sandbox.url, client_id, client_secret)
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{sandbox.url}/api/v2/users/{agent}/presences/purecloud"
    with requests.Session() as session:
        return sum(
            session.get(url, headers=headers, timeout=10).status_code == 429 for _ in range(count)
        )


def body() -> None:
    args = parse_args(__doc__.splitlines()[0])
    bulk_rounds, single_rounds = (3, 1) if args.quick else (5, 3)
    sandbox_class, probes = _load()
    from chaosgenesys.platform import metrics

    seed = generated_seed(AGENTS)
    client_id, client_secret = seed_clients(seed)[0]
    secrets = {"client_id": client_id, "client_secret": client_secret}
    ids = [user_id(i) for i in range(1, AGENTS + 1)]
    notes: list[str] = []

    with sandbox_class(seed=seed, port=0, rate_limit_per_minute=0) as sandbox:
        configuration = _configuration(sandbox)
        probes.get_presence(ids[0], configuration=configuration, secrets=secrets)  # token

        def bulk() -> Any:
            return probes.agents_state(ids, configuration=configuration, secrets=secrets)

        def singles() -> list[tuple[Any, Any]]:
            return [
                (
                    probes.get_presence(uid, configuration=configuration, secrets=secrets),
                    probes.get_routing_status(uid, configuration=configuration, secrets=secrets),
                )
                for uid in ids
            ]

        bulk_times: list[float] = []
        single_times: list[float] = []
        bulk_requests = single_requests = 0
        state: Any = None
        single_result: list[tuple[Any, Any]] = []
        # Interleave: bulk, singles, bulk, singles, ... then the remaining bulk rounds.
        for index in range(max(bulk_rounds, single_rounds)):
            if index < bulk_rounds:
                elapsed, bulk_requests, state = _measure(sandbox, bulk)
                bulk_times.append(elapsed)
            if index < single_rounds:
                elapsed, single_requests, single_result = _measure(sandbox, singles)
                single_times.append(elapsed)

    if state.get("count") != AGENTS or state.get("on_queue") != AGENTS:
        notes.append(
            f"agents_state answered count={state.get('count')} on_queue={state.get('on_queue')} "
            f"not_found={state.get('not_found')} (expected {AGENTS} On Queue)"
        )
    on_queue_single = sum(
        1 for presence, _ in single_result if presence.get("system_presence") == "On Queue"
    )
    if on_queue_single != AGENTS:
        notes.append(f"single reads saw {on_queue_single} On Queue agents, expected {AGENTS}")

    # With the default rate limit (300/min per token) and a fresh token.
    with sandbox_class(seed=seed, port=0, rate_limit_per_minute=300) as limited:
        configuration = _configuration(limited)
        metrics.reset()
        elapsed_limited, limited_requests, limited_state = _measure(
            limited,
            lambda: probes.agents_state(ids, configuration=configuration, secrets=secrets),
        )
        calls = metrics.records()
        all_requests = limited.requests()
        control_429 = _raw_burst(limited, client_id, client_secret, ids[0], CONTROL_BURST)
    statuses = [record["status"] for record in calls]
    too_many = statuses.count(429)
    retries = sum(record["retries"] for record in calls)
    if limited_state.get("on_queue") != AGENTS:
        notes.append(f"rate-limited agents_state saw on_queue={limited_state.get('on_queue')}")

    bulk_median, single_median = median(bulk_times), median(single_times)
    speedup = single_median / bulk_median
    figures = [
        Figure(
            "agents_state(500): HTTP requests",
            bulk_requests,
            "",
            f"<= {REQUEST_GOAL}",
            bulk_requests <= REQUEST_GOAL,
        ),
        Figure("agents_state(500): wall time, median", bulk_median * 1000, "ms"),
        Figure("500 x (get_presence + get_routing_status): requests", single_requests),
        Figure("500 x (get_presence + get_routing_status): median", single_median * 1000, "ms"),
        Figure(
            "speed-up (single reads / agents_state)",
            speedup,
            "x",
            f">= {SPEEDUP_GOAL:.0f}x",
            speedup >= SPEEDUP_GOAL,
        ),
        Figure(
            "300/min limit: 429 answers (client retries)",
            f"{too_many} ({retries})",
            "",
            "0 (0)",
            too_many == 0 and retries == 0,
        ),
        Figure(
            "300/min limit: API requests / all incl. token",
            f"{limited_requests} / {all_requests}",
        ),
        Figure("300/min limit: agents_state wall time", elapsed_limited * 1000, "ms"),
        Figure(
            f"control: 429s to {CONTROL_BURST} raw GETs, one token",
            control_429,
            "",
            "> 0 (limiter on)",
            control_429 > 0,
        ),
    ]
    notes.append(
        f"in-process sandbox, {AGENTS} On Queue agents in one queue; bulk: median of "
        f"{len(bulk_times)}, single reads: median of {len(single_times)}, interleaved"
    )
    notes.append(f"client metrics under the limit: statuses {sorted(set(statuses))}")
    report(TITLE, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
