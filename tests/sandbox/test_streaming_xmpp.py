"""The streaming service's XMPP over a real WebSocket (``websocket-client``), frame by frame:
the handshake, IQs, pubsub, server pings, SASL failures, and hostile frames that must end only
their own session while another session keeps receiving events."""

from __future__ import annotations

import json
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import websocket

from chaosgenesys.sandbox import Sandbox
from tests.sandbox.sandbox_helpers import AGENT_1, AGENT_2, Api, make_seed
from tests.sandbox.streaming_helpers import (
    CLIENT,
    DOMAIN,
    EVENT,
    FRAMING,
    OPEN,
    REDIRECT,
    SASL,
    STREAM,
    STREAMS,
    Xmpp,
    new_channel,
    tag,
    user_token,
)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    seed = make_seed()
    seed["clients"][0]["redirect_uris"] = [REDIRECT]
    with Sandbox(seed=seed, heartbeat_interval=0.3, rate_limit_per_minute=0) as sandbox:
        yield sandbox


@pytest.fixture
def watcher(sb: Sandbox) -> Iterator[Xmpp]:
    """A bound session subscribed (XMPP pubsub) to agent 1's presence."""
    token = user_token(sb, AGENT_1)
    session = Xmpp(sb, new_channel(sb, token))
    session.start(AGENT_1, token)
    assert session.subscribe(f"v2.users.{AGENT_1}.presence").get("type") == "result"
    yield session
    session.close()


def presence_event(session: Xmpp) -> dict[str, Any]:
    message = session.recv()
    assert message.tag == tag(CLIENT, "message"), ET.tostring(message)
    items = message.find(f"{tag(EVENT, 'event')}/{tag(EVENT, 'items')}")
    assert items is not None and items.get("node") == f"v2.users.{AGENT_1}.presence"
    payload = items.findtext(f"{tag(EVENT, 'item')}/{{urn:xmpp:json:0}}json")
    assert payload is not None
    envelope: dict[str, Any] = json.loads(payload)
    return envelope


_CYCLE = ["Away", "Busy", "Meal", "Training", "Break", "Meeting"]
_last: list[str] = []


def change_presence(sb: Sandbox) -> str:
    """Set agent 1 to a presence other than the last one set (so an event is published)."""
    presence = next(p for p in _CYCLE if not _last or p != _last[-1])
    _CYCLE.append(_CYCLE.pop(_CYCLE.index(presence)))
    _last.append(presence)
    sb.set_presence(AGENT_1, presence)
    return presence


def expect_presence(session: Xmpp, presence: str) -> dict[str, Any]:
    """The envelope of the event that sets ``presence`` (earlier ones are skipped)."""
    while True:
        envelope = presence_event(session)
        if envelope["eventBody"]["presenceDefinition"]["systemPresence"] == presence:
            return envelope


def test_handshake_iqs_and_an_event(sb: Sandbox, watcher: Xmpp) -> None:
    assert watcher.iq("get", '<ping xmlns="urn:xmpp:ping"/>', to=DOMAIN).get("type") == "result"
    services = watcher.iq("get", '<services xmlns="urn:xmpp:extdisco:1" type="turn"/>', DOMAIN)
    assert services.get("type") == "result"
    assert services.find("{urn:xmpp:extdisco:1}services") is not None
    unknown = watcher.iq("get", '<query xmlns="jabber:iq:version"/>', to=DOMAIN)
    assert unknown.get("type") == "error"
    assert unknown.find(f".//{{{'urn:ietf:params:xml:ns:xmpp-stanzas'}}}service-unavailable") \
        is not None
    envelope = expect_presence(watcher, change_presence(sb))
    assert envelope["topicName"] == f"v2.users.{AGENT_1}.presence"
    assert envelope["version"] == "2"


def test_server_pings_once_asked_for(sb: Sandbox, watcher: Xmpp) -> None:
    assert watcher.subscribe("enable.server.side.pings").get("type") == "result"
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        frame = watcher.recv(skip_pings=False)
        if frame.find("{urn:xmpp:ping}ping") is not None:
            assert frame.get("type") == "get"
            watcher.send(f'<iq xmlns="{CLIENT}" type="result" id="{frame.get("id")}"/>')
            return
    raise AssertionError("no server ping within 5 s (heartbeat_interval is 0.3 s)")


def test_rest_subscription_of_the_channel_reaches_the_xmpp_session(sb: Sandbox) -> None:
    token = user_token(sb, AGENT_1)
    channel_id = new_channel(sb, token)
    session = Xmpp(sb, channel_id)
    try:
        session.start(AGENT_1, token)
        api = Api(sb)
        put = api.put(
            f"/api/v2/notifications/channels/{channel_id}/subscriptions",
            token=token, json=[{"id": f"v2.users.{AGENT_1}.presence"}],
        )
        assert put.status_code == 200, put.text
        expect_presence(session, change_presence(sb))
    finally:
        session.close()


def test_unknown_topic_subscription_is_an_iq_error(watcher: Xmpp) -> None:
    answer = watcher.subscribe("v2.nothing.here")
    assert answer.get("type") == "error"


@pytest.mark.parametrize(
    ("user", "password_token"),
    [("self", "not-a-token"), ("other", "valid")],
    ids=["bad-token", "jid-of-another-user"],
)
def test_wrong_sasl_credentials_fail_not_authorized_and_touch_no_other_session(
    sb: Sandbox, watcher: Xmpp, user: str, password_token: str
) -> None:
    token = user_token(sb, AGENT_2)
    intruder = Xmpp(sb, new_channel(sb, token))
    try:
        jid_user = AGENT_2 if user == "self" else AGENT_1
        answer = intruder.auth(jid_user, token if password_token == "valid" else password_token)
        assert answer.tag == tag(SASL, "failure")
        assert answer.find(tag(SASL, "not-authorized")) is not None
        # not authenticated: a stanza now ends this session, and only this one
        intruder.send(f'<iq xmlns="{CLIENT}" type="get" id="x"><ping xmlns="urn:xmpp:ping"/></iq>')
        frames = intruder.until_closed()
        assert any(f.find(tag(STREAMS, "not-authorized")) is not None for f in frames)
    finally:
        intruder.close()
    expect_presence(watcher, change_presence(sb))


LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    '<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    f'<message xmlns="{CLIENT}"><body>&lol2;</body></message>'
)
XXE = (
    '<!DOCTYPE m [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    f'<message xmlns="{CLIENT}"><body>&xxe;</body></message>'
)


@pytest.mark.parametrize(
    ("frame", "condition"),
    [
        ("<iq xmlns='jabber:client' type='get'", "not-well-formed"),
        (f"<message xmlns='{CLIENT}'><body>&undefined;</body></message>", "not-well-formed"),
        (LAUGHS, "restricted-xml"),
        (XXE, "restricted-xml"),
        (f"<!-- hi --><message xmlns='{CLIENT}'/>", "restricted-xml"),
        (f"<message xmlns='{CLIENT}'><body>{'x' * 70_000}</body></message>", "policy-violation"),
        ("<a>" * 40 + "</a>" * 40, "policy-violation"),
        ("<surprise xmlns='urn:example:unknown'/>", "unsupported-stanza-type"),
    ],
    ids=["truncated", "undefined-entity", "billion-laughs", "external-entity", "comment",
         "oversize", "too-deep", "unknown-element"],
)
def test_hostile_frames_get_a_stream_error_and_touch_no_other_session(
    sb: Sandbox, watcher: Xmpp, frame: str, condition: str
) -> None:
    token = user_token(sb, AGENT_2)
    victim = Xmpp(sb, new_channel(sb, token))
    try:
        victim.start(AGENT_2, token)
        victim.send(frame)
        frames = victim.until_closed()
    finally:
        victim.close()
    errors = [f for f in frames if f.tag == tag(STREAM, "error")]
    assert errors, [ET.tostring(f) for f in frames]
    assert errors[0].find(tag(STREAMS, condition)) is not None, ET.tostring(errors[0])
    assert frames[-1].tag == tag(FRAMING, "close")
    assert "root:" not in "".join(ET.tostring(f, encoding="unicode") for f in frames)
    expect_presence(watcher, change_presence(sb))


def test_binary_frame_is_a_stream_error(sb: Sandbox) -> None:
    token = user_token(sb, AGENT_2)
    session = Xmpp(sb, new_channel(sb, token))
    try:
        session.send(OPEN)
        session.recv()
        session.recv()
        session.ws.send_binary(b"<open/>")
        frames = session.until_closed()
    finally:
        session.close()
    assert any(f.find(tag(STREAMS, "unsupported-encoding")) is not None for f in frames)


def test_upgrade_to_an_unknown_channel_is_404(sb: Sandbox) -> None:
    with pytest.raises(websocket.WebSocketBadStatusException) as raised:
        websocket.create_connection(
            f"ws://127.0.0.1:{sb.port}/stream/channels/streaming-0-nope",
            subprotocols=["xmpp"], timeout=5,
        )
    assert raised.value.status_code == 404


def test_token_of_a_client_credentials_grant_is_refused(sb: Sandbox) -> None:
    api = Api(sb)
    user = user_token(sb, AGENT_1)
    session = Xmpp(sb, new_channel(sb, user))
    try:
        answer = session.auth(AGENT_1, api.token)
        assert answer.find(tag(SASL, "not-authorized")) is not None
    finally:
        session.close()
