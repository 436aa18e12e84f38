"""WebSocket faults through a real mitmproxy on the sandbox's notification socket."""

from __future__ import annotations

import json
import time
from typing import Any

import websocket

from chaosgenesys.proxy import actions, probes
from tests.proxy.conftest import direct_session, token_for


def _open_channel(sandbox: Any, proxy: dict[str, Any]) -> websocket.WebSocket:
    token = token_for(sandbox.url)
    channel = direct_session().post(
        f"{sandbox.url}/api/v2/notifications/channels",
        headers={"Authorization": f"Bearer {token}"},
        timeout=10,
    )
    assert channel.status_code == 200, channel.text
    return websocket.create_connection(
        channel.json()["connectUri"],
        http_proxy_host="127.0.0.1",
        http_proxy_port=proxy["port"],
        proxy_type="http",
        timeout=5,
    )


def _until_close(ws: websocket.WebSocket, timeout: float = 5.0) -> tuple[int, str, int, float]:
    """Read frames until the close frame: (code, reason, data messages before it, when)."""
    messages = 0
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = ws.recv_data_frame(control_frame=True)[1]
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            code = int.from_bytes(frame.data[:2], "big")
            return code, frame.data[2:].decode(), messages, time.monotonic()
        if frame.opcode in (websocket.ABNF.OPCODE_TEXT, websocket.ABNF.OPCODE_BINARY):
            messages += 1
    raise AssertionError("no close frame")


def test_open_socket_gets_the_injected_close_code(
    proxy_sandbox: Any, clean_rules: dict[str, Any]
) -> None:
    ws = _open_channel(proxy_sandbox, clean_rules)
    try:
        first = json.loads(ws.recv())
        assert first["topicName"] == "channel.metadata"
        added = time.monotonic()
        actions.close_websockets(
            "^/channels/", 4001, reason="chaos", after_ms=200, name=clean_rules["name"]
        )
        code, reason, _, when = _until_close(ws)
        assert (code, reason) == (4001, "chaos")
        assert 0.2 <= when - added < 0.6
    finally:
        ws.close()
    stats = probes.proxy_stats(clean_rules["name"])
    assert stats["websockets_closed_by_rule"] == 1
    assert stats["rules"][0]["stats"]["applied"] == 1


def test_new_socket_closed_after_n_messages(
    proxy_sandbox: Any, clean_rules: dict[str, Any]
) -> None:
    actions.close_websockets("^/channels/", 1001, after_messages=3, name=clean_rules["name"])
    ws = _open_channel(proxy_sandbox, clean_rules)
    try:
        code, _, messages, _ = _until_close(ws)
    finally:
        ws.close()
    assert code == 1001
    assert messages == 3


def test_dropped_messages_then_recovery(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    ws = _open_channel(proxy_sandbox, clean_rules)
    try:
        ws.recv()
        actions.drop_websocket_messages("^/channels/", "to_client", name=clean_rules["name"])
        ws.settimeout(0.8)
        silent_until = time.monotonic() + 0.8
        received = 0
        while time.monotonic() < silent_until:
            try:
                ws.recv()
                received += 1
            except websocket.WebSocketTimeoutException:
                break
        # At most one heartbeat already in flight when the rule arrived.
        assert received <= 1
        assert ws.connected  # a zombie: open, but hearing nothing
        actions.clear_rules(clean_rules["name"])
        ws.settimeout(5)
        assert json.loads(ws.recv())["topicName"] == "channel.metadata"
    finally:
        ws.close()
    stats = probes.proxy_stats(clean_rules["name"])
    assert stats["websocket_messages_dropped"] >= 2


def _ping(ws: websocket.WebSocket) -> float:
    """Seconds from sending a ping to reading its pong (heartbeats in between are skipped),
    counted from just before the send: read after it, the start can fall after the proxy has
    the ping in hand (a loaded run read 0.298 s for a 0.3 s delay)."""
    start = time.monotonic()
    ws.send(json.dumps({"message": "ping"}))
    while json.loads(ws.recv()).get("eventBody", {}).get("message") != "pong":
        pass
    return time.monotonic() - start


def test_delayed_messages(proxy_sandbox: Any, clean_rules: dict[str, Any]) -> None:
    ws = _open_channel(proxy_sandbox, clean_rules)
    try:
        ws.recv()
        quick = _ping(ws)
        actions.delay_websocket_messages(
            "^/channels/", 300, direction="to_server", name=clean_rules["name"]
        )
        assert _ping(ws) >= 0.3 > quick
    finally:
        ws.close()
