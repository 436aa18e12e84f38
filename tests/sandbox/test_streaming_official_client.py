"""The official ``genesys-cloud-streaming-client`` (npm, pinned in package-lock.json) against a
real sandbox, in Node: it logs in through the implicit grant, connects over XMPP, subscribes to
a user's presence, and must receive the change the test makes through the REST API.

Node and the package come from ``./scripts/bootstrap`` (``npm ci``); without them this test
fails, it does not skip.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chaosgenesys.sandbox import Sandbox
from tests.sandbox.sandbox_helpers import AGENT_1, CLIENT_ID, Api, make_seed
from tests.sandbox.streaming_driver import node
from tests.sandbox.streaming_helpers import Xmpp, user_token

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "streaming_presence.cjs"
REDIRECT = "http://localhost:8080/callback"  # the same as streaming_helpers.REDIRECT


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    seed = make_seed()
    seed["clients"][0]["redirect_uris"] = [REDIRECT]
    with Sandbox(seed=seed) as sandbox:
        yield sandbox


def break_id(api: Api) -> str:
    definitions = api.get("/api/v2/presence/definitions").json()["entities"]
    return next(d["id"] for d in definitions if d["systemPresence"] == "Break")


def read_lines(process: subprocess.Popen[str], lines: queue.Queue[dict[str, Any]]) -> None:
    assert process.stdout is not None
    for line in process.stdout:
        try:
            lines.put(json.loads(line))
        except ValueError:
            lines.put({"step": "noise", "line": line})


def next_step(lines: queue.Queue[dict[str, Any]], process: subprocess.Popen[str]
              ) -> dict[str, Any]:
    while True:
        try:
            message = lines.get(timeout=40)
        except queue.Empty:
            process.kill()
            raise AssertionError("the official client printed nothing for 40 s") from None
        if message["step"] != "noise":
            return message


def start_client(sb: Sandbox, mode: str) -> tuple[subprocess.Popen[str],
                                                 queue.Queue[dict[str, Any]]]:
    env = {k: v for k, v in os.environ.items() if k != "STREAMING_CLIENT_DEBUG"}
    process = subprocess.Popen(
        [node(), str(SCRIPT), sb.url, AGENT_1, CLIENT_ID, REDIRECT, mode],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    lines: queue.Queue[dict[str, Any]] = queue.Queue()
    threading.Thread(target=read_lines, args=(process, lines), daemon=True).start()
    return process, lines


def stop_client(process: subprocess.Popen[str]) -> None:
    if process.poll() is None:
        process.kill()
    process.wait(timeout=10)
    assert process.stderr is not None
    errors = process.stderr.read()
    if process.returncode != 0:
        print(errors[-4000:])


@pytest.mark.parametrize("mode", ["rest", "xmpp"])
def test_official_streaming_client_receives_a_rest_presence_change(
    sb: Sandbox, mode: str
) -> None:
    """``rest``: the client's default subscribe (bulk PUT of the channel's subscriptions);
    ``xmpp``: ``subscribe(topic, handler, immediate=true)``, an XMPP pubsub subscribe."""
    api = Api(sb)
    presence = break_id(api)
    process, lines = start_client(sb, mode)
    try:
        subscribed = next_step(lines, process)
        assert subscribed["step"] == "subscribed", subscribed
        assert subscribed["userId"] == AGENT_1
        changed = api.patch(
            f"/api/v2/users/{AGENT_1}/presences/purecloud",
            json={"presenceDefinition": {"id": presence}},
        )
        assert changed.status_code == 200, changed.text
        event = next_step(lines, process)
        assert event["step"] == "event", event
        assert event["topic"] == f"v2.users.{AGENT_1}.presence"
        envelope = event["data"]
        assert envelope["topicName"] == f"v2.users.{AGENT_1}.presence"
        assert envelope["eventBody"]["presenceDefinition"]["systemPresence"] == "Break"
        assert envelope["eventBody"]["presenceDefinition"]["id"] == presence
        assert process.wait(timeout=15) == 0
    finally:
        stop_client(process)


def test_official_client_meets_sasl_failure_as_invalid_token_and_stops(sb: Sandbox) -> None:
    """After its token is revoked, the client's reconnect fails SASL ``not-authorized``: its own
    code must call that ``invalid_token`` and stop reconnecting (client.ts
    ``saslErrorIsRetryable``). The session is ended by a second connection to its channel."""
    process, lines = start_client(sb, "invalid_token")
    try:
        connected = next_step(lines, process)
        assert connected["step"] == "connected", connected
        assert sb.revoke_tokens(CLIENT_ID) >= 1
        token = user_token(sb, AGENT_1)  # issued after the revocation: valid
        displacer = Xmpp(sb, connected["channelId"])
        try:
            displacer.start(AGENT_1, token, resource="displacer")
            first = next_step(lines, process)
            assert first["step"] == "disconnected" and first["reconnecting"] is True, first
            final = next_step(lines, process)
            # 19.4.1 rejects its reconnect promise ("gave_up"); later releases emit
            # `disconnected` {reconnecting: false, error}: either way, invalid_token, no retry.
            assert final["step"] in ("gave_up", "disconnected"), final
            assert final.get("reconnecting", False) is False
            assert final["errorType"] == "invalid_token"
            assert final["cause"] == "sasl:not-authorized"  # SASL, not a REST 401
            assert process.wait(timeout=15) == 0
            # the refused reconnect did not displace the valid session
            pong = displacer.iq("get", '<ping xmlns="urn:xmpp:ping"/>', to="sandbox.invalid")
            assert pong.get("type") == "result"
        finally:
            displacer.close()
    finally:
        stop_client(process)


def test_the_default_sandbox_lets_the_official_client_in() -> None:
    """docs/sandbox-streaming.md's by-hand run: the default seed (``chaosgenesys sandbox``)
    lets ``chaos-client`` log agents in on the documented redirect URI."""
    with Sandbox() as default:
        process, lines = start_client(default, "rest")
        try:
            subscribed = next_step(lines, process)
            assert subscribed["step"] == "subscribed", subscribed
            default.set_presence(AGENT_1, "Break")
            event = next_step(lines, process)
            assert event["step"] == "event", event
            body = event["data"]["eventBody"]
            assert body["presenceDefinition"]["systemPresence"] == "Break"
            assert process.wait(timeout=15) == 0
        finally:
            stop_client(process)
