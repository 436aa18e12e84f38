"""The sandbox seed: OAuth clients, roles, users, queues and wrap-up codes, loaded and validated.

A seed is a YAML or JSON file, or a dict of the same shape::

    clients:
      - client_id: chaos-client
        client_secret: chaos-secret
        token_lifetime: 86400          # seconds, default 86400
        redirect_uris: [http://localhost:8080/callback]  # optional: allows browser logins
        scopes: [presence, users:readonly]   # optional: default every scope chaosgenesys needs
        roles: [Chaos Tooling]         # optional: role ids or names; default the role
                                       # "Chaos Tooling"
        division: "*"                  # optional: the division its roles are granted in
                                       # (default the sandbox's one division; "*" = all)
    roles:                             # optional: the organization's roles
      - id: 3f9a1c70-0000-4000-8000-0000000000f1   # optional: a uuid4 is generated
        name: Chaos Tooling
        permissions: [routing:queue:view, "analytics:*:*"]   # domain:entity:action
    users:
      - id: 0b6b3c5e-0000-4000-8000-000000000001   # optional: a uuid4 is generated
        name: Test Agent 1
        presence: On Queue             # any system presence, any spelling; default Offline
        email: agent1@example.com      # optional
    queues:
      - id: 7c1d2a90-0000-4000-8000-0000000000aa
        name: Chaos Queue
        members: [0b6b3c5e-0000-4000-8000-000000000001]
        wrapup_timeout: 60             # seconds of after-call work before timing out; 0 = never
        alerting_timeout: 0            # seconds before an unanswered call times out; 0 = never
    wrapup_codes:                      # optional; two defaults otherwise
      - id: 4c4d5a11-0000-4000-8000-0000000000c1
        name: Resolved
    platform:                          # optional: the reaction to a lost agent session
      session_grace_seconds: 30        # 0 = never react
      presence_renew_seconds: 60       # 0 = no presence renewal on reconnect
      renew_on_queue: false

Unknown keys, unknown member ids, duplicate ids, ids that cannot be a URL path segment (only
letters, digits, ``-`` and ``_``) and bad presence names raise :class:`SeedError` naming where
the problem is (``users[1].presense``). A seed without clients gets the default
client ``chaos-client`` / ``chaos-secret``. A client without ``scopes`` gets every scope
chaosgenesys needs, one without ``roles`` the role named :data:`DEFAULT_ROLE_NAME`: the seed's if
it defines one, else a built-in one holding every permission chaosgenesys needs
(``chaosgenesys.platform.permissions``). Every sandbox also has the built-in public
client ``chaosgenesys-desktop`` of its reference web desktop (``tokens.py``,
``docs/reference-desktop.md``): a seed may not name a client so.

Why one module of about 590 lines: one concern, reading a seed and refusing a bad one by its
field; the dataclasses, the defaults and the checks of clients, roles, users, queues and
wrap-up codes refer to one another (a client's roles, a queue's members).
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from chaosgenesys.platform.permissions import (
    DEFAULT_ROLE_NAME,
    minimal_permissions,
    minimal_scopes,
    parse_permission,
)
from chaosgenesys.sandbox.presence import find_presence
from chaosgenesys.sandbox.sessions import PlatformSettings

__all__ = [
    "DEFAULT_CLIENT_ID",
    "DEFAULT_CLIENT_SECRET",
    "DEFAULT_REDIRECT_URI",
    "DEFAULT_ROLE_ID",
    "DEFAULT_ROLE_NAME",
    "DEFAULT_SCOPES",
    "DEFAULT_SEED",
    "DESKTOP_CLIENT_ID",
    "ClientSeed",
    "QueueSeed",
    "RoleSeed",
    "Seed",
    "SeedError",
    "SeedSource",
    "UserSeed",
    "WrapupCodeSeed",
    "load_seed",
    "parse_permissions",
    "parse_scopes",
]

DEFAULT_CLIENT_ID = "chaos-client"
DEFAULT_CLIENT_SECRET = "chaos-secret"
#: Where browser logins of the default client may return (the official clients' test scripts).
DEFAULT_REDIRECT_URI = "http://localhost:8080/callback"
#: The built-in public client of the sandbox's reference web desktop (``/desktop/``): present
#: in every sandbox whatever the seed, so a seed may not use the name (``tokens.py``).
DESKTOP_CLIENT_ID = "chaosgenesys-desktop"
#: Scopes of a client whose seed lists none: the fewest that cover every endpoint chaosgenesys
#: calls (``chaosgenesys.platform.permissions.minimal_scopes``).
DEFAULT_SCOPES: tuple[str, ...] = minimal_scopes()
#: The id of the built-in role :data:`DEFAULT_ROLE_NAME` (when the seed defines no role so named).
DEFAULT_ROLE_ID = "3f9a1c70-0000-4000-8000-0000000000f1"

#: What ``Sandbox(seed=None)`` runs with; the same as ``examples/seed.yaml``.
DEFAULT_SEED: dict[str, Any] = {
    "clients": [
        {
            "client_id": DEFAULT_CLIENT_ID,
            "client_secret": DEFAULT_CLIENT_SECRET,
            "token_lifetime": 86400,
            "redirect_uris": [DEFAULT_REDIRECT_URI],
        }
    ],
    "users": [
        {"id": "0b6b3c5e-0000-4000-8000-000000000001", "name": "Test Agent 1",
         "presence": "On Queue"},
        {"id": "0b6b3c5e-0000-4000-8000-000000000002", "name": "Test Agent 2",
         "presence": "On Queue"},
    ],
    "queues": [
        {
            "id": "7c1d2a90-0000-4000-8000-0000000000aa",
            "name": "Chaos Queue",
            "members": [
                "0b6b3c5e-0000-4000-8000-000000000001",
                "0b6b3c5e-0000-4000-8000-000000000002",
            ],
        }
    ],
}

DEFAULT_WRAPUP_CODES: tuple[tuple[str, str], ...] = (
    ("4c4d5a11-0000-4000-8000-0000000000c1", "Resolved"),
    ("4c4d5a11-0000-4000-8000-0000000000c2", "Follow-up"),
)


class SeedError(ValueError):
    """The seed is invalid; the message says where and why."""


@dataclass(frozen=True)
class ClientSeed:
    """An OAuth client: client credentials grant, and with ``redirect_uris`` also the browser
    logins of ``browser_login.py`` (implicit grant, authorization code + PKCE)."""

    client_id: str
    client_secret: str = field(repr=False)
    token_lifetime: int = 86400
    redirect_uris: tuple[str, ...] = ()
    scopes: tuple[str, ...] = DEFAULT_SCOPES
    roles: tuple[str, ...] = (DEFAULT_ROLE_ID,)
    #: The division the client's roles are granted in ("": the sandbox's one division).
    division: str = ""


@dataclass(frozen=True)
class RoleSeed:
    """An organization role; ``permissions`` are ``domain:entity:action`` strings (``*`` allowed
    for the entity and the action)."""

    id: str
    name: str
    permissions: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserSeed:
    """A user; ``presence`` is the REST spelling of a system presence (``On Queue``)."""

    id: str
    name: str
    presence: str = "Offline"
    email: str | None = None


@dataclass(frozen=True)
class QueueSeed:
    """A queue and its members (user ids, all joined)."""

    id: str
    name: str
    members: tuple[str, ...] = ()
    wrapup_timeout: float = 60.0
    alerting_timeout: float = 0.0


@dataclass(frozen=True)
class WrapupCodeSeed:
    """A wrap-up code."""

    id: str
    name: str


@dataclass(frozen=True)
class Seed:
    """A validated seed; ``platform`` is ``None`` when the seed has no ``platform`` section."""

    clients: tuple[ClientSeed, ...]
    users: tuple[UserSeed, ...]
    queues: tuple[QueueSeed, ...]
    wrapup_codes: tuple[WrapupCodeSeed, ...]
    platform: PlatformSettings | None = None
    roles: tuple[RoleSeed, ...] = ()


SeedSource = Seed | Mapping[str, Any] | str | os.PathLike[str]

_TOP_KEYS = ("clients", "roles", "users", "queues", "wrapup_codes", "platform")
_PLATFORM_KEYS = ("session_grace_seconds", "presence_renew_seconds", "renew_on_queue")
_CLIENT_KEYS = (
    "client_id", "client_secret", "token_lifetime", "redirect_uris", "scopes", "roles",
    "division",
)
_ROLE_KEYS = ("id", "name", "permissions")
_USER_KEYS = ("id", "name", "presence", "email")
_QUEUE_KEYS = ("id", "name", "members", "wrapup_timeout", "alerting_timeout")
_CODE_KEYS = ("id", "name")


def load_seed(source: SeedSource | None = None) -> Seed:
    """Load and validate a seed from a file path, a dict, or ``None`` (:data:`DEFAULT_SEED`)."""
    if source is None:
        return _parse(DEFAULT_SEED)
    if isinstance(source, Seed):
        return source
    if isinstance(source, Mapping):
        return _parse(source)
    path = Path(os.fspath(source))
    if not path.is_file():
        raise SeedError(f"seed file not found: {str(path)!r}")
    text = path.read_text(encoding="utf-8")
    try:
        data: Any = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise SeedError(f"seed file {str(path)!r} is not valid YAML/JSON: {exc}") from exc
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise SeedError(f"seed file {str(path)!r} must hold a mapping, not {type(data).__name__}")
    return _parse(data)


def _check_keys(data: Mapping[str, Any], allowed: Sequence[str], where: str) -> None:
    for key in data:
        if key not in allowed:
            location = f"{where}.{key}" if where else str(key)
            raise SeedError(
                f"seed: unknown key {location!r} (allowed here: {', '.join(allowed)})"
            )


def _list(data: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    value = data.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SeedError(f"seed: {key!r} must be a list, not {type(value).__name__}")
    for index, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise SeedError(f"seed: {key}[{index}] must be a mapping, not {type(item).__name__}")
    return value


def _string(item: Mapping[str, Any], key: str, where: str, *, required: bool) -> str | None:
    value = item.get(key)
    if value is None:
        if required:
            raise SeedError(f"seed: {where}.{key} is required")
        return None
    if not isinstance(value, str) or not value.strip():
        raise SeedError(f"seed: {where}.{key} must be a non-empty string, not {value!r}")
    return value.strip()


#: An id the sandbox serves under: it must be one URL path segment (``/api/v2/users/{id}``) and
#: one dot-separated part of a topic name (``v2.users.{id}.presence``).
_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]+")


def _id(item: Mapping[str, Any], where: str) -> str:
    """The item's optional ``id`` (a uuid4 when absent); refused unless it is a path segment."""
    value = _string(item, "id", where, required=False)
    if value is None:
        return str(uuid.uuid4())
    if not _ID_PATTERN.fullmatch(value):
        raise SeedError(
            f"seed: {where}.id {value!r} cannot be a URL path segment or a topic part: use "
            "letters, digits, '-' and '_' (Genesys ids are UUIDs)"
        )
    return value


def _number(item: Mapping[str, Any], key: str, where: str, default: float) -> float:
    value = item.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise SeedError(f"seed: {where}.{key} must be a number >= 0, not {value!r}")
    return float(value)


def _parse(data: Mapping[str, Any]) -> Seed:
    _check_keys(data, _TOP_KEYS, "")
    roles = _parse_roles(_list(data, "roles"))
    clients = _parse_clients(_list(data, "clients"), roles)
    roles = _with_default_role(roles, clients)
    users = _parse_users(_list(data, "users"))
    queues = _parse_queues(_list(data, "queues"), {user.id for user in users})
    codes = _parse_codes(data)
    platform = _parse_platform(data.get("platform"))
    return Seed(
        clients=clients,
        users=users,
        queues=queues,
        wrapup_codes=codes,
        platform=platform,
        roles=roles,
    )


def _parse_platform(item: Any) -> PlatformSettings | None:
    if item is None:
        return None
    if not isinstance(item, Mapping):
        raise SeedError(f"seed: 'platform' must be a mapping, not {type(item).__name__}")
    _check_keys(item, _PLATFORM_KEYS, "platform")
    defaults = PlatformSettings()
    renew_on_queue = item.get("renew_on_queue", defaults.renew_on_queue)
    if not isinstance(renew_on_queue, bool):
        raise SeedError(
            f"seed: platform.renew_on_queue must be true or false, not {renew_on_queue!r}"
        )
    return PlatformSettings(
        session_grace_seconds=_number(
            item, "session_grace_seconds", "platform", defaults.session_grace_seconds
        ),
        presence_renew_seconds=_number(
            item, "presence_renew_seconds", "platform", defaults.presence_renew_seconds
        ),
        renew_on_queue=renew_on_queue,
    )


def _parse_clients(
    items: list[Mapping[str, Any]], roles: tuple[RoleSeed, ...]
) -> tuple[ClientSeed, ...]:
    clients: list[ClientSeed] = []
    default_role = _default_role_id(roles)
    for index, item in enumerate(items):
        where = f"clients[{index}]"
        _check_keys(item, _CLIENT_KEYS, where)
        client_id = _string(item, "client_id", where, required=True)
        secret = _string(item, "client_secret", where, required=True)
        lifetime = item.get("token_lifetime", 86400)
        if isinstance(lifetime, bool) or not isinstance(lifetime, int) or lifetime < 1:
            raise SeedError(
                f"seed: {where}.token_lifetime must be a whole number of seconds >= 1, "
                f"not {lifetime!r}"
            )
        redirect_uris = item.get("redirect_uris", [])
        if not isinstance(redirect_uris, list) or not all(
            isinstance(uri, str) and uri.startswith(("http://", "https://"))
            for uri in redirect_uris
        ):
            raise SeedError(
                f"seed: {where}.redirect_uris must be a list of http(s) URLs, "
                f"not {redirect_uris!r}"
            )
        assert client_id is not None and secret is not None
        if any(client.client_id == client_id for client in clients):
            raise SeedError(f"seed: {where}.client_id {client_id!r} is a duplicate")
        if client_id == DESKTOP_CLIENT_ID:
            raise SeedError(
                f"seed: {where}.client_id {client_id!r} is the sandbox's built-in desktop "
                "client (present in every sandbox): choose another name"
            )
        scopes = _scopes(item, where)
        role_ids = _client_roles(item, where, roles, default_role)
        division = item.get("division", "")
        if not isinstance(division, str) or not (
            division in ("", "*") or _ID_PATTERN.fullmatch(division)
        ):
            raise SeedError(f"seed: {where}.division must be a division id or '*', "
                            f"not {division!r}")
        clients.append(
            ClientSeed(client_id, secret, lifetime, tuple(redirect_uris), scopes, role_ids,
                       division)
        )
    if not clients:
        clients.append(
            ClientSeed(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET,
                       redirect_uris=(DEFAULT_REDIRECT_URI,), roles=(default_role,))
        )
    return tuple(clients)


#: A Genesys scope name: ``presence``, ``presence:readonly``, ``user-basic-info``.
_SCOPE_PATTERN = re.compile(r"[a-z][a-z0-9-]*(:readonly)?")


def _scopes(item: Mapping[str, Any], where: str) -> tuple[str, ...]:
    if "scopes" not in item:
        return DEFAULT_SCOPES
    return parse_scopes(item["scopes"], f"{where}.scopes")


def parse_scopes(value: Any, where: str) -> tuple[str, ...]:
    """``value`` as a tuple of scope names (duplicates dropped); else :class:`SeedError` naming
    ``where`` (``clients[0].scopes``)."""
    if not isinstance(value, list):
        raise SeedError(f"seed: {where} must be a list of scope names, not {value!r}")
    for position, scope in enumerate(value):
        if not isinstance(scope, str) or not _SCOPE_PATTERN.fullmatch(scope):
            raise SeedError(
                f"seed: {where}[{position}] {scope!r} is not a scope name (lower case "
                "letters, digits and '-', optionally ':readonly': presence, routing:readonly)"
            )
    return tuple(dict.fromkeys(value))


def _client_roles(
    item: Mapping[str, Any], where: str, roles: tuple[RoleSeed, ...], default_role: str
) -> tuple[str, ...]:
    """The client's role ids, from ids or names of the seed's roles."""
    if "roles" not in item:
        return (default_role,)
    value = item["roles"]
    if not isinstance(value, list):
        raise SeedError(f"seed: {where}.roles must be a list of role ids or names, not {value!r}")
    found: list[str] = []
    for position, ref in enumerate(value):
        match = next(
            (role for role in roles if isinstance(ref, str) and ref in (role.id, role.name)),
            None,
        )
        if match is None and ref in (DEFAULT_ROLE_ID, DEFAULT_ROLE_NAME):
            found.append(default_role)
            continue
        if match is None:
            known = ", ".join(role.name for role in roles) or "none"
            raise SeedError(
                f"seed: {where}.roles[{position}]: unknown role {ref!r} (the seed's roles: "
                f"{known}; also {DEFAULT_ROLE_NAME!r})"
            )
        found.append(match.id)
    return tuple(dict.fromkeys(found))


def _default_role_id(roles: tuple[RoleSeed, ...]) -> str:
    """The id of the role named :data:`DEFAULT_ROLE_NAME`: the seed's, else the built-in one."""
    for role in roles:
        if role.name == DEFAULT_ROLE_NAME:
            return role.id
    return DEFAULT_ROLE_ID


def _with_default_role(
    roles: tuple[RoleSeed, ...], clients: tuple[ClientSeed, ...]
) -> tuple[RoleSeed, ...]:
    """``roles`` plus the built-in default role when a client holds it."""
    if any(role.id == DEFAULT_ROLE_ID for role in roles):
        return roles
    if not any(DEFAULT_ROLE_ID in client.roles for client in clients):
        return roles
    return (*roles, RoleSeed(DEFAULT_ROLE_ID, DEFAULT_ROLE_NAME, minimal_permissions()))


def _parse_roles(items: list[Mapping[str, Any]]) -> tuple[RoleSeed, ...]:
    roles: list[RoleSeed] = []
    for index, item in enumerate(items):
        where = f"roles[{index}]"
        _check_keys(item, _ROLE_KEYS, where)
        role_id = _id(item, where)
        name = _string(item, "name", where, required=True)
        assert name is not None
        permissions = parse_permissions(item.get("permissions", []), f"{where}.permissions")
        if any(role.id == role_id for role in roles):
            raise SeedError(f"seed: {where}.id {role_id!r} is a duplicate")
        if any(role.name == name for role in roles):
            raise SeedError(f"seed: {where}.name {name!r} is a duplicate")
        if role_id == DEFAULT_ROLE_ID and name != DEFAULT_ROLE_NAME:
            raise SeedError(
                f"seed: {where}.id {role_id!r} is the built-in role {DEFAULT_ROLE_NAME!r}'s: "
                "choose another id"
            )
        roles.append(RoleSeed(role_id, name, permissions))
    return tuple(roles)


def parse_permissions(value: Any, where: str) -> tuple[str, ...]:
    """``value`` as a tuple of ``domain:entity:action`` strings (duplicates dropped); else
    :class:`SeedError` naming ``where`` (``roles[0].permissions``)."""
    if not isinstance(value, list):
        raise SeedError(
            f"seed: {where} must be a list of 'domain:entity:action' strings, not {value!r}"
        )
    for position, permission in enumerate(value):
        _check_permission(permission, f"{where}[{position}]")
    return tuple(dict.fromkeys(value))


#: One part of a permission: a domain (``routing``), entity (``queueMember``) or action name.
_PERMISSION_PART = re.compile(r"[A-Za-z][A-Za-z0-9_-]*")


def _check_permission(permission: Any, where: str) -> None:
    problem = f"seed: {where} {permission!r} is not a permission 'domain:entity:action'"
    if not isinstance(permission, str):
        raise SeedError(problem)
    try:
        domain, entity, action = parse_permission(permission)
    except ValueError:
        raise SeedError(f"{problem} (e.g. routing:queue:view)") from None
    if not _PERMISSION_PART.fullmatch(domain):
        raise SeedError(f"{problem}: the domain is a name, without wildcard")
    for part in (entity, action):
        if part != "*" and not _PERMISSION_PART.fullmatch(part):
            raise SeedError(f"{problem}: the entity and the action are names or '*'")


def _parse_users(items: list[Mapping[str, Any]]) -> tuple[UserSeed, ...]:
    users: list[UserSeed] = []
    seen: set[str] = set()
    for index, item in enumerate(items):
        where = f"users[{index}]"
        _check_keys(item, _USER_KEYS, where)
        user_id = _id(item, where)
        name = _string(item, "name", where, required=True)
        presence_name = _string(item, "presence", where, required=False) or "Offline"
        definition = find_presence(presence_name)
        if definition is None:
            raise SeedError(
                f"seed: {where}.presence {presence_name!r} is not a system presence "
                "(Available, Away, Busy, Offline, Idle, On Queue, Meal, Training, Meeting, Break)"
            )
        email = _string(item, "email", where, required=False)
        if user_id in seen:
            raise SeedError(f"seed: {where}.id {user_id!r} is a duplicate")
        seen.add(user_id)
        assert name is not None
        users.append(UserSeed(user_id, name, definition.name, email))
    return tuple(users)


def _parse_queues(
    items: list[Mapping[str, Any]], user_ids: set[str]
) -> tuple[QueueSeed, ...]:
    queues: list[QueueSeed] = []
    for index, item in enumerate(items):
        where = f"queues[{index}]"
        _check_keys(item, _QUEUE_KEYS, where)
        queue_id = _id(item, where)
        name = _string(item, "name", where, required=True)
        members = item.get("members") or []
        if not isinstance(members, list):
            raise SeedError(f"seed: {where}.members must be a list of user ids")
        for position, member in enumerate(members):
            if member not in user_ids:
                raise SeedError(
                    f"seed: {where}.members[{position}]: unknown user id {member!r}"
                )
        if len(set(members)) != len(members):
            raise SeedError(f"seed: {where}.members lists a user twice")
        if any(queue.id == queue_id for queue in queues):
            raise SeedError(f"seed: {where}.id {queue_id!r} is a duplicate")
        assert name is not None
        queues.append(
            QueueSeed(
                queue_id,
                name,
                tuple(members),
                _number(item, "wrapup_timeout", where, 60.0),
                _number(item, "alerting_timeout", where, 0.0),
            )
        )
    return tuple(queues)


def _parse_codes(data: Mapping[str, Any]) -> tuple[WrapupCodeSeed, ...]:
    if "wrapup_codes" not in data:
        return tuple(WrapupCodeSeed(code_id, name) for code_id, name in DEFAULT_WRAPUP_CODES)
    codes: list[WrapupCodeSeed] = []
    for index, item in enumerate(_list(data, "wrapup_codes")):
        where = f"wrapup_codes[{index}]"
        _check_keys(item, _CODE_KEYS, where)
        code_id = _id(item, where)
        name = _string(item, "name", where, required=True)
        if any(code.id == code_id for code in codes):
            raise SeedError(f"seed: {where}.id {code_id!r} is a duplicate")
        assert name is not None
        codes.append(WrapupCodeSeed(code_id, name))
    return tuple(codes)
