"""Every sandbox-side fault on the streaming service, driven frame by frame over a real
WebSocket (the ``Xmpp`` client of ``streaming_helpers``) against a real sandbox: a close with a
code, ``socket_closing`` as XEP-0051 connection transfer, a channel's expiry and eviction,
token revocation and expiry, refused and delayed upgrades, and the platform reaction counting a
streaming session as an agent desktop session."""

from __future__ import annotations

import json
import struct
import time
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import websocket

from chaosgenesys.clock import ManualClock
from chaosgenesys.sandbox import Sandbox
from chaosgenesys.sandbox import streaming as streaming_module
from tests.sandbox.sandbox_helpers import AGENT_1, AGENT_2, Api, make_seed, wait_until
from tests.sandbox.streaming_helpers import (
    CLIENT,
    DOMAIN,
    EVENT,
    FRAMING,
    REDIRECT,
    SASL,
    STREAM,
    STREAMS,
    Xmpp,
    new_channel,
    tag,
    user_token,
)

CXFR = "urn:xmpp:cxfr"


def _seed() -> dict[str, Any]:
    seed = make_seed()
    seed["clients"][0]["redirect_uris"] = [REDIRECT]
    return seed


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    # no platform reaction here (its own tests below): closed sessions must not log agents off
    with Sandbox(
        seed=_seed(), heartbeat_interval=0.3, rate_limit_per_minute=0, session_grace_seconds=0
    ) as sandbox:
        yield sandbox


@pytest.fixture
def api(sb: Sandbox) -> Iterator[Api]:
    client = Api(sb)
    yield client
    client.close()


def quiet(sb: Sandbox) -> None:
    """Wait until the sockets and sessions of earlier tests are gone on the server side."""
    assert wait_until(
        lambda: sb.snapshot()["notifications"]["connected"] == 0
        and sb.platform()["sessions"] == {}
    )


def admin(sb: Sandbox, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    response = requests.post(f"{sb.url}/sandbox/v1{path}", json=body or {}, timeout=10)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def session_of(sb: Sandbox, user_id: str) -> tuple[Xmpp, str, str, str]:
    """A bound session of ``user_id``: (client, channel id, token, full JID)."""
    token = user_token(sb, user_id)
    channel_id = new_channel(sb, token)
    session = Xmpp(sb, channel_id)
    jid = session.start(user_id, token)
    return session, channel_id, token, jid


def until_close(session: Xmpp, timeout: float = 5.0) -> tuple[list[ET.Element], int | None]:
    """Text frames up to the WebSocket close, and the close code (``None``: none in the frame).
    Server pings are skipped."""
    session.ws.settimeout(timeout)
    frames: list[ET.Element] = []
    while True:
        opcode, data = session.ws.recv_data(control_frame=True)
        if opcode == websocket.ABNF.OPCODE_CLOSE:
            return frames, struct.unpack("!H", data[:2])[0] if len(data) >= 2 else None
        if opcode == websocket.ABNF.OPCODE_TEXT:
            frame = ET.fromstring(data.decode())
            if frame.find("{urn:xmpp:ping}ping") is None:
                frames.append(frame)


def alive(session: Xmpp) -> bool:
    """The session still answers a ping IQ."""
    return session.iq("get", '<ping xmlns="urn:xmpp:ping"/>', to=DOMAIN).get("type") == "result"


def pubsub_json(frame: ET.Element) -> tuple[str, dict[str, Any]]:
    """(node, envelope) of a pubsub event message."""
    assert frame.tag == tag(CLIENT, "message"), ET.tostring(frame)
    items = frame.find(f"{tag(EVENT, 'event')}/{tag(EVENT, 'items')}")
    assert items is not None, ET.tostring(frame)
    payload = items.findtext(f"{tag(EVENT, 'item')}/{{urn:xmpp:json:0}}json")
    assert payload is not None
    envelope: dict[str, Any] = json.loads(payload)
    return items.get("node", ""), envelope


def sasl_answer(sb: Sandbox, channel_id: str, user_id: str, token: str) -> ET.Element:
    session = Xmpp(sb, channel_id)
    try:
        return session.auth(user_id, token)
    finally:
        session.close()


# --------------------------------------------------------------------------- close with a code


def test_close_drops_the_users_streaming_session_with_the_code_and_keeps_the_channel(
    sb: Sandbox,
) -> None:
    target, channel_id, token, _ = session_of(sb, AGENT_1)
    other, _, _, _ = session_of(sb, AGENT_2)
    try:
        answer = admin(sb, "/notifications/close", {"code": 4000, "user_ids": [AGENT_1]})
        assert answer == {"closed": 1, "streaming": 1}
        frames, code = until_close(target)
        assert code == 4000
        assert frames == []  # bare: no stream error, no <close/>
        assert alive(other)  # another user's session is not touched
        assert sb.platform()["sessions"] == {AGENT_2: 1}
        again = Xmpp(sb, channel_id)  # the channel stays: the client reconnects to it
        try:
            again.start(AGENT_1, token)
            assert alive(again)
        finally:
            again.close()
    finally:
        target.close()
        other.close()


def test_sessions_only_closes_a_streaming_session_but_not_a_json_observer(
    sb: Sandbox, api: Api
) -> None:
    quiet(sb)
    observer = api.post("/api/v2/notifications/channels").json()
    put = api.put(
        f"/api/v2/notifications/channels/{observer['id']}/subscriptions",
        json=[{"id": f"v2.users.{AGENT_1}.presence"}],
    )
    assert put.status_code == 200, put.text
    ws = websocket.create_connection(observer["connectUri"], timeout=5)
    desktop, _, _, _ = session_of(sb, AGENT_1)  # no topic at all: still a desktop session
    try:
        answer = admin(sb, "/notifications/close", {"code": 4001, "sessions_only": True})
        assert answer == {"closed": 1, "streaming": 1}
        assert until_close(desktop)[1] == 4001
        ws.settimeout(5)
        assert json.loads(ws.recv())["topicName"] == "channel.metadata"  # still connected
    finally:
        ws.close()
        desktop.close()


def test_close_of_everything_counts_streaming_and_json_sockets(sb: Sandbox, api: Api) -> None:
    quiet(sb)
    channel = api.post("/api/v2/notifications/channels").json()
    ws = websocket.create_connection(channel["connectUri"], timeout=5)
    desktop, _, _, _ = session_of(sb, AGENT_2)
    try:
        assert sb.close_notification_sockets(code=1001) == 2
        assert until_close(desktop)[1] == 1001
    finally:
        ws.close()
        desktop.close()


# --------------------------------------------------------------------------- socket_closing


def test_socket_closing_is_a_connection_transfer_and_the_server_closes_after_the_grace() -> None:
    with Sandbox(
        seed=_seed(), rate_limit_per_minute=0, session_grace_seconds=0, clock=ManualClock()
    ) as sb:
        check_connection_transfer(sb)


def check_connection_transfer(sb: Sandbox) -> None:
    session, _, _, jid = session_of(sb, AGENT_1)
    other, _, _, _ = session_of(sb, AGENT_2)
    try:
        assert admin(sb, "/notifications/socket-closing", {"user_ids": [AGENT_1]}) == {"sent": 1}
        transfer = session.recv()
        sb.advance(streaming_module.SOCKET_CLOSING_GRACE - 1)
        assert alive(session)  # still within the grace
        sb.advance(1)
        frames, code = until_close(session)
        assert transfer.tag == tag(CLIENT, "iq"), ET.tostring(transfer)
        assert transfer.get("type") == "set" and transfer.get("id")
        assert transfer.get("to") == jid and transfer.get("from") == DOMAIN
        assert transfer.find(tag(CXFR, "query")) is not None
        # the client did not go: after the grace the server closes the session
        assert frames[-1].tag == tag(FRAMING, "close")
        assert code == 1000
        assert alive(other)
    finally:
        session.close()
        other.close()


def test_socket_closing_counts_json_sockets_and_streaming_sessions(
    sb: Sandbox, api: Api
) -> None:
    quiet(sb)
    channel = api.post("/api/v2/notifications/channels").json()
    ws = websocket.create_connection(channel["connectUri"], timeout=5)
    session, _, _, _ = session_of(sb, AGENT_2)
    try:
        assert sb.send_socket_closing() == 2
        assert session.recv().find(tag(CXFR, "query")) is not None
        assert alive(session)  # a notice: the session works until the grace runs out
    finally:
        ws.close()
        session.close()


# --------------------------------------------------------------------------- channel end


def test_channel_expiry_ends_the_session_with_no_longer_subscribed() -> None:
    with Sandbox(seed=_seed(), channel_lifetime=1.0, rate_limit_per_minute=0,
                 session_grace_seconds=0, clock=ManualClock()) as short:
        session, channel_id, _, _ = session_of(short, AGENT_1)
        try:
            short.advance(1.0)  # the channel's lifetime is up
            frames, code = until_close(session)
        finally:
            session.close()
        node, envelope = pubsub_json(frames[0])
        assert node == f"v2.system.no_longer_subscribed.{channel_id}"
        assert envelope["topicName"] == node
        body = envelope["eventBody"]
        assert body["channelId"] == channel_id and body["reason"] == "expired"
        assert body["systemTopicType"] == "no_longer_subscribed"
        assert frames[-1].tag == tag(FRAMING, "close") and code == 1000
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            Xmpp(short, channel_id)
        assert refused.value.status_code == 404  # the client must make a new channel


def test_eviction_over_the_channel_limit_ends_the_session(sb: Sandbox, api: Api) -> None:
    """20 channels per user and client: the client's client-credentials channels do not
    count against the user's; the user's own 21st channel evicts the oldest, the session's."""
    session, channel_id, token, _ = session_of(sb, AGENT_1)
    sockets: list[websocket.WebSocket] = []

    def connected_channel(bearer: str) -> None:
        channel = requests.post(
            f"{sb.url}/api/v2/notifications/channels",
            headers={"Authorization": f"Bearer {bearer}"}, timeout=5,
        ).json()
        sockets.append(websocket.create_connection(channel["connectUri"], timeout=5))

    try:
        for _ in range(20):  # the client's own (no user): another count
            connected_channel(api.token)
        assert alive(session)
        # 19 more of the user's, all connected: a bound streaming session counts as connected
        # too, so none is evicted before the user's 21st, which evicts the oldest: the session's
        for _ in range(19):
            connected_channel(token)
        assert alive(session)
        assert requests.post(
            f"{sb.url}/api/v2/notifications/channels",
            headers={"Authorization": f"Bearer {token}"}, timeout=5,
        ).status_code == 200
        frames, code = until_close(session)
    finally:
        session.close()
        for ws in sockets:
            ws.close()
    node, envelope = pubsub_json(frames[0])
    assert node == f"v2.system.no_longer_subscribed.{channel_id}"
    assert envelope["eventBody"]["reason"] == "evicted"
    assert frames[-1].tag == tag(FRAMING, "close") and code == 1000


# --------------------------------------------------------------------------- tokens


def test_revocation_ends_the_session_and_the_same_token_then_fails_sasl(sb: Sandbox) -> None:
    session, channel_id, token, _ = session_of(sb, AGENT_1)
    try:
        assert admin(sb, "/tokens/revoke")["count"] >= 1
        frames, code = until_close(session)
    finally:
        session.close()
    errors = [f for f in frames if f.tag == tag(STREAM, "error")]
    assert errors, [ET.tostring(f) for f in frames]
    assert errors[0].find(tag(STREAMS, "not-authorized")) is not None
    assert "revoked" in (errors[0].findtext(tag(STREAMS, "text")) or "")
    assert frames[-1].tag == tag(FRAMING, "close") and code == 1000
    # the client's reconnect with the same token: SASL not-authorized (its invalid_token)
    answer = sasl_answer(sb, channel_id, AGENT_1, token)
    assert answer.tag == tag(SASL, "failure")
    assert answer.find(tag(SASL, "not-authorized")) is not None


def test_revoking_one_token_ends_only_its_sessions(sb: Sandbox) -> None:
    revoked, _, token, _ = session_of(sb, AGENT_1)
    kept, _, _, _ = session_of(sb, AGENT_2)
    try:
        gone = requests.delete(
            f"{sb.url}/api/v2/tokens/me", headers={"Authorization": f"Bearer {token}"}, timeout=5
        )
        assert gone.status_code in (200, 204), gone.text
        frames, _ = until_close(revoked)
        assert any(f.find(tag(STREAMS, "not-authorized")) is not None for f in frames)
        assert alive(kept)
    finally:
        revoked.close()
        kept.close()


def test_json_socket_of_a_channel_made_with_a_revoked_token_gets_token_revoked(
    sb: Sandbox, api: Api
) -> None:
    doomed_token = api.new_token()
    doomed = api.post("/api/v2/notifications/channels", token=doomed_token).json()
    spared = api.post("/api/v2/notifications/channels").json()
    ws_doomed = websocket.create_connection(doomed["connectUri"], timeout=5)
    ws_spared = websocket.create_connection(spared["connectUri"], timeout=5)
    try:
        gone = api.delete("/api/v2/tokens/me", token=doomed_token)
        assert gone.status_code in (200, 204), gone.text
        message = json.loads(ws_doomed.recv())
        while message["topicName"] == "channel.metadata":
            message = json.loads(ws_doomed.recv())
        assert message["topicName"] == f"v2.system.token_revoked.{doomed['id']}"
        assert message["eventBody"] == {
            "channelId": doomed["id"], "systemTopicType": "token_revoked",
            "reason": "revoked", "message": message["eventBody"]["message"],
        }
        assert message["eventBody"]["message"]
        # the socket stays (the documented assumption), the other channel hears nothing
        assert json.loads(ws_doomed.recv())["topicName"] == "channel.metadata"
        for _ in range(3):
            assert json.loads(ws_spared.recv())["topicName"] == "channel.metadata"
    finally:
        ws_doomed.close()
        ws_spared.close()


def test_token_expiry_leaves_a_live_session_and_fails_the_next_sasl(sb: Sandbox) -> None:
    session, channel_id, token, _ = session_of(sb, AGENT_1)
    try:
        assert sb.expire_tokens() >= 1
        time.sleep(0.5)  # several server heartbeats: nothing ends the session
        assert alive(session)
        answer = sasl_answer(sb, channel_id, AGENT_1, token)
        assert answer.find(tag(SASL, "not-authorized")) is not None
        assert alive(session)
    finally:
        session.close()


# --------------------------------------------------------------------------- upgrade faults


def test_a_refused_upgrade_is_read_back_by_the_websocket_client(sb: Sandbox) -> None:
    token = user_token(sb, AGENT_1)
    channel_id = new_channel(sb, token)
    sb.inject_fault("/stream/channels/", status=503, count=1)
    with pytest.raises(websocket.WebSocketBadStatusException) as refused:
        Xmpp(sb, channel_id)
    assert refused.value.status_code == 503
    session = Xmpp(sb, channel_id)  # the fault was used up: the next upgrade works
    try:
        session.start(AGENT_1, token)
    finally:
        session.close()


def test_a_delayed_upgrade_is_delayed(sb: Sandbox) -> None:
    token = user_token(sb, AGENT_1)
    channel_id = new_channel(sb, token)
    sb.inject_fault("/stream/channels/", delay_ms=800, count=1)
    started = time.monotonic()
    session = Xmpp(sb, channel_id)
    try:
        assert time.monotonic() - started >= 0.8
        session.start(AGENT_1, token)
    finally:
        session.close()


# --------------------------------------------------------------------------- platform reaction

GRACE = 1.0


@pytest.fixture
def reacting() -> Iterator[Sandbox]:
    with Sandbox(
        seed=_seed(), rate_limit_per_minute=0, session_grace_seconds=GRACE, clock=ManualClock()
    ) as sandbox:
        yield sandbox


def presence(sb: Sandbox, user_id: str) -> str:
    return sb.state.users[user_id].presence.name


def test_a_streaming_only_agent_whose_session_is_closed_is_logged_off(reacting: Sandbox) -> None:
    session, _, _, _ = session_of(reacting, AGENT_1)
    try:
        assert wait_until(lambda: reacting.platform()["sessions"] == {AGENT_1: 1})
        assert reacting.platform()["usersWithSession"] == [AGENT_1]
        before = presence(reacting, AGENT_1)
        assert before != "Offline"
        assert reacting.close_notification_sockets(code=4000, user_ids=[AGENT_1]) == 1
        assert until_close(session)[1] == 4000
        assert wait_until(lambda: reacting.platform()["pending"] != [])
        reacting.advance(GRACE)
        assert wait_until(lambda: presence(reacting, AGENT_1) == "Offline", timeout=GRACE + 4)
        reaction = reacting.platform()["reactions"][-1]
        assert reaction["userId"] == AGENT_1 and reaction["action"] == "sessionLost"
        assert reaction["previousPresence"] == before
    finally:
        session.close()


def test_a_streaming_agent_that_reconnects_within_the_grace_stays(reacting: Sandbox) -> None:
    session, channel_id, token, _ = session_of(reacting, AGENT_1)
    before = presence(reacting, AGENT_1)
    try:
        assert reacting.close_notification_sockets(code=4000, user_ids=[AGENT_1]) == 1
        until_close(session)
        assert reacting.platform()["pending"][0]["userId"] == AGENT_1
        again = Xmpp(reacting, channel_id)  # same channel, as the client reconnects
        try:
            again.start(AGENT_1, token)
            assert reacting.platform()["pending"] == []
            reacting.advance(GRACE * 2)
            assert presence(reacting, AGENT_1) == before
            assert reacting.platform()["reactions"] == []
        finally:
            again.close()
    finally:
        session.close()


def test_a_displaced_streaming_session_does_not_start_the_grace(reacting: Sandbox) -> None:
    session, channel_id, token, _ = session_of(reacting, AGENT_1)
    try:
        newer = Xmpp(reacting, channel_id)
        try:
            newer.start(AGENT_1, token, resource="r2")
            frames, _ = until_close(session)
            assert any(f.find(tag(STREAMS, "conflict")) is not None for f in frames)
            assert reacting.platform()["sessions"] == {AGENT_1: 1}
            assert reacting.platform()["pending"] == []
        finally:
            newer.close()
        assert wait_until(lambda: reacting.platform()["sessions"] == {})
        assert reacting.platform()["pending"][0]["userId"] == AGENT_1
    finally:
        session.close()
