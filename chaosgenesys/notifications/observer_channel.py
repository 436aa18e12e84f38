"""The external observer's channel: the REST calls that make it and its socket.

:func:`subscribe` creates a notification channel and subscribes it to the topics;
:func:`read_users` reads each user's presence and routing status (the starting point, and the
resync after a reconnect); :func:`open_socket` opens the channel's WebSocket,
:func:`close_details` reads a close frame, :func:`shutdown_socket` closes it at once. And which
failures of a first connection are worth retrying: :func:`permanent` tells a refusal of the
request itself (:class:`Refusal`, a socket refused with a 4xx: :class:`SocketRefused`) from an
outage; :class:`ChannelGone` is a channel the platform no longer knows (a new one is made).
Used by :class:`chaosgenesys.notifications.observer.EventObserver`, which keeps the state.
"""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import websocket
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.notifications.observer_records import Tracked, parse_time, presence_of

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = [
    "CHANNELS",
    "ChannelGone",
    "Refusal",
    "SocketRefused",
    "close_details",
    "open_socket",
    "permanent",
    "read_users",
    "shutdown_socket",
    "sslopt",
    "subscribe",
]

CHANNELS = "/api/v2/notifications/channels"


def subscribe(
    client: GenesysClient, topics: Sequence[str]
) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """A new channel subscribed to ``topics``: its ``id`` and ``connectUri``, and the topics the
    platform rejected (``{"id", "reason"}`` each). ``Refusal`` when no channel is answered."""
    channel = client.post(CHANNELS)
    if not isinstance(channel, dict) or not channel.get("connectUri") or not channel.get("id"):
        raise Refusal(f"POST {CHANNELS} answered without a channel: {channel!r}")
    answer = client.put(
        f"{CHANNELS}/{channel['id']}/subscriptions",
        json=[{"id": topic} for topic in topics],
    )
    entities = answer.get("entities", []) if isinstance(answer, dict) else []
    rejected = [e for e in entities if isinstance(e, dict) and e.get("state") == "Rejected"]
    return (
        {"id": str(channel["id"]), "connectUri": str(channel["connectUri"])},
        [{"id": e.get("id"), "reason": e.get("rejectionReason")} for e in rejected],
    )


def read_users(
    client: GenesysClient, user_ids: Sequence[str]
) -> dict[str, tuple[Tracked, Tracked]]:
    """Each user's presence and routing status now, with the platform's timestamps; an unknown
    user is a ``Refusal`` naming ``user_id``."""
    from chaosgenesys.arguments import not_found
    from chaosgenesys.platform import GenesysApiError

    states: dict[str, tuple[Tracked, Tracked]] = {}
    for user_id in user_ids:
        try:
            body = client.get(
                f"/api/v2/users/{user_id}", params={"expand": "presence,routingStatus"}
            )
        except GenesysApiError as error:
            if error.status == 404:
                raise Refusal(str(not_found("user_id", user_id, error))) from None
            raise
        body = body if isinstance(body, dict) else {}
        presence = body.get("presence") or {}
        definition = presence.get("presenceDefinition") or {}
        routing = body.get("routingStatus") or {}
        states[user_id] = (
            Tracked(
                presence_of(definition.get("systemPresence")),
                parse_time(presence.get("modifiedDate")),
            ),
            Tracked(routing.get("status"), parse_time(routing.get("startTime"))),
        )
    return states


def sslopt(verify: bool | str) -> dict[str, Any]:
    """``websocket-client``'s TLS options for the platform client's ``verify_tls`` (false: no
    check; a path: that CA bundle; true: the default checks)."""
    if verify is False:
        return {"cert_reqs": ssl.CERT_NONE, "check_hostname": False}
    if isinstance(verify, str):
        return {"ca_certs": verify}
    return {}


def open_socket(uri: str, timeout: float, verify: bool | str) -> websocket.WebSocket:
    """The channel's socket, opened within ``timeout`` and then blocking on reads.

    ``ChannelGone`` when the handshake is answered 404 or 410, ``SocketRefused`` for another
    status, ``ActivityFailed`` when the socket cannot be opened at all.
    """
    try:
        ws = websocket.create_connection(
            uri, timeout=max(0.5, timeout), sslopt=sslopt(verify), enable_multithread=True
        )
    except websocket.WebSocketBadStatusException as error:
        if error.status_code in (404, 410):
            raise ChannelGone(error.status_code) from None
        raise SocketRefused(
            f"the notification socket {uri} was refused with {error.status_code}",
            error.status_code,
        ) from None
    except (websocket.WebSocketException, OSError) as error:
        raise ActivityFailed(f"could not open the notification socket {uri}: {error}") from None
    ws.settimeout(None)
    return ws


def _transient_status(status: int) -> bool:
    return status in (408, 429) or status >= 500


def permanent(error: Exception) -> bool:
    """Whether a failure of the first connection is not worth retrying (what a client would
    give up on): a refusal of the request itself, not an outage."""
    from chaosgenesys.platform import GenesysApiError

    if isinstance(error, GenesysApiError | SocketRefused):
        return not _transient_status(error.status)
    # ours: an unknown user, every topic rejected, no channel in the answer; a transport
    # failure (``ActivityFailed`` from the HTTP layer) or a socket error is transient
    return isinstance(error, Refusal)


class Refusal(ActivityFailed):  # type: ignore[misc]
    """The platform understood the request and refused it: retrying will not help."""


class SocketRefused(ActivityFailed):  # type: ignore[misc]
    """The WebSocket handshake was answered with an HTTP status other than 404/410."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


class ChannelGone(Exception):
    """The handshake was refused (404: the channel expired or was evicted)."""

    def __init__(self, status: int) -> None:
        super().__init__(f"handshake refused with {status}")
        self.status = status


def close_details(data: bytes) -> tuple[int | None, str]:
    if len(data) < 2:
        return None, ""
    return int.from_bytes(data[:2], "big"), data[2:].decode("utf-8", "replace")


def shutdown_socket(ws: websocket.WebSocket) -> None:
    """Close the TCP socket now (no closing handshake): the reader thread returns."""
    abort: Callable[[], None] = ws.abort  # wakes up a thread blocked in recv
    shutdown: Callable[[], None] = ws.shutdown
    with contextlib.suppress(websocket.WebSocketException, OSError):
        abort()
    with contextlib.suppress(websocket.WebSocketException, OSError):
        shutdown()
