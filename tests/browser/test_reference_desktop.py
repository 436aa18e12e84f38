"""The reference web desktop (/desktop/) in real headless Chromium against a real sandbox.

One sandbox and one Chromium for the module; the page logs Test Agent 1 in by ``?user=`` with
the sandbox's built-in public client (authorization code + PKCE, the official SDK's own login),
goes On Queue, answers a call placed through the sandbox, wraps it up, and rides out a closed
streaming socket on the official streaming client's own reconnect. The built-in client's rules
(no secret, PKCE only, only the sandbox's own /desktop/ page) are checked over HTTP, and a
missing library bundle is a clear failure on the page.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chaosgenesys.sandbox.seed import DESKTOP_CLIENT_ID, SeedError, load_seed
from tests.browser.chromium import chromium
from tests.conftest import AGENT_1, AGENT_2, CLIENT_ID, CLIENT_SECRET, QUEUE, make_seed

EMAIL = "agent1@example.com"
# short answer delay and wrap-up time, and proof that the page's own query survives the login
QUERY = f"user={EMAIL}&answer_ms=200&wrapup_ms=500"
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
SECRETISH = re.compile(r"[A-Za-z0-9_-]{32,}")


def _seed() -> dict[str, Any]:
    return make_seed(
        users=[
            {"id": AGENT_1, "name": "Test Agent 1", "email": EMAIL, "presence": "Available"},
            {"id": AGENT_2, "name": "Test Agent 2", "presence": "Available"},
        ],
        queues=[{"id": QUEUE, "name": "Chaos Queue", "members": [AGENT_1, AGENT_2]}],
    )


def _wait(what: str, predicate: Callable[[], Any], timeout: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.05)


class Api:
    """The sandbox's REST API with a client-credentials token, and its admin API."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = requests.Session()
        answer = self.http.post(
            f"{url}/oauth/token", auth=(CLIENT_ID, CLIENT_SECRET),
            data={"grant_type": "client_credentials"}, timeout=10,
        )
        assert answer.status_code == 200, answer.text
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def get(self, path: str) -> Any:
        answer = self.http.get(f"{self.url}{path}", timeout=10)
        assert answer.status_code == 200, f"GET {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = requests.request(method, f"{self.url}/sandbox/v1{path}", json=body, timeout=10)
        assert answer.status_code < 300, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def presence(self, user_id: str) -> str:
        user = self.get(f"/api/v2/users/{user_id}?expand=presence")
        return str(user["presence"]["presenceDefinition"]["systemPresence"])

    def agent(self, conversation_id: str, user_id: str) -> dict[str, Any]:
        conversation = self.get(f"/api/v2/conversations/{conversation_id}")
        mine = [p for p in conversation["participants"]
                if p["purpose"] == "agent" and p.get("userId") == user_id]
        assert mine, f"no agent participant of {user_id} in {conversation_id}"
        return dict(mine[-1])

    def desktop_tokens(self) -> int:
        clients = {c["clientId"]: c for c in self.admin("GET", "/state")["clients"]}
        return int(clients[DESKTOP_CLIENT_ID]["activeTokens"])


class Desktop:
    """The page in Chromium, with everything it logged and the WebSockets it opened."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.console: list[tuple[str, str]] = []
        self.sockets: list[str] = []
        page.on("console", lambda m: self.console.append((m.type, m.text)))
        page.on("websocket", lambda ws: self.sockets.append(ws.url))

    def pump(self) -> None:
        """Let Playwright deliver the page's events (it does so only inside its own calls)."""
        self.page.wait_for_timeout(1)

    def text(self, name: str) -> str:
        return str(self.page.inner_text(f'[data-cg="{name}"]')).strip()

    def attribute(self, name: str, attribute: str) -> str:
        return str(self.page.get_attribute(f'[data-cg="{name}"]', attribute) or "")

    def logged(self, text: str) -> bool:
        self.pump()
        return any(text in message for _, message in self.console)

    def errors(self) -> list[str]:
        self.pump()
        return [message for kind, message in self.console if kind == "error"]


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Any]:
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed=_seed()) as sb:
        yield sb


@pytest.fixture(scope="module")
def api(sandbox: Any) -> Api:
    return Api(sandbox.url)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with chromium() as ws_url, sync_playwright() as pw:
        cdp = pw.chromium.connect_over_cdp(ws_url)
        yield cdp
        cdp.close()


@pytest.fixture(scope="module")
def desktop(sandbox: Any, browser: Any) -> Iterator[Desktop]:
    """The page, logged in by ``?user=``, its streaming client connected."""
    for name in ("purecloud-platform-client-v2.js", "streaming-client.browser.js"):
        answer = requests.get(f"{sandbox.url}/desktop/lib/{name}", timeout=10)
        assert answer.status_code == 200, (
            f"/desktop/lib/{name}: {answer.status_code} {answer.text[:200]} "
            "(the official libraries come from node_modules/: run scripts/bootstrap)"
        )
    context = browser.new_context()
    desktop = Desktop(context.new_page())
    desktop.page.goto(f"{sandbox.url}/desktop/?{QUERY}")
    _wait("the banner to say connected",
          lambda: desktop.attribute("connection", "data-state") == "connected")
    yield desktop
    context.close()


def test_login_by_user_goes_on_queue(desktop: Desktop, api: Api, sandbox: Any) -> None:
    # the token the page holds is Test Agent 1's, from the built-in desktop client
    assert desktop.attribute("user", "data-user-id") == AGENT_1
    assert desktop.attribute("user", "data-email") == EMAIL
    assert api.desktop_tokens() == 1
    # the page put the agent On Queue (the seed has it Available)
    _wait("the API to show Test Agent 1 On Queue", lambda: api.presence(AGENT_1) == "On Queue")
    assert api.presence(AGENT_2) == "Available"
    _wait("the DOM to say On Queue", lambda: desktop.text("presence") == "On Queue")
    _wait("the DOM routing status IDLE", lambda: desktop.text("routing-status") == "IDLE")
    assert desktop.text("connection") == "connected"
    assert desktop.text("call-state") == "none"
    # its own query is back in the address bar, the code and state are gone
    assert desktop.page.url == f"{sandbox.url}/desktop/?{QUERY.replace('@', '%40')}"
    assert desktop.logged("[desktop] subscribed to")
    assert any("/stream/channels/" in url for url in desktop.sockets), desktop.sockets
    assert desktop.errors() == []


def test_answers_and_wraps_up_a_call(desktop: Desktop, api: Api) -> None:
    _wait("On Queue", lambda: api.presence(AGENT_1) == "On Queue")
    conversation = api.admin("POST", "/calls", {"queue_id": QUEUE, "user_id": AGENT_1})["id"]

    def call_state() -> str:
        return str(api.agent(conversation, AGENT_1)["calls"][0]["state"])

    _wait("the page to answer (the API shows the agent connected)",
          lambda: call_state() == "connected")
    _wait("the DOM call state connected", lambda: desktop.text("call-state") == "connected")
    assert desktop.logged(f"[desktop] call {conversation} alerting")
    assert desktop.logged("[desktop] call state: alerting")

    api.admin("POST", f"/conversations/{conversation}/disconnect")
    agent = _wait("the page's wrap-up (the API shows it)",
                  lambda: (lambda a: a if a.get("wrapup") else None)(
                      api.agent(conversation, AGENT_1)))
    codes = {c["id"] for c in api.get("/api/v2/routing/wrapupcodes")["entities"]}
    assert agent["wrapup"]["code"] in codes
    assert agent["calls"][0]["afterCallWork"]["state"] == "complete"
    _wait("the DOM call state none", lambda: desktop.text("call-state") == "none")
    assert desktop.logged("[desktop] call state: wrapup")
    assert desktop.logged(f"[desktop] wrap-up submitted for call {conversation}")
    routing = api.get(f"/api/v2/users/{AGENT_1}/routingstatus")["status"]
    assert routing == "IDLE"
    assert desktop.errors() == []


def test_a_call_routed_before_the_page_subscribed_is_answered(
    browser: Any, sandbox: Any, api: Api
) -> None:
    # Its event went to nobody: the page finds it in GET /api/v2/conversations once subscribed.
    def presence(definition_id: str) -> None:
        answer = api.http.patch(f"{api.url}/api/v2/users/{AGENT_2}/presences/purecloud",
                                json={"presenceDefinition": {"id": definition_id}}, timeout=10)
        assert answer.status_code == 200, answer.text

    presence("e08eaf1b-ee47-4fa9-a231-1200e284798f")  # On Queue, no desktop yet
    conversation = api.admin("POST", "/calls", {"queue_id": QUEUE, "user_id": AGENT_2})["id"]
    assert api.agent(conversation, AGENT_2)["calls"][0]["state"] == "alerting"
    context = browser.new_context()
    try:
        late = Desktop(context.new_page())
        late.page.goto(f"{sandbox.url}/desktop/?user={AGENT_2}&answer_ms=100&wrapup_ms=100")
        _wait("the page to answer the call routed before it started",
              lambda: api.agent(conversation, AGENT_2)["calls"][0]["state"] == "connected")
        assert late.logged(f"[desktop] call {conversation} alerting (subscribed)")
        api.admin("POST", f"/conversations/{conversation}/disconnect")
        _wait("the page's wrap-up", lambda: api.agent(conversation, AGENT_2).get("wrapup"))
        assert late.errors() == []
    finally:
        context.close()
        presence("6a3af858-942f-489d-9700-5f9bcdcdae9b")  # Available, as seeded


def test_reconnects_by_the_librarys_own_logic(desktop: Desktop, api: Api) -> None:
    desktop.pump()
    sockets = len(desktop.sockets)
    closed = api.admin("POST", "/notifications/close", {"code": 1011, "user_ids": [AGENT_1]})
    assert closed["streaming"] == 1, closed
    _wait("the banner to leave connected",
          lambda: desktop.logged("[desktop] connection: reconnecting"), timeout=10)
    # back by the library's own reconnect (its first backoff step is 2 s): a new WebSocket
    _wait("the banner back to connected",
          lambda: desktop.attribute("connection", "data-state") == "connected", timeout=20)
    assert desktop.text("connection") == "connected"
    states = [m for _, m in desktop.console if m.startswith("[desktop] connection: ")]
    assert states[-2:] == ["[desktop] connection: reconnecting",
                           "[desktop] connection: connected"], states
    assert len(desktop.sockets) > sockets, desktop.sockets
    assert "/stream/channels/" in desktop.sockets[-1]
    assert api.presence(AGENT_1) == "On Queue"
    assert desktop.text("presence") == "On Queue"
    # still live: a presence change made elsewhere reaches the page through the new socket
    api.admin("PATCH", f"/users/{AGENT_1}", {"presence": "Break"})
    _wait("the DOM to follow the server's presence", lambda: desktop.text("presence") == "Break")
    api.admin("PATCH", f"/users/{AGENT_1}", {"presence": "On Queue"})
    _wait("the DOM On Queue again", lambda: desktop.text("presence") == "On Queue")

    # a hard reconnect (XEP-0051 transfer: a new channel), the library resubscribes by itself
    channels = {url.rsplit("/", 1)[-1] for url in desktop.sockets}
    assert api.admin("POST", "/notifications/socket-closing", {"user_ids": [AGENT_1]})["sent"] == 1
    _wait("a socket on a new channel",
          lambda: (desktop.pump(), {u.rsplit("/", 1)[-1] for u in desktop.sockets} - channels)[1],
          timeout=20)
    _wait("the banner back to connected",
          lambda: desktop.attribute("connection", "data-state") == "connected", timeout=20)
    # a change right after the reconnect, before the library's resubscription (debounced
    # 100 ms after 'connected'): no event reaches the page, its second re-read catches it
    api.admin("PATCH", f"/users/{AGENT_1}", {"presence": "Break"})
    _wait("the DOM to follow after the hard reconnect", lambda: desktop.text("presence") == "Break")
    _wait("the page's second re-read",
          lambda: desktop.logged("[desktop] state read (reconnected, subscriptions renewed)"))
    # later changes arrive as events on the new channel: the library did resubscribe
    api.admin("PATCH", f"/users/{AGENT_1}", {"presence": "On Queue"})
    _wait("the DOM to follow on the new channel", lambda: desktop.text("presence") == "On Queue")
    assert desktop.errors() == []


def test_the_page_never_logs_a_token(desktop: Desktop) -> None:
    desktop.pump()
    assert desktop.console, "the page logged nothing"
    for _kind, message in desktop.console:
        assert not SECRETISH.search(UUID.sub("", message)), message


def test_missing_bundle_is_a_clear_failure(
    sandbox: Any, browser: Any, api: Api, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from chaosgenesys.sandbox import desktop as routes

    monkeypatch.setattr(routes, "NODE_MODULES", tmp_path)  # a checkout without npm ci
    tokens = api.desktop_tokens()
    context = browser.new_context()
    try:
        page = Desktop(context.new_page())
        page.page.goto(f"{sandbox.url}/desktop/?user={AGENT_2}")
        _wait("the page's error", lambda: page.page.is_visible('[data-cg="error"]'))
        error = page.text("error")
        assert "run scripts/bootstrap" in error, error
        assert "/desktop/lib/streaming-client.browser.js" in error, error
        assert any("run scripts/bootstrap" in m for m in page.errors()), page.console
        assert page.attribute("connection", "data-state") == "disconnected"
    finally:
        context.close()
    assert api.desktop_tokens() == tokens  # nobody logged in
    assert api.presence(AGENT_2) == "Available"


def test_renews_its_token_on_401_and_ahead_of_expiry(
    desktop: Desktop, sandbox: Any, browser: Any, api: Api
) -> None:
    # every desktop token expires: the next API call of the page gets 401, renews, retries
    assert api.admin("POST", "/tokens/expire", {"client_id": DESKTOP_CLIENT_ID})["count"] >= 1
    conversation = api.admin("POST", "/calls", {"queue_id": QUEUE, "user_id": AGENT_1})["id"]
    _wait("the page to answer with a renewed token",
          lambda: api.agent(conversation, AGENT_1)["calls"][0]["state"] == "connected")
    assert desktop.logged("[desktop] answer: HTTP 401, the token is renewed first")
    # the console message comes over DevTools on its own; the call may be seen connected first
    _wait("the renewal logged", lambda: desktop.logged("[desktop] token renewed"), timeout=5)
    assert api.desktop_tokens() == 1
    # the streaming client has the new token: its next reconnect authenticates with it (SASL
    # with the expired one would fail not-authorized, and the library would give up)
    api.admin("POST", "/notifications/close", {"code": 1011, "user_ids": [AGENT_1]})
    _wait("the banner to leave connected",
          lambda: desktop.attribute("connection", "data-state") != "connected", timeout=10)
    _wait("the banner back to connected",
          lambda: desktop.attribute("connection", "data-state") == "connected", timeout=20)
    api.admin("POST", f"/conversations/{conversation}/disconnect")
    _wait("the wrap-up", lambda: api.agent(conversation, AGENT_1).get("wrapup"))

    # ahead of expiry: a 4 s token is renewed 2 s before it runs out, without any 401
    api.admin("PATCH", f"/clients/{DESKTOP_CLIENT_ID}", {"token_lifetime": 4})
    context = browser.new_context()
    try:
        short = Desktop(context.new_page())
        short.page.goto(f"{sandbox.url}/desktop/?user={AGENT_2}&renew_ahead_s=2")
        _wait("the second page's login",
              lambda: short.attribute("user", "data-user-id") == AGENT_2)
        assert short.logged("[desktop] token renewal in 2 s")
        _wait("the renewal ahead of expiry", lambda: short.logged("[desktop] token renewed"),
              timeout=10)
        assert not short.logged("HTTP 401")
        assert short.errors() == []
    finally:
        context.close()
        api.admin("PATCH", f"/clients/{DESKTOP_CLIENT_ID}", {"token_lifetime": 86400})


# ---------------------------------------------------------------------- the built-in client


def _authorize(url: str, **params: str) -> requests.Response:
    return requests.get(f"{url}/oauth/authorize", params=params, allow_redirects=False,
                        timeout=10)


def test_builtin_client_is_public_pkce_only_and_redirects_only_to_the_desktop(
    sandbox: Any,
) -> None:
    url = sandbox.url
    verifier = "v" * 64
    challenge = base64.urlsafe_b64encode(
        hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    pkce = {"client_id": DESKTOP_CLIENT_ID, "response_type": "code", "login_hint": AGENT_2,
            "code_challenge": challenge, "code_challenge_method": "S256"}

    # the sandbox's own /desktop/ (and a loopback one on another port: RFC 8252 §7.3)
    for redirect in (f"{url}/desktop/", "http://localhost:1/desktop/"):
        answer = _authorize(url, redirect_uri=redirect, **pkce)
        assert answer.status_code == 302, answer.text
        assert answer.headers["Location"].startswith(f"{redirect}?code=")
    code = answer.headers["Location"].split("code=")[1].split("&")[0]
    token = requests.post(f"{url}/oauth/token", data={
        "grant_type": "authorization_code", "code": code, "client_id": DESKTOP_CLIENT_ID,
        "redirect_uri": "http://localhost:1/desktop/", "code_verifier": verifier}, timeout=10)
    assert token.status_code == 200, token.text
    me = requests.get(f"{url}/api/v2/users/me", timeout=10,
                      headers={"Authorization": f"Bearer {token.json()['access_token']}"})
    assert me.json()["id"] == AGENT_2

    # anywhere else, no PKCE, the implicit grant: 400 and no redirect
    for redirect in (f"{url}/desktop/x", f"{url}/callback", "http://example.com/desktop/"):
        answer = _authorize(url, redirect_uri=redirect, **pkce)
        assert answer.status_code == 400 and "Location" not in answer.headers, redirect
        assert "is not the sandbox's desktop page" in answer.text
    no_pkce = {k: v for k, v in pkce.items() if not k.startswith("code_")}
    for params in (no_pkce, {**no_pkce, "response_type": "token"}):
        answer = _authorize(url, redirect_uri=f"{url}/desktop/", **params)
        assert answer.status_code == 400 and "Location" not in answer.headers
        assert "PKCE code_challenge" in answer.text

    # no secret: never a client-credentials token
    for secret in ("", "anything"):
        answer = requests.post(f"{url}/oauth/token", auth=(DESKTOP_CLIENT_ID, secret),
                               data={"grant_type": "client_credentials"}, timeout=10)
        assert answer.status_code == 401, answer.text


def test_builtin_client_survives_a_reseed_and_cannot_be_seeded() -> None:
    from chaosgenesys.sandbox.state import SandboxState

    state = SandboxState(load_seed(make_seed()))
    assert state.tokens.clients[DESKTOP_CLIENT_ID].public
    assert list(state.tokens.clients) == [CLIENT_ID, DESKTOP_CLIENT_ID]
    state.load(load_seed({"clients": [{"client_id": "other", "client_secret": "s" * 20}]}))
    assert list(state.tokens.clients) == ["other", DESKTOP_CLIENT_ID]
    with pytest.raises(SeedError, match=r"clients\[0\]\.client_id 'chaosgenesys-desktop'"):
        load_seed({"clients": [{"client_id": DESKTOP_CLIENT_ID, "client_secret": "x" * 20}]})
