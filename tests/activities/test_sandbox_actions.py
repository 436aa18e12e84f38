"""sandbox.actions: server-side faults through the admin API of a real sandbox."""

from __future__ import annotations

import http.server
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.sandbox import actions
from chaosgenesys.users import probes as users
from tests.activities.activity_seed import AGENT_1, CLIENT_ID, QUEUE

Cfg = dict[str, Any]


def test_inject_and_clear_a_delay(configuration: Cfg, secrets: Cfg) -> None:
    users.get_presence(AGENT_1, configuration, secrets)  # token fetched before the fault
    answer = actions.inject_api_fault("/presences/", delay_ms=600, configuration=configuration)
    assert answer.get("id")
    started = time.monotonic()
    users.get_presence(AGENT_1, configuration, secrets)
    assert time.monotonic() - started >= 0.55
    cleared = actions.clear_sandbox_faults(configuration)
    assert isinstance(cleared, dict)
    started = time.monotonic()
    users.get_presence(AGENT_1, configuration, secrets)
    assert time.monotonic() - started < 0.5
    # idempotent: a natural rollback
    actions.clear_sandbox_faults(configuration)


def test_fault_limited_by_count_and_method(fast_configuration: Cfg, secrets: Cfg) -> None:
    actions.inject_api_fault(
        "/presences/purecloud$",
        status=503,
        method="patch",
        count=1,
        configuration=fast_configuration,
    )
    # GETs are not affected
    assert users.presence_is(AGENT_1, "On Queue", fast_configuration, secrets)


def test_429_fault_with_retry_after(fast_configuration: Cfg, secrets: Cfg) -> None:
    users.get_presence(AGENT_1, fast_configuration, secrets)
    answer = actions.inject_api_fault(
        "/presences/purecloud$",
        status=429,
        count=1,
        retry_after=1,
        configuration=fast_configuration,
    )
    assert answer["fault"]["retry_after"] == 1
    started = time.monotonic()
    assert users.presence_is(AGENT_1, "On Queue", fast_configuration, secrets)
    assert time.monotonic() - started >= 0.95


def test_fault_limited_by_duration(secrets: Cfg) -> None:
    from chaosgenesys.clock import ManualClock
    from chaosgenesys.sandbox import Sandbox
    from tests.activities.activity_seed import FAST_RETRIES
    from tests.conftest import make_seed

    # The fault's duration runs on the sandbox's clock: driven here, not slept out.
    with Sandbox(seed=make_seed(), clock=ManualClock()) as sb:
        configuration = {
            "genesys_api_url": sb.url, "genesys_login_url": sb.url, "genesys_timeout": 5,
            **FAST_RETRIES,
        }
        actions.inject_api_fault(
            "/presences", status=500, duration=0.5, configuration=configuration
        )
        with pytest.raises(ActivityFailed, match="500"):
            users.get_presence(AGENT_1, configuration, secrets)
        sb.advance(0.45)  # short of its end: still failing
        with pytest.raises(ActivityFailed, match="500"):
            users.get_presence(AGENT_1, configuration, secrets)
        sb.advance(0.1)
        assert users.get_presence(AGENT_1, configuration, secrets)["system_presence"]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path_pattern": "("}, "path_pattern must be a valid regular expression"),
        ({"path_pattern": ""}, "path_pattern must be a non-empty string"),
        ({"path_pattern": "/x", "delay_ms": -5}, "delay_ms must be at least 0, got -5"),
        ({"path_pattern": "/x", "status": 42}, "status must be an HTTP status code"),
        ({"path_pattern": "/x", "status": 503, "method": "FETCH"}, "method must be one of"),
        ({"path_pattern": "/x", "status": 503, "count": -1}, "count must be at least 0"),
        ({"path_pattern": "/x", "status": 503, "duration": -1}, "duration must be at least 0"),
        ({"path_pattern": "/x"}, "needs delay_ms > 0 or a status"),
        (
            {"path_pattern": "/x", "status": 429, "retry_after": -1},
            "retry_after must be at least 0",
        ),
    ],
)
def test_inject_api_fault_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ActivityFailed, match=message):
        actions.inject_api_fault(**kwargs)


def test_expire_tokens_then_probe_refreshes(configuration: Cfg, secrets: Cfg) -> None:
    from chaosgenesys.platform import client_for

    client = client_for(configuration, secrets)
    users.get_presence(AGENT_1, configuration, secrets)
    refreshes = client.tokens.refresh_count(client.settings)
    answer = actions.expire_tokens(configuration=configuration)
    assert isinstance(answer, dict)
    assert users.presence_is(AGENT_1, "On Queue", configuration, secrets)
    assert client.tokens.refresh_count(client.settings) == refreshes + 1
    assert isinstance(actions.expire_tokens(CLIENT_ID, configuration), dict)


def test_revoke_tokens_then_probe_refreshes(configuration: Cfg, secrets: Cfg) -> None:
    users.get_presence(AGENT_1, configuration, secrets)
    assert isinstance(actions.revoke_tokens(configuration), dict)
    assert users.presence_is(AGENT_1, "On Queue", configuration, secrets)


def test_set_token_lifetime(configuration: Cfg, secrets: Cfg) -> None:
    from chaosgenesys.auth import probes as auth

    answer = actions.set_token_lifetime(600, configuration=configuration, secrets=secrets)
    assert isinstance(answer, dict)
    actions.expire_tokens(configuration=configuration)
    assert auth.token_info(configuration, secrets)["seconds_left"] <= 600
    with pytest.raises(ActivityFailed, match="seconds must be at least 1, got 0"):
        actions.set_token_lifetime(0, configuration=configuration, secrets=secrets)


def test_close_notification_sockets(configuration: Cfg) -> None:
    answer = actions.close_notification_sockets(1001, [], configuration=configuration)
    assert isinstance(answer, dict)
    answer = actions.close_notification_sockets(4000, [AGENT_1], configuration=configuration)
    assert isinstance(answer, dict)
    with pytest.raises(ActivityFailed, match="code 1500: 1500 is not a close code a server may"):
        actions.close_notification_sockets(1500, [], configuration=configuration)
    with pytest.raises(ActivityFailed, match="code must be at least 1000, got 5"):
        actions.close_notification_sockets(5, [], configuration=configuration)
    assert isinstance(actions.send_socket_closing([AGENT_1], configuration), dict)


@pytest.mark.parametrize(
    ("code", "reason"),
    [
        (1004, "1004 is reserved by RFC 6455 with no meaning defined"),
        (1005, r"1005 \(no status received\) must never be sent"),
        (1006, r"1006 \(abnormal closure\) must never be sent.*drop the connection"),
        (1015, r"1015 \(TLS handshake failure\) must never be sent"),
    ],
)
def test_close_codes_never_sent_on_the_wire_are_refused(
    sandbox: Any, configuration: Cfg, secrets: Cfg, code: int, reason: str
) -> None:
    socket = _socket(sandbox, configuration, secrets, [f"v2.users.{AGENT_1}.presence"])
    try:
        with pytest.raises(ActivityFailed, match=rf"^code {code}: {reason}"):
            actions.close_notification_sockets(code, [], configuration=configuration)
        # refused before anything changed: the socket is still open and answers a ping
        socket.send('{"message": "ping"}')
        assert '"pong"' in socket.recv()
    finally:
        socket.close()


def test_route_call(configuration: Cfg, secrets: Cfg) -> None:
    from chaosgenesys.conversations import probes as conversations

    result = actions.route_call(QUEUE, configuration=configuration)
    cid = result["conversation_id"]
    assert isinstance(cid, str) and cid
    conversation = conversations.get_conversation(cid, configuration, secrets)
    assert conversation["id"] == cid
    with pytest.raises(ActivityFailed, match="queue_id must be a non-empty string"):
        actions.route_call("", configuration=configuration)
    with pytest.raises(ActivityFailed, match="answer must be true or false"):
        actions.route_call(QUEUE, answer="yes", configuration=configuration)  # type: ignore[arg-type]


def test_disconnect_call(configuration: Cfg, secrets: Cfg) -> None:
    from chaosgenesys.conversations import probes as conversations

    cid = actions.route_call(QUEUE, AGENT_1, True, configuration=configuration)["conversation_id"]
    assert actions.disconnect_call(cid, configuration)["disconnected"] is True
    assert not conversations.call_is_connected(cid, AGENT_1, configuration, secrets)
    with pytest.raises(ActivityFailed, match="no-such-call"):
        actions.disconnect_call("no-such-call", configuration)


def test_route_call_with_a_conversation_id_named_up_front(
    configuration: Cfg, secrets: Cfg
) -> None:
    from chaosgenesys.conversations import probes as conversations

    cid = "c0ffee00-0000-4000-8000-000000000042"
    result = actions.route_call(
        QUEUE, AGENT_1, True, conversation_id=cid, configuration=configuration
    )
    assert result["conversation_id"] == cid
    assert conversations.call_is_connected(cid, AGENT_1, configuration, secrets)
    assert actions.disconnect_call(cid, configuration)["disconnected"] is True
    assert conversations.wrapup_state(cid, AGENT_1, configuration, secrets)["status"] == "pending"
    with pytest.raises(ActivityFailed, match="already exists"):
        actions.route_call(QUEUE, conversation_id=cid, configuration=configuration)
    with pytest.raises(ActivityFailed, match="conversation_id must be a non-empty string"):
        actions.route_call(QUEUE, conversation_id="a/b", configuration=configuration)


def _socket(sandbox: Any, configuration: Cfg, secrets: Cfg, topics: list[str]) -> Any:
    """A notification socket on a new channel subscribed to ``topics``."""
    import requests
    import websocket

    token = requests.post(
        sandbox.url + "/oauth/token",
        data={"grant_type": "client_credentials"},
        auth=(secrets["client_id"], secrets["client_secret"]),
        timeout=5,
    ).json()["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    channel = requests.post(
        sandbox.url + "/api/v2/notifications/channels", headers=headers, timeout=5
    ).json()
    requests.put(
        sandbox.url + f"/api/v2/notifications/channels/{channel['id']}/subscriptions",
        json=[{"id": topic} for topic in topics],
        headers=headers,
        timeout=5,
    ).raise_for_status()
    return websocket.create_connection(channel["connectUri"], timeout=5)


def test_close_only_desktop_sessions_keeps_observers(
    sandbox: Any, configuration: Cfg, secrets: Cfg
) -> None:
    desktop = _socket(
        sandbox, configuration, secrets,
        [f"v2.users.{AGENT_1}.conversations", f"v2.users.{AGENT_1}.presence"],
    )
    observer = _socket(sandbox, configuration, secrets, [f"v2.users.{AGENT_1}.presence"])
    try:
        answer = actions.close_notification_sockets(
            1001, [AGENT_1], sessions_only=True, configuration=configuration
        )
        assert answer == {"closed": 1, "streaming": 0}
        # the observer is still there: a second close of everything finds it
        answer = actions.close_notification_sockets(1001, [AGENT_1], configuration=configuration)
        assert answer == {"closed": 1, "streaming": 0}
    finally:
        desktop.close()
        observer.close()
    with pytest.raises(ActivityFailed, match="sessions_only must be true or false"):
        actions.close_notification_sockets(
            1001, [], sessions_only="yes", configuration=configuration  # type: ignore[arg-type]
        )


def test_configure_platform(sandbox: Any, configuration: Cfg) -> None:
    answer = actions.configure_platform(session_grace_seconds=1.5, configuration=configuration)
    assert answer["session_grace_seconds"] == 1.5
    assert answer["presence_renew_seconds"] == 60.0  # unchanged
    answer = actions.configure_platform(
        presence_renew_seconds=0, renew_on_queue="true", configuration=configuration
    )
    assert answer["session_grace_seconds"] == 1.5
    assert answer["presence_renew_seconds"] == 0
    assert answer["renew_on_queue"] is True
    assert sandbox.platform()["renew_on_queue"] is True
    with pytest.raises(ActivityFailed, match="needs at least one"):
        actions.configure_platform(configuration=configuration)
    with pytest.raises(ActivityFailed, match="renew_on_queue must be true, false or empty"):
        actions.configure_platform(renew_on_queue="maybe", configuration=configuration)
    with pytest.raises(ActivityFailed, match="session_grace_seconds must be at least -1"):
        actions.configure_platform(session_grace_seconds=-5, configuration=configuration)
    with pytest.raises(ActivityFailed, match="or -1: unchanged"):
        actions.configure_platform(session_grace_seconds=-0.5, configuration=configuration)


def test_route_call_unknown_queue_is_not_mistaken_for_no_sandbox(configuration: Cfg) -> None:
    with pytest.raises(ActivityFailed) as info:
        actions.route_call("no-such-queue", configuration=configuration)
    assert "does not serve the chaosgenesys sandbox" not in str(info.value)
    assert "no-such-queue" in str(info.value)


class _NotFound(http.server.BaseHTTPRequestHandler):
    def _answer(self) -> None:
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    do_GET = do_POST = do_DELETE = do_PATCH = _answer

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def not_a_sandbox() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_refuses_when_not_a_sandbox(not_a_sandbox: str) -> None:
    configuration = {"genesys_api_url": not_a_sandbox, "genesys_timeout": 2}
    calls: list[Callable[[], object]] = [
        lambda: actions.inject_api_fault("/x", status=503, configuration=configuration),
        lambda: actions.clear_sandbox_faults(configuration),
        lambda: actions.expire_tokens(configuration=configuration),
        lambda: actions.route_call(QUEUE, configuration=configuration),
        lambda: actions.close_notification_sockets(1001, [], configuration=configuration),
    ]
    for call in calls:
        with pytest.raises(ActivityFailed, match="does not serve the chaosgenesys sandbox admin"):
            call()


def test_refuses_without_api_url_or_server() -> None:
    with pytest.raises(ActivityFailed, match="genesys_api_url"):
        actions.clear_sandbox_faults({})
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ActivityFailed, match="connection"):
        actions.clear_sandbox_faults({"genesys_api_url": f"http://127.0.0.1:{port}"})
