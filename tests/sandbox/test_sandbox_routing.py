"""Queues, queue members (paging and filters), wrap-up codes and queue observations."""

from __future__ import annotations

from typing import Any

from tests.sandbox.sandbox_helpers import AGENT_1, AGENT_2, QUEUE, Api, api_fixture

api = api_fixture()

MEMBERS = f"/api/v2/routing/queues/{QUEUE}/members"
OBSERVATIONS = "/api/v2/analytics/queues/observations/query"
AWAY_ID = "5e5c5c66-ea97-4e7f-ac41-6424784829f2"


def _observe(api: Api, metrics: list[str], queue_id: str = QUEUE) -> dict[tuple[str, Any], int]:
    response = api.post(OBSERVATIONS, json={
        "filter": {"type": "or", "predicates": [
            {"type": "dimension", "dimension": "queueId", "operator": "matches",
             "value": queue_id}]},
        "metrics": metrics,
    })
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert len(results) == 1
    assert results[0]["group"] == {"queueId": queue_id, "mediaType": "voice"}
    return {(d["metric"], d.get("qualifier")): d["stats"]["count"] for d in results[0]["data"]}


def test_queues(api: Api) -> None:
    listing = api.get("/api/v2/routing/queues").json()
    assert [q["id"] for q in listing["entities"]] == [QUEUE]
    queue = api.get(f"/api/v2/routing/queues/{QUEUE}").json()
    assert queue["name"] == "Chaos Queue"
    assert queue["memberCount"] == 2 and queue["joinedMemberCount"] == 2
    assert api.get("/api/v2/routing/queues", params={"name": "chaos*"}).json()["total"] == 1
    assert api.get("/api/v2/routing/queues", params={"name": "other"}).json()["total"] == 0
    missing = api.get("/api/v2/routing/queues/nope")
    assert missing.status_code == 404 and missing.json()["code"] == "not.found"
    assert api.get("/api/v2/routing/queues/nope/members").status_code == 404


def test_members_shape_and_paging(api: Api) -> None:
    body = api.get(MEMBERS).json()
    assert body["pageSize"] == 25 and body["pageNumber"] == 1 and len(body["entities"]) == 2
    assert "total" not in body  # QueueMemberEntityListing has no total
    member = body["entities"][0]
    assert member["id"] == AGENT_1
    assert member["user"]["id"] == AGENT_1
    assert member["joined"] is True and member["ringNumber"] == 1
    assert member["memberBy"] == "user"
    assert member["routingStatus"]["status"] == "IDLE"
    assert member["routingStatus"]["userId"] == AGENT_1
    page_two = api.get(MEMBERS, params={"pageSize": 1, "pageNumber": 2}).json()
    assert [m["id"] for m in page_two["entities"]] == [AGENT_2]
    assert "nextUri" not in page_two and "pageNumber=1" in page_two["previousUri"]
    first = api.get(MEMBERS, params={"pageSize": 1}).json()
    assert "pageSize=1" in first["nextUri"] and "pageNumber=2" in first["nextUri"]
    too_big = api.get(MEMBERS, params={"pageSize": 101})
    assert too_big.status_code == 400 and too_big.json()["code"] == "bad.request"
    assert api.get(MEMBERS, params={"pageSize": 100}).status_code == 200


def test_members_filters(api: Api) -> None:
    api.patch(f"/api/v2/users/{AGENT_2}/presences/purecloud",
              json={"presenceDefinition": {"id": AWAY_ID}})
    idle = api.get(MEMBERS, params={"routingStatus": "IDLE"}).json()
    assert [m["id"] for m in idle["entities"]] == [AGENT_1]
    off = api.get(MEMBERS, params={"routingStatus": "off_queue,interacting"}).json()
    assert [m["id"] for m in off["entities"]] == [AGENT_2]
    away = api.get(MEMBERS, params={"presence": "Away"}).json()
    assert [m["id"] for m in away["entities"]] == [AGENT_2]
    on_queue = api.get(MEMBERS, params={"presence": "ON_QUEUE"}).json()
    assert [m["id"] for m in on_queue["entities"]] == [AGENT_1]
    assert api.get(MEMBERS, params={"joined": "false"}).json()["entities"] == []
    assert api.get(MEMBERS, params={"routingStatus": "BUSY"}).status_code == 400
    assert api.get(MEMBERS, params={"presence": "Lunch"}).status_code == 400
    assert api.get(MEMBERS, params={"joined": "maybe"}).status_code == 400


def test_wrapup_codes(api: Api) -> None:
    codes = api.get("/api/v2/routing/wrapupcodes").json()
    names = {c["name"] for c in codes["entities"]}
    assert names == {"Resolved", "Follow-up"}
    code_id = codes["entities"][0]["id"]
    assert api.get(f"/api/v2/routing/wrapupcodes/{code_id}").json()["id"] == code_id
    assert api.get("/api/v2/routing/wrapupcodes/nope").status_code == 404


def test_observations(sandbox: Any, api: Api) -> None:
    every = ["oWaiting", "oInteracting", "oAlerting", "oOnQueueUsers", "oOffQueueUsers",
             "oMemberUsers", "oActiveUsers", "oUserRoutingStatuses", "oUserPresences"]
    data = _observe(api, every)
    assert data[("oWaiting", None)] == 0
    assert data[("oInteracting", None)] == 0
    assert data[("oAlerting", None)] == 0
    assert data[("oOnQueueUsers", "IDLE")] == 2
    assert data[("oOnQueueUsers", "INTERACTING")] == 0
    assert data[("oOffQueueUsers", None)] == 0
    assert data[("oMemberUsers", None)] == 2
    assert data[("oActiveUsers", None)] == 2
    assert data[("oUserRoutingStatuses", "IDLE")] == 2
    assert data[("oUserPresences", "e08eaf1b-ee47-4fa9-a231-1200e284798f")] == 2

    sandbox.route_call(QUEUE)
    sandbox.route_call(QUEUE, answer=True)
    sandbox.route_call(QUEUE)
    api.patch(f"/api/v2/users/{AGENT_2}/presences/purecloud",
              json={"presenceDefinition": {"id": AWAY_ID}})
    data = _observe(api, every)
    assert data[("oWaiting", None)] == 1
    assert data[("oAlerting", None)] == 1
    assert data[("oInteracting", None)] == 1
    assert data[("oOnQueueUsers", "INTERACTING")] == 1
    assert data[("oOnQueueUsers", "IDLE")] == 0
    assert data[("oOffQueueUsers", None)] == 1
    assert data[("oUserRoutingStatuses", "OFF_QUEUE")] == 1
    assert data[("oUserPresences", AWAY_ID)] == 1
    # Only what was asked for, in order.
    response = api.post(OBSERVATIONS, json={
        "filter": {"type": "and", "clauses": [{"type": "or", "predicates": [
            {"dimension": "queueId", "value": QUEUE}]}]},
        "metrics": ["oWaiting"]}).json()
    assert response["results"][0]["data"] == [{"metric": "oWaiting", "stats": {"count": 1}}]


def test_observation_errors(api: Api) -> None:
    good_filter = {"type": "or", "predicates": [{"dimension": "queueId", "value": QUEUE}]}
    assert api.post(OBSERVATIONS, json={"filter": good_filter}).status_code == 400
    unknown = api.post(OBSERVATIONS, json={"filter": good_filter, "metrics": ["oBogus"]})
    assert unknown.status_code == 400 and "oBogus" in unknown.json()["message"]
    assert api.post(OBSERVATIONS, json={"metrics": ["oWaiting"]}).status_code == 400
    assert api.post(OBSERVATIONS, json={"filter": {"type": "or", "predicates": []},
                                        "metrics": ["oWaiting"]}).status_code == 400
    assert api.post(OBSERVATIONS, data="nope").status_code == 400
    # An unknown queue observes zeros.
    assert _observe(api, ["oMemberUsers"], "unknown-queue") == {("oMemberUsers", None): 0}
