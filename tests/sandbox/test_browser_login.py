"""Browser logins against a real sandbox: the implicit grant, authorization code + PKCE, refresh
tokens, and ``GET /api/v2/users/me`` with the user token they give."""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests

from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.seed import SeedError
from tests.sandbox.sandbox_helpers import (
    AGENT_1,
    AGENT_2,
    CLIENT_ID,
    CLIENT_SECRET,
    QUEUE,
    make_seed,
)

REDIRECT = "http://localhost:8080/callback"
EMAIL = "agent.one@example.com"


def login_seed() -> dict[str, Any]:
    seed = make_seed()
    seed["clients"][0]["redirect_uris"] = [REDIRECT]
    seed["clients"].append({"client_id": "no-browser", "client_secret": "x" * 20})
    seed["users"][0]["email"] = EMAIL
    return seed


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=login_seed(), rate_limit_per_minute=0) as sandbox:
        yield sandbox


def authorize(sb: Sandbox, **params: str) -> requests.Response:
    query = {"client_id": CLIENT_ID, "redirect_uri": REDIRECT, **params}
    return requests.get(
        f"{sb.url}/oauth/authorize", params=query, allow_redirects=False, timeout=5
    )


def pkce_pair() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def code_for(sb: Sandbox, challenge: str, hint: str = AGENT_1) -> str:
    response = authorize(
        sb, response_type="code", login_hint=hint, state="s1",
        code_challenge=challenge, code_challenge_method="S256",
    )
    assert response.status_code == 302, response.text
    location = urlsplit(response.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT
    query = parse_qs(location.query)
    assert query["state"] == ["s1"]
    return query["code"][0]


def token_request(sb: Sandbox, **form: str) -> requests.Response:
    return requests.post(f"{sb.url}/oauth/token", data=form, timeout=5)


def me(sb: Sandbox, token: str) -> requests.Response:
    return requests.get(
        f"{sb.url}/api/v2/users/me", params={"expand": "presence"},
        headers={"Authorization": f"Bearer {token}"}, timeout=5,
    )


def test_implicit_grant_with_login_hint_redirects_with_a_user_token(sb: Sandbox) -> None:
    response = authorize(sb, response_type="token", login_hint=AGENT_1, state="xyz")
    assert response.status_code == 302
    location = urlsplit(response.headers["Location"])
    assert location.query == ""
    fragment = parse_qs(location.fragment)
    assert fragment["token_type"] == ["bearer"]
    assert fragment["state"] == ["xyz"]
    assert int(fragment["expires_in"][0]) == 86400
    user = me(sb, fragment["access_token"][0])
    assert user.status_code == 200, user.text
    body = user.json()
    assert body["id"] == AGENT_1
    assert body["chat"]["jabberId"].startswith(f"{AGENT_1}@")
    assert body["presence"]["presenceDefinition"]["systemPresence"] == "On Queue"


def test_login_hint_may_be_the_users_email_in_any_case(sb: Sandbox) -> None:
    response = authorize(sb, response_type="token", login_hint=EMAIL.upper())
    assert response.status_code == 302
    token = parse_qs(urlsplit(response.headers["Location"]).fragment)["access_token"][0]
    assert me(sb, token).json()["id"] == AGENT_1


def test_code_with_pkce_gives_user_and_refresh_tokens(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(sb, challenge, hint=AGENT_2)
    response = token_request(
        sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
        client_id=CLIENT_ID, code_verifier=verifier,
    )
    assert response.status_code == 200, response.text
    tokens = response.json()
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 86400
    assert me(sb, tokens["access_token"]).json()["id"] == AGENT_2
    # the code is single use
    again = token_request(
        sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
        client_id=CLIENT_ID, code_verifier=verifier,
    )
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"
    refreshed = token_request(
        sb, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
        client_id=CLIENT_ID,
    )
    assert refreshed.status_code == 200, refreshed.text
    assert me(sb, refreshed.json()["access_token"]).json()["id"] == AGENT_2
    spent = token_request(
        sb, grant_type="refresh_token", refresh_token=tokens["refresh_token"],
        client_id=CLIENT_ID,
    )
    assert spent.status_code == 400 and spent.json()["error"] == "invalid_grant"


def test_pkce_verifier_mismatch_is_refused(sb: Sandbox) -> None:
    _verifier, challenge = pkce_pair()
    code = code_for(sb, challenge)
    other, _ = pkce_pair()
    response = token_request(
        sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
        client_id=CLIENT_ID, code_verifier=other,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"
    assert "access_token" not in response.text


def test_token_redirect_uri_must_be_the_authorize_requests(sb: Sandbox) -> None:
    verifier, challenge = pkce_pair()
    code = code_for(sb, challenge)
    response = token_request(
        sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT + "/other",
        client_id=CLIENT_ID, code_verifier=verifier,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_code_without_pkce_needs_the_client_secret(sb: Sandbox) -> None:
    response = authorize(sb, response_type="code", login_hint=AGENT_1)
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    public = token_request(
        sb, grant_type="authorization_code", code=code, redirect_uri=REDIRECT,
        client_id=CLIENT_ID,
    )
    assert public.status_code == 401 and public.json()["error"] == "invalid_client"
    response = authorize(sb, response_type="code", login_hint=AGENT_1)
    code = parse_qs(urlsplit(response.headers["Location"]).query)["code"][0]
    confidential = requests.post(
        f"{sb.url}/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=5,
        data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
    )
    assert confidential.status_code == 200, confidential.text
    assert me(sb, confidential.json()["access_token"]).json()["id"] == AGENT_1


def test_unregistered_redirect_uri_is_refused_without_redirecting(sb: Sandbox) -> None:
    response = authorize(
        sb, response_type="token", login_hint=AGENT_1, redirect_uri="http://evil.invalid/cb"
    )
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "redirect_uri" in response.json()["error_description"]


def test_client_without_redirect_uris_cannot_log_users_in(sb: Sandbox) -> None:
    response = authorize(sb, response_type="token", login_hint=AGENT_1, client_id="no-browser")
    assert response.status_code == 400
    assert response.json()["error"] == "unauthorized_client"


def test_unknown_login_hint_is_refused_naming_it(sb: Sandbox) -> None:
    response = authorize(sb, response_type="token", login_hint="nobody@example.com")
    assert response.status_code == 400
    assert "Location" not in response.headers
    assert "nobody@example.com" in response.json()["error_description"]


def test_pkce_method_plain_is_refused(sb: Sandbox) -> None:
    response = authorize(
        sb, response_type="code", login_hint=AGENT_1, code_challenge="a" * 43,
        code_challenge_method="plain",
    )
    assert response.status_code == 400
    assert "S256" in response.json()["error_description"]


def test_without_login_hint_a_login_form_is_served_and_posting_it_logs_in(sb: Sandbox) -> None:
    page = authorize(sb, response_type="token", state="f")
    assert page.status_code == 200
    assert page.headers["Content-Type"].startswith("text/html")
    assert 'name="login_hint"' in page.text and REDIRECT in page.text
    posted = requests.post(
        f"{sb.url}/oauth/authorize", allow_redirects=False, timeout=5,
        data={"response_type": "token", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
              "state": "f", "login_hint": AGENT_2},
    )
    assert posted.status_code == 302
    fragment = parse_qs(urlsplit(posted.headers["Location"]).fragment)
    assert fragment["state"] == ["f"]
    assert me(sb, fragment["access_token"][0]).json()["id"] == AGENT_2


def test_users_me_refuses_client_credentials(sb: Sandbox) -> None:
    token = requests.post(
        f"{sb.url}/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET), timeout=5,
        data={"grant_type": "client_credentials"},
    ).json()["access_token"]
    response = me(sb, token)
    assert response.status_code == 400


def test_seed_redirect_uris_must_be_http_urls() -> None:
    seed = make_seed()
    seed["clients"][0]["redirect_uris"] = "http://localhost/cb"
    with pytest.raises(SeedError, match=r"clients\[0\]\.redirect_uris"):
        Sandbox(seed=seed)
    seed["clients"][0]["redirect_uris"] = ["javascript:alert(1)"]
    with pytest.raises(SeedError, match=r"clients\[0\]\.redirect_uris"):
        Sandbox(seed=seed)


def test_unreadable_login_form_is_a_400(sb: Sandbox) -> None:
    response = requests.post(
        f"{sb.url}/oauth/authorize", data=b"login_hint=\xff\xfe", timeout=5,
        headers={"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
    )
    assert response.status_code == 400, response.text


def test_a_users_own_conversations_are_its_active_and_wrapping_up_calls() -> None:
    """``GET /api/v2/conversations`` with a user token: what a desktop reads after subscribing,
    so a call routed before its subscription is still answered."""
    with Sandbox(seed=login_seed(), rate_limit_per_minute=0) as own:
        tokens = {}
        for user in (AGENT_1, AGENT_2):
            response = authorize(own, response_type="token", login_hint=user)
            tokens[user] = parse_qs(urlsplit(response.headers["Location"]).fragment)[
                "access_token"][0]

        def mine(user: str, path: str = "/api/v2/conversations") -> list[dict[str, Any]]:
            response = requests.get(f"{own.url}{path}", timeout=5,
                                    headers={"Authorization": f"Bearer {tokens[user]}"})
            assert response.status_code == 200, response.text
            entities: list[dict[str, Any]] = response.json()["entities"]
            return entities

        assert mine(AGENT_1) == []
        call = own.route_call(QUEUE, user_id=AGENT_1)
        (listed,) = mine(AGENT_1)
        agent = [p for p in listed["participants"] if p["purpose"] == "agent"][-1]
        assert listed["id"] == call and agent["userId"] == AGENT_1
        assert agent["calls"][0]["state"] == "alerting"
        (as_call,) = mine(AGENT_1, "/api/v2/conversations/calls")
        assert [p["state"] for p in as_call["participants"] if p["purpose"] == "agent"] == [
            "alerting"]
        assert mine(AGENT_2) == []

        answered = requests.patch(
            f"{own.url}/api/v2/conversations/calls/{call}/participants/{agent['id']}",
            json={"state": "connected"}, timeout=5,
            headers={"Authorization": f"Bearer {tokens[AGENT_1]}"})
        assert answered.status_code in (200, 202), answered.text
        own.disconnect_call(call)  # after-call work is pending: still the agent's
        (wrapping,) = mine(AGENT_1)
        agent = [p for p in wrapping["participants"] if p["purpose"] == "agent"][-1]
        assert agent["calls"][0]["afterCallWork"]["state"] == "pending", agent


def test_an_authorization_code_expires_after_its_lifetime_on_the_sandbox_clock() -> None:
    from chaosgenesys.clock import ManualClock
    from chaosgenesys.sandbox.browser_login import CODE_LIFETIME

    with Sandbox(seed=login_seed(), rate_limit_per_minute=0, clock=ManualClock()) as own:
        verifier, challenge = pkce_pair()
        fresh = code_for(own, challenge)
        own.advance(CODE_LIFETIME - 1)  # one second left: still good
        response = token_request(
            own, grant_type="authorization_code", code=fresh, redirect_uri=REDIRECT,
            client_id=CLIENT_ID, code_verifier=verifier,
        )
        assert response.status_code == 200, response.text
        stale = code_for(own, challenge)
        own.advance(CODE_LIFETIME + 1)
        expired = token_request(
            own, grant_type="authorization_code", code=stale, redirect_uri=REDIRECT,
            client_id=CLIENT_ID, code_verifier=verifier,
        )
        assert expired.status_code == 400 and expired.json()["error"] == "invalid_grant"
