"""Shared helpers of the benchmarks: arguments, statistics, seeds, a sandbox subprocess, reports.

Not a benchmark itself. Every benchmark prints its figures in one table, each with its goal and
PASS or MISS (or ``info`` when the figure has no goal), and exits 0 whatever the figures are:
a benchmark reports, it does not fail the build. It exits 1 only when it could not measure.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import math
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SEED_FILE = ROOT / "examples" / "seed.yaml"

#: Secrets of the OAuth clients in ``examples/seed.yaml`` (what the docs tell users to export).
EXAMPLE_CLIENT_ID = "chaos-client"
EXAMPLE_CLIENT_SECRET = "chaos-secret"

#: The seed of ``examples/seed.yaml`` as ``design.md`` shows it, used only when that file is not
#: there yet (the benchmark says so in its notes).
FALLBACK_SEED: dict[str, Any] = {
    "clients": [
        {
            "client_id": EXAMPLE_CLIENT_ID,
            "client_secret": EXAMPLE_CLIENT_SECRET,
            "token_lifetime": 86400,
        }
    ],
    "users": [
        {
            "id": "0b6b3c5e-0000-4000-8000-000000000001",
            "name": "Test Agent 1",
            "presence": "On Queue",
        },
        {
            "id": "0b6b3c5e-0000-4000-8000-000000000002",
            "name": "Test Agent 2",
            "presence": "On Queue",
        },
    ],
    "queues": [
        {
            "id": "7c1d2a90-0000-4000-8000-0000000000aa",
            "name": "Chaos Queue",
            "members": [
                "0b6b3c5e-0000-4000-8000-000000000001",
                "0b6b3c5e-0000-4000-8000-000000000002",
            ],
        }
    ],
}

#: Presence definition ids seen in real orgs, used if the sandbox has no definitions endpoint.
KNOWN_PRESENCE_IDS = {
    "Available": "6a3af858-942f-489d-9700-5f9bcdcdae9b",
    "Away": "5e5c5c66-ea97-4e7f-ac41-6424784829f2",
    "Busy": "31fe3bac-dea6-44b7-bed7-47f91660a1a0",
    "On Queue": "e08eaf1b-ee47-4fa9-a231-1200e284798f",
}


class BenchmarkError(RuntimeError):
    """The benchmark could not measure (a missing component, a sandbox that did not start)."""


# -- arguments and statistics -------------------------------------------------------------------


def parse_args(description: str, argv: Sequence[str] | None = None) -> argparse.Namespace:
    """``--quick`` (small counts, under 30 s) and ``--json`` (also print the figures as JSON)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--quick", action="store_true", help="smaller counts: finishes in under 30 s"
    )
    parser.add_argument(
        "--json", action="store_true", help="print the figures as one JSON line at the end"
    )
    return parser.parse_args(argv)


def median(values: Sequence[float]) -> float:
    """The median of a non-empty sequence."""
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (``fraction`` in 0..1) of a non-empty sequence."""
    ordered = sorted(values)
    rank = max(1, math.ceil(fraction * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


# -- report -------------------------------------------------------------------------------------


@dataclass
class Figure:
    """One measured figure; ``passed`` is ``None`` for a figure without a goal."""

    name: str
    value: float | int | str
    unit: str = ""
    goal: str = ""
    passed: bool | None = None

    @property
    def verdict(self) -> str:
        if self.passed is None:
            return "info"
        return "PASS" if self.passed else "MISS"

    def shown(self) -> str:
        value = self.value
        if isinstance(value, float):
            text = f"{value:,.3f}" if abs(value) < 10 else f"{value:,.1f}"
        elif isinstance(value, int):
            text = f"{value:,}"
        else:
            text = str(value)
        return f"{text} {self.unit}".strip()


def report(
    title: str,
    figures: Sequence[Figure],
    notes: Sequence[str] = (),
    *,
    as_json: bool = False,
) -> None:
    """Print the figures as an aligned table: figure, value, goal, verdict; then the notes."""
    width_name = max([len(f.name) for f in figures] + [6])
    width_value = max([len(f.shown()) for f in figures] + [5])
    width_goal = max([len(f.goal) for f in figures] + [4])
    print(f"\n== {title} ==")
    print(f"{'figure':<{width_name}}  {'value':>{width_value}}  {'goal':<{width_goal}}  verdict")
    for figure in figures:
        print(
            f"{figure.name:<{width_name}}  {figure.shown():>{width_value}}  "
            f"{figure.goal:<{width_goal}}  {figure.verdict}"
        )
    for note in notes:
        print(f"  note: {note}")
    if as_json:
        print(
            json.dumps(
                {
                    "benchmark": title,
                    "figures": [
                        {
                            "name": f.name,
                            "value": f.value,
                            "unit": f.unit,
                            "goal": f.goal,
                            "verdict": f.verdict,
                        }
                        for f in figures
                    ],
                    "notes": list(notes),
                }
            )
        )
    sys.stdout.flush()


def run_main(body: Callable[[], None]) -> int:
    """Run ``body()`` and turn :class:`BenchmarkError` into a message and exit code 1."""
    try:
        body()
    except BenchmarkError as error:
        print(f"benchmark could not measure: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


# -- seeds ---------------------------------------------------------------------------------------


def user_id(index: int) -> str:
    """The id of generated user ``index`` (a UUID-shaped id, stable across runs)."""
    return f"00000000-be00-4000-8000-{index:012d}"


def generated_seed(users: int, clients: int = 1, presence: str = "On Queue") -> dict[str, Any]:
    """A seed with ``users`` agents (all in one queue) and ``clients`` OAuth clients.

    Client ``i`` is ``bench-client-i`` with secret ``bench-secret-i``.
    """
    ids = [user_id(i) for i in range(1, users + 1)]
    return {
        "clients": [
            {
                "client_id": f"bench-client-{i}",
                "client_secret": f"bench-secret-{i}",
                "token_lifetime": 86400,
            }
            for i in range(1, clients + 1)
        ],
        "users": [
            {"id": uid, "name": f"Bench Agent {n}", "presence": presence}
            for n, uid in enumerate(ids, start=1)
        ],
        "queues": [
            {"id": "00000000-be00-4000-8000-0000000000aa", "name": "Bench Queue", "members": ids}
        ],
    }


def seed_clients(seed: dict[str, Any]) -> list[tuple[str, str]]:
    """``(client_id, client_secret)`` of every client in a seed."""
    return [(c["client_id"], c["client_secret"]) for c in seed.get("clients", [])]


# -- the sandbox as a subprocess ---------------------------------------------------------------


@contextlib.contextmanager
def sandbox_process(
    seed: Path | dict[str, Any],
    *,
    rate_limit: int = 0,
    heartbeat_interval: float | None = None,
    start_timeout: float = 30.0,
) -> Iterator[dict[str, Any]]:
    """``chaosgenesys sandbox --port 0 --json`` in a subprocess; yields its connection details.

    ``seed`` is a seed file or a seed mapping (written to a temporary JSON file). The process is
    stopped with SIGTERM (then SIGKILL after 10 s) when the block ends.
    """
    with tempfile.TemporaryDirectory(prefix="chaosgenesys-bench-") as tmp:
        if isinstance(seed, dict):
            seed_path = Path(tmp) / "seed.json"
            seed_path.write_text(json.dumps(seed))
        else:
            seed_path = seed
        command = [
            str(VENV_BIN / "chaosgenesys"),
            "sandbox",
            "--seed",
            str(seed_path),
            "--port",
            "0",
            "--json",
            "--rate-limit",
            str(rate_limit),
        ]
        if heartbeat_interval is not None:
            command += ["--heartbeat-interval", str(heartbeat_interval)]
        if not Path(command[0]).exists():
            command[0:1] = [sys.executable, "-m", "chaosgenesys.cli"]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            details = _first_json_line(process, start_timeout)
            yield details
        finally:
            _stop(process)


def _first_json_line(process: subprocess.Popen[str], timeout: float) -> dict[str, Any]:
    assert process.stdout is not None
    selector = selectors.DefaultSelector()
    selector.register(process.stdout, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    try:
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise BenchmarkError(f"the sandbox printed nothing within {timeout:.0f} s")
            if not selector.select(left):
                continue
            line = process.stdout.readline()
            if not line:
                _stop(process)
                error = process.stderr.read() if process.stderr else ""
                raise BenchmarkError(
                    f"the sandbox exited with {process.returncode}: {error.strip()[-2000:]}"
                )
            line = line.strip()
            if line.startswith("{"):
                details: dict[str, Any] = json.loads(line)
                return details
    finally:
        selector.close()


def _stop(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


# -- small HTTP helpers (requests, for setup only) ---------------------------------------------


def fetch_token(url: str, client_id: str, client_secret: str) -> str:
    """A client-credentials access token from the sandbox's ``/oauth/token``."""
    import requests

    basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
    response = requests.post(
        f"{url}/oauth/token",
        headers={
            "Authorization": f"Basic {basic}",
            "Content-Type": "application/x-www-form-urlencoded",
        },
        data="grant_type=client_credentials",
        timeout=10,
    )
    if response.status_code != 200:
        raise BenchmarkError(f"/oauth/token answered {response.status_code} for {client_id}")
    token: str = response.json()["access_token"]
    return token


def normalise(presence: str) -> str:
    """``"On Queue"``, ``"OnQueue"``, ``"ON_QUEUE"`` -> ``"onqueue"``."""
    return presence.replace(" ", "").replace("_", "").lower()


def presence_ids(url: str, token: str) -> dict[str, str]:
    """Normalised system presence -> definition id, from ``/api/v2/presence/definitions``.

    Falls back to the ids seen in real orgs when the sandbox does not list definitions.
    """
    import requests

    found = {normalise(name): ident for name, ident in KNOWN_PRESENCE_IDS.items()}
    try:
        response = requests.get(
            f"{url}/api/v2/presence/definitions",
            headers={"Authorization": f"Bearer {token}"},
            timeout=10,
        )
        body = response.json() if response.status_code == 200 else {}
    except (requests.RequestException, ValueError):
        body = {}
    for entity in body.get("entities", []) if isinstance(body, dict) else []:
        name, ident = entity.get("systemPresence"), entity.get("id")
        if isinstance(name, str) and isinstance(ident, str) and entity.get("type") != "User":
            found[normalise(name)] = ident
    return found


def child_env(**extra: str) -> dict[str, str]:
    """The environment for child processes: this one, without GENESYSCLOUD_* leaks, plus extra."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GENESYSCLOUD_")}
    env.update(extra)
    return env
