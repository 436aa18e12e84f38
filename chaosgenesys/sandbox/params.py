"""Request parsing helpers shared by the sandbox's routes: lists, paging, booleans, JSON bodies."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from chaosgenesys.sandbox.errors import SandboxHTTPError, bad_request

__all__ = ["json_body", "json_object", "page_params", "query_bool", "query_list"]


def query_list(request: web.Request, name: str) -> list[str]:
    """A list query parameter: repeated (``id=a&id=b``) and/or comma-separated (``id=a,b``)."""
    values: list[str] = []
    for raw in request.query.getall(name, []):
        values.extend(part.strip() for part in raw.split(",") if part.strip())
    return values


def _int(request: web.Request, name: str, default: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise bad_request(f"{name} must be an integer, not {raw!r}") from None


def page_params(
    request: web.Request, *, default_size: int = 25, max_size: int = 500
) -> tuple[int, int]:
    """``(pageSize, pageNumber)``; 400 when out of range."""
    size = _int(request, "pageSize", default_size)
    number = _int(request, "pageNumber", 1)
    if not 1 <= size <= max_size:
        raise bad_request(f"pageSize must be between 1 and {max_size}, not {size}")
    if number < 1:
        raise bad_request(f"pageNumber must be >= 1, not {number}")
    return size, number


def query_bool(request: web.Request, name: str) -> bool | None:
    """A boolean query parameter (``true``/``false``), ``None`` when absent."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        return None
    lowered = raw.lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise bad_request(f"{name} must be true or false, not {raw!r}")


#: JSON bodies must be UTF-8 (RFC 8259 section 8.1); these charset labels are accepted (ASCII is
#: a subset of UTF-8).
_JSON_CHARSETS = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})


def _json_text(request: web.Request, raw: bytes) -> str:
    """``raw`` decoded as UTF-8: 415 for another declared charset, 400 for invalid bytes."""
    charset = (request.charset or "").strip().lower()  # an empty label says nothing
    if charset and charset not in _JSON_CHARSETS:
        raise SandboxHTTPError(
            415,
            f"Unsupported charset {request.charset!r} for a JSON body; send UTF-8",
            code="unsupported.media.type",
        )
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad = raw[exc.start : exc.start + 1]
        message = f"The request body is not valid UTF-8 (at byte {exc.start}: {bad!r})"
        raise bad_request(message) from None


async def json_body(request: web.Request, *, required: bool = True) -> Any:
    """The JSON body; every JSON route of the sandbox (API and admin) reads its body here.

    Bad input is the client's fault and answered 4xx with an ErrorBody, never 500: 415
    ``unsupported.media.type`` for a charset other than UTF-8, 400 ``bad.request`` for bytes that
    are not UTF-8, text that is not JSON, JSON nested deeper than the parser can follow, or a
    missing body when ``required``.
    """
    text = _json_text(request, await request.read())
    if not text.strip():
        if required:
            raise bad_request("A JSON request body is required")
        return None
    try:
        return json.loads(text)
    except RecursionError:
        raise bad_request("The request body is nested too deeply to be parsed") from None
    except ValueError as exc:
        raise bad_request(f"The request body is not valid JSON: {exc}") from None


async def json_object(request: web.Request, *, required: bool = True) -> dict[str, Any]:
    """The JSON body, which must be an object (``{}`` when absent and not required)."""
    body = await json_body(request, required=required)
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise bad_request(f"The request body must be a JSON object, not {type(body).__name__}")
    return body
