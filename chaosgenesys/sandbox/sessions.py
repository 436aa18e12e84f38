"""Agent sessions and the platform's reaction when one is gone (see ``docs/platform-reaction.md``).

A user has a **session** while at least one notification socket is connected on a channel
subscribed to that user's ``conversations`` topic (``v2.users.{id}.conversations`` or a media
variant such as ``.conversations.calls``, also through the combined ``v2.users.{id}?...`` form),
or while a streaming session (``streaming.py``) is bound as that user, whatever it subscribes
to (it logged in with the user's own token). That is what an agent desktop holds open to be
offered interactions; an observer that watches only presence and routing status (a supervisor
view, ``watch_events``) is not a session. The notification hub counts both kinds in one count.

When a user who has had a session loses the last one, :class:`PlatformReaction` waits
``session_grace_seconds``. If no session came back by then, the platform reacts:

1. every call alerting on the user is not answered: the agent's leg ends
   (``transfer.noanswer``), the routing status becomes ``NOT_RESPONDING`` (if On Queue) and the
   call goes back to the queue, to the longest-idle other member, or waits;
2. the user is logged off: presence ``Offline`` (routing status ``OFF_QUEUE``).

Connected calls and after-call work are not touched: they live on the server, not in the
desktop. When a session comes back within ``presence_renew_seconds`` of the log-off and the user
is still ``Offline``, the presence the user had is restored (``On Queue`` only when
``renew_on_queue`` is set, ``Available`` otherwise); after that window the user comes back
``Available``, as the platform's "Renew Presence on Reconnect" setting does.

Users who never had a session are never touched: a sandbox with no desktop connected keeps its
seeded presences. Everything here runs on the sandbox's event loop thread.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from chaosgenesys.clock import Clock, Timer
from chaosgenesys.sandbox.clock import iso
from chaosgenesys.sandbox.presence import ON_QUEUE

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.sandbox.model import User

__all__ = [
    "DEFAULT_PRESENCE_RENEW_SECONDS",
    "DEFAULT_SESSION_GRACE_SECONDS",
    "PlatformReaction",
    "PlatformSettings",
    "PresenceControl",
    "SessionListener",
    "is_session_topic",
    "session_users",
]

logger = logging.getLogger("chaostoolkit")

#: Seconds without a session before the platform reacts (our model; tune per org).
DEFAULT_SESSION_GRACE_SECONDS = 30.0
#: The platform's default "Time Frame for Reconnect" (1 minute).
DEFAULT_PRESENCE_RENEW_SECONDS = 60.0
#: Reactions kept for the admin view.
_MAX_LOG = 1000


def is_session_topic(suffix: str) -> bool:
    """Whether a ``v2.users.{id}.<suffix>`` topic is one an agent desktop's session holds."""
    return suffix == "conversations" or suffix.startswith("conversations.")


def session_users(topics: Iterable[str]) -> set[str]:
    """Users whose session topics are among ``topics`` (single topic names)."""
    users: set[str] = set()
    for topic in topics:
        if not topic.startswith("v2.users."):
            continue
        user_id, _, suffix = topic[len("v2.users.") :].partition(".")
        if user_id and is_session_topic(suffix):
            users.add(user_id)
    return users


class PresenceControl(Protocol):
    """What the platform's reaction changes in the sandbox's state (``state.SandboxState`` has
    it): a protocol, so that this module, which the seed imports, does not import the state.
    The grace and the renewal window run on its ``clock``."""

    users: dict[str, User]
    clock: Clock

    def abandon_alerts(self, user_id: str) -> list[str]: ...

    def set_presence_by_name(self, user_id: str, presence: str) -> User: ...


class SessionListener(Protocol):
    """What the notification hub tells when a user's first session starts or last one ends."""

    def session_started(self, user_id: str) -> None: ...

    def session_ended(self, user_id: str) -> None: ...


@dataclass(frozen=True)
class PlatformSettings:
    """Parameters of the platform's reaction to a lost session.

    ``session_grace_seconds`` of 0 turns the reaction off; ``presence_renew_seconds`` of 0
    turns the presence renewal off (a returning user stays ``Offline`` until it sets a presence).
    """

    session_grace_seconds: float = DEFAULT_SESSION_GRACE_SECONDS
    presence_renew_seconds: float = DEFAULT_PRESENCE_RENEW_SECONDS
    renew_on_queue: bool = False

    def __post_init__(self) -> None:
        for name in ("session_grace_seconds", "presence_renew_seconds"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int | float) or not (
                0 <= value < float("inf")
            ):
                raise ValueError(f"{name} must be a number of seconds >= 0, not {value!r}")
        if not isinstance(self.renew_on_queue, bool):
            raise ValueError(f"renew_on_queue must be true or false, not {self.renew_on_queue!r}")

    def to_json(self) -> dict[str, Any]:
        """The settings as JSON."""
        return asdict(self)


@dataclass
class _LoggedOff:
    presence: str
    at: float


class PlatformReaction:
    """Tracks which users hold a session and reacts, as the platform does, when one is gone."""

    def __init__(self, state: PresenceControl, settings: PlatformSettings | None = None) -> None:
        self.state = state
        self.settings = settings if settings is not None else PlatformSettings()
        self._online: set[str] = set()
        self._seen: set[str] = set()
        self._lost_at: dict[str, float] = {}
        self._logged_off: dict[str, _LoggedOff] = {}
        self._timers: dict[str, Timer] = {}
        self.log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ settings
    def configure(
        self,
        *,
        session_grace_seconds: float | None = None,
        presence_renew_seconds: float | None = None,
        renew_on_queue: bool | None = None,
    ) -> PlatformSettings:
        """Change some settings; pending grace timers are rescheduled from the loss time."""
        changes: dict[str, Any] = {}
        if session_grace_seconds is not None:
            changes["session_grace_seconds"] = session_grace_seconds
        if presence_renew_seconds is not None:
            changes["presence_renew_seconds"] = presence_renew_seconds
        if renew_on_queue is not None:
            changes["renew_on_queue"] = renew_on_queue
        self.settings = replace(self.settings, **changes)
        for user_id in list(self._lost_at):
            self._arm(user_id)
        return self.settings

    # ------------------------------------------------------------------ listener
    def session_started(self, user_id: str) -> None:
        """The user's first connected session socket (hub callback)."""
        self._online.add(user_id)
        self._seen.add(user_id)
        self._lost_at.pop(user_id, None)
        self._cancel(user_id)
        logged_off = self._logged_off.pop(user_id, None)
        if logged_off is not None:
            self._renew(user_id, logged_off)

    def session_ended(self, user_id: str) -> None:
        """The user's last session socket went away (hub callback)."""
        self._online.discard(user_id)
        if user_id not in self._seen:
            return
        self._lost_at[user_id] = self.state.clock.monotonic()
        self._arm(user_id)

    # ------------------------------------------------------------------ reaction
    def _arm(self, user_id: str) -> None:
        self._cancel(user_id)
        lost_at = self._lost_at.get(user_id)
        grace = self.settings.session_grace_seconds
        if lost_at is None or grace <= 0:
            return
        clock = self.state.clock
        delay = max(0.0, lost_at + grace - clock.monotonic())
        try:
            self._timers[user_id] = clock.call_later(delay, lambda: self._expire(user_id))
        except RuntimeError:  # not on the loop (direct use in unit tests): no timers
            return

    def _cancel(self, user_id: str) -> None:
        handle = self._timers.pop(user_id, None)
        if handle is not None:
            handle.cancel()

    def _expire(self, user_id: str) -> None:
        self._timers.pop(user_id, None)
        lost_at = self._lost_at.pop(user_id, None)
        if lost_at is None or user_id in self._online or user_id not in self.state.users:
            return
        user = self.state.users[user_id]
        previous = user.presence.name
        abandoned = self.state.abandon_alerts(user_id)
        logged_off = previous != "Offline"
        if logged_off:
            self._logged_off[user_id] = _LoggedOff(previous, self.state.clock.monotonic())
            self.state.set_presence_by_name(user_id, "Offline")
        seconds = round(self.state.clock.monotonic() - lost_at, 3)
        logger.info(
            "sandbox: %s had no session for %.1f s: %d alerting call(s) not answered, %s",
            user_id,
            seconds,
            len(abandoned),
            f"presence {previous} -> Offline" if logged_off else "already Offline",
        )
        self._record(
            user_id,
            "sessionLost",
            secondsWithoutSession=seconds,
            previousPresence=previous,
            presence=user.presence.name,
            notResponding=abandoned,
        )

    def _renew(self, user_id: str, logged_off: _LoggedOff) -> None:
        user = self.state.users.get(user_id)
        if user is None or user.presence.name != "Offline":
            return  # the user (or someone) has set a presence since: leave it
        window = self.settings.presence_renew_seconds
        if window <= 0:
            return
        within = self.state.clock.monotonic() - logged_off.at <= window
        presence = logged_off.presence if within else "Available"
        if presence == ON_QUEUE.name and not self.settings.renew_on_queue:
            presence = "Available"
        self.state.set_presence_by_name(user_id, presence)
        logger.info("sandbox: %s has a session again: presence %s", user_id, presence)
        self._record(user_id, "sessionRenewed", presence=presence, withinWindow=within)

    def _record(self, user_id: str, action: str, **details: Any) -> None:
        moment = iso(self.state.clock.now())
        self.log.append({"userId": user_id, "action": action, "time": moment, **details})
        del self.log[: max(0, len(self.log) - _MAX_LOG)]

    # ------------------------------------------------------------------ lifecycle and views
    def reset(self, settings: PlatformSettings | None = None) -> None:
        """After a new seed: forget users' histories (users with a session now stay seen)."""
        for user_id in list(self._timers):
            self._cancel(user_id)
        self._lost_at.clear()
        self._logged_off.clear()
        self._seen = set(self._online)
        if settings is not None:
            self.settings = settings

    def close(self) -> None:
        """Cancel every timer."""
        for user_id in list(self._timers):
            self._cancel(user_id)

    def users_with_session(self) -> list[str]:
        """Users holding at least one session now."""
        return sorted(self._online)

    def to_json(self) -> dict[str, Any]:
        """Settings, sessions, pending reactions and the reactions so far."""
        now = self.state.clock.monotonic()
        grace = self.settings.session_grace_seconds
        return {
            **self.settings.to_json(),
            "usersWithSession": self.users_with_session(),
            "pending": [
                {
                    "userId": user_id,
                    "secondsWithoutSession": round(now - lost_at, 3),
                    "reactsInSeconds": round(max(0.0, lost_at + grace - now), 3)
                    if grace > 0
                    else None,
                }
                for user_id, lost_at in sorted(self._lost_at.items())
            ],
            "reactions": list(self.log),
        }
