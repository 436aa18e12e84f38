"""Agents that log in as their own users (``login: user``), as real desktops do: authorization
code + PKCE with the OAuth client's redirect URI, renewals by refresh token, and the platform's
per-user limits applying per agent (20 channels per user and client), all against the sandbox
over real sockets."""

from __future__ import annotations

import time
from typing import Any

import pytest

from tests.agent.helpers import HEARTBEAT, AgentsThread, agent_seed, wait_for
from tests.conftest import AGENT_1, QUEUE

REDIRECT = "http://localhost:8080/callback"
#: More agents than one client-credentials "user" may hold channels for (20).
CROWD = 25


def _crowd_seed(**client: Any) -> tuple[dict[str, Any], list[str]]:
    seed = agent_seed(wrapup_timeout=0)
    seed["clients"][0].update({"redirect_uris": [REDIRECT], **client})
    users = [f"0b6b3c5e-0000-4000-8000-{n:012d}" for n in range(100, 100 + CROWD)]
    seed["users"] += [{"id": u, "name": f"Crowd {u[-3:]}", "presence": "Available"}
                      for u in users]
    next(q for q in seed["queues"] if q["id"] == QUEUE)["members"] += users
    return seed, users


def test_25_agents_on_one_client_each_log_in_as_their_user_and_keep_their_channel() -> None:
    from chaosgenesys.sandbox import Sandbox

    seed, users = _crowd_seed()
    with Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox, AgentsThread(
        sandbox.url, users, login="user", redirect_uri=REDIRECT
    ) as agents:
        time.sleep(1.0)  # long enough for an eviction dance to show, were the limit shared
        for index in range(CROWD):
            stats = agents.stats(index)
            assert stats["login"] == "user"
            assert stats["ready"] and stats["connected"], stats
            assert stats["hard_reconnects"] == 0 and stats["disconnects"] == 0, stats
        assert sandbox.snapshot()["notifications"]["connected"] == CROWD
        # one authorization-code login per agent, no client-credentials token
        assert sandbox.requests(r"^/oauth/authorize") == CROWD
        assert sandbox.requests(r"^/oauth/token$") == CROWD
        # each token is its user's: the platform's own view of the caller
        tokens = [agent.tokens for agent in agents.manager.agents]
        for index in (0, CROWD - 1):
            me = _users_me(sandbox.url, tokens[index])
            assert me["id"] == users[index]


def test_client_credentials_agents_share_the_clients_20_channels() -> None:
    """The contrast: the same crowd on client-credentials tokens shares one "user" of the
    client, so the 21st channel evicts the oldest and agents are thrown off."""
    from chaosgenesys.sandbox import Sandbox

    seed, users = _crowd_seed()
    with Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox, AgentsThread(
        sandbox.url, users, wait_ready=False
    ) as agents:
        assert wait_for(lambda: sum(a.stats.ready for a in agents.manager.agents) >= 20, 10)
        time.sleep(1.5)  # the crowd keeps trying: channels of the client evict one another
        assert sandbox.snapshot()["notifications"]["connected"] <= 20
        stats = [agent.stats.to_dict() for agent in agents.manager.agents]
        assert sum(s["connected"] for s in stats) < CROWD
        assert any("channel gone (404)" in s["last_error"]
                   or s["last_disconnect_reason"] == "channel_gone" for s in stats), stats


def test_renewals_use_the_refresh_token_not_a_new_login() -> None:
    from chaosgenesys.sandbox import Sandbox

    seed, _ = _crowd_seed(token_lifetime=3)
    with Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox, AgentsThread(
        sandbox.url, [AGENT_1], login="user", redirect_uri=REDIRECT, token_refresh_margin=1.0
    ) as agents:
        assert wait_for(lambda: agents.stats()["token_refreshes"] >= 3, 8)
        assert sandbox.requests(r"^/oauth/authorize") == 1
        assert agents.stats()["unauthorized"] == 0
        # revoked access tokens: the refresh token still holds, the agent renews and carries on
        assert sandbox.revoke_tokens() >= 1
        assert wait_for(lambda: agents.stats()["unauthorized"] >= 1, 3)
        sandbox.set_presence(AGENT_1, "Meeting")
        assert wait_for(lambda: agents.agent.presence == "Meeting", 3)
        assert not agents.stats()["logged_out"]


def test_an_unknown_user_is_named_by_the_login() -> None:
    """The authorize request refuses a user the org does not have; the agent says which
    request answered what, and is not ready."""
    from chaosgenesys.sandbox import Sandbox

    seed, _ = _crowd_seed()
    with Sandbox(seed=seed, heartbeat_interval=HEARTBEAT) as sandbox, AgentsThread(
        sandbox.url, ["0b6b3c5e-0000-4000-8000-00000000dead"], login="user",
        redirect_uri=REDIRECT, wait_ready=False,
    ) as agents:
        assert wait_for(lambda: bool(agents.stats()["last_error"]), 5)
        stats = agents.stats()
        assert "GET /oauth/authorize answered 400" in stats["last_error"], stats
        assert not stats["ready"]


@pytest.mark.parametrize(
    ("options", "named"),
    [
        ({"login": "password"}, "login must be one of client_credentials, user"),
        ({"login": "user"}, "login user needs redirect_uri"),
        ({"login": "user", "redirect_uri": "localhost:8080/cb"}, "redirect_uri"),
    ],
)
def test_bad_login_options_are_named(options: dict[str, Any], named: str) -> None:
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent.actions import start_agents

    with pytest.raises(ActivityFailed, match=named):
        start_agents([AGENT_1], options=options)


def _users_me(url: str, keeper: Any) -> dict[str, Any]:
    """``GET /api/v2/users/me`` with the agent's current token (read on the agents' loop)."""
    import json
    import urllib.request

    token = keeper._token
    request = urllib.request.Request(
        f"{url}/api/v2/users/me", headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as answer:
        result: dict[str, Any] = json.loads(answer.read())
    return result
