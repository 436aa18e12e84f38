"""Helpers for the streaming service tests: user tokens through the implicit grant, streaming
channels, and a hand-driven XMPP-over-WebSocket client (``websocket-client``)."""

from __future__ import annotations

import base64
import xml.etree.ElementTree as ET
from urllib.parse import parse_qs, urlsplit

import requests
import websocket

from chaosgenesys.sandbox import Sandbox
from tests.sandbox.sandbox_helpers import CLIENT_ID

REDIRECT = "http://localhost:8080/callback"
DOMAIN = "sandbox.invalid"
FRAMING = "urn:ietf:params:xml:ns:xmpp-framing"
SASL = "urn:ietf:params:xml:ns:xmpp-sasl"
STREAMS = "urn:ietf:params:xml:ns:xmpp-streams"
STREAM = "http://etherx.jabber.org/streams"
CLIENT = "jabber:client"
PUBSUB = "http://jabber.org/protocol/pubsub"
EVENT = "http://jabber.org/protocol/pubsub#event"
OPEN = f'<open xmlns="{FRAMING}" to="{DOMAIN}" version="1.0"/>'


def user_token(sb: Sandbox, user_id: str) -> str:
    response = requests.get(
        f"{sb.url}/oauth/authorize", allow_redirects=False, timeout=5,
        params={"response_type": "token", "client_id": CLIENT_ID, "redirect_uri": REDIRECT,
                "login_hint": user_id},
    )
    assert response.status_code == 302, response.text
    return parse_qs(urlsplit(response.headers["Location"]).fragment)["access_token"][0]


def new_channel(sb: Sandbox, token: str) -> str:
    response = requests.post(
        f"{sb.url}/api/v2/notifications/channels", params={"connectionType": "streaming"},
        headers={"Authorization": f"Bearer {token}"}, timeout=5,
    )
    assert response.status_code == 200, response.text
    channel_id: str = response.json()["id"]
    return channel_id


def tag(ns: str, name: str) -> str:
    return f"{{{ns}}}{name}"


class Xmpp:
    """A hand-driven XMPP-over-WebSocket client."""

    def __init__(self, sb: Sandbox, channel_id: str) -> None:
        self.ws = websocket.create_connection(
            f"ws://127.0.0.1:{sb.port}/stream/channels/{channel_id}",
            subprotocols=["xmpp"], timeout=5,
        )
        assert self.ws.subprotocol == "xmpp"
        self.counter = 0

    def send(self, frame: str) -> None:
        self.ws.send(frame)

    def recv(self, skip_pings: bool = True) -> ET.Element:
        while True:
            opcode, data = self.ws.recv_data()
            assert opcode == websocket.ABNF.OPCODE_TEXT, (opcode, data)
            element = ET.fromstring(data.decode())
            if skip_pings and element.find(tag("urn:xmpp:ping", "ping")) is not None:
                continue
            return element

    def auth(self, user_id: str, token: str) -> ET.Element:
        self.send(OPEN)
        opened = self.recv()
        assert opened.tag == tag(FRAMING, "open") and opened.get("from") == DOMAIN
        features = self.recv()
        assert features.tag == tag(STREAM, "features")
        mechanisms = [m.text for m in features.iter(tag(SASL, "mechanism"))]
        assert mechanisms == ["PLAIN"]
        plain = base64.b64encode(f"\0{user_id}@{DOMAIN}\0authKey:{token}".encode()).decode()
        self.send(f'<auth xmlns="{SASL}" mechanism="PLAIN">{plain}</auth>')
        return self.recv()

    def start(self, user_id: str, token: str, resource: str = "r1") -> str:
        assert self.auth(user_id, token).tag == tag(SASL, "success")
        self.send(OPEN)
        assert self.recv().tag == tag(FRAMING, "open")
        features = self.recv()
        assert features.find(tag("urn:ietf:params:xml:ns:xmpp-bind", "bind")) is not None
        bind = "urn:ietf:params:xml:ns:xmpp-bind"
        bound = self.iq("set", f'<bind xmlns="{bind}"><resource>{resource}</resource></bind>')
        assert bound.get("type") == "result"
        jid = bound.findtext(".//{urn:ietf:params:xml:ns:xmpp-bind}jid")
        assert jid == f"{user_id}@{DOMAIN}/{resource}"
        return jid

    def iq(self, kind: str, payload: str, to: str | None = None) -> ET.Element:
        self.counter += 1
        iq_id = f"q{self.counter}"
        target = f' to="{to}"' if to else ""
        self.send(f'<iq xmlns="{CLIENT}" type="{kind}" id="{iq_id}"{target}>{payload}</iq>')
        answer = self.recv()
        assert answer.tag == tag(CLIENT, "iq") and answer.get("id") == iq_id, ET.tostring(answer)
        return answer

    def subscribe(self, node: str) -> ET.Element:
        return self.iq(
            "set", f'<pubsub xmlns="{PUBSUB}"><subscribe node="{node}" jid="x@{DOMAIN}"/></pubsub>',
            to="notifications.127.0.0.1",
        )

    def until_closed(self) -> list[ET.Element]:
        """Frames up to the WebSocket close (which must come within the timeout)."""
        frames: list[ET.Element] = []
        while True:
            opcode, data = self.ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                return frames
            if opcode == websocket.ABNF.OPCODE_TEXT:
                frames.append(ET.fromstring(data.decode()))

    def close(self) -> None:
        self.ws.close()
