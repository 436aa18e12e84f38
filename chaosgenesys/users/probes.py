"""Probes that read users, presence and routing status from the Genesys Cloud API.

The API is the source of truth, read from outside the agent desktop: a hung desktop cannot
report itself healthy. Presence is ``presence.presenceDefinition.systemPresence`` (there is no
``statusId`` on a user); routing status comes from ``/api/v2/users/{id}/routingstatus``.

Every probe takes ``configuration`` and ``secrets`` last (see ``docs/activities.md``), checks
its arguments before any request and raises ``ActivityFailed`` naming the argument and value
when they are wrong, or naming the user when the platform does not know it.
"""

import functools
import time
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import (
    normalise_presence,
    presence_names,
    require_id,
    require_ids,
    require_number,
    routing_status_names,
)
from chaosgenesys.platform_reads import experiment_client, get_or_not_found

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = [
    "agents_state",
    "get_presence",
    "get_routing_status",
    "get_user",
    "presence_and_routing_agree",
    "presence_is",
    "routing_status_is",
    "wait_for_presence",
]

#: Bulk user reads ask for at most this many ids per request (the API's page size cap is 100;
#: 50 keeps the query string short).
BULK_PAGE = 50
#: ``agents_state`` refuses more ids than this (10 requests, well under 300 requests/minute).
MAX_AGENTS = 500
#: ``wait_for_presence`` never waits longer than this, whatever ``timeout`` says.
MAX_WAIT = 3600.0
#: Poll interval cap and growth factor of ``wait_for_presence``.
MAX_INTERVAL = 5.0
BACKOFF = 1.5


# -- shared helpers (private: not activities) ---------------------------------------------------



def _presence_of(user_id: str, presence: Any) -> dict[str, Any]:
    """A UserPresence (or the ``presence`` expand of a user) -> the shape probes return."""
    presence = presence if isinstance(presence, dict) else {}
    definition = presence.get("presenceDefinition") or {}
    return {
        "user_id": user_id,
        "system_presence": definition.get("systemPresence"),
        "presence_id": definition.get("id"),
        "modified_date": presence.get("modifiedDate"),
        "message": presence.get("message"),
    }


def _routing_of(user_id: str, routing: Any) -> dict[str, Any]:
    routing = routing if isinstance(routing, dict) else {}
    return {
        "user_id": user_id,
        "status": routing.get("status"),
        "start_time": routing.get("startTime"),
    }


def _read_presence(client: "GenesysClient", user_id: str) -> dict[str, Any]:
    body = get_or_not_found(
        client, f"/api/v2/users/{user_id}/presences/purecloud", "user_id", user_id
    )
    return _presence_of(user_id, body)


def _read_routing_status(client: "GenesysClient", user_id: str) -> dict[str, Any]:
    body = get_or_not_found(client, f"/api/v2/users/{user_id}/routingstatus", "user_id", user_id)
    routing = _routing_of(user_id, body)
    if routing["status"] in (None, "OFF_QUEUE"):
        # The real API answers 200 OFF_QUEUE for a user it does not know: make sure this one
        # exists before reporting it off queue.
        get_or_not_found(client, f"/api/v2/users/{user_id}", "user_id", user_id)
    return routing


def _is_on_queue(system_presence: Any) -> bool:
    return isinstance(system_presence, str) and normalise_presence(system_presence) == "onqueue"


# -- probes -------------------------------------------------------------------------------------


def get_user(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The user as the API returns it, with presence, routing status and conversation summary.

    ``GET /api/v2/users/{user_id}?expand=presence,routingStatus,conversationSummary``. Read
    presence from ``presence.presenceDefinition.systemPresence`` and routing status from
    ``routingStatus.status``. An unknown user raises ``ActivityFailed`` naming the id.

    ```json
    {"type": "probe", "name": "read-agent",
     "tolerance": {"type": "jsonpath", "path": "$.state", "expect": "active"},
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "get_user", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    require_id("user_id", user_id)
    client = experiment_client(configuration, secrets)
    body = get_or_not_found(
        client,
        f"/api/v2/users/{user_id}",
        "user_id",
        user_id,
        params={"expand": "presence,routingStatus,conversationSummary"},
    )
    if not isinstance(body, dict):
        raise ActivityFailed(f"user {user_id!r}: the API answered no user body")
    return body


def get_presence(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The user's Genesys Cloud presence.

    ``GET /api/v2/users/{user_id}/presences/purecloud`` shaped as
    ``{"user_id", "system_presence", "presence_id", "modified_date", "message"}``, where
    ``system_presence`` is the REST spelling (``"On Queue"``, ``"Available"``, ...).

    ```json
    {"type": "probe", "name": "agent-presence",
     "tolerance": {"type": "jsonpath", "path": "$.system_presence", "expect": "On Queue"},
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "get_presence", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    require_id("user_id", user_id)
    return _read_presence(experiment_client(configuration, secrets), user_id)


def get_routing_status(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """The user's routing status: ``{"user_id", "status", "start_time"}``.

    ``status`` is one of ``OFF_QUEUE``, ``IDLE``, ``INTERACTING``, ``NOT_RESPONDING``,
    ``COMMUNICATING``. The API answers ``OFF_QUEUE`` even for users it does not know, so an
    ``OFF_QUEUE`` answer is confirmed with a read of the user: an unknown user raises
    ``ActivityFailed`` naming the id instead of looking off queue.

    ```json
    {"type": "probe", "name": "agent-routing-status",
     "tolerance": {"type": "jsonpath", "path": "$.status", "expect": "IDLE"},
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "get_routing_status", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    require_id("user_id", user_id)
    return _read_routing_status(experiment_client(configuration, secrets), user_id)


def presence_is(
    user_id: str, expected: str, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the user's system presence is ``expected`` (one presence or a list of them).

    Spellings are equivalent: ``"On Queue"``, ``"OnQueue"`` and ``"ON_QUEUE"``. A value that is
    not a system presence (Available, Away, Busy, Offline, Idle, On Queue, Meal, Training,
    Meeting, Break) raises ``ActivityFailed`` naming it. A list, or a comma-separated string,
    matches any of its presences.

    ```json
    {"type": "probe", "name": "agent-is-on-queue", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "presence_is",
                  "arguments": {"user_id": "${agent_id}", "expected": "On Queue"}}}
    ```
    """
    require_id("user_id", user_id)
    wanted = {normalise_presence(name) for name in presence_names("expected", expected)}
    current = _read_presence(experiment_client(configuration, secrets), user_id)["system_presence"]
    return isinstance(current, str) and normalise_presence(current) in wanted


def routing_status_is(
    user_id: str, expected: str, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the user's routing status is ``expected`` (one status or a list of them).

    Statuses: ``OFF_QUEUE``, ``IDLE``, ``INTERACTING``, ``NOT_RESPONDING``, ``COMMUNICATING``
    (case, spaces and underscores do not matter). Anything else raises ``ActivityFailed``.

    ```json
    {"type": "probe", "name": "agent-routable", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "routing_status_is",
                  "arguments": {"user_id": "${agent_id}", "expected": ["IDLE", "INTERACTING"]}}}
    ```
    """
    require_id("user_id", user_id)
    wanted = set(routing_status_names("expected", expected))
    status = _read_routing_status(experiment_client(configuration, secrets), user_id)["status"]
    return isinstance(status, str) and status in wanted


def wait_for_presence(
    user_id: str,
    expected: str,
    timeout: float = 30.0,
    interval: float = 1.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> bool:
    """Poll until the user's presence is ``expected``; ``true`` if it got there in time.

    Reads at once, then every ``interval`` seconds, the interval growing by half up to 5 s, until
    ``timeout`` seconds have passed (at most 3600). A presence that never matches returns
    ``false``; API errors (after the client's own retries) still raise ``ActivityFailed``.
    ``expected`` is one presence or a list, as for ``presence_is``.

    ```json
    {"type": "probe", "name": "agent-back-on-queue-within-30s", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "wait_for_presence",
                  "arguments": {"user_id": "${agent_id}", "expected": "On Queue",
                                "timeout": 30, "interval": 1}}}
    ```
    """
    require_id("user_id", user_id)
    wanted = {normalise_presence(name) for name in presence_names("expected", expected)}
    limit = require_number("timeout", timeout, minimum=0.0, maximum=MAX_WAIT)
    pause = require_number("interval", interval, minimum=0.0, exclusive_minimum=True)
    from chaosgenesys.progress import Progress

    client = experiment_client(configuration, secrets)
    deadline = time.monotonic() + limit
    progress = Progress(f"waiting for {user_id} to be {expected}", total=limit)
    while True:
        current = _read_presence(client, user_id)["system_presence"]
        if isinstance(current, str) and normalise_presence(current) in wanted:
            return True
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        progress.sleep(min(pause, left), functools.partial(str, f"presence {current}"))
        pause = min(pause * BACKOFF, max(MAX_INTERVAL, pause))


def presence_and_routing_agree(
    user_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether presence and routing status tell the same story.

    On Queue must go with a routing status other than ``OFF_QUEUE``, and any other presence
    with ``OFF_QUEUE``. A disagreement (supervisors see the agent unavailable while it is on
    queue, or the reverse) is the synchronisation bug the guide warns about. One read:
    ``GET /api/v2/users/{user_id}?expand=presence,routingStatus``.

    ```json
    {"type": "probe", "name": "presence-and-routing-agree", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "presence_and_routing_agree", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    require_id("user_id", user_id)
    client = experiment_client(configuration, secrets)
    body = get_or_not_found(
        client,
        f"/api/v2/users/{user_id}",
        "user_id",
        user_id,
        params={"expand": "presence,routingStatus"},
    )
    body = body if isinstance(body, dict) else {}
    presence = _presence_of(user_id, body.get("presence"))
    if presence["system_presence"] is None:  # expands are best effort
        presence = _read_presence(client, user_id)
    routing = _routing_of(user_id, body.get("routingStatus"))
    if routing["status"] is None:
        routing = _read_routing_status(client, user_id)
    on_queue = _is_on_queue(presence["system_presence"])
    off_queue = routing["status"] == "OFF_QUEUE"
    return bool(on_queue != off_queue)


def agents_state(
    user_ids: list[str], configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Presence and routing status of many agents, read in bulk (50 ids per request).

    ``GET /api/v2/users?id=a,b,...&expand=presence,routingStatus&pageSize=50``: 500 agents take
    10 requests. Returns one entry per requested id, in order, duplicates removed::

        {"agents": [{"user_id", "name", "presence", "routing_status", "found"}, ...],
         "count": 2, "on_queue": 2, "off_queue": 0, "not_found": 0}

    ``on_queue`` counts agents whose presence is On Queue, ``off_queue`` the other agents
    found; an unknown id gets ``"found": false`` and ``presence``/``routing_status`` null.
    At most 500 ids.

    ```json
    {"type": "probe", "name": "both-agents-on-queue",
     "tolerance": {"type": "jsonpath", "path": "$.on_queue", "expect": 2},
     "provider": {"type": "python", "module": "chaosgenesys.users.probes",
                  "func": "agents_state",
                  "arguments": {"user_ids": ["${agent_1}", "${agent_2}"]}}}
    ```
    """
    ids = require_ids("user_ids", user_ids, max_count=MAX_AGENTS)
    client = experiment_client(configuration, secrets)
    found: dict[str, dict[str, Any]] = {}
    for start in range(0, len(ids), BULK_PAGE):
        chunk = ids[start : start + BULK_PAGE]
        body = client.get(
            "/api/v2/users",
            params={
                "id": ",".join(chunk),
                "expand": "presence,routingStatus",
                "pageSize": BULK_PAGE,
                "pageNumber": 1,
            },
        )
        entities = body.get("entities") if isinstance(body, dict) else None
        for user in entities or []:
            if isinstance(user, dict) and user.get("id") in chunk:
                found[user["id"]] = user
    agents: list[dict[str, Any]] = []
    on_queue = off_queue = missing = 0
    for user_id in ids:
        user = found.get(user_id)
        if user is None:
            missing += 1
            agents.append(
                {
                    "user_id": user_id,
                    "name": None,
                    "presence": None,
                    "routing_status": None,
                    "found": False,
                }
            )
            continue
        presence = _presence_of(user_id, user.get("presence"))["system_presence"]
        routing = _routing_of(user_id, user.get("routingStatus"))["status"]
        if _is_on_queue(presence):
            on_queue += 1
        else:
            off_queue += 1
        agents.append(
            {
                "user_id": user_id,
                "name": user.get("name"),
                "presence": presence,
                "routing_status": routing,
                "found": True,
            }
        )
    return {
        "agents": agents,
        "count": len(ids),
        "on_queue": on_queue,
        "off_queue": off_queue,
        "not_found": missing,
    }
