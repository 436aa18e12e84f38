"""Reverse mode and the notifications channel: its ``connectUri`` leads back through the proxy.

A client of a reverse proxy only knows the proxy's address. The notifications channel it
creates (``POST /api/v2/notifications/channels``) names the host that serves its WebSocket:
Genesys Cloud ``wss://streaming.<domain>/channels/<id>`` (another host than ``api.<domain>``),
the sandbox the ``Host`` of the request, which mitmproxy's reverse mode has replaced with the
upstream's. Either way the client would open its WebSocket past the proxy, out of reach of the
WebSocket rules.

So, in reverse mode, the proxy (:class:`ChannelRoutes`, used by ``addon.py``):

- rewrites ``connectUri`` in the answers of ``POST`` and ``GET
  /api/v2/notifications/channels`` to the proxy's own address as the client reached it (its
  ``Host`` header before mitmproxy replaced it), ``ws://`` or ``wss://`` as the client spoke to
  the proxy, keeping the path (``/channels/<id>``) and query;
- remembers, per path, the host the upstream named, and sends a request for that path (the
  WebSocket handshake) there: by that host's name, so the upstream sees its own name in ``Host``
  and in the TLS SNI and its certificate is verified against it.

Pure: no mitmproxy import.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CHANNELS_PATH", "ChannelRoutes", "Target", "public_base"]

CHANNELS_PATH = "/api/v2/notifications/channels"
#: Routes remembered at most (the oldest are forgotten first); a Genesys Cloud client keeps 20
#: channels at most, and a channel lives 24 h.
MAX_ROUTES = 10_000
_DEFAULT_PORTS = {"http": 80, "https": 443}
_SCHEMES = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


@dataclass(frozen=True)
class Target:
    """Where a channel's socket lives: ``scheme`` (``http``/``https``), host name, port."""

    scheme: str
    host: str
    port: int


def public_base(client_host: str, tls: bool) -> str:
    """The proxy's WebSocket base URL as the client reached it: ``ws://`` + its ``Host``."""
    return f"{'wss' if tls else 'ws'}://{client_host}"


def _path_only(path: str) -> str:
    return path.split("?", 1)[0]


class ChannelRoutes:
    """``connectUri`` paths handed out by this proxy -> the host that serves them."""

    def __init__(self, limit: int = MAX_ROUTES) -> None:
        self.limit = limit
        self._routes: OrderedDict[str, Target] = OrderedDict()
        #: connectUri values rewritten so far
        self.rewritten = 0

    def __len__(self) -> int:
        return len(self._routes)

    @staticmethod
    def is_channels_request(method: str, path: str) -> bool:
        """``POST`` or ``GET /api/v2/notifications/channels`` (query allowed): the answers that
        carry ``connectUri``."""
        return method.upper() in ("POST", "GET") and (_path_only(path).rstrip("/") == CHANNELS_PATH)

    def target(self, path: str) -> Target | None:
        """The host that serves ``path`` (query ignored), if this proxy handed it out."""
        return self._routes.get(_path_only(path))

    def rewrite_uri(self, uri: str, base: str) -> str | None:
        """``uri`` moved onto ``base`` (its route remembered); None if it is not a URL."""
        try:
            parts = urlsplit(uri)
            scheme = _SCHEMES.get(parts.scheme.lower())
            port = parts.port
        except ValueError:
            return None
        if scheme is None or not parts.hostname or not parts.path.startswith("/"):
            return None
        self._routes[parts.path] = Target(
            scheme, parts.hostname, port if port is not None else _DEFAULT_PORTS[scheme]
        )
        self._routes.move_to_end(parts.path)
        while len(self._routes) > self.limit:
            self._routes.popitem(last=False)
        self.rewritten += 1
        return base + parts.path + (f"?{parts.query}" if parts.query else "")

    def rewrite_body(self, text: str, base: str) -> str | None:
        """The channel answer ``text`` with every ``connectUri`` moved onto ``base`` (a channel,
        or ``{"entities": [...]}``); None when there is nothing to rewrite (not JSON, no URI)."""
        try:
            body: Any = json.loads(text)
        except ValueError:
            return None
        channels = body.get("entities") if isinstance(body, dict) else None
        if isinstance(body, dict) and "connectUri" in body:
            channels = [body]
        if not isinstance(channels, list):
            return None
        changed = False
        for channel in channels:
            uri = channel.get("connectUri") if isinstance(channel, dict) else None
            if isinstance(uri, str):
                moved = self.rewrite_uri(uri, base)
                if moved is not None:
                    channel["connectUri"] = moved
                    changed = True
        return json.dumps(body) if changed else None
