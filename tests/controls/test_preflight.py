"""The preflight against a real sandbox: both outcomes of every check, and a real ``chaos run``
it refuses before anything is injected.

The sandbox serves what the preflight reads (``/api/v2/tokens/me`` with the client's scopes,
``/api/v2/oauth/clients/{id}``, ``/api/v2/authorization/roles/{id}``,
``/api/v2/users/{id}/queues``); each test seeds the org so that one thing is missing and checks
the table names it, who needs it and how to grant it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.platform.permissions import minimal_permissions, minimal_scopes
from chaosgenesys.preflight import PreflightResult, Row, check, format_table
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox.actions import inject_api_fault
from tests.conftest import AGENT_1, AGENT_2, AGENT_3, CLIENT_ID, CLIENT_SECRET, QUEUE, make_seed
from tests.controls.runner import action, chaos_run

SALES = "7c1d2a90-0000-4000-8000-0000000000bb"
SECRETS = {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET}


def _probe(name: str, module: str, func: str, **arguments: Any) -> dict[str, Any]:
    return {"type": "probe", "name": name, "tolerance": True,
            "provider": {"type": "python", "module": module, "func": func,
                         "arguments": arguments}}


EXPERIMENT: dict[str, Any] = {
    "title": "preflight subject",
    "description": "reads presence, sets it, checks the queue",
    "controls": [{"name": "safeguard",
                  "provider": {"type": "python", "module": "chaosgenesys.controls.safeguard"}}],
    "steady-state-hypothesis": {"title": "on queue", "probes": [
        _probe("on-queue", "chaosgenesys.users.probes", "presence_is",
               user_id=AGENT_1, expected="On Queue"),
    ]},
    "method": [
        action("away", "chaosgenesys.users.actions", "set_presence",
                user_id=AGENT_1, presence="Away"),
    ],
    "rollbacks": [
        action("back", "chaosgenesys.users.actions", "restore_presence", user_id=AGENT_1),
    ],
}


@pytest.fixture
def org() -> Iterator[Any]:
    """A sandbox factory: ``org(**seed overrides)`` → its configuration."""
    started: list[Sandbox] = []

    def start(**overrides: Any) -> dict[str, Any]:
        sandbox = Sandbox(seed=make_seed(**overrides))
        sandbox.start()
        started.append(sandbox)
        return {"genesys_api_url": sandbox.url, "genesys_login_url": sandbox.url,
                "genesys_timeout": 5}

    yield start
    for sandbox in started:
        sandbox.stop()


def _missing(result: PreflightResult) -> list[Row]:
    return result.missing


def test_a_ready_org_passes_every_check(org: Any) -> None:
    configuration = org()
    result = check(EXPERIMENT, configuration, SECRETS, [AGENT_1, AGENT_2], QUEUE)
    assert result.passed, format_table(result.rows)
    checks = {(row.check, row.status) for row in result.rows}
    assert {("region", "ok"), ("scope", "ok"), ("permission", "ok"),
            ("test agent", "ok")} <= checks
    assert result.organization["name"] == "Chaos Sandbox"
    assert result.client["grant"] == "CLIENT-CREDENTIALS" and result.client["roles"]


def test_a_missing_scope_is_named_with_who_needs_it(org: Any) -> None:
    scopes = [s for s in minimal_scopes() if not s.startswith("presence")]
    clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "scopes": scopes}]
    result = check(EXPERIMENT, org(clients=clients), SECRETS, [AGENT_1], QUEUE)
    # The tooling's client-credentials token: Genesys applies its roles, not its scopes, so
    # the missing scope is named but does not refuse the run.
    assert result.passed, format_table(result.rows)
    [row] = [r for r in result.rows if r.check == "scope"]
    assert row.status == "note" and "client-credentials" in row.fix
    assert row.subject == "presence"  # the write scope: set_presence patches presence
    assert "users.actions.set_presence" in row.needed_by
    assert "PATCH /api/v2/users/{userId}/presences/purecloud" in row.needed_by
    assert f"OAuth > {CLIENT_ID} > Scope: add presence" in row.fix


def test_a_missing_permission_is_named_with_how_to_grant_it(org: Any) -> None:
    held = [p for p in minimal_permissions() if not p.startswith("routing:queue")]
    roles = [{"name": "Chaos Tooling", "permissions": held}]
    result = check(EXPERIMENT, org(roles=roles), SECRETS, [AGENT_1], QUEUE)
    rows = [r for r in _missing(result) if r.check == "permission"]
    assert rows, format_table(result.rows)
    members = next(r for r in rows if "controls.safeguard" in r.needed_by)  # reads members
    assert "routing:queue:view or " in members.subject  # any of several suffices
    assert "GET /api/v2/routing/queues/{queueId}/members" in members.needed_by
    assert "routing > queue > view" in members.fix and "Roles" in members.fix
    own = next(r for r in rows if r.subject == "routing:queue:view")  # the agents' queues
    assert "controls.preflight" in own.needed_by


def test_roles_that_cannot_be_read_refuse_the_run(org: Any) -> None:
    held = [p for p in minimal_permissions() if p != "oauth:client:view"]
    configuration = org(roles=[{"name": "Chaos Tooling", "permissions": held}])
    result = check(EXPERIMENT, configuration, SECRETS, [AGENT_1], QUEUE)
    [row] = [r for r in _missing(result) if r.check == "permission"]
    assert row.subject == "oauth:client:view"  # the preflight's own need
    assert "controls.preflight" in row.needed_by
    # A real org answers 403 to a client without it: the sandbox does so on request.
    inject_api_fault("^/api/v2/oauth/clients/", status=403, configuration=configuration,
                     secrets=SECRETS)
    refused = check(EXPERIMENT, configuration, SECRETS, [AGENT_1], QUEUE)
    [row] = [r for r in _missing(refused) if r.check == "permission"]
    assert row.subject == "the OAuth client's roles" and "403" in row.fix
    assert "oauth:client:view" in row.fix and "check_roles: false" in row.fix
    unchecked = check(EXPERIMENT, configuration, SECRETS, [AGENT_1], QUEUE, check_roles=False)
    assert unchecked.passed, format_table(unchecked.rows)


def test_an_agent_on_a_live_queue_is_named(org: Any) -> None:
    queues = [
        {"id": QUEUE, "name": "Chaos Queue", "members": [AGENT_1, AGENT_2]},
        {"id": SALES, "name": "Sales", "members": [AGENT_2, AGENT_3]},
    ]
    result = check(EXPERIMENT, org(queues=queues), SECRETS, [AGENT_1, AGENT_2], QUEUE)
    [row] = _missing(result)
    assert row.check == "test agent"
    assert row.subject == f"{AGENT_2} is in Sales ({SALES})"
    assert "remove it from these queues" in row.fix
    unknown = check(EXPERIMENT, org(), SECRETS, ["no-such-agent"], QUEUE)
    assert [r.fix for r in _missing(unknown)] == ["no such user: check user_ids"]


def test_unknown_and_foreign_activities(org: Any) -> None:
    configuration = org()
    typo = {**EXPERIMENT, "method": [
        action("typo", "chaosgenesys.users.actions", "set_presense", user_id=AGENT_1),
        action("other", "os.path", "exists", path="/"),
        {"type": "action", "name": "shell", "provider": {"type": "process", "path": "true"}},
    ]}
    result = check(typo, configuration, SECRETS, [AGENT_1], QUEUE)
    subjects = {r.subject: r for r in _missing(result)}
    assert "typo: chaosgenesys.users.actions.set_presense" in subjects
    assert "other: os.path.exists" in subjects
    assert "another extension" in subjects["other: os.path.exists"].fix
    noted = check(typo, configuration, SECRETS, [AGENT_1], QUEUE, unknown_activities="note")
    assert [r.subject for r in _missing(noted)] == ["typo: chaosgenesys.users.actions.set_presense"]
    assert any(r.status == "note" and r.subject.startswith("shell") for r in noted.rows)


def test_a_region_that_does_not_answer_stops_the_checks() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens
    url = f"http://127.0.0.1:{port}"
    result = check(EXPERIMENT, {"genesys_api_url": url, "genesys_login_url": url,
                                "genesys_timeout": 2}, SECRETS, [AGENT_1], QUEUE)
    [row] = result.rows[-1:]
    assert row.check == "region" and row.status == "missing" and row.subject == url
    assert "genesys_region" in row.fix
    assert not any(r.check in ("scope", "permission", "test agent") for r in result.rows)


def test_another_org_than_the_one_named_is_refused(org: Any) -> None:
    result = check(EXPERIMENT, org(), SECRETS, [AGENT_1], QUEUE,
                   organization_id="00000000-0000-4000-8000-000000000000")
    [row] = _missing(result)
    assert row.check == "organization" and "not 00000000-" in row.fix


def test_chaos_run_is_refused_before_anything_is_injected(
    org: Any, tmp_path: Path
) -> None:
    queues = [
        {"id": QUEUE, "name": "Chaos Queue", "members": [AGENT_1]},
        {"id": SALES, "name": "Sales", "members": [AGENT_1]},
    ]
    configuration = org(queues=queues)
    experiment = {
        **EXPERIMENT,
        "configuration": configuration,
        "secrets": {"genesys": SECRETS},
        "controls": [
            {"name": "chaosgenesys-verdict",
             "provider": {"type": "python", "module": "chaosgenesys.controls.verdict"}},
            {"name": "genesys-preflight",
             "provider": {"type": "python", "module": "chaosgenesys.controls.preflight",
                          "arguments": {"user_ids": [AGENT_1], "queue_id": QUEUE}}},
        ],
    }
    for activity in (*experiment["steady-state-hypothesis"]["probes"], *experiment["method"],
                     *experiment["rollbacks"]):
        activity["provider"]["secrets"] = ["genesys"]
    run = chaos_run(experiment, tmp_path, tmp_path / "runtime")
    assert run.returncode != 0
    assert run.journal["status"] == "interrupted"
    assert run.activities() == []  # nothing ran: presence never changed
    assert "Sales" in run.log and "refusing the run" in run.log
    found = run.extension("chaosgenesys-preflight")
    assert found["passed"] is False
    assert [r["check"] for r in found["rows"] if r["status"] == "missing"] == ["test agent"]
    from chaosgenesys.users.probes import get_presence

    assert get_presence(AGENT_1, configuration, SECRETS)["system_presence"] == "On Queue"


@pytest.mark.parametrize(
    ("arguments", "named"),
    [
        ({"user_ids": 42}, "user_ids"),
        ({"queue_id": "a/b"}, "queue_id"),
        ({"check_roles": "yes"}, "check_roles"),
        ({"unknown_activities": "ignore"}, "unknown_activities must be refuse or note"),
        ({"user_id": "x"}, "unknown argument"),
    ],
)
def test_bad_control_arguments_are_named_at_validate(arguments: Any, named: str) -> None:
    from chaoslib.exceptions import InvalidControl

    from chaosgenesys.controls.preflight import validate_control

    control = {"name": "p", "provider": {"type": "python",
                                         "module": "chaosgenesys.controls.preflight",
                                         "arguments": arguments}}
    with pytest.raises(InvalidControl, match=named):
        validate_control(control)
    validate_control({**control, "provider": {**control["provider"],
                                              "arguments": {"user_ids": "${agents}"}}})


def test_an_agent_outside_the_roles_divisions_is_named(org: Any) -> None:
    clients = [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET,
                "division": "another-division"}]
    result = check(EXPERIMENT, org(clients=clients), SECRETS, [AGENT_1], QUEUE)
    [row] = [r for r in _missing(result) if r.check == "test agent"]
    assert "is not one the client's roles are granted in (another-division)" in row.fix
    everywhere = [{**clients[0], "division": "*"}]
    assert check(EXPERIMENT, org(clients=everywhere), SECRETS, [AGENT_1], QUEUE).passed
