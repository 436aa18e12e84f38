"""Users, presence, routing status, definitions and the events they publish."""

from __future__ import annotations

import re
import threading
from typing import Any

from chaosgenesys.sandbox.presence import ON_QUEUE, SYSTEM_PRESENCES, find_presence
from tests.sandbox.sandbox_helpers import (
    AGENT_1,
    AGENT_2,
    AGENT_3,
    QUEUE,
    Api,
    api_fixture,
    wait_until,
)

api = api_fixture()

ISO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
AVAILABLE_ID = "6a3af858-942f-489d-9700-5f9bcdcdae9b"
ON_QUEUE_ID = "e08eaf1b-ee47-4fa9-a231-1200e284798f"
AWAY_ID = "5e5c5c66-ea97-4e7f-ac41-6424784829f2"


def _set_presence(api: Api, user_id: str, definition_id: str) -> Any:
    response = api.patch(f"/api/v2/users/{user_id}/presences/purecloud",
                         json={"presenceDefinition": {"id": definition_id}})
    assert response.status_code == 200, response.text
    return response.json()


def test_user_expand_shape(api: Api) -> None:
    plain = api.get(f"/api/v2/users/{AGENT_1}").json()
    assert plain["id"] == AGENT_1
    assert plain["name"] == "Test Agent 1"
    assert plain["state"] == "active"
    assert plain["selfUri"] == f"/api/v2/users/{AGENT_1}"
    assert "presence" not in plain and "routingStatus" not in plain
    assert "statusId" not in plain and "statusName" not in plain
    user = api.get(f"/api/v2/users/{AGENT_1}",
                   params={"expand": "presence,routingStatus,conversationSummary"}).json()
    assert isinstance(user["version"], int)
    assert user["division"]["id"]
    assert user["routingStatus"]["userId"] == AGENT_1
    assert user["routingStatus"]["status"] == "IDLE"
    assert ISO.match(user["routingStatus"]["startTime"])
    presence = user["presence"]
    assert presence["source"] == "PURECLOUD"
    assert presence["presenceDefinition"] == {
        "id": ON_QUEUE_ID,
        "systemPresence": "On Queue",
        "selfUri": f"/api/v2/presencedefinitions/{ON_QUEUE_ID}",
    }
    assert presence["message"] == ""
    assert ISO.match(presence["modifiedDate"])
    assert presence["selfUri"] == f"/api/v2/users/{AGENT_1}/presences"
    summary = user["conversationSummary"]
    assert summary["call"] == {"contactCenter": {"active": 0, "acw": 0},
                               "enterprise": {"active": 0, "acw": 0}}
    assert summary["chat"]["contactCenter"] == {"active": 0, "acw": 0}
    # Expands may be repeated parameters too.
    repeated = api.get(f"/api/v2/users/{AGENT_1}",
                       params=[("expand", "presence"), ("expand", "routingStatus")]).json()
    assert "presence" in repeated and "routingStatus" in repeated


def test_user_not_found(api: Api) -> None:
    response = api.get("/api/v2/users/nobody")
    assert response.status_code == 404
    assert response.json()["code"] == "not.found"


def test_users_listing_and_bulk(api: Api) -> None:
    everyone = api.get("/api/v2/users").json()
    assert everyone["total"] == 3
    assert everyone["pageSize"] == 25 and everyone["pageNumber"] == 1
    assert everyone["pageCount"] == 1
    bulk = api.get("/api/v2/users", params={"id": f"{AGENT_1},{AGENT_3},unknown",
                                            "expand": "presence"}).json()
    assert [u["id"] for u in bulk["entities"]] == [AGENT_1, AGENT_3]
    assert bulk["entities"][1]["presence"]["presenceDefinition"]["systemPresence"] == "Available"
    paged = api.get("/api/v2/users", params={"pageSize": 2, "pageNumber": 2}).json()
    assert [u["id"] for u in paged["entities"]] == [AGENT_3]
    assert paged["pageCount"] == 2 and paged["total"] == 3
    assert "previousUri" in paged and "nextUri" not in paged
    assert api.get("/api/v2/users", params={"pageSize": 0}).status_code == 400
    assert api.get("/api/v2/users", params={"pageNumber": "x"}).json()["code"] == "bad.request"


def test_presence_get_and_patch_routing_follows(api: Api) -> None:
    before = api.get(f"/api/v2/users/{AGENT_1}").json()["version"]
    presence = api.get(f"/api/v2/users/{AGENT_1}/presences/purecloud").json()
    assert presence["presenceDefinition"]["id"] == ON_QUEUE_ID
    assert presence["source"] == "PURECLOUD" and presence["primary"] is True

    updated = _set_presence(api, AGENT_1, AVAILABLE_ID)
    assert updated["presenceDefinition"]["systemPresence"] == "Available"
    routing = api.get(f"/api/v2/users/{AGENT_1}/routingstatus").json()
    assert routing["status"] == "OFF_QUEUE"
    assert routing["userId"] == AGENT_1
    after = api.get(f"/api/v2/users/{AGENT_1}").json()["version"]
    assert after > before

    _set_presence(api, AGENT_1, ON_QUEUE_ID)
    assert api.get(f"/api/v2/users/{AGENT_1}/routingstatus").json()["status"] == "IDLE"
    assert api.get(f"/api/v2/users/{AGENT_1}").json()["version"] > after

    # An outsider going On Queue is IDLE too (queue membership does not matter).
    _set_presence(api, AGENT_3, ON_QUEUE_ID)
    assert api.get(f"/api/v2/users/{AGENT_3}/routingstatus").json()["status"] == "IDLE"


def test_presence_patch_errors(api: Api) -> None:
    path = f"/api/v2/users/{AGENT_1}/presences/purecloud"
    unknown = api.patch(path, json={"presenceDefinition": {"id": "not-a-definition"}})
    assert unknown.status_code == 400
    assert unknown.json()["code"] == "bad.request"
    assert api.patch(path, json={"presenceDefinition": {}}).status_code == 400
    malformed = api.patch(path, data="{not json", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert malformed.json()["code"] == "bad.request"
    assert api.patch(path, json=["a"]).status_code == 400
    assert api.patch("/api/v2/users/nobody/presences/purecloud",
                     json={"presenceDefinition": {"id": AWAY_ID}}).status_code == 404
    assert api.get(f"/api/v2/users/{AGENT_1}/presences/microsoftteams").status_code == 404


def test_bulk_presence(api: Api) -> None:
    response = api.get("/api/v2/users/presences/purecloud/bulk",
                       params={"id": f"{AGENT_1},{AGENT_3}"})
    assert response.status_code == 200
    body = response.json()
    assert [p["userId"] for p in body] == [AGENT_1, AGENT_3]
    assert body[0]["presenceDefinition"]["systemPresence"] == "On Queue"
    assert set(body[0]) >= {"userId", "presenceDefinition", "message", "modifiedDate"}
    too_many = ",".join(f"u{i}" for i in range(51))
    over = api.get("/api/v2/users/presences/purecloud/bulk", params={"id": too_many})
    assert over.status_code == 400
    assert over.json()["code"] == "bad.request"
    fifty = ",".join(f"u{i}" for i in range(50))
    assert api.get("/api/v2/users/presences/purecloud/bulk",
                   params={"id": fifty}).json() == []


def test_presence_definitions(api: Api) -> None:
    body = api.get("/api/v2/presence/definitions").json()
    entities = {e["systemPresence"]: e for e in body["entities"]}
    assert body["total"] == 10
    assert set(entities) == {"Available", "Away", "Busy", "Offline", "Idle", "OnQueue", "Meal",
                             "Training", "Meeting", "Break"}
    assert entities["OnQueue"]["id"] == ON_QUEUE_ID
    assert entities["Available"]["id"] == AVAILABLE_ID
    assert entities["Offline"]["id"] == "ccf3c10a-aa2c-4845-8e8d-f59fa48c58e5"
    assert entities["Break"]["id"] == "227b37e2-f1d0-4dd0-8f50-badd7cf6d158"
    for entity in body["entities"]:
        assert set(entity) >= {"id", "name", "type", "languageLabels", "systemPresence",
                               "divisionId", "deactivated"}
        assert entity["type"] == "System" and entity["deactivated"] is False
    # Generated ids are stable.
    assert entities["Idle"]["id"] == next(d.id for d in SYSTEM_PRESENCES if d.name == "Idle")
    one = api.get(f"/api/v2/presence/definitions/{AWAY_ID}").json()
    assert one["systemPresence"] == "Away"
    assert api.get("/api/v2/presence/definitions/nope").status_code == 404
    legacy = api.get("/api/v2/presencedefinitions").json()
    assert {e["systemPresence"] for e in legacy["entities"]} >= {"On Queue", "Available"}
    for entity in legacy["entities"]:
        assert set(entity) >= {"id", "name", "systemPresence", "primary", "deactivated",
                               "languageLabels"}
    assert api.get(f"/api/v2/presencedefinitions/{ON_QUEUE_ID}").json()["id"] == ON_QUEUE_ID
    assert find_presence("ON_QUEUE") == ON_QUEUE


def test_routing_status_quirk_and_put(api: Api) -> None:
    unknown = api.get("/api/v2/users/no-such-user/routingstatus")
    assert unknown.status_code == 200
    assert unknown.json()["status"] == "OFF_QUEUE"
    off = api.put(f"/api/v2/users/{AGENT_2}/routingstatus", json={"status": "OFF_QUEUE"})
    assert off.json()["status"] == "OFF_QUEUE"
    presence = api.get(f"/api/v2/users/{AGENT_2}/presences/purecloud").json()
    assert presence["presenceDefinition"]["systemPresence"] == "Available"
    assert api.put(f"/api/v2/users/{AGENT_2}/routingstatus",
                   json={"status": "INTERACTING"}).status_code == 400
    assert api.put(f"/api/v2/users/{AGENT_2}/routingstatus", json={}).status_code == 400


def test_agent_status_and_user_queues(api: Api) -> None:
    status = api.get(f"/api/v2/analytics/agents/{AGENT_1}/status").json()
    assert status["systemPresence"] == "ON_QUEUE"
    assert status["routingStatus"] == "IDLE"
    assert status["organizationPresenceId"] == ON_QUEUE_ID
    assert ISO.match(status["presenceDate"]) and ISO.match(status["routingStatusDate"])
    assert status["sessions"] == []
    assert api.get("/api/v2/analytics/agents/nobody/status").status_code == 404
    queues = api.get(f"/api/v2/users/{AGENT_1}/queues", params={"joined": "true"}).json()
    assert [q["id"] for q in queues["entities"]] == [QUEUE]
    assert queues["entities"][0]["joined"] is True
    assert api.get(f"/api/v2/users/{AGENT_3}/queues").json()["entities"] == []
    left = api.patch(f"/api/v2/users/{AGENT_1}/queues", json=[{"id": QUEUE, "joined": False}])
    assert left.status_code == 200
    assert left.json()["entities"][0]["joined"] is False
    assert api.get(f"/api/v2/users/{AGENT_1}/queues",
                   params={"joined": "true"}).json()["entities"] == []


def test_presence_change_publishes_events(sandbox: Any, api: Api) -> None:
    received: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def listener(topic: str, body: dict[str, Any]) -> None:
        with lock:
            received.append((topic, body))

    sandbox.events.subscribe(listener)
    _set_presence(api, AGENT_1, AWAY_ID)
    assert wait_until(lambda: len(received) >= 3)
    topics = {topic: body for topic, body in received}
    presence = topics[f"v2.users.{AGENT_1}.presence"]
    assert presence["presenceDefinition"] == {"id": AWAY_ID, "systemPresence": "Away"}
    assert presence["source"] == "PURECLOUD" and "modifiedDate" in presence
    routing = topics[f"v2.users.{AGENT_1}.routingStatus"]
    assert routing["id"] == AGENT_1
    assert routing["routingStatus"]["status"] == "OFF_QUEUE"
    activity = topics[f"v2.users.{AGENT_1}.activity"]
    assert activity["presence"]["presenceDefinition"]["systemPresence"] == "AWAY"
    assert activity["routingStatus"]["status"] == "OFF_QUEUE"
    assert activity["activeQueueIds"] == []
    received.clear()
    _set_presence(api, AGENT_1, ON_QUEUE_ID)
    assert wait_until(lambda: any(t.endswith(".activity") for t, _ in received))
    activity = next(b for t, b in received if t.endswith(".activity"))
    assert activity["presence"]["presenceDefinition"]["systemPresence"] == "ON_QUEUE"
    assert activity["activeQueueIds"] == [QUEUE]
