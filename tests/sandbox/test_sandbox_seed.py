"""Seed loading and validation: files, dicts, defaults and errors that say where."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.sandbox.model import IDLE, OFF_QUEUE
from chaosgenesys.sandbox.seed import DEFAULT_SEED, SeedError, load_seed
from chaosgenesys.sandbox.state import SandboxState
from tests.sandbox.sandbox_helpers import AGENT_1, AGENT_2, QUEUE, make_seed

ROOT = Path(__file__).resolve().parents[2]


def test_default_seed_is_examples_seed_yaml() -> None:
    assert load_seed(None) == load_seed(ROOT / "examples" / "seed.yaml")
    seed = load_seed(None)
    assert [c.client_id for c in seed.clients] == ["chaos-client"]
    assert seed.clients[0].client_secret == "chaos-secret"
    assert seed.clients[0].redirect_uris == ("http://localhost:8080/callback",)
    assert [u.id for u in seed.users] == [AGENT_1, AGENT_2]
    assert all(u.presence == "On Queue" for u in seed.users)
    assert seed.queues[0].id == QUEUE
    assert seed.queues[0].name == "Chaos Queue"
    assert seed.queues[0].members == (AGENT_1, AGENT_2)
    assert DEFAULT_SEED["queues"][0]["id"] == QUEUE


def test_yaml_and_json_files(tmp_path: Path) -> None:
    data = make_seed()
    json_file = tmp_path / "seed.json"
    json_file.write_text(json.dumps(data))
    yaml_file = tmp_path / "seed.yml"
    yaml_file.write_text("users:\n  - name: Solo\n    presence: ON_QUEUE\nqueues:\n  - name: Q\n")
    assert load_seed(json_file) == load_seed(data)
    assert load_seed(str(json_file)).users[2].presence == "Available"
    solo = load_seed(yaml_file)
    assert solo.users[0].presence == "On Queue"
    assert len(solo.users[0].id) == 36  # a generated uuid4
    assert solo.queues[0].members == ()
    # No clients: the default client.
    assert [(c.client_id, c.client_secret) for c in solo.clients] == [
        ("chaos-client", "chaos-secret")
    ]


@pytest.mark.parametrize(
    "spelling",
    [
        "On Queue",
        "on queue",
        "OnQueue",
        "ON_QUEUE",
        "on-queue",
        "e08eaf1b-ee47-4fa9-a231-1200e284798f",
    ],
)
def test_presence_any_spelling(spelling: str) -> None:
    seed = load_seed({"users": [{"name": "A", "presence": spelling}]})
    assert seed.users[0].presence == "On Queue"


def test_default_presence_is_offline() -> None:
    assert load_seed({"users": [{"name": "A"}]}).users[0].presence == "Offline"


@pytest.mark.parametrize(
    ("seed", "fragment"),
    [
        ({"user": []}, "'user'"),
        ({"users": [{"name": "A"}, {"name": "B", "presense": "Away"}]}, "users[1].presense"),
        (
            {"clients": [{"client_id": "c", "client_secret": "s", "lifetime": 3}]},
            "clients[0].lifetime",
        ),
        ({"queues": [{"name": "Q", "member": []}]}, "queues[0].member"),
        ({"wrapup_codes": [{"name": "W", "code": "x"}]}, "wrapup_codes[0].code"),
        ({"users": [{"name": "A", "presence": "Lunch"}]}, "users[0].presence 'Lunch'"),
        (
            {
                "users": [{"id": "u1", "name": "A"}],
                "queues": [{"name": "Q", "members": ["u1", "nobody"]}],
            },
            "queues[0].members[1]: unknown user id 'nobody'",
        ),
        ({"users": [{"id": "u1", "name": "A"}, {"id": "u1", "name": "B"}]}, "users[1].id"),
        ({"users": [{"presence": "Away"}]}, "users[0].name is required"),
        ({"clients": [{"client_id": "c"}]}, "clients[0].client_secret is required"),
        (
            {"clients": [{"client_id": "c", "client_secret": "s", "token_lifetime": 0}]},
            "clients[0].token_lifetime",
        ),
        ({"queues": [{"name": "Q", "wrapup_timeout": -1}]}, "queues[0].wrapup_timeout"),
        ({"users": {"name": "A"}}, "'users' must be a list"),
        ({"users": [{"id": "a/b", "name": "A"}]}, "users[0].id 'a/b' cannot be a URL path"),
        ({"users": [{"id": "..", "name": "A"}]}, "users[0].id '..' cannot be a URL path"),
        ({"users": [{"id": "a?b", "name": "A"}]}, "users[0].id 'a?b'"),
        ({"users": [{"id": "a.b", "name": "A"}]}, "users[0].id 'a.b'"),
        ({"users": [{"id": "a b", "name": "A"}]}, "users[0].id 'a b'"),
        ({"users": [{"id": "a%2Fb", "name": "A"}]}, "users[0].id 'a%2Fb'"),
        ({"queues": [{"id": "q/1", "name": "Q"}]}, "queues[0].id 'q/1' cannot be a URL path"),
        ({"wrapup_codes": [{"id": "w#1", "name": "W"}]}, "wrapup_codes[0].id 'w#1'"),
    ],
)
def test_errors_name_the_key(seed: dict[str, Any], fragment: str) -> None:
    with pytest.raises(SeedError) as info:
        load_seed(seed)
    assert fragment in str(info.value)


def test_client_grants_default_to_what_the_package_needs() -> None:
    from chaosgenesys.platform.permissions import minimal_permissions, minimal_scopes
    from chaosgenesys.sandbox.seed import DEFAULT_ROLE_ID, DEFAULT_ROLE_NAME

    seed = load_seed(None)
    assert seed.clients[0].scopes == minimal_scopes()
    assert seed.clients[0].roles == (DEFAULT_ROLE_ID,)
    assert [(r.id, r.name, r.permissions) for r in seed.roles] == [
        (DEFAULT_ROLE_ID, DEFAULT_ROLE_NAME, minimal_permissions())
    ]
    # explicit empty grants; no client holds the built-in role: it is not in the seed
    bare = load_seed({"clients": [{"client_id": "c", "client_secret": "s", "scopes": [],
                                   "roles": []}]})
    assert (bare.clients[0].scopes, bare.clients[0].roles, bare.roles) == ((), (), ())


def test_client_roles_by_id_or_name() -> None:
    from chaosgenesys.sandbox.seed import DEFAULT_ROLE_ID, DEFAULT_ROLE_NAME

    seed = load_seed(
        {
            "roles": [{"id": "r-1", "name": "One", "permissions": ["routing:*:*"]},
                      {"name": "Two"}],
            "clients": [{"client_id": "c", "client_secret": "s",
                         "roles": ["One", "r-1", "Two", DEFAULT_ROLE_NAME],
                         "scopes": ["routing", "routing"]}],
        }
    )
    two = next(role for role in seed.roles if role.name == "Two")
    assert seed.clients[0].roles == ("r-1", two.id, DEFAULT_ROLE_ID)  # duplicates dropped
    assert seed.clients[0].scopes == ("routing",)
    assert len(two.id) == 36 and two.permissions == ()
    assert [role.name for role in seed.roles] == ["One", "Two", DEFAULT_ROLE_NAME]


def test_missing_and_broken_files(tmp_path: Path) -> None:
    with pytest.raises(SeedError, match="not found"):
        load_seed(tmp_path / "nope.yaml")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(SeedError, match="not valid"):
        load_seed(broken)
    listing = tmp_path / "list.yaml"
    listing.write_text("- a\n- b\n")
    with pytest.raises(SeedError, match="mapping"):
        load_seed(listing)


def test_sandbox_rejects_bad_seed_at_construction() -> None:
    from chaosgenesys.sandbox import Sandbox

    with pytest.raises(SeedError, match=r"users\[0\]\.presense"):
        Sandbox(seed={"users": [{"name": "A", "presense": "Away"}]})


def test_state_follows_seed() -> None:
    state = SandboxState(load_seed(make_seed()))
    assert state.users[AGENT_1].routing_status == IDLE
    assert state.users["0b6b3c5e-0000-4000-8000-000000000003"].routing_status == OFF_QUEUE
    assert set(state.queues[QUEUE].members) == {AGENT_1, AGENT_2}
    assert set(state.tokens.clients) == {"chaos-client", "chaosgenesys-desktop"}
