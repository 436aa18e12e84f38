"""What the proxy adds to mitmproxy itself, in the proxy's own process only: the hold of a
stream's layer (a delayed request, a throttled body's next slice), the paced response body, a
handle on each WebSocket layer, ``ws://`` targets through an HTTP proxy, and (reverse mode) the
``Host`` the client sent. ``addon.py`` (the rules) completes the holds and decides what to pace.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import commands
from mitmproxy.proxy.layers import websocket as ws_layer
from mitmproxy.proxy.mode_specs import ReverseMode

from chaosgenesys.proxy.rules import Rule

__all__ = ["CLIENT_HOST", "WS_LAYERS", "Hold", "HoldHook", "Pacer", "patch_mitmproxy"]


#: A throttled body is sent in slices of about this many seconds' worth of bytes.
_THROTTLE_TICK = 0.05
_THROTTLE_MIN_SLICE = 256
_THROTTLE_MAX_SLICE = 64 * 1024

#: ``flow.metadata`` key (reverse mode): the request's ``Host`` (HTTP/2: ``:authority``) as the
#: client sent it, before mitmproxy replaced it with the upstream's; None if it sent none.
CLIENT_HOST = "chaosgenesys_client_host"

#: flow id -> the WebsocketLayer relaying it (to inject a close frame with a chosen code).
WS_LAYERS: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
_patched = False


class Pacer:
    """The schedule of one throttled response body: a link of ``rate`` bytes per second.

    A slice of ``n`` bytes goes out when its last byte would have crossed such a link, i.e.
    ``n / rate`` seconds after the previous slice (or after it arrived, if the link was idle).
    """

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.rate = rule.rate_kbps * 1000.0
        self.slice = int(
            min(_THROTTLE_MAX_SLICE, max(_THROTTLE_MIN_SLICE, self.rate * _THROTTLE_TICK))
        )
        self.free_at = 0.0  # time.monotonic() when the link has sent everything so far
        self.sent = 0

    def due(self, size: int) -> float:
        now = time.monotonic()
        # Keep the schedule (no drift from the waits' own overhead) unless the link went idle.
        start = self.free_at if self.free_at >= now - _THROTTLE_TICK else now
        self.free_at = start + size / self.rate
        self.sent += size
        return self.free_at


@dataclass
class Hold:
    """One HTTP stream held until ``due`` (``time.monotonic()``), by :class:`HoldHook`.

    ``since`` (monotonic) is where the injected time is counted from; ``None``: the hold's start.
    """

    flow: http.HTTPFlow
    due: float
    rule: Rule
    since: float | None = None


@dataclass
class HoldHook(commands.StartHook):  # type: ignore[no-untyped-call]
    """A blocking command: pauses one HTTP stream's layer (only that stream) until it is due.

    mitmproxy runs it as a hook of the addons (``ChaosAddon.chaosgenesys_hold``) in its own task;
    what arrives for the stream meanwhile waits, in order, in the layer's event queue.
    """

    name = "chaosgenesys_hold"
    hold: Hold


def _throttled_response_body(stream: Any, event: Any) -> Any:
    """``HttpStream.state_stream_response_body`` for a throttled flow (a layer generator).

    Each chunk read from the server is cut into slices; before each slice the stream yields a
    blocking hook that our addon completes when the slice is due. A blocking command pauses
    only this stream's layer (other streams and connections carry on, the event loop is never
    blocked), and what the server sends meanwhile waits, in order, in the layer's event queue.
    """
    from mitmproxy.proxy.layers.http import SendHttp
    from mitmproxy.proxy.layers.http._events import ResponseData

    if not isinstance(event, ResponseData):
        assert _ORIGINAL_STREAM_STATE is not None
        yield from _ORIGINAL_STREAM_STATE(stream, event)  # trailers, end of message
        return
    pacer: Pacer = stream.flow.metadata["chaosgenesys_pacer"]
    data = event.data
    for offset in range(0, len(data), pacer.slice):
        chunk = data[offset : offset + pacer.slice]
        yield HoldHook(Hold(stream.flow, pacer.due(len(chunk)), pacer.rule))
        if stream.context.options.store_streamed_bodies:
            stream.response_body_buf += chunk
        yield SendHttp(ResponseData(stream.stream_id, chunk), stream.context.client)


#: mitmproxy's own ``HttpStream.state_stream_response_body`` (set by :func:`patch_mitmproxy`).
_ORIGINAL_STREAM_STATE: Callable[..., Any] | None = None


def patch_mitmproxy() -> None:
    """Five additions to mitmproxy, in this (the proxy's own) process only.

    - Remember each WebsocketLayer by its flow id (mitmproxy has no public handle to it), so a
      close frame with a chosen code can be injected.
    - Accept absolute-form ``ws://`` / ``wss://`` request targets (``GET ws://host/path``), which
      aiohttp sends through an HTTP proxy and mitmproxy refuses with 400 "Invalid request
      scheme": they are read as ``http://`` / ``https://`` upgrade requests.
    - Send a throttled response's body through :func:`_throttled_response_body` (paced).
    - Hold a delayed request (``flow.metadata["chaosgenesys_hold"]``) in
      ``HttpStream.make_server_connection``, after the upstream connection is obtained and
      before the request is sent: opening it (TCP, TLS) happens during the delay, and what is
      left after the wake-up is writing the request.
    - In reverse mode, keep the ``Host`` the client sent in ``flow.metadata[CLIENT_HOST]``:
      mitmproxy replaces it with the upstream's before any addon hook runs, and it is the
      address the client knows the proxy by (``reverse.py`` builds ``connectUri`` from it).
    """
    global _patched, _ORIGINAL_STREAM_STATE
    if _patched:
        return
    from mitmproxy.proxy.layers import http as http_layers

    original_init: Callable[..., None] = ws_layer.WebsocketLayer.__init__

    def init(self: Any, context: Any, flow: http.HTTPFlow) -> None:
        original_init(self, context, flow)
        WS_LAYERS[flow.id] = self

    original_validate: Callable[..., str | None] = http_layers.validate_request

    def validate_request(mode: Any, request: http.Request, validate_inbound_headers: bool) -> Any:
        if request.scheme in ("ws", "wss"):
            request.scheme = "https" if request.scheme == "wss" else "http"
        return original_validate(mode, request, validate_inbound_headers)

    original_start_stream: Callable[..., Any] = http_layers.HttpStream.start_response_stream

    def start_response_stream(self: Any) -> Any:
        yield from original_start_stream(self)
        if "chaosgenesys_pacer" in self.flow.metadata:
            self.server_state = lambda event: _throttled_response_body(self, event)

    original_connect: Callable[..., Any] = http_layers.HttpStream.make_server_connection

    def make_server_connection(self: Any) -> Any:
        hold = self.flow.metadata.pop("chaosgenesys_hold", None)
        generator = original_connect(self)
        reply: Any = None
        while True:  # ``yield from generator``, with the hold after the connection is there
            try:
                command = generator.send(reply)
            except StopIteration as stop:
                return stop.value
            reply = yield command
            if hold is not None and isinstance(command, http_layers.GetHttpConnection):
                yield HoldHook(hold)
                hold = None

    original_headers: Callable[..., Any] = http_layers.HttpStream.state_wait_for_request_headers

    def state_wait_for_request_headers(self: Any, event: Any) -> Any:
        if not isinstance(self.context.client.proxy_mode, ReverseMode):
            return (yield from original_headers(self, event))
        client_host = event.request.host_header
        generator = original_headers(self, event)
        reply: Any = None
        first = True
        while True:  # ``yield from generator``, noting the Host once the flow exists
            try:
                command = generator.send(reply)
            except StopIteration as stop:
                return stop.value
            finally:
                if first:  # the flow is made before the first command (the headers hook)
                    first = False
                    flow = getattr(self, "flow", None)
                    if flow is not None and flow.request is event.request:
                        flow.metadata[CLIENT_HOST] = client_host
            reply = yield command

    _ORIGINAL_STREAM_STATE = http_layers.HttpStream.state_stream_response_body
    http_layers.HttpStream.state_wait_for_request_headers = state_wait_for_request_headers  # type: ignore[method-assign]
    http_layers.HttpStream.make_server_connection = make_server_connection  # type: ignore[method-assign]
    ws_layer.WebsocketLayer.__init__ = init  # type: ignore[method-assign]
    http_layers.validate_request = validate_request
    http_layers.HttpStream.start_response_stream = start_response_stream  # type: ignore[method-assign]
    _patched = True
