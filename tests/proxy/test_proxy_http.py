"""HTTP faults through a real mitmproxy to a real sandbox, with real clients."""

from __future__ import annotations

import asyncio
import errno
import socket
import threading
import time
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.proxy import actions, probes
from tests.conftest import AGENT_1, CLIENT_ID, CLIENT_SECRET
from tests.proxy.conftest import direct_session, token_for


def _proxies(proxy: dict[str, Any]) -> dict[str, str]:
    return {"http": proxy["proxy_url"], "https": proxy["proxy_url"]}


def _timed_token(sandbox: Any, proxy: dict[str, Any]) -> float:
    session = direct_session()
    start = time.monotonic()
    response = session.post(
        f"{sandbox.url}/oauth/token",
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
        proxies=_proxies(proxy),
        timeout=10,
    )
    assert response.status_code == 200, response.text
    return time.monotonic() - start


def test_delay_is_injected_and_measured(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    name = clean_rules["name"]
    baseline = min(_timed_token(proxy_sandbox, clean_rules) for _ in range(3))
    rule = actions.delay_requests(r"^/oauth/token$", 400, method="POST", name=name)
    assert rule["id"] and rule["action"] == "delay"
    delayed = _timed_token(proxy_sandbox, clean_rules)
    # The delay holds the whole request back: it can take no less. Over the undelayed request
    # it adds no more than 150 ms. (Not "delayed - baseline >= 0.4": on a loaded machine the
    # baseline's best of three can be slower than the undelayed part of this one.)
    assert delayed >= 0.4 - 0.002, (baseline, delayed)
    assert delayed - baseline < 0.4 + 0.15, (baseline, delayed)
    # A GET elsewhere is not delayed.
    start = time.monotonic()
    direct_session().get(
        f"{proxy_sandbox.url}/api/v2/users/{AGENT_1}",
        headers={"Authorization": f"Bearer {token_for(proxy_sandbox.url)}"},
        proxies=_proxies(clean_rules),
        timeout=10,
    )
    assert time.monotonic() - start < 0.3
    stats = probes.proxy_stats(name)
    (counted,) = stats["rules"]
    assert counted["stats"]["applied"] == 1
    assert 400 <= counted["stats"]["injected_delay_ms"] < 480
    assert stats["latency_ms"]["max"] >= 400


def test_aiohttp_client_sees_the_delay(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    import aiohttp

    actions.delay_requests("/presences/purecloud", 300, name=clean_rules["name"])
    token = token_for(proxy_sandbox.url)

    async def read() -> tuple[int, float]:
        async with aiohttp.ClientSession(trust_env=False) as session:
            start = time.monotonic()
            async with session.get(
                f"{proxy_sandbox.url}/api/v2/users/{AGENT_1}/presences/purecloud",
                headers={"Authorization": f"Bearer {token}"},
                proxy=clean_rules["proxy_url"],
            ) as response:
                await response.read()
                return response.status, time.monotonic() - start

    status, elapsed = asyncio.run(read())
    assert status == 200
    assert 0.3 <= elapsed < 0.5


def test_fail_answers_a_genesys_error_body(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    name = clean_rules["name"]
    actions.fail_requests("/presences/purecloud$", 503, method="PATCH", name=name, retry_after=7)
    actions.fail_requests("/routingstatus$", 429, name=name, count=1)
    token = token_for(proxy_sandbox.url)
    session = direct_session()
    headers = {"Authorization": f"Bearer {token}"}
    url = f"{proxy_sandbox.url}/api/v2/users/{AGENT_1}"
    patched = session.patch(
        f"{url}/presences/purecloud",
        json={"presenceDefinition": {"id": "e08eaf1b-ee47-4fa9-a231-1200e284798f"}},
        headers=headers,
        proxies=_proxies(clean_rules),
        timeout=10,
    )
    assert patched.status_code == 503
    assert patched.headers["Retry-After"] == "7"
    body = patched.json()
    assert body["code"] == "service.unavailable" and body["status"] == 503
    assert patched.headers["ININ-Correlation-Id"] == body["contextId"]
    # GET on the same path is not matched (method filter).
    read = session.get(
        f"{url}/presences/purecloud", headers=headers, proxies=_proxies(clean_rules), timeout=10
    )
    assert read.status_code == 200
    limited = session.get(
        f"{url}/routingstatus", headers=headers, proxies=_proxies(clean_rules), timeout=10
    )
    assert limited.status_code == 429 and limited.json()["code"].startswith("too.many.requests")
    assert "Retry-After" in limited.headers
    again = session.get(
        f"{url}/routingstatus", headers=headers, proxies=_proxies(clean_rules), timeout=10
    )
    assert again.status_code == 200  # count=1 used up


def test_reset_is_a_tcp_rst(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    actions.reset_requests("^/api/v2/conversations", name=clean_rules["name"])
    host, port = "127.0.0.1", clean_rules["port"]
    with socket.create_connection((host, port), timeout=5) as sock:
        sock.sendall(
            f"GET {proxy_sandbox.url}/api/v2/conversations HTTP/1.1\r\n"
            f"Host: {proxy_sandbox.url.split('//')[1]}\r\n\r\n".encode()
        )
        with pytest.raises(ConnectionResetError) as caught:
            data = sock.recv(1024)
            # A FIN would show as b"" here; only a RST raises ECONNRESET.
            raise AssertionError(f"connection ended without a reset: {data!r}")
        assert caught.value.errno == errno.ECONNRESET
    # And as a real client sees it.
    import requests

    with pytest.raises(requests.exceptions.ConnectionError) as seen:
        direct_session().get(
            f"{proxy_sandbox.url}/api/v2/conversations",
            proxies=_proxies(clean_rules),
            timeout=5,
        )
    assert "reset" in str(seen.value).lower()
    assert probes.proxy_stats(clean_rules["name"])["resets"] == 2


def test_rules_change_while_traffic_flows(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    name = clean_rules["name"]
    url = f"{proxy_sandbox.url}/api/v2/users/{AGENT_1}"
    headers = {"Authorization": f"Bearer {token_for(proxy_sandbox.url)}"}
    results: list[tuple[float, float, int]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        session = direct_session()
        while not stop.is_set():
            start = time.monotonic()
            try:
                response = session.get(
                    url, headers=headers, proxies=_proxies(clean_rules), timeout=10
                )
            except Exception as error:  # pragma: no cover - reported below
                errors.append(error)
                return
            results.append((start, time.monotonic(), response.status_code))

    threads = [threading.Thread(target=traffic) for _ in range(3)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(0.3)
        actions.delay_requests(r"^/api/v2/users/", 200, name=name)
        added = time.monotonic()
        time.sleep(0.8)
        actions.clear_rules(name)
        cleared = time.monotonic()
        time.sleep(0.3)
    finally:
        stop.set()
        for thread in threads:
            thread.join(10)
    assert errors == []
    assert all(status == 200 for _, _, status in results)
    before = [end - start for start, end, _ in results if end < added]
    during = [end - start for start, end, _ in results if start > added + 0.001 and end < cleared]
    after = [end - start for start, end, _ in results if start > cleared + 0.25]
    assert before and during and after
    assert max(before) < 0.15
    assert all(elapsed >= 0.2 for elapsed in during), during
    assert max(after) < 0.15


def test_many_rules_first_match_wins(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    """100 path rules, a rule checked alone ((?i)), one removed: each request meets its rule."""
    name = clean_rules["name"]
    added = actions.add_rules(
        [{"action": "fail", "status": 500 + i % 4, "path": f"^/never-{i}/"} for i in range(100)]
        + [{"action": "fail", "status": 418, "path": "(?i)/ROUTINGSTATUS$"}]
        + [{"action": "fail", "status": 409, "path": "/routingstatus$"}],
        name=name,
    )
    session = direct_session()
    headers = {"Authorization": f"Bearer {token_for(proxy_sandbox.url)}"}

    def status(path: str) -> int:
        url = f"{proxy_sandbox.url}{path}"
        answer = session.get(url, headers=headers, proxies=_proxies(clean_rules), timeout=10)
        return answer.status_code

    assert status("/never-57/x") == 500 + 57 % 4
    assert status(f"/api/v2/users/{AGENT_1}/routingstatus") == 418  # before the 409 rule
    assert status(f"/api/v2/users/{AGENT_1}") == 200
    actions.clear_rules(name, rule_id=added["added"][100]["id"])
    assert status(f"/api/v2/users/{AGENT_1}/routingstatus") == 409
    assert status("/never-3/") == 503


def test_clear_one_rule_and_list(clean_rules: dict[str, Any]) -> None:
    name = clean_rules["name"]
    first = actions.delay_requests("/a", 10, name=name)
    second = actions.fail_requests("/b", 500, name=name)
    assert [r["id"] for r in probes.list_rules(name)] == [first["id"], second["id"]]
    cleared = actions.clear_rules(name, rule_id=first["id"])
    assert [r["id"] for r in cleared["cleared"]] == [first["id"]]
    assert [r["id"] for r in probes.list_rules(name)] == [second["id"]]
    with pytest.raises(ActivityFailed, match="no rule with id 'r999'"):
        actions.clear_rules(name, rule_id="r999")


def test_fiddler_rules_are_imported(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    answer = actions.load_fiddler_rules(
        [
            {"Condition": r"PathRegex: .*\/oauth.*", "Response": {"Delay": 300, "Status": 200}},
            {"Match": "regex:.*/routing/queues", "Action": "*503", "Enabled": True},
            {"Match": "regex:.*/never", "Action": "*reset", "Enabled": False},
        ],
        name=clean_rules["name"],
    )
    assert [r["action"] for r in answer["added"]] == ["delay", "fail"]
    assert _timed_token(proxy_sandbox, clean_rules) >= 0.3
    response = direct_session().get(
        f"{proxy_sandbox.url}/api/v2/routing/queues", proxies=_proxies(clean_rules), timeout=5
    )
    assert response.status_code == 503


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda n: actions.delay_requests("([", 100, name=n), r"path_pattern .*'\(\['"),
        (lambda n: actions.delay_requests("/x", -5, name=n), r"delay_ms .*-5"),
        (lambda n: actions.add_rules([{"action": "explode"}], name=n), "action .*'explode'"),
        (lambda n: actions.fail_requests("/x", 99, name=n), "status .*99"),
        (lambda n: actions.close_websockets("/x", 1006, name=n), "code .*1006"),
        (lambda n: actions.drop_websocket_messages("/x", "sideways", name=n), "direction"),
        (lambda n: actions.delay_requests("/x", 10, name="nobody"), "no proxy named 'nobody'"),
        (
            lambda n: actions.load_fiddler_rules(
                [{"Condition": "Bogus: x", "Response": "*503"}], name=n
            ),
            "unknown condition",
        ),
    ],
)
def test_bad_rules_are_refused_by_name(
    clean_rules: dict[str, Any], call: Any, message: str
) -> None:
    with pytest.raises(ActivityFailed, match=message):
        call(clean_rules["name"])
    assert probes.list_rules(clean_rules["name"]) == []


def test_bad_start_arguments(proxy_ca_dir: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ActivityFailed, match=r"mode must be .*'sideways'"):
        actions.start_proxy(name="bad", port=0, mode="sideways")
    with pytest.raises(ActivityFailed, match=r"port must be .*70000"):
        actions.start_proxy(name="bad", port=70000)
    with pytest.raises(ActivityFailed, match="duration must be greater than 0"):
        actions.start_proxy(name="bad", port=0, duration=-1)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ActivityFailed, match=f"port {port} .*already in use"):
            actions.start_proxy(name="bad", port=port, confdir=str(proxy_ca_dir))
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mitmproxy" else real(n, *a)
    )
    with pytest.raises(ActivityFailed, match=r"mitmproxy is not installed.*pip install"):
        actions.start_proxy(name="bad", port=0)
    from chaosgenesys.faults import registry

    assert [f for f in registry.active("proxy") if f.spec["name"] == "bad"] == []


def test_second_start_with_the_same_name_is_refused(clean_rules: dict[str, Any]) -> None:
    with pytest.raises(ActivityFailed, match="already running"):
        actions.start_proxy(name=clean_rules["name"], port=0)


def test_reverse_mode_in_front_of_the_sandbox(proxy_sandbox: Any, proxy_ca_dir: Any) -> None:
    from chaosgenesys.platform import client as platform_client
    from chaosgenesys.users import probes as user_probes

    info = actions.start_proxy(
        name="reverse", port=0, mode=f"reverse:{proxy_sandbox.url}", confdir=str(proxy_ca_dir)
    )
    try:
        configuration = {
            "genesys_api_url": info["proxy_url"],
            "genesys_login_url": info["proxy_url"],
            "genesys_timeout": 5,
        }
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        actions.delay_requests("/presences/purecloud", 250, name="reverse")
        start = time.monotonic()
        presence = user_probes.get_presence(AGENT_1, configuration=configuration, secrets=secrets)
        assert time.monotonic() - start >= 0.25
        assert presence
        stats = probes.proxy_stats("reverse")
        assert stats["rules"][0]["stats"]["applied"] == 1
        assert stats["requests"] >= 2  # the token and the read went through the proxy
    finally:
        platform_client.clear_clients()
        first = actions.stop_proxy("reverse")
        second = actions.stop_proxy("reverse")
    assert first["stopped"] is True and first["stats"]["requests"] >= 2
    assert second == {"name": "reverse", "stopped": False, "was_running": False}
