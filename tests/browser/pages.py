"""A small web app for browser tests: a page with a WebSocket that reconnects, REST calls, console
messages and the UI attributes the observer reads; the server side breaks its sockets on demand.

    with serve_test_page() as site:
        page.goto(site.url + "/")              # the page connects to site.url + "/ws"
        site.wait_connections(1)
        site.close_sockets(4001)               # a close frame with that code, from the server
        site.drop_sockets()                    # the TCP connection cut, no close frame

The page (``PAGE``) keeps what it saw in ``window.__events`` (``{event, t, ...}`` with ``t`` from
``Date.now()``): ``open``, ``first_frame``, ``close`` (``code``), ``error``; it reconnects
``RECONNECT_MS`` after a close, as a desktop's own client would; with ``?captured`` in its URL it
builds its sockets with the ``WebSocket`` it copied when its script ran, as libraries do; with
``?worker`` it starts a dedicated worker whose first statements fetch ``/api/v2/from-worker``
and open a socket to ``/ws``, which it reopens ``RECONNECT_MS`` after a close (with
``?captured`` too, through the ``WebSocket`` it copied when it started); the worker's ``open``
and ``close`` (``code``) land in ``window.__workerEvents``. With ``?service-worker`` it registers
``/sw.js`` (``SERVICE_WORKER``), whose socket to ``/ws`` reconnects the same way and whose
``open`` and ``close`` land there too; ``window.stopServiceWorker()`` ends it. With
``?shared-worker`` it starts a shared worker of its own (``/shared.js``, named by the page's
query) whose socket reconnects the same way, its events there too;
``window.sharedWorkerFetch(path)`` has it fetch a path.
``window.callApi(path)`` fetches a path and resolves to the status. The server sends a frame
every ``tick_ms`` on each socket.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

RECONNECT_MS = 100
#: The access token ``POST /oauth/token`` answers (``?expires_in=`` its lifetime, default 30 s;
#: ``?delay_ms=`` answers that much later):
#: nothing the observer writes may contain it.
TOKEN_SECRET = "test-access-token-0f9e8d7c6b5a"

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>chaosgenesys test page</title></head>
<body>
<span data-cg="user">test-user</span>
<span data-cg="presence">Available</span>
<div data-cg="connection" data-state="connecting">connecting</div>
<script>
window.__events = [];
function note(event, extra) {
  window.__events.push(Object.assign({event, t: Date.now()}, extra || {}));
}
function banner(state) {
  const el = document.querySelector('[data-cg="connection"]');
  el.dataset.state = state; el.textContent = state;
}
// ?captured: a library that copied the constructor when it loaded, as the streaming client does
const CapturedSocket = /[?&]captured(&|=|$)/.test(location.search) ? window.WebSocket : null;
function connect() {
  const ws = new (CapturedSocket || WebSocket)(location.origin.replace(/^http/, 'ws') + '/ws');
  let first = true;
  ws.onopen = () => { note('open'); banner('connected'); };
  ws.onmessage = () => { if (first) { first = false; note('first_frame'); } };
  ws.onerror = () => note('error');
  ws.onclose = (e) => {
    note('close', {code: e.code}); banner('disconnected');
    setTimeout(connect, RECONNECT_MS_VALUE);
  };
  window.__socket = ws;
}
window.callApi = async (path) => (await fetch(path)).status;
window.setPresence = (label) => {
  document.querySelector('[data-cg="presence"]').textContent = label;
};
connect();
if (/[?&]worker(&|=|$)/.test(location.search)) {
  const ws = location.origin.replace(/^http/, 'ws') + '/ws';
  const code = `fetch('${location.origin}/api/v2/from-worker');
    const Captured = ${CapturedSocket !== null} ? WebSocket : null;
    function connect() {
      const socket = new (Captured || WebSocket)('${ws}');
      socket.onopen = () => postMessage({event: 'open'});
      socket.onmessage = () => {};
      socket.onclose = (e) => {
        postMessage({event: 'close', code: e.code});
        setTimeout(connect, RECONNECT_MS_VALUE);
      };
    }
    connect();`;
  window.__workerEvents = [];
  window.__worker = new Worker(URL.createObjectURL(new Blob([code])));
  window.__worker.onmessage = (e) => {
    window.__workerEvents.push(Object.assign({t: Date.now()}, e.data));
  };
}
if (/[?&]shared-worker(&|=|$)/.test(location.search)) {
  // named by the page's own query: a test's shared worker is its page's alone
  window.__workerEvents = [];
  window.__sharedWorker = new SharedWorker('/shared.js', location.search);
  window.__sharedWorker.port.onmessage = (e) => {
    window.__workerEvents.push(Object.assign({t: Date.now()}, e.data));
  };
  window.__sharedWorker.port.start();
  window.sharedWorkerFetch = (path) => new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = (e) => resolve(e.data);
    window.__sharedWorker.port.postMessage({fetch: path}, [channel.port2]);
  });
}
if (/[?&]service-worker(&|=|$)/.test(location.search)) {
  window.__workerEvents = [];
  navigator.serviceWorker.onmessage = (e) => {
    window.__workerEvents.push(Object.assign({t: Date.now()}, e.data));
  };
  window.__serviceWorker = navigator.serviceWorker.register('/sw.js');
  // another script URL: a new service worker replaces the one there (its socket closes)
  window.startServiceWorker = (url) => {
    window.__serviceWorker = navigator.serviceWorker.register(url);
  };
  window.stopServiceWorker = async () => {
    const registration = await window.__serviceWorker;
    (registration.active || registration.waiting || registration.installing).postMessage('stop');
    await registration.unregister();
  };
}
</script>
</body></html>
""".replace("RECONNECT_MS_VALUE", str(RECONNECT_MS))

#: ``/shared.js``, the shared worker of ``?shared-worker``: it opens a socket to ``/ws`` and
#: reopens it ``RECONNECT_MS`` after a close, telling its pages ``open`` and ``close``
#: (``code``); a message ``{fetch: path}`` with a port fetches the path and answers
#: ``status <code>`` or the error on that port.
SHARED_WORKER = """
const ports = [];
function tell(data) { for (const port of ports) port.postMessage(data); }
function connect() {
  const socket = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
  socket.onopen = () => tell({event: 'open'});
  socket.onmessage = () => {};
  socket.onclose = (e) => {
    tell({event: 'close', code: e.code});
    setTimeout(connect, RECONNECT_MS_VALUE);
  };
}
onconnect = (e) => {
  const port = e.ports[0];
  ports.push(port);
  port.onmessage = (m) => {
    fetch(m.data.fetch).then((r) => m.ports[0].postMessage('status ' + r.status),
                             (err) => m.ports[0].postMessage(String(err)));
  };
  if (ports.length === 1) connect();
};
""".replace("RECONNECT_MS_VALUE", str(RECONNECT_MS))

#: ``/sw.js``, the service worker of ``?service-worker``: once active it controls the page
#: (fetching the page's ``/api/`` requests itself, as an offline-capable app's does), opens a
#: socket to ``/ws`` and reopens it ``RECONNECT_MS`` after a close, telling every page of its
#: origin ``open`` and ``close`` (``code``; ``sw``: its script URL's query, when it has one,
#: e.g. ``/sw.js?second`` that ``window.startServiceWorker(url)`` starts in its place); a ``stop``
#: message closes it for good.
SERVICE_WORKER = """
let stopped = false, socket = null;
async function tell(data) {
  if (location.search) data.sw = location.search;  // which of the site's service workers
  for (const client of await clients.matchAll({includeUncontrolled: true, type: 'window'})) {
    client.postMessage(data);
  }
}
function connect() {
  if (stopped) return;
  socket = new WebSocket(location.origin.replace(/^http/, 'ws') + '/ws');
  socket.onopen = () => tell({event: 'open'});
  socket.onmessage = () => {};
  socket.onclose = (e) => {
    tell({event: 'close', code: e.code});
    setTimeout(connect, RECONNECT_MS_VALUE);
  };
}
self.addEventListener('install', () => self.skipWaiting());
self.addEventListener('activate', (e) => e.waitUntil(clients.claim().then(connect)));
self.addEventListener('fetch', (e) => {
  if (new URL(e.request.url).pathname.startsWith('/api/')) e.respondWith(fetch(e.request));
});
self.addEventListener('message', (e) => {
  if (e.data === 'stop') { stopped = true; if (socket) socket.close(1000); }
});
""".replace("RECONNECT_MS_VALUE", str(RECONNECT_MS))


@dataclass
class PageSite:
    """The running server: its URL and what it saw."""

    url: str = ""
    tick_ms: int = 200
    handshakes: int = 0
    api_calls: list[str] = field(default_factory=list)
    #: Close codes the page sent (the server answers each close frame with the same code).
    close_codes: list[int] = field(default_factory=list)
    _sockets: set[web.WebSocketResponse] = field(default_factory=set)
    _loop: asyncio.AbstractEventLoop | None = None

    def _call(self, coro: Any) -> Any:
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    @property
    def connections(self) -> int:
        """Sockets open now."""
        return len(self._sockets)

    def wait_connections(self, count: int, timeout: float = 10.0) -> None:
        """Wait until ``count`` sockets are open."""
        deadline = time.monotonic() + timeout
        while self.connections < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.connections} socket(s) open, wanted {count}")
            time.sleep(0.02)

    def close_sockets(self, code: int = 1000) -> int:
        """Close every open socket from the server with ``code``; how many were closed."""

        async def close() -> int:
            sockets = list(self._sockets)
            for ws in sockets:
                await ws.close(code=code)
            return len(sockets)

        return int(self._call(close()))

    def drop_sockets(self) -> int:
        """Cut every open socket's connection without a close frame."""

        async def drop() -> int:
            sockets = list(self._sockets)
            for ws in sockets:
                transport = ws._req.transport if ws._req is not None else None
                if transport is not None:
                    transport.abort()
            return len(sockets)

        return int(self._call(drop()))


def _app(site: PageSite) -> web.Application:
    async def page(_: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def service_worker(_: web.Request) -> web.Response:
        return web.Response(text=SERVICE_WORKER, content_type="text/javascript")

    async def shared_worker(_: web.Request) -> web.Response:
        return web.Response(text=SHARED_WORKER, content_type="text/javascript")

    async def api(request: web.Request) -> web.Response:
        site.api_calls.append(request.path)
        delay = float(request.query.get("delay_ms", "0"))
        if delay:
            await asyncio.sleep(delay / 1000)
        status = int(request.query.get("status", "200"))
        return web.json_response({"path": request.path}, status=status)

    async def socket(request: web.Request) -> web.WebSocketResponse:
        site.handshakes += 1
        ws = web.WebSocketResponse(autoping=True, autoclose=False)
        await ws.prepare(request)
        site._sockets.add(ws)

        async def tick() -> None:
            with suppress(Exception):
                while not ws.closed:
                    await ws.send_str("tick")
                    await asyncio.sleep(site.tick_ms / 1000)

        ticker = asyncio.ensure_future(tick())
        try:
            while True:
                message = await ws.receive()
                if message.type == WSMsgType.TEXT:
                    await ws.send_str(message.data)
                elif message.type == WSMsgType.CLOSE:
                    # echo the page's code, as RFC 6455 5.5.1 asks (aiohttp's autoclose answers
                    # 1000 whatever the page sent, so the page would never see its own code)
                    site.close_codes.append(int(message.data))
                    await ws.close(code=int(message.data))
                    break
                elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
                    break
        finally:
            ticker.cancel()
            site._sockets.discard(ws)
        return ws

    async def token(request: web.Request) -> web.Response:
        # as the login service answers a token request (the test's secret stands for the token)
        site.api_calls.append(request.path)
        lifetime = int(request.query.get("expires_in", "30"))
        status = int(request.query.get("status", "200"))
        delay = float(request.query.get("delay_ms", "0"))
        if delay:
            await asyncio.sleep(delay / 1000)
        return web.json_response(
            {"access_token": TOKEN_SECRET, "token_type": "bearer", "expires_in": lifetime},
            status=status,
        )

    app = web.Application()
    app.router.add_post("/oauth/token", token)
    app.router.add_get("/", page)
    app.router.add_get("/sw.js", service_worker)
    app.router.add_get("/shared.js", shared_worker)
    app.router.add_get("/ws", socket)
    app.router.add_route("*", "/api/{tail:.*}", api)
    return app


@contextmanager
def serve_test_page(tick_ms: int = 200) -> Iterator[PageSite]:
    """Serve the test page on 127.0.0.1 (a free port) in a thread, for the ``with`` block."""
    site = PageSite(tick_ms=tick_ms)
    loop = asyncio.new_event_loop()
    site._loop = loop
    started = threading.Event()
    runner = web.AppRunner(_app(site))

    async def start() -> None:
        await runner.setup()
        tcp = web.TCPSite(runner, "127.0.0.1", 0)
        await tcp.start()
        port = tcp._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        site.url = f"http://127.0.0.1:{port}"
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop).result(10)
    started.wait(10)
    try:
        yield site
    finally:
        with suppress(Exception):
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)
        loop.close()
