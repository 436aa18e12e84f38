"""What the preflight reads, served by a real sandbox: the token's scopes (``/api/v2/tokens/me``),
its client's roles (``/api/v2/oauth/clients/{id}``) and their permissions
(``/api/v2/authorization/roles/{id}``); both outcomes, 404s, bad seeds and the admin surface."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from chaosgenesys.platform.permissions import (
    ENDPOINT_NEEDS,
    endpoint_need,
    minimal_permissions,
    permissions_satisfied,
    scope_granted,
)
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.seed import (
    DEFAULT_ROLE_ID,
    DEFAULT_ROLE_NAME,
    DEFAULT_SCOPES,
    SeedError,
    load_seed,
)
from chaosgenesys.sandbox.views import DIVISION_ID
from tests.sandbox.sandbox_helpers import CLIENT_ID, CLIENT_SECRET, Api, api_fixture, make_seed

pytestmark = pytest.mark.timeout(60)

api = api_fixture()

READER_ID = "5d2b7e40-0000-4000-8000-0000000000b1"
LIMITED = "limited-client"
BARE = "bare-client"


def _grants(api: Api, token: str | None = None) -> tuple[list[str], list[dict[str, Any]]]:
    """What a preflight reads: the token's scopes and the policies of its client's roles."""
    info = api.get("/api/v2/tokens/me", token=token)
    assert info.status_code == 200, info.text
    client_id = info.json()["OAuthClient"]["id"]
    client = api.get(f"/api/v2/oauth/clients/{client_id}", token=token)
    assert client.status_code == 200, client.text
    policies: list[dict[str, Any]] = []
    for grant in client.json()["roleDivisions"]:
        assert grant["divisionId"] == DIVISION_ID
        role = api.get(f"/api/v2/authorization/roles/{grant['roleId']}", token=token)
        assert role.status_code == 200, role.text
        policies.extend(role.json()["permissionPolicies"])
    return info.json()["authorizedScope"], policies


def _missing(api: Api, token: str | None = None) -> tuple[set[str], set[str]]:
    """Endpoints whose scopes, and endpoints whose permissions, the token lacks."""
    scopes, policies = _grants(api, token)
    return (
        {key for key, need in ENDPOINT_NEEDS.items() if not scope_granted(need.scopes, scopes)},
        {key for key, need in ENDPOINT_NEEDS.items()
         if not permissions_satisfied(need, policies)},
    )


def test_default_client_has_everything_the_package_needs(api: Api) -> None:
    info = api.get("/api/v2/tokens/me").json()
    assert info["authorizedScope"] == list(DEFAULT_SCOPES)
    client = api.get(f"/api/v2/oauth/clients/{CLIENT_ID}").json()
    assert client["id"] == CLIENT_ID
    assert client["authorizedGrantType"] == "CLIENT-CREDENTIALS"
    assert client["state"] == "active"
    assert client["roleDivisions"] == [{"roleId": DEFAULT_ROLE_ID, "divisionId": DIVISION_ID}]
    assert client["scope"] == list(DEFAULT_SCOPES)
    assert CLIENT_SECRET not in str(client)
    role = api.get(f"/api/v2/authorization/roles/{DEFAULT_ROLE_ID}").json()
    assert role["name"] == DEFAULT_ROLE_NAME
    assert role["permissions"] == []  # general permissions only; grants are the policies
    actions = {
        f"{p['domain']}:{p['entityName']}:{a}"
        for p in role["permissionPolicies"] for a in p["actionSet"]
    }
    assert actions == set(minimal_permissions())
    assert _missing(api) == (set(), set())


@pytest.fixture
def limited() -> Iterator[Sandbox]:
    """A sandbox with a client short of scopes and permissions, and one with none at all."""
    seed = make_seed(
        roles=[
            {"id": READER_ID, "name": "Reader",
             "permissions": ["routing:queue:view", "analytics:*:*", "routing:queue:view"]},
            {"name": "Wrapper", "permissions": ["conversation:participant:*"]},
        ]
    )
    seed["clients"] += [
        {"client_id": LIMITED, "client_secret": "s" * 20,
         "scopes": ["users:readonly", "presence", "routing"], "roles": ["Reader", "Wrapper"]},
        {"client_id": BARE, "client_secret": "b" * 20, "scopes": [], "roles": []},
    ]
    with Sandbox(seed=seed) as sb:
        yield sb


def test_a_client_short_of_scopes_and_permissions(limited: Sandbox) -> None:
    api = Api(limited, LIMITED, "s" * 20)
    scopes, policies = _grants(api)
    assert scopes == ["users:readonly", "presence", "routing"]
    # duplicates dropped; one policy per domain and entity; "*" kept as the platform's wildcard
    assert {(p["domain"], p["entityName"], tuple(p["actionSet"])) for p in policies} == {
        ("routing", "queue", ("view",)),
        ("analytics", "*", ("*",)),
        ("conversation", "participant", ("*",)),
    }
    missing_scopes, missing_permissions = _missing(api)
    assert "PUT /api/v2/users/{userId}/routingstatus" in missing_scopes  # users:readonly only
    assert "POST /api/v2/notifications/channels" in missing_scopes
    assert "GET /api/v2/tokens/me" in missing_scopes
    assert "PATCH /api/v2/users/{userId}/presences/purecloud" not in missing_scopes
    assert "GET /api/v2/routing/queues/{queueId}/members" not in missing_scopes  # routing
    assert missing_permissions == {
        "GET /api/v2/presence/definitions",
        "GET /api/v2/routing/wrapupcodes",
        "GET /api/v2/conversations/{conversationId}",
        "GET /api/v2/oauth/clients/{clientId}",
        "GET /api/v2/authorization/roles/{roleId}",
    }
    api.close()


def test_a_client_with_no_scopes_and_no_roles(limited: Sandbox) -> None:
    api = Api(limited, BARE, "b" * 20)
    assert api.get("/api/v2/tokens/me").json()["authorizedScope"] == []
    client = api.get(f"/api/v2/oauth/clients/{BARE}").json()
    assert client["roleDivisions"] == [] and client["scope"] == []
    missing_scopes, missing_permissions = _missing(api)
    assert missing_scopes == {k for k, n in ENDPOINT_NEEDS.items() if n.scopes}
    assert missing_permissions == {k for k, n in ENDPOINT_NEEDS.items() if n.permissions}
    # the default role is still there: another client of the seed holds it
    assert api.get(f"/api/v2/authorization/roles/{DEFAULT_ROLE_ID}").status_code == 200
    api.close()


def test_a_seed_role_named_chaos_tooling_replaces_the_built_in_one() -> None:
    seed = make_seed(roles=[{"name": DEFAULT_ROLE_NAME, "permissions": ["routing:queue:view"]}])
    with Sandbox(seed=seed) as sb:
        api = Api(sb)
        client = api.get(f"/api/v2/oauth/clients/{CLIENT_ID}").json()
        role_id = client["roleDivisions"][0]["roleId"]
        assert role_id != DEFAULT_ROLE_ID
        role = api.get(f"/api/v2/authorization/roles/{role_id}").json()
        assert role["name"] == DEFAULT_ROLE_NAME
        assert role["permissionPolicies"] == [
            {"domain": "routing", "entityName": "queue", "actionSet": ["view"],
             "allowConditions": False}
        ]
        assert api.get(f"/api/v2/authorization/roles/{DEFAULT_ROLE_ID}").status_code == 404
        _, missing = _missing(api)
        assert "GET /api/v2/routing/queues/{queueId}/members" not in missing
        assert "GET /api/v2/routing/wrapupcodes" in missing
        api.close()


@pytest.mark.parametrize(
    "path",
    ["/api/v2/oauth/clients/no-such-client", "/api/v2/authorization/roles/no-such-role"],
)
def test_unknown_ids_are_404_error_bodies(api: Api, path: str) -> None:
    response = api.get(path)
    assert response.status_code == 404
    body = response.json()
    assert body["code"] == "not.found"
    assert body["status"] == 404
    assert path.rsplit("/", 1)[1] in body["message"]
    assert body["contextId"] == response.headers["ININ-Correlation-Id"]


def test_the_routes_need_a_token(api: Api) -> None:
    for path in (f"/api/v2/oauth/clients/{CLIENT_ID}",
                 f"/api/v2/authorization/roles/{DEFAULT_ROLE_ID}"):
        response = api.session.get(f"{api.url}{path}", timeout=5)
        assert response.status_code == 401
        assert response.json()["code"] == "authentication.required"


def test_the_built_in_desktop_client(api: Api) -> None:
    client = api.get("/api/v2/oauth/clients/chaosgenesys-desktop").json()
    assert client["authorizedGrantType"] == "CODE"
    assert client["roleDivisions"] == []  # roles only apply to client-credentials clients
    assert client["scope"] == list(DEFAULT_SCOPES)


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"clients": [{"client_id": "c", "client_secret": "s", "scope": ["users"]}]},
         "clients[0].scope"),
        ({"roles": [{"name": "R", "permission": []}]}, "roles[0].permission"),
        ({"roles": [{"permissions": []}]}, "roles[0].name is required"),
        ({"roles": [{"name": "R", "permissions": ["routing:queue"]}]},
         "roles[0].permissions[0] 'routing:queue'"),
        ({"roles": [{"name": "R", "permissions": ["routing:queue:view", "*:queue:view"]}]},
         "roles[0].permissions[1] '*:queue:view'"),
        ({"roles": [{"name": "R", "permissions": ["routing:queue:view ok"]}]},
         "roles[0].permissions[0]"),
        ({"roles": [{"name": "R", "permissions": "routing:queue:view"}]},
         "roles[0].permissions must be a list"),
        ({"roles": [{"name": "R"}, {"name": "R"}]}, "roles[1].name 'R' is a duplicate"),
        ({"roles": [{"id": "r1", "name": "A"}, {"id": "r1", "name": "B"}]},
         "roles[1].id 'r1' is a duplicate"),
        ({"roles": [{"id": DEFAULT_ROLE_ID, "name": "Other"}]}, "roles[0].id"),
        ({"clients": [{"client_id": "c", "client_secret": "s", "scopes": "presence"}]},
         "clients[0].scopes must be a list"),
        ({"clients": [{"client_id": "c", "client_secret": "s", "scopes": ["Presence"]}]},
         "clients[0].scopes[0] 'Presence'"),
        ({"clients": [{"client_id": "c", "client_secret": "s", "scopes": ["users:write"]}]},
         "clients[0].scopes[0] 'users:write'"),
        ({"clients": [{"client_id": "c", "client_secret": "s", "roles": ["Nobody"]}]},
         "clients[0].roles[0]: unknown role 'Nobody'"),
        ({"clients": [{"client_id": "c", "client_secret": "s", "roles": "Reader"}]},
         "clients[0].roles must be a list"),
    ],
)
def test_bad_seeds_are_named(change: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SeedError) as raised:
        load_seed(change)
    assert fragment in str(raised.value)
    with pytest.raises(SeedError):  # refused before anything starts
        Sandbox(seed=change)


def test_admin_changes_scopes_and_permissions_at_run_time(api: Api) -> None:
    token = api.token
    changed = api.admin("PATCH", f"/clients/{CLIENT_ID}",
                        json={"scopes": ["presence:readonly"], "roles": []})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"client_id": CLIENT_ID, "token_lifetime": 86400,
                              "scopes": ["presence:readonly"], "roles": []}
    # a token issued before sees the change, as the platform reads grants per request
    assert api.get("/api/v2/tokens/me", token=token).json()["authorizedScope"] == [
        "presence:readonly"
    ]
    missing_scopes, missing_permissions = _missing(api)
    assert "GET /api/v2/users/{userId}/presences/purecloud" not in missing_scopes
    assert "PATCH /api/v2/users/{userId}/presences/purecloud" in missing_scopes
    assert "GET /api/v2/presence/definitions" in missing_permissions

    # give the role back, then take a permission out of it (by name)
    assert api.admin("PATCH", f"/clients/{CLIENT_ID}",
                     json={"roles": [DEFAULT_ROLE_NAME]}).status_code == 200
    response = api.admin("PATCH", f"/roles/{DEFAULT_ROLE_NAME}",
                         json={"permissions": ["presence:*:view", "oauth:client:view"]})
    assert response.status_code == 200, response.text
    assert response.json()["id"] == DEFAULT_ROLE_ID
    _, missing_permissions = _missing(api)
    assert "GET /api/v2/presence/definitions" not in missing_permissions
    assert "GET /api/v2/routing/wrapupcodes" in missing_permissions
    state = api.admin("GET", "/state").json()
    assert state["roles"] == [{"id": DEFAULT_ROLE_ID, "name": DEFAULT_ROLE_NAME,
                               "permissions": ["presence:*:view", "oauth:client:view"]}]
    assert state["clients"][0]["scopes"] == ["presence:readonly"]

    # a new seed brings the seed's grants back
    assert api.admin("POST", "/seed", json=make_seed()).status_code == 200
    assert _missing(api) == (set(), set())


@pytest.mark.parametrize(
    ("path", "body", "status", "fragment"),
    [
        (f"/clients/{CLIENT_ID}", {"scopes": ["Bad Scope"]}, 400, "scopes[0] 'Bad Scope'"),
        (f"/clients/{CLIENT_ID}", {"scopes": "presence"}, 400, "scopes must be a list"),
        (f"/clients/{CLIENT_ID}", {"roles": ["ghost"]}, 400, "roles[0]: unknown role 'ghost'"),
        (f"/clients/{CLIENT_ID}", {"roles": "x"}, 400, "roles must be a list"),
        (f"/clients/{CLIENT_ID}", {"scope": []}, 400, "unknown field 'scope'"),
        (f"/clients/{CLIENT_ID}", {}, 400, "one of token_lifetime, scopes, roles"),
        (f"/clients/{CLIENT_ID}", {"scopes": [], "token_lifetime": 0}, 400, "token_lifetime"),
        ("/clients/ghost", {"scopes": []}, 404, "ghost"),
        (f"/roles/{DEFAULT_ROLE_ID}", {"permissions": ["a:b"]}, 400, "permissions[0] 'a:b'"),
        (f"/roles/{DEFAULT_ROLE_ID}", {}, 400, "permissions is required"),
        (f"/roles/{DEFAULT_ROLE_ID}", {"permissions": [], "name": "x"}, 400,
         "unknown field 'name'"),
        ("/roles/ghost", {"permissions": []}, 404, "ghost"),
    ],
)
def test_admin_refuses_bad_changes_and_changes_nothing(
    api: Api, path: str, body: dict[str, Any], status: int, fragment: str
) -> None:
    response = api.admin("PATCH", path, json=body)
    assert response.status_code == status, response.text
    assert fragment in response.json()["message"]
    assert _missing(api) == (set(), set())
    assert api.get("/api/v2/tokens/me").json()["authorizedScope"] == list(DEFAULT_SCOPES)
    state = api.admin("GET", "/state").json()
    assert state["clients"][0]["tokenLifetime"] == 86400


def test_endpoint_need_names_what_the_preflight_reads() -> None:
    """The two authorization endpoints the sandbox serves are in the table it defaults from."""
    assert endpoint_need("GET", f"/api/v2/oauth/clients/{CLIENT_ID}").permissions == (
        "oauth:client:view",
    )
    assert endpoint_need("GET", f"/api/v2/authorization/roles/{READER_ID}").permissions == (
        "authorization:role:view",
    )
