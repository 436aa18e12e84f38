"""Cost of a chaosgenesys probe inside ``chaos run``, next to the probe a user would write.

Three one-probe experiments, identical but for the probe:

- ``chaosgenesys.users.probes.get_presence`` against a sandbox subprocess
  (``chaosgenesys sandbox --seed examples/seed.yaml --port 0 --json --rate-limit 0``);
- the same question asked with plain ``requests`` (a probe module written for the benchmark:
  a client-credentials token, then ``GET /api/v2/users/{id}/presences/purecloud``), the anchor;
- ``os.path.exists`` (a probe that costs nothing: the floor of a ``chaos run``).

Each runs as a real ``chaos --no-version-check --no-log-file run`` subprocess, interleaved, N
times each after one unmeasured warm-up of each, with .pyc files and without. The figures are
the median and minimum wall time of each, and their ratio (goal: chaosgenesys / plain requests
≤ 1.10, with and without .pyc).

Also measured, each in a fresh interpreter: which of aiohttp, pyroute2 and mitmproxy
``import chaosgenesys.users.probes`` imports (goal: none), and ``python -X importtime`` for that
import, alone and on top of what ``chaos`` itself has already imported; and, in a process that
has imported ``chaostoolkit.cli``, the time of the import, the first ``get_presence`` (lazy
platform import, token, GET) and the second (GET only): where the difference goes.

Child processes read and write .pyc files under a private ``PYTHONPYCACHEPREFIX`` (this machine
sets ``PYTHONDONTWRITEBYTECODE=1``, which would otherwise compile chaosgenesys from source in every
run); one figure shows the import without them.

Run: ``.venv/bin/python benchmarks/probe_cost.py [--quick]`` (N = 15, quick 3).
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import (
    EXAMPLE_CLIENT_ID,
    EXAMPLE_CLIENT_SECRET,
    FALLBACK_SEED,
    ROOT,
    SEED_FILE,
    VENV_BIN,
    BenchmarkError,
    Figure,
    child_env,
    median,
    parse_args,
    report,
    run_main,
    sandbox_process,
)

HEAVY = ("aiohttp", "pyroute2", "mitmproxy")
RATIO_GOAL = 1.10
TITLE = "probe_cost: a chaosgenesys probe inside `chaos run` vs a plain requests probe"


def experiment(title: str, provider: dict[str, Any], url: str) -> dict[str, Any]:
    """A one-probe experiment; both variants carry the same configuration."""
    return {
        "version": "1.0.0",
        "title": title,
        "description": "benchmarks/probe_cost.py",
        "configuration": {
            "genesys_api_url": url,
            "genesys_login_url": url,
            "genesys_timeout": 10,
        },
        "method": [{"type": "probe", "name": "the-probe", "provider": provider}],
    }


#: The probe a user would write without chaosgenesys: the same two HTTP calls with requests.
PLAIN_PROBE = """
import os

import requests


def get_presence(user_id, configuration=None, secrets=None):
    configuration = configuration or {}
    login, api = configuration["genesys_login_url"], configuration["genesys_api_url"]
    timeout = configuration.get("genesys_timeout", 10)
    token = requests.post(
        f"{login}/oauth/token", data={"grant_type": "client_credentials"},
        auth=(os.environ["GENESYSCLOUD_OAUTHCLIENT_ID"],
              os.environ["GENESYSCLOUD_OAUTHCLIENT_SECRET"]),
        timeout=timeout,
    )
    token.raise_for_status()
    answer = requests.get(
        f"{api}/api/v2/users/{user_id}/presences/purecloud",
        headers={"Authorization": f"Bearer {token.json()['access_token']}"}, timeout=timeout,
    )
    answer.raise_for_status()
    return answer.json()["presenceDefinition"]["systemPresence"]
"""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def chaos_run(
    experiment_path: Path, journal_path: Path, env: dict[str, str]
) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one ``chaos run``; raises unless its probe succeeded."""
    command = [
        str(VENV_BIN / "chaos"),
        "--no-version-check",
        "--no-log-file",
        "run",
        "--journal-path",
        str(journal_path),
        str(experiment_path),
    ]
    journal_path.unlink(missing_ok=True)
    cpu_before = _children_cpu()
    started = time.perf_counter()
    completed = subprocess.run(
        command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    elapsed = time.perf_counter() - started
    cpu = _children_cpu() - cpu_before
    try:
        journal = json.loads(journal_path.read_text())
    except (OSError, ValueError):
        journal = {}
    runs = journal.get("run") or [{}]
    if journal.get("status") != "completed" or runs[0].get("status") != "succeeded":
        detail = (runs[0].get("exception") or completed.stderr or completed.stdout or "")[-1500:]
        raise BenchmarkError(
            f"`chaos run {experiment_path.name}` exited {completed.returncode}, journal status "
            f"{journal.get('status')!r}, probe {runs[0].get('status')!r}: {detail}"
        )
    return elapsed, cpu


def heavy_imports(env: dict[str, str]) -> list[str]:
    """Which heavy packages ``import chaosgenesys.users.probes`` imports, in a fresh interpreter."""
    code = (
        "import json, sys\n"
        "import chaosgenesys.users.probes\n"
        f"print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"import chaosgenesys.users.probes failed: {completed.stderr[-1500:]}")
    found: list[str] = json.loads(completed.stdout.strip().splitlines()[-1])
    return found


def _top_level_imports(code: str, env: dict[str, str]) -> list[tuple[str, int]]:
    """``(module, cumulative µs)`` of the top-level lines of ``python -X importtime -c code``."""
    completed = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    if completed.returncode != 0:
        raise BenchmarkError(f"python -X importtime -c {code!r} failed: {completed.stderr[-800:]}")
    rows: list[tuple[str, int]] = []
    for line in completed.stderr.splitlines():
        if not line.startswith("import time:") or "[us]" in line:
            continue
        try:
            _, cumulative, name = line[len("import time:") :].split("|", 2)
        except ValueError:
            continue
        if name.startswith(" ") and not name.startswith("  "):  # one space: top level
            rows.append((name.strip(), int(cumulative)))
    return rows


def import_time_ms(
    env: dict[str, str], preload: str, repeats: int, module: str = "chaosgenesys.users.probes"
) -> float:
    """Best-of-``repeats`` cost of ``import module`` after ``preload``, from ``-X importtime``.

    The cost is the sum of the cumulative times of the top-level imports that the preload alone
    does not make (so interpreter start-up and the preload are not counted).
    """
    best = float("inf")
    for _ in range(repeats):
        before = {name for name, _ in _top_level_imports(preload, env)}
        after = _top_level_imports(f"{preload}\nimport {module}", env)
        total_us = sum(us for name, us in after if name not in before)
        best = min(best, total_us / 1000)
    return best


_FIRST_CALL = """
import json, sys, time
import chaostoolkit.cli
configuration, agent = json.loads(sys.argv[1]), sys.argv[2]
started = time.perf_counter()
from chaosgenesys.users import probes
imported = time.perf_counter()
probes.get_presence(agent, configuration)
first = time.perf_counter()
probes.get_presence(agent, configuration)
second = time.perf_counter()
print(json.dumps([imported - started, first - imported, second - first]))
"""


def first_call_breakdown(
    configuration: dict[str, Any], agent: str, env: dict[str, str], repeats: int
) -> list[float]:
    """Best-of-``repeats`` seconds, in a process that has imported ``chaostoolkit.cli``, of:
    importing ``users.probes``, the first ``get_presence`` (lazy platform import, token, GET)
    and a second one (GET only)."""
    best = [float("inf")] * 3
    for _ in range(repeats):
        completed = subprocess.run(
            [sys.executable, "-c", _FIRST_CALL, json.dumps(configuration), agent],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        if completed.returncode != 0:
            raise BenchmarkError(f"first-call breakdown failed: {completed.stderr[-1500:]}")
        times = json.loads(completed.stdout.strip().splitlines()[-1])
        best = [min(b, t) for b, t in zip(best, times, strict=True)]
    return best


def body() -> None:
    args = parse_args(__doc__.splitlines()[0])
    rounds = 3 if args.quick else 15
    notes: list[str] = []
    figures: list[Figure] = []

    load_before = os.getloadavg()[0]
    # Bytecode: this machine sets PYTHONDONTWRITEBYTECODE=1 and the editable package has no
    # __pycache__, so every process would compile chaosgenesys from source. Users have .pyc
    # files: the children write and read them under a private PYTHONPYCACHEPREFIX (nothing is
    # written next to the sources); the first run of each kind fills it.
    pycache = tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-pycache-")
    credentials = {
        "GENESYSCLOUD_OAUTHCLIENT_ID": EXAMPLE_CLIENT_ID,
        "GENESYSCLOUD_OAUTHCLIENT_SECRET": EXAMPLE_CLIENT_SECRET,
    }
    env = child_env(PYTHONPYCACHEPREFIX=pycache.name, **credentials)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    no_bytecode_env = child_env(PYTHONDONTWRITEBYTECODE="1", **credentials)
    no_bytecode_env.pop("PYTHONPYCACHEPREFIX", None)

    heavy = heavy_imports(env)
    cold_ms = import_time_ms(env, "pass", repeats=3)
    warm_ms = import_time_ms(env, "import chaostoolkit.cli", repeats=3)
    platform_ms = import_time_ms(
        env,
        "import chaostoolkit.cli\nimport chaosgenesys.users.probes",
        repeats=3,
        module="chaosgenesys.platform.client",
    )
    source_ms = import_time_ms(no_bytecode_env, "import chaostoolkit.cli", repeats=3)

    seed: Path | dict[str, Any] = SEED_FILE
    if not SEED_FILE.exists():
        seed = FALLBACK_SEED
        notes.append(f"{SEED_FILE.relative_to(ROOT)} missing: used the seed shown in design.md")
    with (
        pycache,
        sandbox_process(seed, rate_limit=0) as details,
        tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-") as tmp,
    ):
        url = details["url"]
        users = details.get("users") or []
        if not users:
            raise BenchmarkError("the sandbox seed has no users")
        agent = users[0]["id"]
        ours = Path(tmp) / "genesys.json"
        stdlib = Path(tmp) / "stdlib.json"
        plain = Path(tmp) / "plain.json"
        (Path(tmp) / "plain_presence_probe.py").write_text(PLAIN_PROBE)
        for variant_env in (env, no_bytecode_env):  # every variant finds the plain probe
            variant_env["PYTHONPATH"] = tmp
        plain.write_text(
            json.dumps(
                experiment(
                    "one plain requests probe",
                    {
                        "type": "python",
                        "module": "plain_presence_probe",
                        "func": "get_presence",
                        "arguments": {"user_id": agent},
                    },
                    url,
                )
            )
        )
        ours.write_text(
            json.dumps(
                experiment(
                    "one chaosgenesys probe",
                    {
                        "type": "python",
                        "module": "chaosgenesys.users.probes",
                        "func": "get_presence",
                        "arguments": {"user_id": agent},
                    },
                    url,
                )
            )
        )
        stdlib.write_text(
            json.dumps(
                experiment(
                    "one stdlib probe",
                    {
                        "type": "python",
                        "module": "os.path",
                        "func": "exists",
                        "arguments": {"path": "."},
                    },
                    url,
                )
            )
        )
        configuration = experiment("", {}, url)["configuration"]
        breakdown = first_call_breakdown(configuration, agent, env, repeats=3)
        journal = Path(tmp) / "journal.json"
        variants = {
            "ours": (ours, env),
            "plain": (plain, env),
            "stdlib": (stdlib, env),
            "ours-no-pyc": (ours, no_bytecode_env),
            "plain-no-pyc": (plain, no_bytecode_env),
        }
        for path, variant_env in variants.values():  # warm-up: page cache, .pyc files
            chaos_run(path, journal, variant_env)
        times: dict[str, list[float]] = {name: [] for name in variants}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for index in range(rounds):
            order = list(variants)
            if index % 2:
                order.reverse()
            for name in order:
                path, variant_env = variants[name]
                wall, used = chaos_run(path, journal, variant_env)
                times[name].append(wall)
                cpu[name].append(used)

    ours_median, plain_median = median(times["ours"]), median(times["plain"])
    ours_min, plain_min = min(times["ours"]), min(times["plain"])
    stdlib_median = median(times["stdlib"])
    ratio_median = ours_median / plain_median
    ratio_min = ours_min / plain_min
    no_pyc_median = median(times["ours-no-pyc"]) / median(times["plain-no-pyc"])
    no_pyc_min = min(times["ours-no-pyc"]) / min(times["plain-no-pyc"])
    cpu_ratio = median(cpu["ours"]) / median(cpu["plain"])
    paired_ratio = median([a / b for a, b in zip(times["ours"], times["plain"], strict=True)])
    goal = f"<= {RATIO_GOAL:.2f}"
    figures += [
        Figure("chaos run, get_presence: median", ours_median * 1000, "ms"),
        Figure("chaos run, get_presence: min", ours_min * 1000, "ms"),
        Figure("chaos run, plain requests probe: median", plain_median * 1000, "ms"),
        Figure("chaos run, plain requests probe: min", plain_min * 1000, "ms"),
        Figure("chaos run, os.path.exists (floor): median", stdlib_median * 1000, "ms"),
        Figure("ratio of medians (ours / plain requests)", ratio_median, "x", goal,
               ratio_median <= RATIO_GOAL),
        Figure("ratio of minimums (ours / plain requests)", ratio_min, "x", goal,
               ratio_min <= RATIO_GOAL),
        Figure("no .pyc: ratio of medians (ours / plain)", no_pyc_median, "x", goal,
               no_pyc_median <= RATIO_GOAL),
        Figure("no .pyc: ratio of minimums (ours / plain)", no_pyc_min, "x", goal,
               no_pyc_min <= RATIO_GOAL),
        Figure("chaos run CPU, get_presence: median", median(cpu["ours"]) * 1000, "ms"),
        Figure("chaos run CPU, plain requests: median", median(cpu["plain"]) * 1000, "ms"),
        Figure("CPU (user+sys): ratio of medians", cpu_ratio, "x"),
        Figure("median of per-round ratios (paired)", paired_ratio, "x"),
        Figure("ratio of medians (ours / os.path.exists floor)", ours_median / stdlib_median,
               "x"),
        Figure(
            "heavy modules imported by users.probes",
            ", ".join(heavy) or "none",
            "",
            "none of " + "/".join(HEAVY),
            not heavy,
        ),
        Figure("import users.probes, fresh interpreter", cold_ms, "ms"),
        Figure("import users.probes, after chaostoolkit.cli", warm_ms, "ms"),
        Figure("  then import platform.client (lazy)", platform_ms, "ms"),
        Figure("import users.probes, after cli, no .pyc", source_ms, "ms"),
        Figure("in-process: import users.probes", breakdown[0] * 1000, "ms"),
        Figure("in-process: 1st get_presence (+platform, token)", breakdown[1] * 1000, "ms"),
        Figure("in-process: 2nd get_presence (GET only)", breakdown[2] * 1000, "ms"),
        Figure(
            "in-process: sum of the three",
            sum(breakdown) * 1000,
            "ms",
            f"<= {(RATIO_GOAL - 1) * 100:.0f}% of stdlib run",
            sum(breakdown) <= (RATIO_GOAL - 1) * stdlib_median,
        ),
    ]
    notes.append(
        f"{rounds} interleaved runs of each after one warm-up; sandbox at {url} (subprocess)"
    )
    spread = (max(times["plain"]) - plain_min) * 1000
    notes.append(
        f"noise: plain requests runs spread over {spread:.0f} ms; load average "
        f"{load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after ({os.cpu_count()} CPUs); under load trust the minimums "
        "the CPU figures and the in-process breakdown more than the wall-time medians"
    )
    notes.append(
        "import times: -X importtime, best of 3, top-level imports the preload lacks; all child "
        "processes use .pyc files (private PYTHONPYCACHEPREFIX) except the 'no .pyc' line, "
        "which compiles chaosgenesys from source as PYTHONDONTWRITEBYTECODE=1 does here"
    )
    notes.append(
        "in-process: a python process that imported chaostoolkit.cli, best of 3; the 1st call "
        "includes the lazy platform import and the token request"
    )
    report(TITLE, figures, notes, as_json=args.json)


if __name__ == "__main__":
    sys.exit(run_main(body))
