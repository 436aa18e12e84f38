"""GenesysClient against the real sandbox over HTTP: tokens, 401, retries, timeouts, errors.

Effects are asserted at the sandbox (how many requests reached it), not on our own objects.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.clock import ManualClock
from chaosgenesys.platform import (
    GenesysApiError,
    GenesysClient,
    client_for,
    http,
    metrics,
    register_default_credentials,
    settings_from,
    tokens,
)
from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse

AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"
CLIENT_SECRET = "chaos-secret-value-never-printed"
USER_PATH = f"/api/v2/users/{AGENT_1}"
TOKEN_RE = r"^/oauth/token$"
USER_RE = rf"^/api/v2/users/{AGENT_1}$"


def hits(sandbox: Any, path_regex: str, method: str | None = None) -> int:
    """How many requests matching ``path_regex`` (and ``method``) reached the sandbox."""
    count: int = sandbox.requests(path_regex=path_regex, method=method)
    return count


def token_requests(sandbox: Any) -> int:
    return hits(sandbox, TOKEN_RE, "POST")


def make_client(configuration: dict[str, Any], secrets: dict[str, str], **extra: Any) -> Any:
    return client_for({**configuration, **extra}, secrets)


def test_token_is_cached_across_calls(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    for _ in range(5):
        assert client.get(USER_PATH)["id"] == AGENT_1
    assert token_requests(sandbox) == 1
    assert hits(sandbox, USER_RE, "GET") == 5
    # another client for the same login URL and client id shares the token
    other = GenesysClient(settings_from({**configuration, "genesys_timeout": 3}, secrets))
    other.get(USER_PATH)
    assert token_requests(sandbox) == 1
    assert client.access_token_expires_at > time.time() + 3600


def test_client_for_reuses_client_and_session(
    configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    first = client_for(configuration, secrets)
    assert client_for(dict(configuration), {"genesys": dict(secrets)}) is first
    assert client_for({**configuration, "genesys_timeout": 2}, secrets) is not first
    assert http.session_for(True) is http.session_for(True)


def test_proactive_refresh_inside_the_margin(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    sandbox.set_token_lifetime(secrets["client_id"], 3)
    # the cache reads a clock the test moves: no sleeping out the lifetime
    clock = ManualClock()
    settings = make_client(configuration, secrets, genesys_token_refresh_margin=1).settings
    client = GenesysClient(settings, tokens.TokenCache(clock))
    client.get(USER_PATH)
    first = client.tokens.peek(client.settings)
    assert first is not None and first.lifetime <= 3.5
    clock.advance(0.5)
    client.get(USER_PATH)
    assert token_requests(sandbox) == 1  # still outside the margin
    clock.advance(max(0.0, first.expires_at - 1 - clock.time()) + 0.2)  # now inside the margin
    client.get(USER_PATH)
    assert token_requests(sandbox) == 2
    # refreshed before expiry: no call was rejected and retried
    assert hits(sandbox, USER_RE) == 3


def test_single_flight_refresh_with_slow_token_endpoint(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    sandbox.inject_fault(TOKEN_RE, delay_ms=300)
    client = client_for(configuration, secrets)
    barrier = threading.Barrier(10)
    results: list[Any] = []
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            results.append(client.get(USER_PATH))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(10)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert len(results) == 10
    assert token_requests(sandbox) == 1
    assert time.monotonic() - started >= 0.3


def test_401_mid_run_refreshes_once_and_retries(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    client.get(USER_PATH)
    sandbox.revoke_tokens()
    assert client.get(USER_PATH)["id"] == AGENT_1
    assert token_requests(sandbox) == 2
    assert hits(sandbox, USER_RE) == 3  # 200, then 401 and the retry


def test_401_in_ten_threads_causes_one_refresh(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    client.get(USER_PATH)
    sandbox.expire_tokens()
    sandbox.inject_fault(TOKEN_RE, delay_ms=200)
    barrier = threading.Barrier(10)
    errors: list[BaseException] = []

    def call() -> None:
        barrier.wait()
        try:
            client.get(USER_PATH)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert token_requests(sandbox) == 2


def test_persistent_401_raises_with_status_and_code(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    sandbox.inject_fault(USER_RE, status=401)
    with pytest.raises(GenesysApiError) as info:
        client.get(USER_PATH)
    assert info.value.status == 401
    assert info.value.code == "bad.credentials"
    assert "after a token refresh" in str(info.value)
    assert hits(sandbox, USER_RE) == 2  # one call, one retry
    assert token_requests(sandbox) == 2  # the first token, one refresh


def test_429_with_retry_after_is_retried(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    client.get(USER_PATH)  # token first, so the timing below is the retry's
    sandbox.inject_fault(USER_RE, status=429, count=1, retry_after=1)
    started = time.monotonic()
    assert client.get(USER_PATH)["id"] == AGENT_1
    assert time.monotonic() - started >= 1.0
    assert hits(sandbox, USER_RE) == 3  # warm-up, 429, retry
    last = metrics.recorder().records()[-1]
    assert (last.status, last.retries) == (200, 1)


def test_retry_after_over_the_budget_fails_fast(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = make_client(configuration, secrets, genesys_max_retry_wait=2)
    client.get(USER_PATH)
    sandbox.inject_fault(USER_RE, status=429, retry_after=30)
    started = time.monotonic()
    with pytest.raises(GenesysApiError) as info:
        client.get(USER_PATH)
    assert time.monotonic() - started < 1.0
    assert info.value.status == 429
    assert info.value.retry_after == 30
    assert "exceeds the remaining retry budget" in str(info.value)
    assert "genesys_max_retry_wait" in str(info.value)
    assert hits(sandbox, USER_RE) == 2  # the warm-up call and the one refused


def test_503_twice_then_success(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = make_client(configuration, secrets, genesys_retry_backoff=0.05)
    client.get(USER_PATH)
    sandbox.inject_fault(USER_RE, status=503, count=2, retry_after=0)
    assert client.get(USER_PATH)["id"] == AGENT_1
    assert hits(sandbox, USER_RE) == 4  # warm-up, 503, 503, 200
    last = metrics.recorder().records()[-1]
    assert (last.status, last.retries) == (200, 2)


def test_retries_are_bounded_by_max_retries(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = make_client(configuration, secrets, genesys_retry_backoff=0.01, genesys_max_retries=3)
    client.get(USER_PATH)
    sandbox.inject_fault(USER_RE, status=504, retry_after=0)
    with pytest.raises(GenesysApiError) as info:
        client.get(USER_PATH)
    assert info.value.status == 504
    assert "gave up after 3 retries" in str(info.value)
    assert hits(sandbox, USER_RE) == 1 + 4


def test_timeout_raises_activity_failed(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = make_client(configuration, secrets, genesys_timeout=0.5)
    client.get(USER_PATH)
    sandbox.inject_fault(USER_RE, delay_ms=3000)
    started = time.monotonic()
    with pytest.raises(ActivityFailed) as info:
        client.get(USER_PATH, params={"expand": "presence"})
    assert time.monotonic() - started < 2.5
    text = str(info.value)
    assert "timeout" in text
    assert f"GET {sandbox.url}{USER_PATH}" in text
    assert "expand" not in text  # no query string in messages
    assert metrics.recorder().records()[-1].status is None


def test_connection_refused_names_method_and_url(secrets: dict[str, str]) -> None:
    client = client_for({"genesys_api_url": "http://127.0.0.1:9", "genesys_timeout": 2}, secrets)
    with pytest.raises(ActivityFailed) as info:
        client.get(USER_PATH)
    assert "POST http://127.0.0.1:9/oauth/token failed: connection error" in str(info.value)


def test_404_message_has_status_code_message_and_correlation_id(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    missing = str(uuid.uuid4())
    with pytest.raises(GenesysApiError) as info:
        client.get(f"/api/v2/users/{missing}")
    err = info.value
    assert err.status == 404 and err.code == "not.found"
    assert err.message and err.correlation_id
    text = str(err)
    assert text.startswith(f"GET /api/v2/users/{missing} failed: 404 not.found: {err.message}")
    assert f"(correlation id {err.correlation_id})" in text


def test_expected_statuses_head_and_empty_bodies(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    assert client.request("HEAD", "/api/v2/tokens/me") is None
    missing = str(uuid.uuid4())
    body = client.get(f"/api/v2/users/{missing}", expected={200, 404})
    assert body["code"] == "not.found"
    info = client.token_info()
    assert isinstance(info, dict)


def test_bad_client_secret_is_reported_without_the_secret(
    sandbox: Any, configuration: dict[str, Any]
) -> None:
    wrong = "wrong-secret-value-xyz"
    client = client_for(configuration, {"client_id": "chaos-client", "client_secret": wrong})
    with pytest.raises(GenesysApiError) as info:
        client.get(USER_PATH)
    assert info.value.status in (400, 401)
    assert info.value.code == "invalid_client"
    assert "POST /oauth/token failed" in str(info.value)
    assert wrong not in str(info.value) and wrong not in repr(info.value)


def test_default_credentials_for_the_sandbox(sandbox: Any, configuration: dict[str, Any]) -> None:
    register_default_credentials(sandbox.url, sandbox.client_id, sandbox.client_secret)
    assert client_for(configuration, None).get(USER_PATH)["id"] == AGENT_1


def test_metrics_record_calls_and_rate_limit_headers(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    for _ in range(3):
        client.get(USER_PATH)
    snap = metrics.snapshot()
    paths = [r.path for r in metrics.recorder().records()]
    assert paths.count("/api/v2/users/{id}") == 3
    assert "/oauth/token" in paths
    assert snap["status_counts"]["200"] == 4
    assert snap["p99_ms"] is not None and snap["p99_ms"] > 0
    assert snap["rate_limit"].get("inin-ratelimit-allowed")


def test_no_secret_or_token_in_errors_or_logs(
    sandbox: Any,
    configuration: dict[str, Any],
    secrets: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = make_client(configuration, secrets, genesys_retry_backoff=0.01)
    texts: list[str] = []
    client.get(USER_PATH)
    seen = {client.tokens.peek(client.settings)}
    sandbox.revoke_tokens()
    client.get(USER_PATH)
    seen.add(client.tokens.peek(client.settings))
    sandbox.inject_fault(USER_RE, status=503, count=1)
    client.get(USER_PATH)
    for fault in ({"status": 401}, {"status": 429, "retry_after": 60}, {"delay_ms": 8000}):
        sandbox.clear_faults()
        sandbox.inject_fault(USER_RE, **fault)
        with pytest.raises(ActivityFailed) as info:
            make_client(configuration, secrets, genesys_timeout=0.5).get(USER_PATH)
        texts += [str(info.value), repr(info.value)]
        seen.add(client.tokens.peek(client.settings))
    texts += [repr(client), repr(client.settings), repr(client.tokens.peek(client.settings))]
    values = {t.value for t in seen if t is not None}
    assert len(values) >= 2
    for text in [*texts, caplog.text]:
        assert CLIENT_SECRET not in text
        for value in values:
            assert value not in text
    assert "retrying" in caplog.text  # retries are logged ...
    assert any(r.name == "chaostoolkit" for r in caplog.records)  # ... on the chaostoolkit logger


def test_token_cache_counts_refreshes(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    client = client_for(configuration, secrets)
    client.get(USER_PATH)
    old = client.tokens.peek(client.settings)
    new = client.force_refresh()
    assert old is not None and new.value != old.value
    # a stale force_refresh after someone else refreshed does nothing
    assert tokens.token_cache().force_refresh(client.settings, old) is new
    assert tokens.token_cache().refresh_count(client.settings) == 2
    assert token_requests(sandbox) == 2


def test_a_wrong_secret_is_refused_although_the_right_one_has_a_cached_token(
    sandbox: Any, configuration: dict[str, Any], secrets: dict[str, str]
) -> None:
    """The cache is keyed on the secret too: a wrong one goes to the login server and fails."""
    right = client_for(configuration, secrets)
    assert right.get(USER_PATH)["id"] == AGENT_1
    assert token_requests(sandbox) == 1
    wrong_secret = "not-" + secrets["client_secret"]
    wrong = GenesysClient(
        settings_from(configuration, {**secrets, "client_secret": wrong_secret})
    )
    with pytest.raises(GenesysApiError) as info:
        wrong.get(USER_PATH)
    assert info.value.status in (400, 401)
    assert info.value.code == "invalid_client"
    assert wrong_secret not in str(info.value) and wrong_secret not in repr(info.value)
    assert token_requests(sandbox) == 2  # the wrong secret reached the login server
    assert hits(sandbox, USER_RE, "GET") == 1  # and was never let through to the API
    # the right secret still has its token: no new token request
    assert right.get(USER_PATH)["id"] == AGENT_1
    assert token_requests(sandbox) == 2
