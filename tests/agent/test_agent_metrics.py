"""The agent process's Prometheus endpoint (``metrics_port``): real process, real sandbox, real
HTTP scrape, parsed with prometheus-client's own text parser."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.agent.helpers import fast_options, wait_for
from tests.conftest import AGENT_1, AGENT_2, CLIENT_SECRET

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def scrape(url: str) -> tuple[str, dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    """The exposition text and its samples by (name, sorted labels)."""
    from prometheus_client.parser import text_string_to_metric_families

    with urllib.request.urlopen(url, timeout=5) as response:
        assert response.status == 200
        text = response.read().decode()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    return text, samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def test_the_agents_serve_their_figures_and_a_reconnect_shows(
    fast_sandbox: Any, configuration: Any, secrets: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaosgenesys.agent import actions
    from chaosgenesys.agent.runtime import read_json

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {**configuration, "genesys_api_url": fast_sandbox.url,
                     "genesys_login_url": fast_sandbox.url}
    port = free_port()
    run = actions.start_agents([AGENT_1, AGENT_2], "", "resilient",
                               options=fast_options(metrics_port=port),
                               configuration=configuration, secrets=secrets)
    try:
        url = f"http://127.0.0.1:{port}/metrics"
        assert run["metrics_url"] == url
        record = read_json(Path(run["dir"]) / "run.json")
        assert record is not None and record["metrics_url"] == url
        assert wait_for(lambda: (read_json(Path(run["status"])) or {}).get("metrics")
                        == {"port": port, "url": url}, 3)

        def synced() -> bool:  # a sync's user read answered and observed
            _, found = scrape(url)
            return bool(value(found, "chaosgenesys_api_request_duration_seconds_count",
                              method="GET", path="/api/v2/users/{id}", status_class="2xx"))

        assert wait_for(synced, 5)
        text, samples = scrape(url)
        for user in (AGENT_1, AGENT_2):
            assert value(samples, "chaosgenesys_websocket_connected", user=user) == 1.0
            assert value(samples, "chaosgenesys_websocket_disconnects_total", user=user) == 0.0
            assert value(samples, "chaosgenesys_websocket_errors_total", user=user) == 0.0
            assert value(samples, "chaosgenesys_not_on_queue_seconds", user=user) == 0.0
        assert value(samples, "chaosgenesys_api_request_duration_seconds_bucket",
                     method="POST", path="/oauth/token", status_class="2xx", le="+Inf")
        # path templates only: no user id, no query string, no token, no secret
        assert AGENT_1 not in "".join(
            line for line in text.splitlines() if "request_duration" in line)
        assert "?" not in text and CLIENT_SECRET not in text and "Bearer" not in text

        fast_sandbox.close_notification_sockets(code=1011, user_ids=[AGENT_1])

        def reconnected() -> bool:
            _, found = scrape(url)
            return value(found, "chaosgenesys_reconnect_latency_seconds_count",
                         user=AGENT_1) == 1.0

        assert wait_for(lambda: value(scrape(url)[1], "chaosgenesys_websocket_connected",
                                      user=AGENT_1) == 0.0, 2)
        assert wait_for(reconnected, 6)
        _, samples = scrape(url)
        assert value(samples, "chaosgenesys_websocket_disconnects_total", user=AGENT_1) == 1.0
        assert value(samples, "chaosgenesys_websocket_errors_total", user=AGENT_1) == 1.0
        assert value(samples, "chaosgenesys_websocket_connected", user=AGENT_1) == 1.0
        assert value(samples, "chaosgenesys_websocket_disconnects_total", user=AGENT_2) == 0.0
        # the first reconnect waits the streaming client's first delay: 2 s
        assert value(samples, "chaosgenesys_reconnect_latency_seconds_bucket",
                     user=AGENT_1, le="2.0") == 0.0
        assert value(samples, "chaosgenesys_reconnect_latency_seconds_bucket",
                     user=AGENT_1, le="5.0") == 1.0
        assert 2.0 <= (value(samples, "chaosgenesys_reconnect_latency_seconds_sum",
                             user=AGENT_1) or 0) < 5.0
    finally:
        actions.stop_agents()
    with pytest.raises(OSError):  # the endpoint went with the process
        scrape(f"http://127.0.0.1:{port}/metrics")


def test_a_metrics_port_in_use_refuses_to_start_naming_the_option(
    fast_sandbox: Any, configuration: Any, secrets: Any, tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent import actions

    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(tmp_path / "runtime"))
    configuration = {**configuration, "genesys_api_url": fast_sandbox.url,
                     "genesys_login_url": fast_sandbox.url}
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ActivityFailed, match=rf"metrics_port {port}.*in use"):
            actions.start_agents([AGENT_1], options=fast_options(metrics_port=port),
                                 configuration=configuration, secrets=secrets)
    # nothing left behind: no fault recorded, so no guardian waits on a run that never started
    from chaosgenesys.faults import registry

    assert registry.mine() == []


@pytest.mark.parametrize("bad", [70000, -1, "9100", 1.5, True])
def test_metrics_port_is_checked(bad: Any) -> None:
    from chaosgenesys.agent.config import config_from_options

    with pytest.raises(ValueError, match="metrics_port"):
        config_from_options("resilient", {"metrics_port": bad})


def test_off_by_default_and_prometheus_client_stays_out_of_the_activities(
    tmp_path: Path,
) -> None:
    from chaosgenesys.agent.config import AgentConfig

    assert AgentConfig().metrics_port == 0
    code = (
        "import sys, chaosgenesys.agent.actions, chaosgenesys.agent.probes, "
        "chaosgenesys.controls.killswitch, chaosgenesys.agent.manager; "
        "print(json.dumps('prometheus_client' in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", "import json; " + code], capture_output=True,
                         text=True, check=True, cwd=ROOT)
    assert json.loads(out.stdout) is False
