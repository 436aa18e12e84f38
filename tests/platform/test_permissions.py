"""The endpoint -> scopes/permissions table and the grant checks (pure functions)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from chaosgenesys.platform.permissions import (
    ENDPOINT_NEEDS,
    EndpointNeed,
    endpoint_need,
    minimal_permissions,
    minimal_scopes,
    parse_permission,
    permission_granted,
    permissions_satisfied,
    scope_granted,
)

ROOT = Path(__file__).resolve().parents[2]


def _package_calls() -> set[str]:
    """Every ``/api/v2/...`` path literal the package (not the sandbox) names, as templates."""
    found: set[str] = set()
    for path in (ROOT / "chaosgenesys").rglob("*.py"):
        if "sandbox" in path.parts or path.name == "permissions.py":
            continue
        for literal in re.findall(r'f?"(/api/v2/[^"?]*)', path.read_text(encoding="utf-8")):
            found.add(re.sub(r"\{[^}]*\}", "{x}", literal).rstrip("/"))
    return found


def test_every_path_the_package_names_is_in_the_table() -> None:
    templates = {re.sub(r"\{[^}]*\}", "{x}", n.path) for n in ENDPOINT_NEEDS.values()}
    # the agent's path pieces that are completed by the next literal, and pattern examples
    # in docstrings of faults (not calls)
    pieces = {
        "/api/v2/conversations/calls/{x}/participants",
        "/api/v2/conversations/calls/{x}/participants/{x}/communications",
        "/api/v2/users/.*/presences",
    }
    missing = _package_calls() - templates - pieces
    assert missing == set()


def test_table_shape() -> None:
    assert len(ENDPOINT_NEEDS) >= 20
    for key, need in ENDPOINT_NEEDS.items():
        assert key == need.key == f"{need.method} {need.path}"
        assert need.method in {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}
        assert need.rule in {"any", "all"}
        assert "[V]" in need.source or "[C]" in need.source
        for permission in need.permissions:
            parse_permission(permission)
        for scope in need.scopes:
            assert re.fullmatch(r"[a-z][a-z0-9-]*(:readonly)?", scope), scope
        # a read that accepts a read-only scope accepts the write one too
        for scope in need.scopes:
            if scope.endswith(":readonly"):
                assert scope.removesuffix(":readonly") in need.scopes


@pytest.mark.parametrize(
    ("method", "path", "scopes", "permissions", "rule"),
    [
        ("GET", "/api/v2/tokens/me", ("user-basic-info",), (), "any"),
        ("PATCH", "/api/v2/users/{userId}/presences/purecloud", ("presence",), (), "any"),
        ("GET", "/api/v2/users/{userId}/queues", ("users", "users:readonly"),
         ("routing:queue:view",), "any"),
        ("GET", "/api/v2/presence/definitions", ("presence", "presence:readonly"),
         ("presence:presenceDefinition:view",), "all"),
        ("GET", "/api/v2/oauth/clients/{clientId}", ("oauth", "oauth:readonly"),
         ("oauth:client:view",), "any"),
        ("GET", "/api/v2/authorization/roles/{roleId}",
         ("authorization", "authorization:readonly"), ("authorization:role:view",), "any"),
        ("POST", "/oauth/token", (), (), "any"),
    ],
)
def test_known_facts(
    method: str, path: str, scopes: tuple[str, ...], permissions: tuple[str, ...], rule: str
) -> None:
    need = endpoint_need(method, path)
    assert (need.scopes, need.permissions, need.rule) == (scopes, permissions, rule)


def test_endpoint_need_accepts_concrete_paths_and_any_case() -> None:
    need = endpoint_need("get", "/api/v2/users/0b6b3c5e-0000-4000-8000-000000000001/queues?x=1")
    assert need.path == "/api/v2/users/{userId}/queues"
    members = endpoint_need("GET", "/api/v2/routing/queues/q1/members")
    assert members.permissions[0] == "routing:queue:view"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/api/v2/routing/skills"),
        ("DELETE", "/api/v2/users/{userId}"),  # a known path with another method
        ("GET", "/api/v2/users/a/b/c/d"),
    ],
)
def test_unknown_endpoint_is_a_value_error_naming_it(method: str, path: str) -> None:
    with pytest.raises(ValueError, match=re.escape(f"{method} {path}")):
        endpoint_need(method, path)


@pytest.mark.parametrize(
    ("permission", "policies", "granted"),
    [
        ("routing:queue:view",
         [{"domain": "routing", "entityName": "queue", "actionSet": ["view"]}], True),
        ("routing:queue:view",
         [{"domain": "routing", "entityName": "queue", "actionSet": ["edit", "add"]}], False),
        ("routing:queue:view",
         [{"domain": "routing", "entityName": "*", "actionSet": ["view"]}], True),
        ("routing:queue:view",
         [{"domain": "routing", "entityName": "queue", "actionSet": ["*"]}], True),
        ("routing:queue:view",
         [{"domain": "routing", "entityName": "*", "actionSet": ["*"]}], True),
        ("routing:queue:view",
         [{"domain": "*", "entityName": "*", "actionSet": ["*"]}], False),  # no domain wildcard
        ("routing:queue:view",
         [{"domain": "routing", "entityName": "wrapupCode", "actionSet": ["view"]}], False),
        ("analytics:queueObservation:view",
         [{"domain": "analytics", "entityName": "queueobservation", "actionSet": ["view"]}],
         False),  # names compare exactly
        ("routing:queue:view", [{"domain": "routing", "entityName": "queue"}], False),
        ("routing:queue:view", [], False),
        ("routing:queue:view",
         [{"domain": "presence", "entityName": "*", "actionSet": ["*"]},
          {"domain": "routing", "entityName": "queue", "actionSet": ["view"],
           "allowConditions": True}], True),
    ],
)
def test_permission_granted(permission: str, policies: list[dict[str, object]],
                            granted: bool) -> None:
    assert permission_granted(permission, policies) is granted


@pytest.mark.parametrize("bad", ["routing:queue", "routing", "a:b:c:d", "routing::view", ""])
def test_malformed_permission_is_named(bad: str) -> None:
    with pytest.raises(ValueError, match=re.escape(repr(bad))):
        permission_granted(bad, [])


def test_permissions_satisfied_any_all_and_none() -> None:
    members = endpoint_need("GET", "/api/v2/routing/queues/{queueId}/members")
    edit_only = [{"domain": "routing", "entityName": "queue", "actionSet": ["edit"]}]
    assert permissions_satisfied(members, edit_only)  # any of four
    assert not permissions_satisfied(members, [])
    both = EndpointNeed("GET", "/x", (), ("routing:queue:view", "routing:wrapupCode:view"),
                        "all", "test")
    view = [{"domain": "routing", "entityName": "queue", "actionSet": ["view"]}]
    assert not permissions_satisfied(both, view)
    assert permissions_satisfied(
        both, [{"domain": "routing", "entityName": "*", "actionSet": ["view"]}]
    )
    assert permissions_satisfied(endpoint_need("GET", "/api/v2/tokens/me"), [])


@pytest.mark.parametrize(
    ("needed", "authorized", "granted"),
    [
        (("presence", "presence:readonly"), ["presence:readonly"], True),
        (("presence", "presence:readonly"), ["presence"], True),
        (("presence",), ["presence:readonly"], False),  # read-only does not cover a write
        (("presence:readonly",), ["presence"], True),  # a write scope covers its read-only
        (("users", "users:readonly"), ["presence", "routing"], False),
        (("user-basic-info",), ["user-basic-info"], True),
        (("routing",), ["all"], False),  # no wildcard scope
        ((), [], True),
        (("notifications",), [], False),
    ],
)
def test_scope_granted(needed: tuple[str, ...], authorized: list[str], granted: bool) -> None:
    assert scope_granted(needed, authorized) is granted


def test_minimal_scopes_and_permissions_cover_every_endpoint() -> None:
    scopes = minimal_scopes()
    permissions = minimal_permissions()
    assert "presence" in scopes and "presence:readonly" not in scopes  # PATCH needs the write
    assert "routing:readonly" in scopes and "routing" not in scopes
    assert "user-basic-info" in scopes
    policies = [
        {"domain": d, "entityName": e, "actionSet": [a]}
        for d, e, a in (parse_permission(p) for p in permissions)
    ]
    for need in ENDPOINT_NEEDS.values():
        assert scope_granted(need.scopes, scopes), need.key
        assert permissions_satisfied(need, policies), need.key
    # least privilege: one permission for each "any" endpoint, no alternatives
    assert "routing:queue:edit" not in permissions
    assert minimal_scopes([]) == () and minimal_permissions([]) == ()


def test_import_is_light() -> None:
    code = (
        "import sys, chaosgenesys.platform.permissions;"
        "print(sorted(m for m in ('aiohttp', 'pyroute2', 'mitmproxy') "
        "if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"
