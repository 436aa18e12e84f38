"""auth.probes and auth.actions against the real sandbox."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.auth import actions, probes
from chaosgenesys.platform import client_for
from chaosgenesys.users import probes as users
from tests.activities.activity_seed import AGENT_1, CLIENT_ID, CLIENT_SECRET, seed

Cfg = dict[str, Any]


def test_token_info_never_shows_the_token(configuration: Cfg, secrets: Cfg) -> None:
    info = probes.token_info(configuration, secrets)
    token = client_for(configuration, secrets).tokens.peek(
        client_for(configuration, secrets).settings
    )
    assert token is not None
    text = json.dumps(info)
    assert token.value not in text
    assert CLIENT_SECRET not in text
    assert info["oauth_client"]["id"] == CLIENT_ID
    assert info["organization"]["id"]
    assert isinstance(info["authorized_scope"], list)
    assert info["expires_at"].endswith("Z")
    assert 86000 < info["seconds_left"] <= 86400


def test_revoke_token_then_probes_still_work(configuration: Cfg, secrets: Cfg) -> None:
    client = client_for(configuration, secrets)
    probes.token_info(configuration, secrets)
    before = client.tokens.peek(client.settings)
    assert before is not None
    result = actions.revoke_token(configuration, secrets)
    assert result["revoked"] is True
    assert before.value not in json.dumps(result)
    assert client.tokens.peek(client.settings) is None
    # the next activity gets a new token
    assert users.presence_is(AGENT_1, "On Queue", configuration, secrets)
    after = client.tokens.peek(client.settings)
    assert after is not None and after.value != before.value


def test_revoked_token_is_really_revoked(configuration: Cfg, secrets: Cfg) -> None:
    import requests

    client = client_for(configuration, secrets)
    probes.token_info(configuration, secrets)
    token = client.tokens.peek(client.settings)
    assert token is not None
    actions.revoke_token(configuration, secrets)
    answer = requests.get(
        configuration["genesys_api_url"] + "/api/v2/tokens/me",
        headers={"Authorization": f"Bearer {token.value}"},
        timeout=5,
    )
    assert answer.status_code == 401


def test_wait_until_token_expiry_refuses_a_long_wait(configuration: Cfg, secrets: Cfg) -> None:
    with pytest.raises(ActivityFailed, match=r"more than max_wait=10"):
        actions.wait_until_token_expiry(60, 10, configuration, secrets)


def test_wait_until_token_expiry_returns_at_once_when_close(
    configuration: Cfg, secrets: Cfg
) -> None:
    started = time.monotonic()
    result = actions.wait_until_token_expiry(90000, 10, configuration, secrets)
    assert result["waited"] < 0.5
    assert time.monotonic() - started < 2
    assert 86000 < result["seconds_left"] <= 86400


def test_wait_until_token_expiry_waits() -> None:
    from chaosgenesys.sandbox import Sandbox

    clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token_lifetime": 4}]
    with Sandbox(seed=seed(clients=clients)) as sb:
        configuration = {"genesys_api_url": sb.url, "genesys_login_url": sb.url}
        secrets = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}
        result = actions.wait_until_token_expiry(3, 10, configuration, secrets)
    assert 0.5 <= result["waited"] <= 1.5
    assert 2.5 <= result["seconds_left"] <= 3.1


@pytest.mark.parametrize(
    ("seconds_before", "max_wait", "message"),
    [
        (-1, 10, "seconds_before must be at least 0, got -1"),
        ("60", 10, "seconds_before must be a number"),
        (60, -5, "max_wait must be at least 0"),
        (60, 10**6, "max_wait must be at most 172800"),
    ],
)
def test_wait_until_token_expiry_bad_arguments(
    seconds_before: Any, max_wait: Any, message: str
) -> None:
    with pytest.raises(ActivityFailed, match=message):
        actions.wait_until_token_expiry(seconds_before, max_wait)
