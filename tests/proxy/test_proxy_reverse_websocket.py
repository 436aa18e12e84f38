"""Reverse mode and the notifications WebSocket: the channel's ``connectUri`` leads back through
the proxy, so WebSocket rules reach the socket (a real mitmproxy, the sandbox, real clients).

Genesys Cloud names its own streaming host in ``connectUri`` (``wss://streaming.<domain>``, not
the API host the reverse proxy stands in front of): the last test has a fake API host whose
channel names a TLS WebSocket server on another port, and checks the proxy forwards the socket
there with that server's name in ``Host`` and the TLS SNI.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websocket

from chaosgenesys.proxy import actions, probes
from chaosgenesys.proxy.reverse import ChannelRoutes, Target
from tests.conftest import AGENT_1, CLIENT_ID, CLIENT_SECRET
from tests.proxy.conftest import direct_session, token_for, wait_for
from tests.proxy.test_proxy_tls import _make_pki

CHANNELS = "/api/v2/notifications/channels"


@pytest.fixture(scope="module")
def reverse_proxy(
    proxy_sandbox: Any, proxy_runtime: Path, proxy_ca_dir: Path
) -> Iterator[dict[str, Any]]:
    """``chaosgenesys proxy --mode reverse:<sandbox>`` as docs/proxy.md shows it."""
    info = actions.start_proxy(
        name="reverse-ws", port=0, mode=f"reverse:{proxy_sandbox.url}", confdir=str(proxy_ca_dir)
    )
    try:
        yield info
    finally:
        actions.stop_proxy("reverse-ws")


@pytest.fixture
def reverse_rules(reverse_proxy: dict[str, Any]) -> Iterator[dict[str, Any]]:
    actions.clear_rules("reverse-ws")
    yield reverse_proxy
    actions.clear_rules("reverse-ws")


def _close_code(ws: websocket.WebSocket, timeout: float = 5.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        frame = ws.recv_data_frame(control_frame=True)[1]
        if frame.opcode == websocket.ABNF.OPCODE_CLOSE:
            return int.from_bytes(frame.data[:2], "big")
    raise AssertionError("no close frame")


def test_channel_connect_uri_leads_through_the_reverse_proxy(
    proxy_sandbox: Any, reverse_rules: dict[str, Any]
) -> None:
    url, port = reverse_rules["proxy_url"], reverse_rules["port"]
    before = probes.proxy_stats("reverse-ws")
    token = token_for(url)
    headers = {"Authorization": f"Bearer {token}"}
    answer = direct_session().post(url + CHANNELS, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    channel = answer.json()
    # the proxy's own address, as the client reached it (not the sandbox's 127.0.0.1:<port>)
    assert channel["connectUri"] == f"ws://127.0.0.1:{port}/channels/{channel['id']}"
    listed = direct_session().get(url + CHANNELS, headers=headers, timeout=10).json()
    assert {e["id"]: e["connectUri"] for e in listed["entities"]}[channel["id"]] == (
        channel["connectUri"]
    )
    # connect the way a client does: straight to the connectUri, no proxy setting
    ws = websocket.create_connection(channel["connectUri"], timeout=5)
    try:
        first = json.loads(ws.recv())
        assert first["topicName"] == "channel.metadata"  # the sandbox's heartbeat
        stats = probes.proxy_stats("reverse-ws")
        assert stats["websockets_opened"] == before["websockets_opened"] + 1
        assert stats["websockets_open"] == 1
        actions.close_websockets("^/channels/", 4002, reason="through the proxy", name="reverse-ws")
        assert _close_code(ws) == 4002
    finally:
        ws.close()
    stats = probes.proxy_stats("reverse-ws")
    assert stats["websockets_closed_by_rule"] == before["websockets_closed_by_rule"] + 1
    assert stats["rules"][0]["stats"]["applied"] == 1


def test_a_throttled_channel_answer_is_still_rewritten_and_paced(
    proxy_sandbox: Any, reverse_rules: dict[str, Any]
) -> None:
    url, port = reverse_rules["proxy_url"], reverse_rules["port"]
    headers = {"Authorization": f"Bearer {token_for(url)}"}
    actions.throttle_responses("^/api/v2/notifications/channels$", 0.1, name="reverse-ws")
    start = time.monotonic()
    answer = direct_session().post(url + CHANNELS, headers=headers, timeout=10)
    took = time.monotonic() - start
    assert answer.status_code == 200, answer.text
    assert answer.json()["connectUri"].startswith(f"ws://127.0.0.1:{port}/channels/")
    # about 130 bytes at 100 bytes per second: held for as long as such a link takes
    assert 0.9 * len(answer.content) / 100 <= took < len(answer.content) / 100 + 1.0, took
    assert probes.proxy_stats("reverse-ws")["rules"][0]["stats"]["applied"] == 1


def test_a_tls_client_gets_a_wss_connect_uri_by_the_name_it_used(
    proxy_sandbox: Any, reverse_rules: dict[str, Any]
) -> None:
    url = f"https://localhost:{reverse_rules['port']}"  # TLS to the proxy, mitmproxy's CA
    ca = reverse_rules["ca_cert"]
    session = direct_session()
    token = session.post(
        url + "/oauth/token",
        auth=(CLIENT_ID, CLIENT_SECRET),
        data={"grant_type": "client_credentials"},
        verify=ca,
        timeout=10,
    ).json()["access_token"]
    channel = session.post(
        url + CHANNELS, headers={"Authorization": f"Bearer {token}"}, verify=ca, timeout=10
    ).json()
    assert (
        channel["connectUri"] == f"wss://localhost:{reverse_rules['port']}/channels/{channel['id']}"
    )
    ws = websocket.create_connection(channel["connectUri"], timeout=5, sslopt={"ca_certs": ca})
    try:
        assert json.loads(ws.recv())["topicName"] == "channel.metadata"
        assert probes.proxy_stats("reverse-ws")["websockets_open"] == 1
    finally:
        ws.close()


def test_synthetic_agent_socket_goes_through_the_reverse_proxy(
    proxy_sandbox: Any, reverse_rules: dict[str, Any]
) -> None:
    """The walkthrough: ``chaosgenesys agent --api-url <proxy>`` and a WebSocket close rule."""
    from tests.agent.helpers import AgentsThread

    before = probes.proxy_stats("reverse-ws")["websockets_opened"]
    with AgentsThread(reverse_rules["proxy_url"], [AGENT_1]) as agents:
        assert probes.proxy_stats("reverse-ws")["websockets_opened"] == before + 1
        actions.close_websockets("^/channels/", 4001, name="reverse-ws", count=1)
        assert wait_for(lambda: agents.stats()["reconnects"] == 1, 10)
        assert agents.stats()["last_disconnect_reason"] == "closed by server (4001)"
        # it came back through the proxy too
        assert wait_for(lambda: probes.proxy_stats("reverse-ws")["websockets_open"] == 1, 5)
        assert probes.proxy_stats("reverse-ws")["websockets_opened"] == before + 2


class _StreamingPair:
    """A fake API host (plain HTTP) whose channels name another host in ``connectUri``: a TLS
    WebSocket server on localhost (Genesys Cloud's ``api.<domain>`` and
    ``streaming.<domain>``). The socket tells the client the ``Host`` and SNI it saw."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.tls.load_cert_chain(cert, key)
        self.sni: list[str | None] = []
        self.tls.sni_callback = lambda _sock, name, _ctx: self.sni.append(name)  # type: ignore[assignment,misc,return-value]
        self.api_hosts: list[str] = []
        self.api_port = self.streaming_port = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._runners: list[Any] = []

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        from aiohttp import web

        async def channel(request: web.Request) -> web.Response:
            self.api_hosts.append(request.host)
            entity = {
                "connectUri": f"wss://localhost:{self.streaming_port}/channels/streaming-1",
                "id": "streaming-1",
                "expires": "2099-01-01T00:00:00.000Z",
            }
            body = entity if request.method == "POST" else {"entities": [entity]}
            return web.json_response(body)

        async def socket(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse()
            await ws.prepare(request)
            await ws.send_json({"host": request.host, "path": request.path, "sni": self.sni[-1]})
            async for message in ws:
                await ws.send_str(message.data)
            return ws

        api = web.Application()
        api.router.add_route("*", CHANNELS, channel)
        streaming = web.Application()
        streaming.router.add_get("/channels/{id}", socket)
        for app, context in ((api, None), (streaming, self.tls)):
            runner = web.AppRunner(app)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
            await site.start()
            self._runners.append(runner)
        self.api_port = self._runners[0].addresses[0][1]
        self.streaming_port = self._runners[1].addresses[0][1]

    def __enter__(self) -> _StreamingPair:
        self._thread.start()
        assert self._ready.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        async def stop() -> None:
            for runner in self._runners:
                await runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def test_streaming_host_other_than_the_api_host_is_reached_through_the_proxy(
    tmp_path: Path, proxy_ca_dir: Path, proxy_runtime: Path
) -> None:
    ca, cert, key = _make_pki(tmp_path)
    with _StreamingPair(cert, key) as pair:
        info = actions.start_proxy(
            name="reverse-api",
            port=0,
            mode=f"reverse:http://127.0.0.1:{pair.api_port}",
            confdir=str(proxy_ca_dir),
            upstream_ca=str(ca),
        )
        try:
            answer = direct_session().post(info["proxy_url"] + CHANNELS, timeout=10)
            assert answer.status_code == 200, answer.text
            connect_uri = answer.json()["connectUri"]
            assert connect_uri == f"ws://127.0.0.1:{info['port']}/channels/streaming-1"
            # the API host itself still gets its own name (reverse mode's Host rewrite)
            assert pair.api_hosts == [f"127.0.0.1:{pair.api_port}"]
            ws = websocket.create_connection(connect_uri, timeout=5)
            try:
                seen = json.loads(ws.recv())
                # forwarded to the host the API named, by name, over TLS verified with its CA
                assert seen == {
                    "host": f"localhost:{pair.streaming_port}",
                    "path": "/channels/streaming-1",
                    "sni": "localhost",
                }
                ws.send("echo")
                assert ws.recv() == "echo"
                stats = probes.proxy_stats("reverse-api")
                assert (stats["websockets_opened"], stats["websockets_open"]) == (1, 1)
                actions.close_websockets(
                    "^/channels/streaming-", 4003, host="localhost", name="reverse-api"
                )
                assert _close_code(ws) == 4003
            finally:
                ws.close()
        finally:
            actions.stop_proxy("reverse-api")


def test_channel_routes_rewrite_every_connect_uri_and_remember_its_host() -> None:
    routes = ChannelRoutes(limit=2)
    body = json.dumps(
        {
            "entities": [
                {"id": "a", "connectUri": "wss://streaming.mypurecloud.com/channels/a"},
                {"id": "b", "connectUri": "ws://[::1]:8765/channels/b?x=1"},
                {"id": "c"},
            ]
        }
    )
    rewritten = routes.rewrite_body(body, "ws://127.0.0.1:9000")
    assert rewritten is not None
    assert [e.get("connectUri") for e in json.loads(rewritten)["entities"]] == [
        "ws://127.0.0.1:9000/channels/a",
        "ws://127.0.0.1:9000/channels/b?x=1",
        None,
    ]
    assert routes.target("/channels/a") == Target("https", "streaming.mypurecloud.com", 443)
    assert routes.target("/channels/b?x=1") == Target("http", "::1", 8765)
    assert routes.target("/channels/z") is None
    # bounded: the oldest route goes first
    routes.rewrite_body('{"connectUri": "wss://s.example/channels/c"}', "ws://p")
    assert routes.target("/channels/a") is None and len(routes) == 2
    # nothing to rewrite: left alone
    for text in ("not json", "[]", '{"id": "x"}', '{"connectUri": "no url"}', '{"entities": 3}'):
        assert routes.rewrite_body(text, "ws://p") is None
    assert ChannelRoutes.is_channels_request(
        "post", "/api/v2/notifications/channels?connectionType=streaming"
    )
    assert not ChannelRoutes.is_channels_request(
        "GET", "/api/v2/notifications/channels/x/subscriptions"
    )
    assert not ChannelRoutes.is_channels_request("DELETE", "/api/v2/notifications/channels")
