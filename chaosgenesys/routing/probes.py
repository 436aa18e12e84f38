"""Probes that read routing queues: members, live observations, isolation.

The guide's first trap is uncontrolled production testing: faults belong on a dedicated
"Chaos Queue" of test agents with no customer traffic. ``queue_is_isolated`` checks exactly
that, and ``chaosgenesys.controls.safeguard`` refuses to run an experiment without it.
"""

from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_id, require_ids
from chaosgenesys.platform_reads import experiment_client, get_or_not_found

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = ["queue_is_isolated", "queue_members", "queue_observations"]

PAGE_SIZE = 100
#: Pages ``queue_members`` follows at most (10,000 members).
MAX_PAGES = 100
#: The observation metrics ``queue_observations`` asks for.
METRICS: tuple[str, ...] = (
    "oWaiting",
    "oInteracting",
    "oAlerting",
    "oMemberUsers",
    "oActiveUsers",
    "oOnQueueUsers",
    "oOffQueueUsers",
    "oUserRoutingStatuses",
    "oUserPresences",
)
#: Customer-conversation metrics that must all be 0 for a queue to be isolated.
TRAFFIC_METRICS: tuple[str, ...] = ("oWaiting", "oInteracting", "oAlerting")



def _mapping(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _members(client: "GenesysClient", queue_id: str) -> list[dict[str, Any]]:
    members: list[dict[str, Any]] = []
    for page in range(1, MAX_PAGES + 1):
        body = get_or_not_found(
            client,
            f"/api/v2/routing/queues/{queue_id}/members",
            "queue_id",
            queue_id,
            params={"pageSize": PAGE_SIZE, "pageNumber": page},
        )
        body = body if isinstance(body, dict) else {}
        entities = [e for e in body.get("entities") or [] if isinstance(e, dict)]
        for entity in entities:
            user = _mapping(entity.get("user"))
            routing = _mapping(entity.get("routingStatus"))
            members.append(
                {
                    "user_id": entity.get("id") or user.get("id"),
                    "name": entity.get("name") or user.get("name"),
                    "routing_status": routing.get("status"),
                    "joined": entity.get("joined"),
                }
            )
        page_count = body.get("pageCount")
        if not entities:
            return members
        if isinstance(page_count, int) and not isinstance(page_count, bool):
            if page >= page_count:
                return members
        elif not body.get("nextUri"):
            return members
    raise ActivityFailed(
        f"queue {queue_id!r} has more than {MAX_PAGES * PAGE_SIZE} members (queue_id={queue_id!r})"
    )


def _observations(client: "GenesysClient", queue_id: str) -> dict[str, Any]:
    body = client.post(
        "/api/v2/analytics/queues/observations/query",
        json={
            "filter": {
                "type": "or",
                "predicates": [
                    {
                        "type": "dimension",
                        "dimension": "queueId",
                        "operator": "matches",
                        "value": queue_id,
                    }
                ],
            },
            "metrics": list(METRICS),
        },
    )
    metrics: dict[str, int] = dict.fromkeys(METRICS, 0)
    qualifiers: dict[str, dict[str, int]] = {}
    by_media: dict[str, dict[str, int]] = {}
    results = body.get("results") if isinstance(body, dict) else None
    for result in results or []:
        if not isinstance(result, dict):
            continue
        group = _mapping(result.get("group"))
        if group.get("queueId") not in (None, queue_id):
            continue
        media = group.get("mediaType")
        for datum in result.get("data") or []:
            if not isinstance(datum, dict) or not isinstance(datum.get("metric"), str):
                continue
            metric = datum["metric"]
            stats = _mapping(datum.get("stats"))
            count = int(stats.get("count") or 0)
            qualifier = datum.get("qualifier")
            metrics[metric] = metrics.get(metric, 0) + count
            if qualifier:
                per = qualifiers.setdefault(metric, {})
                per[str(qualifier)] = per.get(str(qualifier), 0) + count
            if isinstance(media, str):
                per_media = by_media.setdefault(media, {})
                per_media[metric] = per_media.get(metric, 0) + count
    return {
        "queue_id": queue_id,
        "metrics": metrics,
        "qualifiers": qualifiers,
        "by_media": by_media,
    }


def queue_members(
    queue_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> list[dict[str, Any]]:
    """Every member of the queue: ``[{"user_id", "name", "routing_status", "joined"}, ...]``.

    ``GET /api/v2/routing/queues/{queue_id}/members``, 100 per page, following every page. An
    unknown queue raises ``ActivityFailed`` naming the id.

    ```json
    {"type": "probe", "name": "chaos-queue-members",
     "provider": {"type": "python", "module": "chaosgenesys.routing.probes",
                  "func": "queue_members", "arguments": {"queue_id": "${chaos_queue}"}}}
    ```
    """
    require_id("queue_id", queue_id)
    return _members(experiment_client(configuration, secrets), queue_id)


def queue_observations(
    queue_id: str, configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Live queue observations (``POST /api/v2/analytics/queues/observations/query``).

    Returns ``{"queue_id", "metrics": {"oWaiting": 0, "oInteracting": 0, "oAlerting": 0,
    "oOnQueueUsers": 2, ...}, "qualifiers": {"oOnQueueUsers": {"IDLE": 2}, ...},
    "by_media": {"voice": {...}}}``: each metric's count summed over media types (0 when the
    API reports none), per qualifier (routing status, presence id) and per media type.

    ```json
    {"type": "probe", "name": "nobody-waiting-in-chaos-queue",
     "tolerance": {"type": "jsonpath", "path": "$.metrics.oWaiting", "expect": 0},
     "provider": {"type": "python", "module": "chaosgenesys.routing.probes",
                  "func": "queue_observations", "arguments": {"queue_id": "${chaos_queue}"}}}
    ```
    """
    require_id("queue_id", queue_id)
    return _observations(experiment_client(configuration, secrets), queue_id)


def queue_is_isolated(
    queue_id: str, user_ids: list[str], configuration: Configuration = None, secrets: Secrets = None
) -> bool:
    """Whether the queue is a safe place for chaos: only test agents, no customer traffic.

    ``true`` only when every member of the queue (joined or not) is one of ``user_ids`` and
    no customer conversation is waiting, alerting or being handled in it (``oWaiting``,
    ``oAlerting`` and ``oInteracting`` all 0). An unknown queue raises ``ActivityFailed``.

    ```json
    {"type": "probe", "name": "chaos-queue-is-isolated", "tolerance": true,
     "provider": {"type": "python", "module": "chaosgenesys.routing.probes",
                  "func": "queue_is_isolated",
                  "arguments": {"queue_id": "${chaos_queue}",
                                "user_ids": ["${agent_1}", "${agent_2}"]}}}
    ```
    """
    require_id("queue_id", queue_id)
    allowed = set(require_ids("user_ids", user_ids))
    client = experiment_client(configuration, secrets)
    members = _members(client, queue_id)
    if any(member["user_id"] not in allowed for member in members):
        return False
    metrics = _observations(client, queue_id)["metrics"]
    return all(metrics.get(name, 0) == 0 for name in TRAFFIC_METRICS)
