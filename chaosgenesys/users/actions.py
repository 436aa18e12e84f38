"""Actions that change a user's presence, and put it back.

``set_presence`` resolves the presence definition id by ``systemPresence`` from
``GET /api/v2/presence/definitions`` (cached per org for the life of the process) and sends
``PATCH /api/v2/users/{id}/presences/purecloud``. Before the first change it makes to a user in
this process it remembers the user's presence; ``restore_presence`` puts that presence back and
forgets it, so it is a natural rollback.
"""

import threading
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import normalise_presence, not_found, presence_name, require_id
from chaosgenesys.platform_reads import experiment_client

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = ["restore_presence", "set_presence"]

_lock = threading.Lock()
#: (API base URL, user id) -> the presence before this process first changed it.
_remembered: dict[tuple[str, str], dict[str, Any]] = {}
#: API base URL -> {normalised system presence: definition id}.
_definitions: dict[str, dict[str, str]] = {}



def _org_key(client: "GenesysClient") -> str:
    return client.settings.api_url


def _call(client: "GenesysClient", method: str, path: str, user_id: str, **kwargs: Any) -> Any:
    from chaosgenesys.platform import GenesysApiError

    try:
        return client.request(method, path, **kwargs)
    except GenesysApiError as error:
        if error.status == 404:
            raise not_found("user_id", user_id, error) from None
        raise


def _definition_ids(client: "GenesysClient") -> dict[str, str]:
    """{normalised system presence: id of its System definition}, read once per org."""
    key = _org_key(client)
    with _lock:
        cached = _definitions.get(key)
    if cached is not None:
        return cached
    body = client.get("/api/v2/presence/definitions")
    entities = body.get("entities") if isinstance(body, dict) else None
    ids: dict[str, str] = {}
    fallback: dict[str, str] = {}
    for entity in entities or []:
        if not isinstance(entity, dict) or entity.get("deactivated"):
            continue
        system = entity.get("systemPresence")
        ident = entity.get("id")
        if not isinstance(system, str) or not isinstance(ident, str):
            continue
        # Organisations may define secondary presences under a system presence: prefer the
        # System definition itself.
        target = ids if entity.get("type", "System") == "System" else fallback
        target.setdefault(normalise_presence(system), ident)
    for name, ident in fallback.items():
        ids.setdefault(name, ident)
    with _lock:
        _definitions[key] = ids
    return ids


def _current(client: "GenesysClient", user_id: str) -> dict[str, Any]:
    body = _call(client, "GET", f"/api/v2/users/{user_id}/presences/purecloud", user_id)
    body = body if isinstance(body, dict) else {}
    definition = body.get("presenceDefinition") or {}
    return {
        "system_presence": definition.get("systemPresence"),
        "presence_id": definition.get("id"),
        "message": body.get("message"),
    }


def _patch(client: "GenesysClient", user_id: str, presence_id: str) -> dict[str, Any]:
    body = _call(
        client,
        "PATCH",
        f"/api/v2/users/{user_id}/presences/purecloud",
        user_id,
        json={"presenceDefinition": {"id": presence_id}},
    )
    body = body if isinstance(body, dict) else {}
    definition = body.get("presenceDefinition") or {}
    return {
        "system_presence": definition.get("systemPresence"),
        "presence_id": definition.get("id", presence_id),
        "modified_date": body.get("modifiedDate"),
    }


def set_presence(
    user_id: str, presence: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Set the user's system presence (``"On Queue"``, ``"Available"``, ``"Break"``, ...).

    Any spelling works (``"On Queue"``, ``"OnQueue"``, ``"ON_QUEUE"``); a name that is not a
    system presence, or one the org has no active definition for, raises ``ActivityFailed``
    before anything changes. The presence the user had before the first ``set_presence`` of
    this process is remembered for ``restore_presence``. Returns
    ``{"user_id", "presence", "presence_id", "previous", "modified_date"}``.

    ```json
    {"type": "action", "name": "agent-takes-a-break",
     "provider": {"type": "python", "module": "chaosgenesys.users.actions",
                  "func": "set_presence",
                  "arguments": {"user_id": "${agent_id}", "presence": "Break"}}}
    ```
    """
    require_id("user_id", user_id)
    canonical = presence_name("presence", presence)
    client = experiment_client(configuration, secrets)
    definition_id = _definition_ids(client).get(normalise_presence(canonical))
    if definition_id is None:
        raise ActivityFailed(
            f"presence {presence!r}: the org has no active presence definition for "
            f"{canonical!r} (GET /api/v2/presence/definitions)"
        )
    previous = _current(client, user_id)
    key = (_org_key(client), user_id)
    with _lock:
        _remembered.setdefault(key, previous)
    result = _patch(client, user_id, definition_id)
    return {
        "user_id": user_id,
        "presence": result["system_presence"] or canonical,
        "presence_id": result["presence_id"],
        "previous": previous["system_presence"],
        "modified_date": result["modified_date"],
    }


def restore_presence(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Put back the presence the user had before the first ``set_presence`` of this process.

    Returns ``{"user_id", "restored": true, "presence", "presence_id"}`` and forgets the
    remembered presence; when there is nothing to restore (no ``set_presence`` for this user,
    or already restored) it changes nothing and returns ``{"user_id", "restored": false,
    "reason"}``. Use it as a rollback.

    ```json
    {"type": "action", "name": "agent-back-to-what-it-was",
     "provider": {"type": "python", "module": "chaosgenesys.users.actions",
                  "func": "restore_presence", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    require_id("user_id", user_id)
    client = experiment_client(configuration, secrets)
    key = (_org_key(client), user_id)
    with _lock:
        previous = _remembered.get(key)
    if previous is None or not previous.get("presence_id"):
        return {
            "user_id": user_id,
            "restored": False,
            "reason": "no presence remembered for this user: set_presence was not called in "
            "this process, or the presence was already restored",
        }
    result = _patch(client, user_id, previous["presence_id"])
    with _lock:
        if _remembered.get(key) is previous:
            del _remembered[key]
    return {
        "user_id": user_id,
        "restored": True,
        "presence": result["system_presence"] or previous["system_presence"],
        "presence_id": result["presence_id"],
    }
