"""The kill switch reading PromQL from a real Prometheus server that scrapes real agents.

One ``prometheus`` process (Debian's package, ``scripts/bootstrap``) for the module: scrape
interval 1 s, targets the metrics ports the tests give their synthetic agents, storage and
config in a temporary folder, a free port on 127.0.0.1, killed with the test process
(PR_SET_PDEATHSIG) if pytest dies.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import InterruptExecution, InvalidControl

from chaosgenesys.browser.observer import die_with_parent
from chaosgenesys.controls import killswitch
from tests.agent.helpers import HEARTBEAT, agent_seed, fast_options, wait_for
from tests.conftest import AGENT_1
from tests.controls.runner import chaos_run
from tests.controls.test_killswitch import _experiment
from tests.faults.conftest import stop_guardians

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Prometheus:
    url: str
    #: metrics ports scraped (127.0.0.1), one per test that runs agents
    reconnect_port: int
    trip_port: int

    def query(self, expression: str) -> list[dict[str, Any]]:
        address = f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expression})
        with urllib.request.urlopen(address, timeout=5) as response:
            body = json.loads(response.read())
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def value(self, expression: str) -> float | None:
        result = self.query(expression)
        return float(result[0]["value"][1]) if result else None


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    if not Path(PROMETHEUS).exists():  # a missing package is a failure, not a skip
        pytest.fail("prometheus is not installed: run scripts/bootstrap (apt-get install "
                    "prometheus)")
    folder = tmp_path_factory.mktemp("prometheus")
    reconnect_port, trip_port, port = free_port(), free_port(), free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: chaosgenesys-agents\n    scrape_timeout: 900ms\n"
        "    static_configs:\n      - targets: "
        f"['127.0.0.1:{reconnect_port}', '127.0.0.1:{trip_port}']\n",
        encoding="utf-8",
    )
    log = (folder / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={folder / 'data'}",
         f"--web.listen-address=127.0.0.1:{port}", "--log.level=warn"],
        stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent,
    )
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as response:
                return bool(response.status == 200)
        except OSError:
            assert process.poll() is None, (folder / "prometheus.log").read_text()
            return False

    try:
        assert wait_for(ready, 20, 0.1), (folder / "prometheus.log").read_text()
        yield Prometheus(url, reconnect_port, trip_port)
    finally:
        process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


@pytest.fixture
def fast_sandbox() -> Iterator[Any]:
    """A sandbox with 0.2 s heartbeats, as the agent tests use."""
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed=agent_seed(), heartbeat_interval=HEARTBEAT) as sandbox:
        yield sandbox


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[Path]:
    directory = tmp_path / "runtime"
    yield directory
    stop_guardians(directory)


def test_a_reconnect_by_the_agent_shows_in_prometheus(
    prometheus: Prometheus, fast_sandbox: Any, configuration: Any, secrets: Any,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaosgenesys.agent import actions
    from chaosgenesys.controls.promql import DEFAULT_WEBSOCKET_ERROR_RATE_QUERY

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {**configuration, "genesys_api_url": fast_sandbox.url,
                     "genesys_login_url": fast_sandbox.url}
    actions.start_agents([AGENT_1], options=fast_options(metrics_port=prometheus.reconnect_port),
                         configuration=configuration, secrets=secrets)
    target = f'instance="127.0.0.1:{prometheus.reconnect_port}"'
    user = f'user="{AGENT_1}",{target}'
    try:
        assert wait_for(lambda: prometheus.value(
            f"chaosgenesys_websocket_connected{{{user}}}") == 1.0, 10, 0.2)
        assert prometheus.value(f"up{{{target}}}") == 1.0
        assert prometheus.value(f"chaosgenesys_websocket_disconnects_total{{{user}}}") == 0.0
        assert prometheus.value(DEFAULT_WEBSOCKET_ERROR_RATE_QUERY) == 0.0
        fast_sandbox.close_notification_sockets(code=1011)
        assert wait_for(lambda: prometheus.value(
            f"chaosgenesys_reconnect_latency_seconds_count{{{user}}}") == 1.0, 8, 0.2)
        assert prometheus.value(f"chaosgenesys_websocket_disconnects_total{{{user}}}") == 1.0
        assert prometheus.value(f"chaosgenesys_websocket_errors_total{{{user}}}") == 1.0
        latency = prometheus.value(f"chaosgenesys_reconnect_latency_seconds_sum{{{user}}}")
        assert latency is not None and 2.0 <= latency < 5.0  # the first backoff delay: 2 s
        # the drop was seen while it lasted (2 s at 1 s scrapes): the default error-rate
        # query over it was 1 (one desktop of one)
        peak = prometheus.value(f"max_over_time(({DEFAULT_WEBSOCKET_ERROR_RATE_QUERY})[30s:500ms])")
        assert peak == 1.0
        assert wait_for(lambda: prometheus.value(
            f"chaosgenesys_websocket_connected{{{user}}}") == 1.0, 3, 0.2)
    finally:
        actions.stop_agents()


def test_the_switch_trips_on_a_slow_api_seen_through_prometheus(
    prometheus: Prometheus, tmp_path: Path, runtime: Path
) -> None:
    """The sandbox delays the desktop's user reads by 2.5 s; only Prometheus is judged
    (``run_samples: false``), with the default queries and the guide's 2,000 ms limit."""
    marker = tmp_path / "marker"
    experiment = _experiment(
        marker,
        slow_ms=2500,
        probes=0,
        prometheus_url=prometheus.url,
        run_samples=False,
        max_api_p99_ms=2000,
        api_window_seconds=3,
        websocket_window_seconds=3,
        check_interval=0.2,
        stop_immediately=True,
    )
    sandbox_control = experiment["controls"][0]["provider"]["arguments"]
    sandbox_control.update({"agents": [AGENT_1], "agent_options": {
        "sync_interval": 0.3, "metrics_port": prometheus.trip_port}})
    experiment["method"][-1]["pauses"] = {"after": 40}
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    assert run.activities() == ["apply-fault", "slow-api"]
    entry = run.extension("chaosgenesys-killswitch")
    assert entry["tripped"] is True, entry
    assert entry["reason"].startswith(
        f"kill switch: Prometheus at {prometheus.url}: API latency p99"), entry["reason"]
    assert "(api_p99_query) has stayed above 2000 ms for 3 s" in entry["reason"]
    assert entry["run_samples"] is False and entry["blind"] is None
    report = entry["prometheus"]
    assert report["peaks"]["api_p99_ms"] > 2000 and report["blind_periods"] == []
    assert report["last_sample"]["api"]["over"] is True
    # tripped at the check that found the p99 over for the whole 3 s window; the run's own
    # samples were not judged, so the switch's figure is Prometheus's
    assert report["longest_over_seconds"]["api_p99_ms"] >= 3.0
    assert entry["longest_over_seconds"] == report["longest_over_seconds"]
    assert not marker.exists()  # reverted, and the sandbox's delay cleared
    assert ("sandbox", "reverted") in {(r["kind"], r["status"]) for r in entry["reverted"]}
    # a first slow call after 2.5 s, its scrape within 1 s, then the 3 s window
    assert run.seconds < 25, run.seconds


def _blind_experiment(tmp_path: Path, pause: float, **arguments: Any) -> dict[str, Any]:
    experiment = _experiment(
        tmp_path / "marker",
        slow_ms=0,
        probes=1,
        prometheus_url=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        api_window_seconds=1,
        websocket_window_seconds=1,
        check_interval=0.2,
        prometheus_timeout=0.5,
        **arguments,
    )
    experiment["method"][-1]["pauses"] = {"after": pause}
    return experiment


def test_an_unreachable_prometheus_with_when_blind_stop_stops_the_run(
    tmp_path: Path, runtime: Path
) -> None:
    experiment = _blind_experiment(tmp_path, 30, when_blind="stop", stop_immediately=True)
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "interrupted", run.log[-3000:]
    entry = run.extension("chaosgenesys-killswitch")
    assert entry["reason"].startswith("kill switch: blind: Prometheus at http://127.0.0.1:")
    assert "when_blind is stop" in entry["reason"]
    blind = entry["blind"]
    assert blind["since"] <= entry["tripped_at"]
    assert blind["why"].startswith("api_p99_query: no answer: GET http://127.0.0.1:"), blind
    assert "WARNING" in run.log and "Kill switch: blind: Prometheus at" in run.log
    assert not (tmp_path / "marker").exists()
    assert run.seconds < 15  # the 30 s pause was cut short


def test_an_unreachable_prometheus_alongside_run_samples_goes_on_and_says_so(
    tmp_path: Path, runtime: Path
) -> None:
    experiment = _blind_experiment(tmp_path, 1.5)  # when_blind: its default here, continue
    run = chaos_run(experiment, tmp_path, runtime)
    assert run.journal["status"] == "completed", run.log[-3000:]
    entry = run.extension("chaosgenesys-killswitch")
    assert entry["tripped"] is False and entry["run_samples"] is True
    assert entry["prometheus"]["when_blind"] == "continue"
    assert entry["blind"] is not None and "Connection refused" in entry["blind"]["why"]
    assert entry["prometheus"]["blind_periods"][0]["until"] is None  # blind to the end
    warnings = [line for line in run.log.splitlines() if "Kill switch: blind" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0], warnings  # said once, not per check
    assert "the run goes on, watched by its own samples only" in warnings[0]
    assert entry["checks"] >= 5  # the switch kept watching the run's own samples


@pytest.mark.parametrize(
    ("argument", "query"),
    [
        ("api_p99_query", "histogram_quantile(0.99, sum by (le) (rate(x[30s]))"),
        ("websocket_error_rate_query", "avg(1 - chaosgenesys_websocket_connected"),
        ("websocket_error_rate_query", "chaosgenesys_websocket_connected[1m]"),
    ],
)
def test_a_query_prometheus_rejects_refuses_the_run_naming_the_argument(
    prometheus: Prometheus, argument: str, query: str
) -> None:
    with pytest.raises(InterruptExecution, match=rf"killswitch control: {argument}: Prometheus"):
        killswitch.before_experiment_control(
            context={}, prometheus_url=prometheus.url, **{argument: query}
        )
    assert killswitch._watcher is None


def test_valid_queries_arm_the_switch_against_a_live_prometheus(prometheus: Prometheus) -> None:
    killswitch.before_experiment_control(context={}, prometheus_url=prometheus.url,
                                         check_interval=0.1)
    try:
        assert wait_for(lambda: (killswitch.status() or {}).get("checks", 0) >= 2, 3)
        report = killswitch.status()
        assert report is not None and report["blind"] is None
        assert report["prometheus"]["when_blind"] == "continue"
        assert report["prometheus"]["last_sample"]["blind"] is False
    finally:
        killswitch.cleanup_control()


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"prometheus_url": "ftp://127.0.0.1:9090"}, "prometheus_url"),
        ({"prometheus_url": "http://127.0.0.1:9090/?x=1"}, "prometheus_url"),
        ({"api_p99_query": "up"}, "prometheus_url"),  # a query with nowhere to ask it
        ({"prometheus_url": "http://127.0.0.1:9", "when_blind": "maybe"}, "when_blind"),
        ({"prometheus_url": "http://127.0.0.1:9", "run_samples": "no"}, "run_samples"),
        ({"prometheus_url": "http://127.0.0.1:9", "prometheus_timeout": 0}, "prometheus_timeout"),
        ({"prometheus_url": "http://127.0.0.1:9", "api_p99_query": " "}, "api_p99_query"),
    ],
)
def test_bad_prometheus_arguments_refuse_the_run_naming_the_argument(
    arguments: dict[str, Any], named: str
) -> None:
    with pytest.raises(InterruptExecution, match=named):
        killswitch.before_experiment_control(context={}, **arguments)
    assert killswitch._watcher is None
    with pytest.raises(InvalidControl, match=named):
        killswitch.validate_control({"name": "k", "provider": {"arguments": arguments}})


def test_when_blind_defaults_to_stop_when_prometheus_is_the_only_source() -> None:
    from chaosgenesys.controls.promql import source_from_arguments

    alone = source_from_arguments({"prometheus_url": "http://127.0.0.1:9", "run_samples": False})
    assert alone is not None and alone.when_blind == "stop"
    beside = source_from_arguments({"prometheus_url": "http://127.0.0.1:9"})
    assert beside is not None and beside.when_blind == "continue"
    assert source_from_arguments({}) is None


def test_a_server_that_is_not_prometheus_makes_the_switch_blind(tmp_path: Path) -> None:
    """A real HTTP server answering 404 pages: blind (an answer that is not Prometheus's),
    and with ``when_blind: stop`` the switch trips once blind for the shorter window."""
    import http.server
    import threading

    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://user:hunter2@127.0.0.1:{server.server_address[1]}"
    try:
        from chaosgenesys.controls.promql import source_from_arguments

        source = source_from_arguments({"prometheus_url": url, "when_blind": "stop"})
        assert source is not None
        watcher = killswitch.Watcher(
            killswitch.Thresholds(api_window_seconds=0.5, websocket_window_seconds=5),
            prometheus=source,
        )
        assert watcher.check() is False
        assert source.blind is not None and "404 without Prometheus JSON" in source.blind["why"]
        time.sleep(0.6)
        assert watcher.check() is True
        assert watcher.reason is not None and "when_blind is stop" in watcher.reason
        report = watcher.report()
        assert "hunter2" not in json.dumps(report) and "hunter2" not in watcher.reason
        assert report["blind"]["since"] == source.blind["since"]
    finally:
        server.shutdown()
        server.server_close()


def test_validate_accepts_a_substituted_prometheus_url() -> None:
    killswitch.validate_control({"name": "k", "provider": {"arguments": {
        "prometheus_url": "${prometheus}", "api_p99_query": "up", "when_blind": "stop"}}})
    with pytest.raises(InvalidControl, match="when_blind"):
        killswitch.validate_control({"name": "k", "provider": {"arguments": {
            "prometheus_url": "${prometheus}", "when_blind": "later"}}})
