"""The mitmproxy addon: applies the rules to flows, keeps the statistics, serves the control API.

Runs only inside the proxy process (``python -m chaosgenesys.proxy.server``); it imports
mitmproxy at module level, so nothing in the extension's own process imports this module.

Control API (JSON over HTTP/1.1 on 127.0.0.1, every request carries the header
``X-Chaosgenesys-Token``):

=========  ===================  ==========================================================
GET        ``/health``          name and pid
GET        ``/rules``           the rules with their counters
POST       ``/rules``           ``{"rules": [...]}``: validated all or nothing, then active
DELETE     ``/rules[/<id>]``    remove every rule (or one)
GET        ``/stats``           counters, latency percentiles, per-rule figures
POST       ``/shutdown``        stop the proxy
=========  ===================  ==========================================================

A rule change is applied on the proxy's event loop before the answer is written, so the next
request the proxy reads sees it.

In reverse mode the notifications channel's ``connectUri`` is pointed back at the proxy and its
WebSocket sent to the host the upstream named (``reverse.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import struct
import time
from collections import deque
from collections.abc import Iterable
from typing import Any, cast

import wsproto.events
from mitmproxy import ctx, http
from mitmproxy.connection import ConnectionState
from mitmproxy.proxy.mode_specs import ReverseMode

from chaosgenesys.proxy.control_server import ControlServer
from chaosgenesys.proxy.patches import CLIENT_HOST, WS_LAYERS, Hold, Pacer, patch_mitmproxy
from chaosgenesys.proxy.reverse import ChannelRoutes, public_base
from chaosgenesys.proxy.rules import (
    HTTP_ACTIONS,
    Rule,
    RuleError,
    RuleSet,
    error_body,
    parse_rule,
)

__all__ = ["ChaosAddon"]

logger = logging.getLogger(__name__)

_LATENCY_WINDOW = 20_000
#: ``flow.metadata`` key: a reverse-mode channel answer whose ``connectUri`` is rewritten.
_CHANNELS = "chaosgenesys_channels"
#: How late the event loop's timers fire, taken off every injected sleep (seconds).
_TIMER_SLACK = 0.0008
async def _sleep_until(due: float, precise: bool = True) -> None:
    """Sleep until ``time.monotonic()`` is ``due``.

    The event loop's timer wakes up to ~1 ms late (epoll's millisecond timeout), so the timer is
    set ``_TIMER_SLACK`` early; with ``precise``, the rest (under a millisecond) is waited by
    yielding to the event loop until ``due`` (other tasks run meanwhile; nothing blocks).
    """
    left = due - time.monotonic()
    if left > _TIMER_SLACK:
        await asyncio.sleep(left - _TIMER_SLACK)
    while precise and time.monotonic() < due:
        await asyncio.sleep(0)


def _master() -> Any:
    """mitmproxy's master (untyped for mypy: its methods carry no annotations)."""
    return ctx.master


def _percentiles(values: list[float]) -> dict[str, float | int]:
    if not values:
        return {"count": 0, "p50": 0.0, "p90": 0.0, "p99": 0.0, "max": 0.0}
    ordered = sorted(values)

    def rank(fraction: float) -> float:
        index = max(0, min(len(ordered) - 1, int(fraction * len(ordered) + 0.999999) - 1))
        return round(ordered[index], 3)

    return {
        "count": len(ordered),
        "p50": rank(0.50),
        "p90": rank(0.90),
        "p99": rank(0.99),
        "max": round(ordered[-1], 3),
    }


class ChaosAddon:
    """Fault-injection rules for HTTP(S) and WebSocket flows, steered over a control socket."""

    def __init__(
        self,
        name: str,
        token: str,
        ready_file: str = "",
        duration: float | None = None,
    ) -> None:
        self.name = name
        self.token = token
        self.ready_file = ready_file
        self.duration = duration
        #: when the proxy stops itself (epoch seconds): ``duration`` after it listens (set in
        #: :meth:`running`), None without a duration
        self.deadline: float | None = None
        self._rules = RuleSet()
        self.started = time.time()
        self._next_id = 1
        self.latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self.counters = {
            "requests": 0,
            "responses": 0,
            "errors": 0,
            "faulted_requests": 0,
            "resets": 0,
            "drops": 0,
            "synthetic_responses": 0,
            "websockets_opened": 0,
            "websockets_closed_by_rule": 0,
            "websocket_messages": 0,
            "websocket_messages_dropped": 0,
            "websocket_messages_delayed": 0,
        }
        self.injected_delay_ms = 0.0
        self.channel_routes = ChannelRoutes()
        self.live_websockets: dict[str, http.HTTPFlow] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._server: asyncio.Server | None = None
        self.control_port = 0

    # -- lifecycle -------------------------------------------------------------------------------

    def load(self, loader: Any) -> None:
        patch_mitmproxy()

    async def running(self) -> None:
        control = ControlServer(self.token, self._dispatch)
        self._server = await asyncio.start_server(control.serve, "127.0.0.1", 0)
        self.control_port = self._server.sockets[0].getsockname()[1]
        proxyserver = _master().addons.get("proxyserver")
        listen = [list(addr[:2]) for addr in proxyserver.listen_addrs()]
        if self.duration is not None:
            # the window opens when the proxy serves, not when it was asked for: a start slowed
            # by a loaded machine must not eat the duration (or end it before the proxy is up)
            self.deadline = time.time() + self.duration
            asyncio.get_running_loop().call_later(self.duration, self._expire)
        if self.ready_file:
            ready = {
                "pid": os.getpid(),
                "listen": listen,
                "control_port": self.control_port,
                "confdir": ctx.options.confdir,
                "deadline": self.deadline,
            }
            tmp = self.ready_file + ".tmp"
            with open(tmp, "w", encoding="utf-8") as handle:
                json.dump(ready, handle)
            os.replace(tmp, self.ready_file)

    def _expire(self) -> None:
        logger.warning("proxy %r: duration over, stopping", self.name)
        _master().shutdown()

    async def done(self) -> None:
        if self._server is not None:
            self._server.close()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @property
    def rules(self) -> RuleSet:
        """The rules in order (replaced, never changed in place, so a hook may iterate them)."""
        return self._rules

    @rules.setter
    def rules(self, rules: Iterable[Rule]) -> None:
        self._rules = RuleSet(rules)

    # -- reverse mode: the channel's connectUri -------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """Reverse mode: mark a channel request (its answer's ``connectUri`` is rewritten in
        :meth:`_rewrite_channels`), send a ``connectUri`` this proxy handed out to its host.

        Before the ``request`` hook, so rules match the host the socket goes to.
        """
        if not isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return
        request = flow.request
        if ChannelRoutes.is_channels_request(request.method, request.path):
            flow.metadata[_CHANNELS] = True
            return
        target = self.channel_routes.target(request.path)
        if target is not None:
            # each setter rewrites Host too (the server's own name, as it expects); the TLS SNI
            # and the certificate check follow request.host
            request.scheme = target.scheme
            request.host = target.host
            request.port = target.port

    def _rewrite_channels(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or not 200 <= response.status_code < 300:
            return
        if "json" not in response.headers.get("content-type", "json").lower():
            return
        text = response.get_text(strict=False)
        if not text:
            return
        client_host = flow.metadata.get(CLIENT_HOST)
        if not client_host:  # an HTTP/1.0 client without Host: the address it connected to
            host, port = flow.client_conn.sockname[:2]
            client_host = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        rewritten = self.channel_routes.rewrite_body(
            text, public_base(client_host, flow.client_conn.tls)
        )
        if rewritten is not None:
            response.text = rewritten

    # -- HTTP ------------------------------------------------------------------------------------

    def _first_match(self, flow: http.HTTPFlow, actions: tuple[str, ...]) -> Rule | None:
        request = flow.request
        now = time.monotonic()
        method = request.method
        host = request.pretty_host
        path = request.path
        url = ""
        for rule in self.rules.candidates(path):
            if rule.action not in actions or not rule.active(now):
                continue
            if rule.url is not None and not url:
                url = request.pretty_url  # costly: built only when a rule needs it
            if not rule.matches(method, host, path, url, request.headers):
                continue
            rule.matched += 1
            if not rule.draw():
                continue
            rule.applied += 1
            return rule
        return None

    async def request(self, flow: http.HTTPFlow) -> None:
        self.counters["requests"] += 1
        if not self.rules:
            return
        rule = self._first_match(flow, HTTP_ACTIONS)
        if rule is None:
            return
        self.counters["faulted_requests"] += 1
        flow.metadata["chaosgenesys_rule"] = rule.id
        since = flow.request.timestamp_start
        if rule.action == "delay":
            # Held in make_server_connection once the upstream connection is there (see
            # patches.patch_mitmproxy), so that connecting is not added after the delay.
            now = time.monotonic()
            read_at = now - max(0.0, time.time() - since)
            due = read_at + rule.pick_delay_ms() / 1000.0
            flow.metadata["chaosgenesys_hold"] = Hold(flow, due, rule, since=read_at)
        elif rule.action == "fail":
            if rule.delay_ms:
                await self._sleep(rule, rule.pick_delay_ms(), since)
            flow.response = self._synthetic(rule)
            self.counters["synthetic_responses"] += 1
        elif rule.action == "reset":
            self._reset(flow)
        elif rule.action == "drop":
            self.counters["drops"] += 1
            cast(Any, flow).kill()
        elif rule.action == "throttle":
            flow.metadata["chaosgenesys_throttle"] = rule

    async def _sleep(self, rule: Rule, delay_ms: float, since: float | None = None) -> None:
        """Sleep until ``delay_ms`` after ``since`` (wall clock; default now).

        Anchoring on the time the request was read keeps the hook's own dispatch time out of the
        injected delay.
        """
        start = time.monotonic()
        elapsed = 0.0 if since is None else max(0.0, time.time() - since)
        await _sleep_until(start + delay_ms / 1000.0 - elapsed)
        slept = (time.monotonic() - start + elapsed) * 1000.0
        rule.injected_delay_ms += slept
        self.injected_delay_ms += slept

    def _synthetic(self, rule: Rule) -> http.Response:
        headers = {"Content-Type": "application/json"}
        if rule.body is None:
            body = error_body(rule.status, rule.retry_after) if rule.status >= 400 else {}
            if "contextId" in body:
                headers["ININ-Correlation-Id"] = body["contextId"]
            content = json.dumps(body).encode()
        else:
            content = rule.body.encode()
            stripped = rule.body.lstrip()
            if not stripped.startswith(("{", "[")):
                headers["Content-Type"] = "text/plain; charset=utf-8"
        if rule.status in (429, 503) or "retry_after" in rule.raw:
            headers["Retry-After"] = str(rule.retry_after)
        headers.update(rule.response_headers)
        return http.Response.make(rule.status, content, headers)

    def _reset(self, flow: http.HTTPFlow) -> None:
        """Abort the client connection with SO_LINGER 0: the kernel sends a TCP RST."""
        self.counters["resets"] += 1
        proxyserver = _master().addons.get("proxyserver")
        handler = proxyserver.connections.get(flow.client_conn.id)
        io = handler.transports.get(handler.client) if handler is not None else None
        writer = io.writer if io is not None else None
        sock = writer.get_extra_info("socket") if writer is not None else None
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            transport = getattr(writer, "transport", None)
            if transport is not None:
                transport.abort()
        cast(Any, flow).kill()

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        throttle = flow.metadata.get("chaosgenesys_throttle")
        if throttle is not None and flow.response is not None and not flow.metadata.get(_CHANNELS):
            # Stream the body (mitmproxy would otherwise read all of it first), paced by
            # _throttled_response_body.
            flow.response.stream = True
            flow.metadata["chaosgenesys_pacer"] = Pacer(throttle)

    async def chaosgenesys_hold(self, hold: Hold) -> None:
        """Complete a :class:`HoldHook` when it is due (at once if the client has left)."""
        start = time.monotonic()
        left = hold.due - start
        if left > 0 and hold.flow.client_conn.state == ConnectionState.OPEN:
            await _sleep_until(hold.due, precise=hold.rule.action != "throttle")
        injected = (time.monotonic() - (start if hold.since is None else hold.since)) * 1000.0
        hold.rule.injected_delay_ms += injected
        self.injected_delay_ms += injected

    async def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get(_CHANNELS):
            self._rewrite_channels(flow)
            throttle = flow.metadata.get("chaosgenesys_throttle")
            if throttle is not None and flow.response is not None:
                # read whole to be rewritten (not streamed): the body, a few hundred bytes,
                # is held for as long as it would take at the rule's rate instead
                size = len(flow.response.raw_content or b"")
                await self._sleep(throttle, size / throttle.rate_kbps)
        self.counters["responses"] += 1
        self.latencies.append((time.time() - flow.request.timestamp_start) * 1000.0)

    def error(self, flow: http.HTTPFlow) -> None:
        self.counters["errors"] += 1

    # -- WebSocket -------------------------------------------------------------------------------

    def _ws_matches(self, rule: Rule, flow: http.HTTPFlow) -> bool:
        request = flow.request
        return rule.matches(
            request.method,
            request.pretty_host,
            request.path,
            request.pretty_url,
            request.headers,
        )

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        self.counters["websockets_opened"] += 1
        self.live_websockets[flow.id] = flow
        now = time.monotonic()
        for rule in self.rules:
            if rule.action == "ws_close" and rule.active(now):
                self._arm_close(rule, flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.live_websockets.pop(flow.id, None)

    def _arm_close(self, rule: Rule, flow: http.HTTPFlow) -> None:
        if not self._ws_matches(rule, flow):
            return
        rule.matched += 1
        if not rule.draw():
            return
        rule.applied += 1
        if rule.after_messages:
            pending = flow.metadata.setdefault("chaosgenesys_close_after", [])
            pending.append([rule, rule.after_messages])
        else:
            self._spawn(self._close_later(rule, flow, rule.after_ms))

    async def _close_later(self, rule: Rule, flow: http.HTTPFlow, after_ms: float) -> None:
        if after_ms:
            await asyncio.sleep(after_ms / 1000.0)
        self._close_websocket(rule, flow)

    def _close_websocket(self, rule: Rule, flow: http.HTTPFlow) -> None:
        """Close both sides with the rule's close code, as if the server had sent the frame."""
        layer = WS_LAYERS.get(flow.id)
        if (
            layer is None
            or flow.websocket is None
            or flow.websocket.timestamp_end is not None
            or flow.metadata.get("chaosgenesys_closing")
            or flow.id not in self.live_websockets
        ):
            return
        flow.metadata["chaosgenesys_closing"] = True
        layer.server_ws._events.append(
            wsproto.events.CloseConnection(code=rule.code, reason=rule.reason)
        )
        # An (empty, dropped) injected message makes the layer process the queued close now.
        _master().commands.call("inject.websocket", flow, True, b"", True)
        self.counters["websockets_closed_by_rule"] += 1

    async def websocket_message(self, flow: http.HTTPFlow) -> None:
        assert flow.websocket is not None
        message = flow.websocket.messages[-1]
        if flow.metadata.get("chaosgenesys_closing"):
            cast(Any, message).drop()
            return
        if message.injected:
            return
        self.counters["websocket_messages"] += 1
        direction = "to_server" if message.from_client else "to_client"
        now = time.monotonic()
        for rule in self.rules:
            if rule.action not in ("ws_drop", "ws_delay") or not rule.active(now):
                continue
            if rule.direction not in (direction, "both") or not self._ws_matches(rule, flow):
                continue
            rule.matched += 1
            if not rule.draw():
                continue
            rule.applied += 1
            if rule.action == "ws_drop":
                self.counters["websocket_messages_dropped"] += 1
                cast(Any, message).drop()
                return
            self.counters["websocket_messages_delayed"] += 1
            await self._sleep(rule, rule.pick_delay_ms())
            break
        pending = flow.metadata.get("chaosgenesys_close_after")
        if pending:
            for entry in pending:
                entry[1] -= 1
                if entry[1] == 0:
                    # after this message has been forwarded
                    asyncio.get_running_loop().call_soon(self._close_websocket, entry[0], flow)

    # -- control API -----------------------------------------------------------------------------

    def add_rules(self, specs: Any) -> list[dict[str, Any]]:
        if not isinstance(specs, list) or not specs:
            raise RuleError(f"rules must be a non-empty list of rule objects, got {specs!r:.120}")
        known = {rule.id for rule in self.rules}
        parsed: list[Rule] = []
        for index, spec in enumerate(specs):
            try:
                rule = parse_rule(spec, rule_id=f"r{self._next_id + index}")
            except RuleError as error:
                raise RuleError(f"rules[{index}]: {error}") from None
            if rule.id in known:
                raise RuleError(f"rules[{index}]: id {rule.id!r} is already in use")
            known.add(rule.id)
            parsed.append(rule)
        now = time.monotonic()
        for rule in parsed:
            rule.added_at = now
        self._next_id += len(parsed)
        self.rules = [*self.rules, *parsed]
        for rule in parsed:
            if rule.action == "ws_close" and not rule.start_after:
                for flow in list(self.live_websockets.values()):
                    self._arm_close(rule, flow)
            elif rule.action == "ws_close":
                self._spawn(self._arm_later(rule))
        return [rule.to_dict() for rule in parsed]

    async def _arm_later(self, rule: Rule) -> None:
        await asyncio.sleep(rule.start_after)
        if rule in self.rules and rule.active(time.monotonic()):
            for flow in list(self.live_websockets.values()):
                self._arm_close(rule, flow)

    def stats(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "pid": os.getpid(),
            "uptime_s": round(time.time() - self.started, 3),
            **self.counters,
            "websockets_open": len(self.live_websockets),
            "connect_uris_rewritten": self.channel_routes.rewritten,
            "injected_delay_ms": round(self.injected_delay_ms, 3),
            "latency_ms": _percentiles(list(self.latencies)),
            "rules": [rule.to_dict() for rule in self.rules],
        }

    def _dispatch(self, method: str, path: str, body: bytes) -> tuple[int, Any]:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        if path == "/health" and method == "GET":
            return 200, {"name": self.name, "pid": os.getpid()}
        if path == "/stats" and method == "GET":
            return 200, self.stats()
        if path == "/rules" and method == "GET":
            return 200, {"rules": [rule.to_dict() for rule in self.rules]}
        if path == "/rules" and method == "POST":
            try:
                payload = json.loads(body or b"{}")
                added = self.add_rules(payload.get("rules") if isinstance(payload, dict) else None)
            except (ValueError, RuleError) as error:
                return 400, {"error": str(error)}
            return 201, {"added": added, "rules": len(self.rules)}
        if path == "/rules" and method == "DELETE":
            cleared = [rule.to_dict() for rule in self.rules]
            self.rules = []
            return 200, {"cleared": cleared}
        if path.startswith("/rules/") and method == "DELETE":
            rule_id = path[len("/rules/") :]
            for rule in self.rules:
                if rule.id == rule_id:
                    self.rules = [r for r in self.rules if r is not rule]
                    return 200, {"cleared": [rule.to_dict()]}
            known = ", ".join(r.id for r in self.rules) or "none"
            return 404, {"error": f"no rule with id {rule_id!r} (rules: {known})"}
        if path == "/shutdown" and method == "POST":
            asyncio.get_running_loop().call_soon(_master().shutdown)
            return 200, {"stopping": True, "stats": self.stats()}
        return 404, {"error": f"no such control endpoint: {method} {path}"}
