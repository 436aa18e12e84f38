"""The proxy's control endpoint as a server: JSON over HTTP/1.1 on 127.0.0.1, keep-alive, every
request carrying the proxy's token (``X-Chaosgenesys-Token``), bounded in size and idle time.
What each request does is the addon's ``_dispatch`` (its table is in ``addon.py``); this module
reads requests, refuses the ones it must, and writes answers. Only asyncio: no mitmproxy.
"""

from __future__ import annotations

import asyncio
import hmac
import json
from collections.abc import Callable
from typing import Any

__all__ = ["CONTROL_IDLE_TIMEOUT", "CONTROL_MAX_BODY", "CONTROL_MAX_HEAD", "ControlServer"]

TOKEN_HEADER = "x-chaosgenesys-token"
#: ``dispatch(method, path, body)`` -> ``(status, JSON payload)``.
Dispatch = Callable[[str, str, bytes], tuple[int, Any]]

_REASONS = {
    200: "OK",
    201: "Created",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    411: "Length Required",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
}
#: The control API's largest request body (a rule list is a few KiB), bytes.
CONTROL_MAX_BODY = 1024 * 1024
#: The largest request line + headers, bytes.
CONTROL_MAX_HEAD = 16 * 1024
#: A control connection that sends nothing for this long is closed, seconds.
CONTROL_IDLE_TIMEOUT = 5.0


class _BadHead(ValueError):
    """A control request whose head cannot be served: answered ``status``, then closed."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


async def _answer(
    writer: asyncio.StreamWriter, status: int, payload: Any, *, close: bool = False
) -> None:
    """Write one JSON answer; with ``close`` it says ``Connection: close``."""
    data = json.dumps(payload).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
        + ("Connection: close\r\n" if close else "")
        + "\r\n"
    )
    writer.write(head.encode() + data)
    await writer.drain()


class ControlServer:
    """Serves the control connections of one proxy: ``asyncio.start_server(server.serve, ...)``."""

    def __init__(self, token: str, dispatch: Dispatch) -> None:
        self.token = token
        self.dispatch = dispatch

    async def serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        """Serve control requests on one connection (keep-alive) until the client is done.

        The token is checked once the request's head is read and before any body byte is: a
        request without the right token is answered 403 and the connection closed, its body
        never read. A body is at most :data:`CONTROL_MAX_BODY` bytes (else 413), a head at most
        :data:`CONTROL_MAX_HEAD` bytes (else 431), and a connection that sends nothing for
        :data:`CONTROL_IDLE_TIMEOUT` seconds (between requests or within one) is closed.
        """
        try:
            while True:
                try:
                    async with asyncio.timeout(CONTROL_IDLE_TIMEOUT):
                        head = await self.read_head(reader)
                        if head is None:
                            break
                        method, target, headers = head
                        refusal = self.refusal(headers)
                        if refusal is not None:
                            status, payload = refusal
                            await _answer(writer, status, payload, close=True)
                            break
                        length = int(headers.get("content-length") or 0)
                        body = await reader.readexactly(length) if length else b""
                except TimeoutError:
                    break
                except _BadHead as bad:
                    await _answer(writer, bad.status, {"error": str(bad)}, close=True)
                    break
                status, payload = self.dispatch(method.upper(), target, body)
                await _answer(writer, status, payload)
        except (ConnectionError, asyncio.IncompleteReadError, ValueError, UnicodeError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def read_head(reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]] | None:
        """The request line and headers (lower-case names); None when the client closed."""
        line = await reader.readline()
        if not line:
            return None
        size = len(line)
        parts = line.decode("latin-1").split(" ", 2)
        if len(parts) != 3:
            raise _BadHead(400, "malformed request line")
        method, target, _ = parts
        headers: dict[str, str] = {}
        while True:
            header = await reader.readline()
            size += len(header)
            if size > CONTROL_MAX_HEAD:
                raise _BadHead(431, f"request head larger than {CONTROL_MAX_HEAD} bytes")
            if header in (b"\r\n", b"\n", b""):
                break
            key, _, value = header.decode("latin-1").partition(":")
            headers[key.strip().lower()] = value.strip()
        return method, target, headers

    def refusal(self, headers: dict[str, str]) -> tuple[int, dict[str, Any]] | None:
        """403 without the right token (checked first), else 400/411/413 for a bad body size."""
        given = headers.get(TOKEN_HEADER, "").encode("latin-1")  # any byte: never an exception
        if not hmac.compare_digest(given, self.token.encode("latin-1")):
            return 403, {"error": "missing or wrong control token"}
        if "transfer-encoding" in headers:
            return 411, {"error": "send the body with a Content-Length (no chunked encoding)"}
        text = headers.get("content-length") or "0"
        if not (text.isascii() and text.isdigit()):
            return 400, {"error": "Content-Length must be a number of bytes"}
        if int(text) > CONTROL_MAX_BODY:
            return 413, {"error": f"request body larger than {CONTROL_MAX_BODY} bytes"}
        return None
