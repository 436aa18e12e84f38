"""Before any fault against a real org: can this OAuth client run this experiment, safely?

:func:`check` reads the experiment (its activities and controls), turns them into the Genesys
Cloud endpoints they call (``chaosgenesys.activity_needs``), then into the scopes and role
permissions those need (``chaosgenesys.platform.permissions``), and checks them against the org:

1. **the region answers**: the tooling's token is obtained from the login host and
   ``GET /api/v2/tokens/me`` answers from the API host (latency reported); the organization is
   the one expected (``organization_id``), and sandbox-only activities are refused elsewhere;
2. **activities**: every activity and control of the experiment is known (an unknown
   chaosgenesys function is named; another extension's activity is noted, or refused with
   ``unknown_activities="refuse"``: its needs are its own);
3. **scopes**: the token's ``authorizedScope`` holds a scope each endpoint accepts. Genesys
   applies scopes to clients that log users in, not to client-credentials clients (their roles
   decide, SDK model ``OAuthClient``): for a client-credentials token a missing scope is named
   as a note, for any other grant it refuses the run;
4. **permissions**: the client's roles (``GET /api/v2/oauth/clients/{id}`` → ``roleDivisions``,
   ``GET /api/v2/authorization/roles/{id}`` → ``permissionPolicies``) grant what each endpoint
   needs;
5. **test agents**: each of ``user_ids`` is a member of no queue but ``queue_id``
   (``GET /api/v2/users/{id}/queues``), and in a division the client's roles are granted in
   (``GET /api/v2/users/{id}``; a role granted in ``*`` covers every division).

It returns rows ``{"check", "subject", "status": "ok"|"missing"|"note", "needed_by", "fix"}``;
the run is refused when a row is ``missing``. Nothing is changed on the org.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from chaoslib.exceptions import ActivityFailed

__all__ = ["PreflightResult", "Row", "check", "experiment_activities", "format_table"]

MAX_QUEUE_PAGES = 20
SANDBOX_ORG_NAME = "Chaos Sandbox"


@dataclass
class Row:
    """One line of the preflight's table."""

    check: str
    subject: str
    status: str
    needed_by: str = ""
    fix: str = ""


@dataclass
class PreflightResult:
    """What the preflight found; ``passed`` when no row is missing."""

    rows: list[Row] = field(default_factory=list)
    organization: dict[str, Any] = field(default_factory=dict)
    client: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return not any(row.status == "missing" for row in self.rows)

    @property
    def missing(self) -> list[Row]:
        return [row for row in self.rows if row.status == "missing"]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "organization": self.organization,
            "client": self.client,
            "rows": [asdict(row) for row in self.rows],
        }


def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _short(name: str) -> str:
    return name.removeprefix("chaosgenesys.")


def experiment_activities(experiment: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(where, activity)`` for every activity of the experiment: hypothesis probes, method,
    rollbacks (references to another activity by name are skipped: it is listed where it is
    defined)."""
    if not isinstance(experiment, dict):
        return
    hypothesis = experiment.get("steady-state-hypothesis") or {}
    parts = (
        ("hypothesis", hypothesis.get("probes") if isinstance(hypothesis, dict) else None),
        ("method", experiment.get("method")),
        ("rollbacks", experiment.get("rollbacks")),
    )
    for where, activities in parts:
        for activity in activities or ():
            if isinstance(activity, dict) and activity.get("type") in ("probe", "action"):
                yield where, activity


def _function_exists(module: str, func: str) -> bool:
    import importlib

    try:
        found = importlib.import_module(module)
    except Exception:
        return False
    return callable(getattr(found, func, None))


def _needed_endpoints(
    experiment: Any, unknown_activities: str, result: PreflightResult
) -> tuple[dict[str, set[str]], set[str]]:
    """``endpoint → {who needs it}`` for the experiment, and its sandbox-only activities; rows
    for unknown activities and controls and for other extensions' activities."""
    from chaosgenesys.activity_needs import (
        ACTIVITY_ENDPOINTS,
        CONTROL_ENDPOINTS,
        SANDBOX_ONLY,
        TOOLING_TOKEN,
    )

    needs: dict[str, set[str]] = {}
    sandbox_only: set[str] = set()

    def need(endpoints: tuple[str, ...], who: str) -> None:
        for endpoint in (TOOLING_TOKEN, *endpoints):
            needs.setdefault(endpoint, set()).add(who)

    need(CONTROL_ENDPOINTS["chaosgenesys.controls.preflight"], "controls.preflight")
    for where, activity in experiment_activities(experiment):
        provider = activity.get("provider") or {}
        name = str(activity.get("name", "?"))
        if provider.get("type") != "python":
            result.rows.append(Row(
                "activity", f"{name} ({provider.get('type')} provider)", "note", where,
                "not a chaosgenesys activity: what it needs is not checked",
            ))
            continue
        module, func = str(provider.get("module", "")), str(provider.get("func", ""))
        key = f"{module}.{func}"
        if key in ACTIVITY_ENDPOINTS:
            need(ACTIVITY_ENDPOINTS[key], _short(key))
            if key in SANDBOX_ONLY:
                sandbox_only.add(_short(key))
            continue
        if module.startswith("chaosgenesys.") or not _function_exists(module, func):
            result.rows.append(Row(
                "activity", f"{name}: {key}", "missing", where,
                "no such activity: check the module and function name "
                "(chaos discover --no-install chaosgenesys lists them)",
            ))
            continue
        result.rows.append(Row(
            "activity", f"{name}: {key}",
            "missing" if unknown_activities == "refuse" else "note", where,
            "another extension's activity: its needs are not checked (control argument "
            "unknown_activities: note lets it through)",
        ))
    controls = experiment.get("controls") if isinstance(experiment, dict) else None
    for control in controls or ():
        if not isinstance(control, dict):
            continue
        module = str((control.get("provider") or {}).get("module", ""))
        if module in CONTROL_ENDPOINTS:
            need(CONTROL_ENDPOINTS[module], _short(module))
        elif module.startswith("chaosgenesys."):
            result.rows.append(Row(
                "control", f"{control.get('name')}: {module}", "missing", "controls",
                "no such control in chaosgenesys (docs/controls.md lists them)",
            ))
    return needs, sandbox_only


def _who(names: set[str]) -> str:
    ordered = sorted(names)
    shown = ", ".join(ordered[:3])
    return shown + (f" and {len(ordered) - 3} more" if len(ordered) > 3 else "")


def _region(client: Any, result: PreflightResult) -> dict[str, Any] | None:
    """The token and ``GET /api/v2/tokens/me``: the region answers, with whom."""
    started = time.monotonic()
    try:
        info = client.get("/api/v2/tokens/me")
    except ActivityFailed as error:
        result.rows.append(Row(
            "region", client.settings.api_url, "missing", "every activity",
            f"the platform did not answer as expected: {error}. Check genesys_region (or "
            "genesys_api_url / genesys_login_url), the client id and secret, and that this "
            "machine reaches the region's login and api hosts",
        ))
        return None
    latency = (time.monotonic() - started) * 1000
    result.rows.append(Row(
        "region", client.settings.api_url, "ok", "every activity",
        f"token obtained from {client.settings.login_url}; tokens/me answered in "
        f"{latency:.0f} ms",
    ))
    return info if isinstance(info, dict) else {}


def _organization(
    info: dict[str, Any], organization_id: str, sandbox_only: set[str], result: PreflightResult
) -> None:
    org = _mapping(info.get("organization"))
    result.organization = {"id": org.get("id"), "name": org.get("name")}
    if organization_id:
        if org.get("id") == organization_id:
            result.rows.append(Row("organization", f"{org.get('name')} ({org.get('id')})", "ok",
                                   "organization_id"))
        else:
            result.rows.append(Row(
                "organization", f"{org.get('name')} ({org.get('id')})", "missing",
                "organization_id",
                f"the token is for this org, not {organization_id}: wrong credentials or "
                "region? Nothing runs against an org you did not name",
            ))
    if sandbox_only and org.get("name") != SANDBOX_ORG_NAME:
        result.rows.append(Row(
            "activity", ", ".join(sorted(sandbox_only)), "missing", "method",
            "these drive the embedded sandbox's admin API, which no real org has: inject "
            "faults with the proxy, the network, the sockets or the browser instead",
        ))


def _scopes(
    info: dict[str, Any], needs: dict[str, set[str]], result: PreflightResult
) -> None:
    from chaosgenesys.platform.permissions import endpoint_need, scope_granted

    authorized = [str(s) for s in info.get("authorizedScope") or ()]
    client = _mapping(info.get("OAuthClient"))
    grant = str(client.get("authorizedGrantType") or "")
    name = str(client.get("name") or client.get("id") or "the OAuth client")
    if not authorized:
        result.rows.append(Row(
            "scope", "(none reported)", "note", "",
            f"the token reports no scope ({grant or 'grant unknown'}): Genesys applies scopes "
            "to clients that log users in, a client-credentials client is limited by its roles",
        ))
        return
    missing: dict[str, set[str]] = {}
    for endpoint, who in needs.items():
        method, path = endpoint.split(" ", 1)
        wanted = endpoint_need(method, path).scopes
        if not scope_granted(wanted, authorized):
            missing.setdefault(wanted[-1] if len(wanted) > 1 else wanted[0], set()).update(
                f"{w} ({endpoint})" for w in who
            )
    for scope in [s for s in missing if s.endswith(":readonly")]:
        if scope.removesuffix(":readonly") in missing:  # the write scope covers its reads
            missing[scope.removesuffix(":readonly")].update(missing.pop(scope))
    # Genesys applies scopes to clients that log users in; a client-credentials client is
    # limited by its roles (SDK model OAuthClient): name what is missing, refuse only the rest.
    applies = grant.upper() != "CLIENT-CREDENTIALS"
    for scope, who in sorted(missing.items()):
        fix = f"Admin > Integrations > OAuth > {name} > Scope: add {scope}"
        if not applies:
            fix += (" (not applied to a client-credentials client: its roles decide; it "
                    "matters for a user login)")
        result.rows.append(Row("scope", scope, "missing" if applies else "note", _who(who), fix))
    if not missing:
        result.rows.append(Row("scope", f"{len(authorized)} scope(s) held", "ok",
                               f"{len(needs)} endpoint(s)"))


def _policies(client: Any, client_id: str, result: PreflightResult) -> list[dict[str, Any]]:
    """The permission policies of the OAuth client's roles; a row when they cannot be read."""
    from chaosgenesys.platform import GenesysApiError

    try:
        body = client.get(f"/api/v2/oauth/clients/{client_id}")
        grants = [item for item in (body.get("roleDivisions") or ())
                  if isinstance(item, dict) and item.get("roleId")]
        role_ids = sorted({str(item["roleId"]) for item in grants})
        result.client["divisions"] = sorted({str(item.get("divisionId")) for item in grants})
        policies: list[dict[str, Any]] = []
        roles: list[str] = []
        for role_id in role_ids:
            role = client.get(f"/api/v2/authorization/roles/{role_id}")
            roles.append(str(role.get("name") or role_id))
            policies.extend(p for p in role.get("permissionPolicies") or () if isinstance(p, dict))
    except (GenesysApiError, ActivityFailed) as error:
        result.rows.append(Row(
            "permission", "the OAuth client's roles", "missing", "controls.preflight",
            f"cannot read them ({error}): give a role of the client oauth:client:view and "
            "authorization:role:view (OAuth > Client > View, Authorization > Role > View), or "
            "declare the preflight with check_roles: false",
        ))
        return []
    result.client["roles"] = roles
    if not role_ids:
        result.rows.append(Row(
            "permission", "the OAuth client's roles", "missing", "every activity",
            "the client has no role: Admin > Integrations > OAuth > the client > Roles: add "
            "a role (docs/real-org.md)",
        ))
    return policies


def _permissions(
    client: Any, info: dict[str, Any], needs: dict[str, set[str]], result: PreflightResult
) -> None:
    from chaosgenesys.platform.permissions import endpoint_need, permissions_satisfied

    oauth = _mapping(info.get("OAuthClient"))
    client_id = str(oauth.get("id") or "")
    name = str(oauth.get("name") or client_id)
    result.client.update({"id": client_id, "name": name,
                          "grant": oauth.get("authorizedGrantType")})
    if not client_id:
        result.rows.append(Row("permission", "the OAuth client", "missing", "",
                               "tokens/me named no OAuth client"))
        return
    before = len(result.missing)
    policies = _policies(client, client_id, result)
    if len(result.missing) > before:
        return
    missing: dict[str, set[str]] = {}
    for endpoint, who in needs.items():
        method, path = endpoint.split(" ", 1)
        wanted = endpoint_need(method, path)
        if permissions_satisfied(wanted, policies):
            continue
        shown = (" and " if wanted.rule == "all" else " or ").join(wanted.permissions)
        missing.setdefault(shown, set()).update(f"{w} ({endpoint})" for w in who)
    for permission, who in sorted(missing.items()):
        ui = permission.replace(":", " > ")
        result.rows.append(Row(
            "permission", permission, "missing", _who(who),
            f"Admin > People & Permissions > Roles > a role of {name} (or a new one) > "
            f"Permissions: add {ui}; the role goes to the client under Admin > "
            f"Integrations > OAuth > {name} > Roles, with the test agents' division",
        ))
    if not missing:
        result.rows.append(Row("permission", f"{len(policies)} policy(ies) in "
                               f"{len(result.client.get('roles') or [])} role(s)", "ok",
                               f"{len(needs)} endpoint(s)"))


def _division_problem(client: Any, user: str, divisions: Any) -> str:
    """Why the client's roles do not reach the agent's division ("" when they do, or when the
    roles were not read)."""
    if not isinstance(divisions, list) or not divisions or "*" in divisions:
        return ""
    body = _mapping(client.get(f"/api/v2/users/{user}"))
    division = _mapping(body.get("division")).get("id")
    if not division or division in divisions:
        return ""
    return (f"its division {division} is not one the client's roles are granted in "
            f"({', '.join(divisions)}): Admin > Integrations > OAuth > the client > Roles: "
            "give the role that division too")


def _queues(
    client: Any, user_ids: list[str], queue_id: str, result: PreflightResult
) -> None:
    from chaosgenesys.platform import GenesysApiError

    for user in user_ids:
        others: list[str] = []
        try:
            for page in range(1, MAX_QUEUE_PAGES + 1):
                body = client.get(f"/api/v2/users/{user}/queues",
                                  params={"pageSize": 100, "pageNumber": page})
                entities = body.get("entities") or [] if isinstance(body, dict) else []
                others.extend(
                    f"{q.get('name')} ({q.get('id')})" for q in entities
                    if isinstance(q, dict) and q.get("id") != queue_id
                )
                if page >= int(body.get("pageCount") or 1):
                    break
        except (GenesysApiError, ActivityFailed) as error:
            status = getattr(error, "status", None)
            result.rows.append(Row(
                "test agent", user, "missing", "user_ids",
                "no such user: check user_ids" if status == 404
                else f"cannot read its queues ({error})",
            ))
            continue
        division = _division_problem(client, user, result.client.get("divisions"))
        if division:
            result.rows.append(Row("test agent", user, "missing", "user_ids", division))
            continue
        if others:
            result.rows.append(Row(
                "test agent", f"{user} is in {', '.join(others)}", "missing", "user_ids",
                "a test agent belongs to no live queue: remove it from these queues for the "
                "window (Admin > Contact Center > Queues > the queue > Members), or use another "
                "test agent",
            ))
        else:
            result.rows.append(Row("test agent", user, "ok", "user_ids",
                                   f"a member of no queue but {queue_id or 'none'}"))


def check(
    experiment: Any,
    configuration: Any = None,
    secrets: Any = None,
    user_ids: list[str] | None = None,
    queue_id: str = "",
    organization_id: str = "",
    check_roles: bool = True,
    unknown_activities: str = "refuse",
) -> PreflightResult:
    """Run every check (module docstring); never raises for what it finds (rows say it)."""
    from chaosgenesys.platform_reads import experiment_client

    result = PreflightResult()
    needs, sandbox_only = _needed_endpoints(experiment, unknown_activities, result)
    try:
        client = experiment_client(configuration, secrets)
    except ActivityFailed as error:
        result.rows.append(Row("region", "configuration", "missing", "every activity",
                               f"{error} (docs/configuration.md)"))
        return result
    info = _region(client, result)
    if info is None:
        return result
    _organization(info, organization_id, sandbox_only, result)
    _scopes(info, needs, result)
    if check_roles:
        _permissions(client, info, needs, result)
    else:
        result.rows.append(Row("permission", "not checked", "note", "check_roles: false"))
    if user_ids:
        _queues(client, user_ids, queue_id, result)
    else:
        result.rows.append(Row("test agent", "none named", "note", "user_ids",
                               "name the test agents so their queues are checked"))
    return result


def format_table(rows: list[Row]) -> str:
    """The rows as a text table (what the control logs): columns aligned up to 48 characters,
    nothing cut (a longer value pushes its line on)."""
    header = ("check", "status", "subject", "needed by", "how to fix")
    lines = [(r.check, r.status.upper() if r.status == "missing" else r.status, r.subject,
              r.needed_by, r.fix) for r in rows]
    widths = [min(48, max([len(h), *(len(line[i]) for line in lines)]))
              for i, h in enumerate(header[:4])]
    return "\n".join(
        "  ".join(value.ljust(width) for value, width in zip(line[:4], widths, strict=True))
        + "  " + line[4]
        for line in (header, *lines)
    )
