"""The official Genesys Cloud SDK (``purecloudplatformclientv2``) as an independent client.

If the sandbox serves a shape the real platform does not, the SDK is the first to notice: each
test makes one SDK call against a real sandbox, checks it deserializes, checks the raw JSON
against the SDK's model (no field the model does not know, no enum value the SDK maps to
``outdated_sdk_version``), and asserts the values that matter against what the sandbox holds.

``Configuration.host`` is pointed at the sandbox. The SDK builds its login URL by replacing
``//api.`` with ``//login.`` in the host (``ApiClient.get_conf_url``); a loopback URL has no
``api.`` so ``/oauth/token`` is asked of the sandbox itself, which serves both.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest
import requests
import websocket

from tests.conftest import AGENT_1, AGENT_2, AGENT_3, CLIENT_ID, CLIENT_SECRET, QUEUE

UNKNOWN_USER = "00000000-0000-4000-8000-00000000dead"

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(scope="module")
def sdk(tmp_path_factory: pytest.TempPathFactory) -> ModuleType:
    """The SDK, imported with HOME on a scratch folder.

    Importing it builds a ``Configuration`` singleton that reads ``~/.genesyscloudpython/config``
    and starts a watchdog observer on the nearest existing parent folder, recursively: without
    this it would watch the whole home folder.
    """
    home = os.environ.get("HOME")
    os.environ["HOME"] = str(tmp_path_factory.mktemp("sdk-home"))
    try:
        import PureCloudPlatformClientV2
    finally:
        if home is None:
            del os.environ["HOME"]
        else:
            os.environ["HOME"] = home
    return PureCloudPlatformClientV2


@pytest.fixture
def client(sdk: ModuleType, sandbox: Any) -> Iterator[Any]:
    """An SDK ``ApiClient`` logged in to the sandbox with client credentials."""
    configuration = sdk.configuration
    saved = configuration.host
    configuration.host = sandbox.url
    try:
        api_client = sdk.api_client.ApiClient()
        assert api_client.host == sandbox.url
        assert api_client.get_conf_url("login", api_client.host) == sandbox.url
        api_client.get_client_credentials_token(CLIENT_ID, CLIENT_SECRET)
        assert api_client.access_token
        yield api_client
    finally:
        configuration.host = saved


# --------------------------------------------------------------------------- model checks


def _model_problems(sdk: ModuleType, data: Any, klass: str, path: str) -> list[str]:
    """Where raw JSON does not fit the SDK model ``klass``: unknown fields, wrong JSON types."""
    if data is None:
        return []
    if klass.startswith("list["):
        if not isinstance(data, list):
            return [f"{path}: expected a list for {klass}, got {type(data).__name__}"]
        inner = klass[5:-1]
        return [
            p for i, v in enumerate(data) for p in _model_problems(sdk, v, inner, f"{path}[{i}]")
        ]
    if klass.startswith("dict("):
        if not isinstance(data, dict):
            return [f"{path}: expected an object for {klass}, got {type(data).__name__}"]
        inner = klass[5:-1].split(", ", 1)[1]
        return [p for k, v in data.items() for p in _model_problems(sdk, v, inner, f"{path}.{k}")]
    expected: dict[str, tuple[type, ...]] = {
        "str": (str,),
        "int": (int,),
        "float": (int, float),
        "bool": (bool,),
        "datetime": (str,),
        "date": (str,),
        "LocalDateTime": (str,),
    }
    if klass in expected:
        if not isinstance(data, expected[klass]) or (klass == "int" and isinstance(data, bool)):
            return [f"{path}: expected {klass}, got {type(data).__name__} {data!r}"]
        return []
    if klass == "object":
        return []
    model = getattr(sdk.models, klass)()
    if not isinstance(data, dict):
        return [f"{path}: expected an object for {klass}, got {type(data).__name__}"]
    by_json = {json_name: attr for attr, json_name in model.attribute_map.items()}
    problems: list[str] = []
    for key, value in data.items():
        if key not in by_json:
            problems.append(f"{path}.{key}: not a field of {klass}")
            continue
        attr_type = model.swagger_types[by_json[key]]
        problems.extend(_model_problems(sdk, value, attr_type, f"{path}.{key}"))
    return problems


def _outdated(value: Any, path: str = "$") -> list[str]:
    """Enum values the SDK did not recognise (it stores ``outdated_sdk_version`` instead)."""
    if value == "outdated_sdk_version":
        return [path]
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _outdated(v, f"{path}.{k}")]
    if isinstance(value, list):
        return [p for i, v in enumerate(value) for p in _outdated(v, f"{path}[{i}]")]
    return []


def checked(sdk: ModuleType, api_client: Any, result: Any, klass: str) -> Any:
    """Assert the last response fits ``klass`` exactly; return its raw JSON."""
    raw = json.loads(api_client.last_response.data)
    problems = _model_problems(sdk, raw, klass, "$")
    if isinstance(result, list):
        problems += _outdated([item.to_dict() for item in result])
    elif result is not None:
        problems += [f"enum not known to the SDK at {p}" for p in _outdated(result.to_dict())]
    assert problems == [], f"{klass}: {problems}"
    return raw


def raw_get(sandbox: Any, api_client: Any, path: str) -> Any:
    """The same resource read without the SDK (plain requests, same token)."""
    response = requests.get(
        f"{sandbox.url}{path}",
        headers={"Authorization": f"Bearer {api_client.access_token}"},
        timeout=5,
    )
    assert response.status_code == 200, response.text
    return response.json()


# --------------------------------------------------------------------------- users and presence


def test_user_with_expands(sdk: ModuleType, client: Any) -> None:
    users = sdk.UsersApi(client)
    user = users.get_user(AGENT_1, expand=["presence", "routingStatus", "conversationSummary"])
    checked(sdk, client, user, "User")
    assert user.id == AGENT_1
    assert user.name == "Test Agent 1"
    assert user.state == "active"
    assert user.presence.presence_definition.system_presence == "On Queue"
    assert user.presence.source == "PURECLOUD"
    assert user.routing_status.status == "IDLE"
    assert user.routing_status.user_id == AGENT_1
    assert user.conversation_summary is not None
    assert user.conversation_summary.call.contact_center.active == 0
    assert user.self_uri == f"/api/v2/users/{AGENT_1}"


def test_bulk_users(sdk: ModuleType, client: Any) -> None:
    users = sdk.UsersApi(client).get_users(
        id=[AGENT_1, AGENT_2, AGENT_3], expand=["presence", "routingStatus"]
    )
    checked(sdk, client, users, "UserEntityListing")
    by_id = {user.id: user for user in users.entities}
    assert set(by_id) == {AGENT_1, AGENT_2, AGENT_3}
    assert by_id[AGENT_3].presence.presence_definition.system_presence == "Available"
    assert by_id[AGENT_3].routing_status.status == "OFF_QUEUE"


def test_presence_read_back_after_a_change(sdk: ModuleType, client: Any, sandbox: Any) -> None:
    presence_api = sdk.PresenceApi(client)
    presence = presence_api.get_user_presences_purecloud(AGENT_1)
    checked(sdk, client, presence, "UserPresence")
    assert presence.presence_definition.system_presence == "On Queue"

    definitions = presence_api.get_presence_definitions()
    checked(sdk, client, definitions, "OrganizationPresenceDefinitionEntityListing")
    # the definitions API spells "OnQueue" where users' presences say "On Queue"
    system = {d.system_presence: d for d in definitions.entities if d.type == "System"}
    for name in ("Available", "Away", "Busy", "Offline", "Idle", "OnQueue", "Meal", "Break"):
        assert name in system, f"no System definition for {name}"
    assert system["OnQueue"].id == presence.presence_definition.id

    body = sdk.UserPresence()
    body.presence_definition = sdk.PresenceDefinition()
    body.presence_definition.id = system["Busy"].id
    changed = presence_api.patch_user_presences_purecloud(AGENT_1, body)
    checked(sdk, client, changed, "UserPresence")
    assert changed.presence_definition.id == system["Busy"].id
    assert changed.presence_definition.system_presence == "Busy"

    read_back = presence_api.get_user_presences_purecloud(AGENT_1)
    held = raw_get(sandbox, client, f"/api/v2/users/{AGENT_1}/presences/purecloud")
    assert read_back.presence_definition.system_presence == "Busy"
    assert held["presenceDefinition"]["systemPresence"] == "Busy"
    assert read_back.presence_definition.id == held["presenceDefinition"]["id"]


def test_system_presences(sdk: ModuleType, client: Any) -> None:
    presences = sdk.PresenceApi(client).get_systempresences()
    checked(sdk, client, presences, "list[SystemPresence]")
    names = {p.name for p in presences}
    assert names == {"Available", "Away", "Busy", "Offline", "Idle", "On Queue", "Meal",
                     "Training", "Meeting", "Break"}
    assert all(p.id and p.self_uri == f"/api/v2/systempresences/{p.id}" for p in presences)


def test_bulk_presence(sdk: ModuleType, client: Any) -> None:
    presences = sdk.PresenceApi(client).get_users_presences_purecloud_bulk(
        id=[AGENT_1, AGENT_2, AGENT_3]
    )
    checked(sdk, client, presences, "list[UcUserPresence]")
    by_user = {p.user_id: p.presence_definition.system_presence for p in presences}
    assert by_user == {AGENT_1: "On Queue", AGENT_2: "On Queue", AGENT_3: "Available"}


def test_routing_status(sdk: ModuleType, client: Any) -> None:
    users = sdk.UsersApi(client)
    status = users.get_user_routingstatus(AGENT_1)
    checked(sdk, client, status, "RoutingStatus")
    assert status.user_id == AGENT_1
    assert status.status == "IDLE"
    assert status.start_time is not None
    assert users.get_user_routingstatus(AGENT_3).status == "OFF_QUEUE"


def test_queue_members(sdk: ModuleType, client: Any) -> None:
    members = sdk.RoutingApi(client).get_routing_queue_members(QUEUE)
    checked(sdk, client, members, "QueueMemberEntityListing")
    by_id = {member.id: member for member in members.entities}
    assert set(by_id) == {AGENT_1, AGENT_2}
    assert by_id[AGENT_1].name == "Test Agent 1"
    assert by_id[AGENT_1].routing_status.status == "IDLE"


# --------------------------------------------------------------------------- conversations


def test_routed_conversation(sdk: ModuleType, client: Any, sandbox: Any) -> None:
    conversation_id = sandbox.route_call(QUEUE)
    conversations = sdk.ConversationsApi(client)

    conversation = conversations.get_conversation(conversation_id)
    checked(sdk, client, conversation, "Conversation")
    assert conversation.id == conversation_id
    agents = [p for p in conversation.participants if p.purpose == "agent"]
    assert len(agents) == 1
    agent = agents[0]
    assert agent.user_id in (AGENT_1, AGENT_2)
    assert agent.queue_id == QUEUE
    assert agent.calls[0].state == "alerting"
    assert {p.purpose for p in conversation.participants} >= {"customer", "agent"}

    call = conversations.get_conversations_call(conversation_id)
    checked(sdk, client, call, "CallConversation")
    assert call.id == conversation_id
    call_agent = next(p for p in call.participants if p.purpose == "agent")
    assert call_agent.id == agent.id
    assert call_agent.state == "alerting"
    assert call_agent.user.id == agent.user_id
    assert call_agent.queue.id == QUEUE

    codes = conversations.get_conversation_participant_wrapupcodes(conversation_id, agent.id)
    checked(sdk, client, codes, "list[WrapupCode]")

    user = sdk.UsersApi(client).get_user(agent.user_id, expand=["routingStatus"])
    assert user.routing_status.status in ("INTERACTING", "COMMUNICATING", "IDLE")


def test_wrapup_codes(sdk: ModuleType, client: Any) -> None:
    codes = sdk.RoutingApi(client).get_routing_wrapupcodes()
    checked(sdk, client, codes, "WrapupCodeEntityListing")
    assert isinstance(codes.entities, list)
    for code in codes.entities:
        assert code.id and code.name


# --------------------------------------------------------------------------- tokens and errors


def test_tokens_me(sdk: ModuleType, client: Any) -> None:
    from chaosgenesys.sandbox.seed import DEFAULT_SCOPES

    info = sdk.TokensApi(client).get_tokens_me()
    checked(sdk, client, info, "TokenInfo")
    assert info.organization.id
    assert info.o_auth_client.id == CLIENT_ID
    assert info.authorized_scope == list(DEFAULT_SCOPES)


def test_oauth_client_and_its_roles(sdk: ModuleType, client: Any) -> None:
    """What the preflight reads: the client's role-divisions, then each role's policies."""
    from chaosgenesys.platform.permissions import minimal_permissions
    from chaosgenesys.sandbox.seed import DEFAULT_ROLE_ID, DEFAULT_ROLE_NAME, DEFAULT_SCOPES
    from chaosgenesys.sandbox.views import DIVISION_ID

    oauth = sdk.OAuthApi(client).get_oauth_client(CLIENT_ID)
    checked(sdk, client, oauth, "OAuthClient")
    assert oauth.id == CLIENT_ID
    assert oauth.authorized_grant_type == "CLIENT-CREDENTIALS"
    assert oauth.state == "active"
    assert oauth.secret is None
    assert oauth.scope == list(DEFAULT_SCOPES)
    assert [(g.role_id, g.division_id) for g in oauth.role_divisions] == [
        (DEFAULT_ROLE_ID, DIVISION_ID)
    ]

    role = sdk.AuthorizationApi(client).get_authorization_role(DEFAULT_ROLE_ID)
    checked(sdk, client, role, "DomainOrganizationRole")
    assert role.id == DEFAULT_ROLE_ID
    assert role.name == DEFAULT_ROLE_NAME
    held = {
        f"{policy.domain}:{policy.entity_name}:{action}"
        for policy in role.permission_policies
        for action in policy.action_set
    }
    assert held == set(minimal_permissions())


@pytest.mark.parametrize(
    ("api", "method"),
    [("OAuthApi", "get_oauth_client"), ("AuthorizationApi", "get_authorization_role")],
)
def test_unknown_client_or_role_is_a_404_error_body(
    sdk: ModuleType, client: Any, api: str, method: str
) -> None:
    with pytest.raises(sdk.rest.ApiException) as raised:
        getattr(getattr(sdk, api)(client), method)("00000000-0000-4000-8000-00000000beef")
    assert raised.value.status == 404
    body = json.loads(raised.value.body)
    assert _model_problems(sdk, body, "ErrorBody", "$") == []
    assert body["code"] == "not.found"


def test_error_body_through_api_exception(sdk: ModuleType, client: Any) -> None:
    with pytest.raises(sdk.rest.ApiException) as raised:
        sdk.UsersApi(client).get_user(UNKNOWN_USER)
    assert raised.value.status == 404
    body = json.loads(raised.value.body)
    assert _model_problems(sdk, body, "ErrorBody", "$") == []
    error = client.deserialize(_Raw(raised.value.body), "ErrorBody")
    assert error.status == 404
    assert error.code == "not.found"
    assert error.message


@pytest.mark.parametrize(
    ("api", "method"), [("UsersApi", "get_users_me"), ("RoutingApi", "get_routing_queues_me")]
)
def test_me_needs_a_user_context(sdk: ModuleType, client: Any, api: str, method: str) -> None:
    """A client-credentials token has no user: ``me`` is refused, not looked up as an id."""
    with pytest.raises(sdk.rest.ApiException) as raised:
        getattr(getattr(sdk, api)(client), method)()
    assert raised.value.status == 400
    body = json.loads(raised.value.body)
    assert _model_problems(sdk, body, "ErrorBody", "$") == []
    assert body["code"] == "bad.request"
    assert body["message"].startswith("This request requires a user context.")


class _Raw:
    """Enough of a urllib3 response for ``ApiClient.deserialize``."""

    def __init__(self, data: str) -> None:
        self.data = data

    def getheader(self, name: str) -> str | None:
        return "application/json" if name.lower() == "content-type" else None


# --------------------------------------------------------------------------- notifications


def test_notification_channel_through_the_sdk(sdk: ModuleType, client: Any, sandbox: Any) -> None:
    notifications = sdk.NotificationsApi(client)
    channel = notifications.post_notifications_channels()
    checked(sdk, client, channel, "Channel")
    host = sandbox.url.removeprefix("http://")
    assert channel.connect_uri == f"ws://{host}/channels/{channel.id}"
    assert channel.expires is not None

    topics = [
        sdk.ChannelTopic(),
        sdk.ChannelTopic(),
        sdk.ChannelTopic(),
    ]
    topics[0].id = f"v2.users.{AGENT_1}.presence"
    topics[1].id = f"v2.users.{AGENT_1}?presence&routingStatus"
    topics[2].id = "v2.nothing.like.this"
    result = notifications.post_notifications_channel_subscriptions(channel.id, topics)
    checked(sdk, client, result, "ChannelTopicEntityListing")
    states = {t.id: t.state for t in result.entities}
    assert states == {
        topics[0].id: "Permitted",
        topics[1].id: "Permitted",
        topics[2].id: "Rejected",
    }

    listed = notifications.get_notifications_channel_subscriptions(channel.id)
    checked(sdk, client, listed, "ChannelTopicEntityListing")
    assert {t.id for t in listed.entities} == {topics[0].id, topics[1].id}

    channels = notifications.get_notifications_channels()
    checked(sdk, client, channels, "ChannelEntityListing")
    assert channel.id in [c.id for c in channels.entities]

    notifications.head_notifications_channel(channel.id)  # 200: no exception
    with pytest.raises(sdk.rest.ApiException) as raised:
        notifications.head_notifications_channel("streaming-0-gone")
    assert raised.value.status == 404

    # the channel the SDK made carries events to a plain WebSocket client
    ws = websocket.create_connection(channel.connect_uri, timeout=5)
    try:
        definitions = sdk.PresenceApi(client).get_presence_definitions()
        away = next(d for d in definitions.entities if d.system_presence == "Away")
        body = sdk.UserPresence()
        body.presence_definition = sdk.PresenceDefinition()
        body.presence_definition.id = away.id
        sdk.PresenceApi(client).patch_user_presences_purecloud(AGENT_1, body)
        deadline = time.monotonic() + 5
        while True:
            ws.settimeout(max(0.01, deadline - time.monotonic()))
            message = json.loads(ws.recv())
            if message.get("topicName") == f"v2.users.{AGENT_1}.presence":
                break
        assert message["eventBody"]["presenceDefinition"]["id"] == away.id
        assert message["eventBody"]["presenceDefinition"]["systemPresence"] == "Away"
    finally:
        ws.close()

    notifications.delete_notifications_channel_subscriptions(channel.id)
    assert notifications.get_notifications_channel_subscriptions(channel.id).entities == []


def test_conversation_events_fit_the_event_models(
    sdk: ModuleType, client: Any, sandbox: Any
) -> None:
    """``v2.users.{id}.conversations`` carries ``ConversationEventTopicConversation`` and
    ``v2.routing.queues.{id}.conversations`` ``QueueConversationEventTopicConversation``
    (notificationMappings.json), not the REST ``Conversation``."""
    notifications = sdk.NotificationsApi(client)
    channel = notifications.post_notifications_channels()
    models = {
        f"v2.users.{AGENT_1}.conversations": "ConversationEventTopicConversation",
        f"v2.routing.queues.{QUEUE}.conversations": "QueueConversationEventTopicConversation",
    }
    topics = []
    for topic in models:
        item = sdk.ChannelTopic()
        item.id = topic
        topics.append(item)
    notifications.put_notifications_channel_subscriptions(channel.id, topics)
    ws = websocket.create_connection(channel.connect_uri, timeout=5)
    events: list[tuple[str, dict[str, Any]]] = []
    try:
        conversation_id = sandbox.route_call(QUEUE, user_id=AGENT_1)  # alerting
        conversations = sdk.ConversationsApi(client)
        agent = next(p for p in conversations.get_conversation(conversation_id).participants
                     if p.purpose == "agent")
        body = sdk.MediaParticipantRequest()
        body.state = "connected"
        conversations.patch_conversations_call_participant(conversation_id, agent.id, body)
        sandbox.disconnect_call(conversation_id)  # the customer hangs up: after-call work
        wrapup = sdk.WrapupInput()
        wrapup.code = "4c4d5a11-0000-4000-8000-0000000000c1"
        wrapup.notes = "done"
        conversations.post_conversations_call_participant_communication_wrapup(
            conversation_id, agent.id, agent.calls[0].id, body=wrapup
        )
        deadline = time.monotonic() + 5
        wrapped = False
        while not wrapped:
            ws.settimeout(max(0.01, deadline - time.monotonic()))
            message = json.loads(ws.recv())
            if message.get("topicName") in models:
                events.append((message["topicName"], message["eventBody"]))
                mine = [p for p in message["eventBody"]["participants"]
                        if p.get("userId") == AGENT_1]
                wrapped = bool(mine and mine[-1].get("wrapup"))
    finally:
        ws.close()
    assert {topic for topic, _ in events} == set(models)
    states = [p["calls"][0]["state"] for topic, body in events if topic == topics[0].id
              for p in body["participants"] if p.get("userId") == AGENT_1]
    assert states[0] == "alerting" and "connected" in states and states[-1] == "disconnected"
    for topic, body in events:
        assert body["id"] == conversation_id
        problems = _model_problems(sdk, body, models[topic], "$")
        assert problems == [], f"{topic}: {problems}"
        model = getattr(sdk.models, models[topic])
        enums = _outdated(client.deserialize(_Raw(json.dumps(body)), models[topic]).to_dict())
        assert enums == [], f"{topic}: enum not known to {model.__name__} at {enums}"
    last = events[-1][1]
    agent_event = [p for p in last["participants"] if p.get("userId") == AGENT_1][-1]
    assert agent_event["wrapup"]["code"] == wrapup.code
    assert agent_event["calls"][0]["afterCallWork"]["state"] == "complete"

