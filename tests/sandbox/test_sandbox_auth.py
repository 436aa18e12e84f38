"""OAuth client credentials, bearer checks and /api/v2/tokens/me against a real sandbox."""

from __future__ import annotations

import base64
from typing import Any

import requests

from chaosgenesys.clock import ManualClock
from chaosgenesys.sandbox import Sandbox
from tests.sandbox.sandbox_helpers import CLIENT_ID, CLIENT_SECRET, Api, api_fixture, make_seed

api = api_fixture()

USERS = "/api/v2/users"


def _token(url: str, client_id: str = CLIENT_ID, secret: str = CLIENT_SECRET,
           grant: str = "client_credentials") -> requests.Response:
    return requests.post(
        f"{url}/oauth/token", auth=(client_id, secret), data={"grant_type": grant}, timeout=5
    )


def test_token_happy_path(sandbox: Any) -> None:
    response = _token(sandbox.url)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86400
    assert len(body["access_token"]) >= 32
    assert response.headers["ININ-Correlation-Id"]
    # Two requests, two different opaque tokens.
    assert _token(sandbox.url).json()["access_token"] != body["access_token"]
    # The client id/secret may also be sent as form fields.
    form = requests.post(
        f"{sandbox.url}/oauth/token",
        data={"grant_type": "client_credentials", "client_id": CLIENT_ID,
              "client_secret": CLIENT_SECRET},
        timeout=5,
    )
    assert form.status_code == 200


def test_bad_client_and_grant(sandbox: Any) -> None:
    bad = _token(sandbox.url, secret="wrong")
    assert bad.status_code == 401
    assert bad.json() == {
        "error": "invalid_client",
        "description": "authentication failed",
        "error_description": "authentication failed",
    }
    assert _token(sandbox.url, client_id="nobody").status_code == 401
    no_auth = requests.post(f"{sandbox.url}/oauth/token",
                            data={"grant_type": "client_credentials"}, timeout=5)
    assert no_auth.status_code == 401
    garbage = requests.post(f"{sandbox.url}/oauth/token", headers={"Authorization": "Basic !!"},
                            data={"grant_type": "client_credentials"}, timeout=5)
    assert garbage.status_code == 401
    grant = _token(sandbox.url, grant="password")
    assert grant.status_code == 400
    assert grant.json()["error"] == "unsupported_grant_type"
    # The secret never appears in what the sandbox answers.
    assert CLIENT_SECRET not in bad.text + grant.text


def test_per_client_lifetime_and_change() -> None:
    seed = make_seed(clients=[
        {"client_id": "a", "client_secret": "sa", "token_lifetime": 300},
        {"client_id": "b", "client_secret": "sb"},
    ])
    with Sandbox(seed=seed) as sb:
        assert _token(sb.url, "a", "sa").json()["expires_in"] == 300
        assert _token(sb.url, "b", "sb").json()["expires_in"] == 86400
        sb.set_token_lifetime("a", 1234)
        assert _token(sb.url, "a", "sa").json()["expires_in"] == 1234
        assert sb.client_id == "a" and sb.client_secret == "sa"


def test_bearer_problems(api: Api) -> None:
    missing = api.session.get(f"{api.url}{USERS}", timeout=5)
    assert missing.status_code == 401
    assert missing.json()["code"] == "authentication.required"
    assert missing.headers["ININ-Correlation-Id"] == missing.json()["contextId"]
    unknown = api.get(USERS, token="not-a-token")
    assert unknown.status_code == 401
    assert unknown.json()["code"] == "bad.credentials"
    basic = api.get(USERS, headers={
        "Authorization": "Basic " + base64.b64encode(b"a:b").decode()})
    assert basic.status_code == 401
    assert basic.json()["code"] == "bad.credentials"


def test_expired_token_is_bad_credentials(api: Api) -> None:
    assert api.get(USERS).status_code == 200
    assert api.sandbox.expire_tokens() == 1
    response = api.get(USERS)
    assert response.status_code == 401
    body = response.json()
    assert body["code"] == "bad.credentials"
    assert body["status"] == 401
    assert set(body) >= {"message", "code", "status", "messageWithParams", "messageParams",
                         "contextId", "details", "errors"}
    # A new token works again.
    api.token = api.new_token()
    assert api.get(USERS).status_code == 200


def test_revoked_token_and_per_client(sandbox: Any, api: Api) -> None:
    other = Api(sandbox)
    assert sandbox.revoke_tokens(client_id=CLIENT_ID) == 2
    assert api.get(USERS).json()["code"] == "bad.credentials"
    assert other.get(USERS).status_code == 401
    assert sandbox.revoke_tokens() == 0
    other.close()


def test_short_lifetime_expires() -> None:
    with Sandbox(seed=make_seed(), clock=ManualClock()) as sandbox:
        sandbox.set_token_lifetime(CLIENT_ID, 1)
        client = Api(sandbox)
        assert client.get(USERS).status_code == 200
        sandbox.advance(0.9)
        assert client.get(USERS).status_code == 200
        sandbox.advance(0.2)  # the lifetime is up
        assert client.get(USERS).json()["code"] == "bad.credentials"
        client.close()


def test_tokens_me(api: Api) -> None:
    info = api.get("/api/v2/tokens/me")
    assert info.status_code == 200
    body = info.json()
    assert set(body) >= {"organization", "homeOrganization", "authorizedScope", "OAuthClient"}
    assert body["OAuthClient"]["id"] == CLIENT_ID
    assert body["organization"]["id"] == body["OAuthClient"]["organization"]["id"]
    head = api.request("HEAD", "/api/v2/tokens/me")
    assert head.status_code == 200
    assert head.content == b""
    deleted = api.delete("/api/v2/tokens/me")
    assert deleted.status_code in (200, 204)
    gone = api.request("HEAD", "/api/v2/tokens/me")
    assert gone.status_code == 401
    assert api.get("/api/v2/tokens/me").json()["code"] == "bad.credentials"
