"""Notification channels and topic subscriptions: the bookkeeping behind the sandbox's hub.

This module holds no sockets and no event loop: it is the data model of the notification
service, kept apart so that the limits (20 channels per user and OAuth client, 1,000 topics per
channel, channel lifetime) and the topic syntax can be read and tested on their own.
``notifications.py`` puts the HTTP routes and the WebSocket on top of it.

Topics follow the platform's naming (see ``docs/genesys-cloud-api.md`` §5):

- ``v2.users.{id}.presence``, ``.routingStatus``, ``.activity``, ``.conversations``,
  ``.conversations.calls`` ... (see :data:`USER_TOPIC_SUFFIXES`);
- ``v2.routing.queues.{id}.conversations`` ... (see :data:`QUEUE_TOPIC_SUFFIXES`);
- the combined form ``v2.users.{id}?presence&routingStatus``, which stands for one topic per
  suffix.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Iterable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from chaosgenesys.clock import REAL_CLOCK, Clock

__all__ = [
    "MAX_CHANNELS_PER_USER_AND_CLIENT",
    "MAX_TOPICS_PER_CHANNEL",
    "QUEUE_TOPIC_SUFFIXES",
    "USER_TOPIC_SUFFIXES",
    "Channel",
    "ChannelRegistry",
    "TopicCheck",
    "TopicLimitExceeded",
    "check_topic",
    "format_timestamp",
    "token_key",
]

#: The 21st channel of one user of one OAuth client (the platform's "user+app") evicts its
#: oldest channel. Client-credentials tokens carry no user: all of a client's count as one.
MAX_CHANNELS_PER_USER_AND_CLIENT = 20
#: Subscribing a channel to more topics than this is refused with 400.
MAX_TOPICS_PER_CHANNEL = 1000

#: What may follow ``v2.users.{id}.`` (and appear in ``v2.users.{id}?a&b``).
USER_TOPIC_SUFFIXES: frozenset[str] = frozenset(
    {
        "presence",
        "routingStatus",
        "activity",
        "conversations",
        "conversations.calls",
        "conversations.callbacks",
        "conversations.chats",
        "conversations.emails",
        "conversations.messages",
        "conversations.socialexpressions",
        "conversations.videos",
        "conversations.cobrowsesessions",
        "conversations.screenshares",
        "conversationsummary",
        "geolocation",
        "outofoffice",
        "routingLanguages",
        "routingSkills",
        "station",
        "workplan",
    }
)

#: What may follow ``v2.routing.queues.{id}.``.
QUEUE_TOPIC_SUFFIXES: frozenset[str] = frozenset(
    {
        "conversations",
        "conversations.calls",
        "conversations.callbacks",
        "conversations.chats",
        "conversations.emails",
        "conversations.messages",
        "users",
    }
)

# An entity id inside a topic: no dots, no query characters, no blanks.
_ID = r"[A-Za-z0-9_:-]+"
_USER_TOPIC = re.compile(rf"^v2\.users\.(?P<id>{_ID})\.(?P<suffix>.+)$")
_USER_COMBINED = re.compile(rf"^v2\.users\.(?P<id>{_ID})\?(?P<suffixes>.+)$")
_QUEUE_TOPIC = re.compile(rf"^v2\.routing\.queues\.(?P<id>{_ID})\.(?P<suffix>.+)$")


@dataclass(frozen=True)
class TopicCheck:
    """The verdict on one requested topic.

    ``topics`` are the single topics the subscription stands for (one, or several for the
    combined ``v2.users.{id}?a&b`` form); empty when rejected.
    """

    id: str
    permitted: bool
    topics: tuple[str, ...] = ()
    user_id: str | None = None
    rejection_reason: str | None = None

    def as_entity(self) -> dict[str, object]:
        """The ``ChannelTopic`` the REST API returns for this topic."""
        entity: dict[str, object] = {
            "id": self.id,
            "state": "Permitted" if self.permitted else "Rejected",
            "missingPermissions": [],
        }
        if self.rejection_reason is not None:
            entity["rejectionReason"] = self.rejection_reason
        return entity


def _rejected(topic: str, reason: str) -> TopicCheck:
    return TopicCheck(id=topic, permitted=False, rejection_reason=reason)


def check_topic(topic: str) -> TopicCheck:
    """Check a topic name against the topics the sandbox publishes or accepts."""
    if not topic or any(ch.isspace() for ch in topic):
        return _rejected(topic, "Topic name is empty or contains whitespace")
    match = _USER_COMBINED.match(topic)
    if match is not None:
        suffixes = match["suffixes"].split("&")
        unknown = [s for s in suffixes if s not in USER_TOPIC_SUFFIXES]
        if unknown or len(set(suffixes)) != len(suffixes):
            return _rejected(
                topic, f"Unknown or repeated user topic(s) {unknown or suffixes} in {topic!r}"
            )
        user_id = match["id"]
        singles = tuple(f"v2.users.{user_id}.{s}" for s in suffixes)
        return TopicCheck(id=topic, permitted=True, topics=singles, user_id=user_id)
    match = _USER_TOPIC.match(topic)
    if match is not None:
        if match["suffix"] not in USER_TOPIC_SUFFIXES:
            return _rejected(topic, f"Unknown user topic {match['suffix']!r} in {topic!r}")
        return TopicCheck(id=topic, permitted=True, topics=(topic,), user_id=match["id"])
    match = _QUEUE_TOPIC.match(topic)
    if match is not None:
        if match["suffix"] not in QUEUE_TOPIC_SUFFIXES:
            return _rejected(topic, f"Unknown queue topic {match['suffix']!r} in {topic!r}")
        return TopicCheck(id=topic, permitted=True, topics=(topic,))
    return _rejected(topic, f"Topic {topic!r} does not match any notification topic")


def format_timestamp(moment: datetime) -> str:
    """ISO-8601 in UTC with milliseconds and ``Z``, as the platform writes dates."""
    return (
        moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    )


def token_key(authorization: str | None) -> str:
    """A short digest of the bearer token that created a channel (the token is not kept)."""
    return hashlib.sha256((authorization or "").encode()).hexdigest()[:16]


class TopicLimitExceeded(Exception):
    """A subscription change would put more than :data:`MAX_TOPICS_PER_CHANNEL` on a channel."""

    def __init__(self, channel_id: str, count: int) -> None:
        super().__init__(
            f"Channel {channel_id} would have {count} topics; "
            f"a channel holds at most {MAX_TOPICS_PER_CHANNEL}"
        )
        self.channel_id = channel_id
        self.count = count


@dataclass
class Channel:
    """One notification channel. ``deadline`` is on the registry clock's
    :meth:`~chaosgenesys.clock.Clock.monotonic` reading."""

    id: str
    client_id: str
    token: str
    created: float
    deadline: float
    expires: datetime
    #: The user of the token that created it (None: a client-credentials token).
    owner_user: str | None = None
    #: subscription id (as requested) -> the single topics it stands for
    subscriptions: dict[str, TopicCheck] = field(default_factory=dict)
    connected: bool = False

    def topic_count(self) -> int:
        """Number of single topics the channel is subscribed to."""
        return len(self.single_topics())

    def single_topics(self) -> set[str]:
        """Every single topic (combined subscriptions expanded)."""
        return {t for check in self.subscriptions.values() for t in check.topics}

    def user_ids(self) -> set[str]:
        """Users the channel's topics are about."""
        return {c.user_id for c in self.subscriptions.values() if c.user_id is not None}

    def as_entity(self, host: str, scheme: str = "ws") -> dict[str, str]:
        """The ``Channel`` the REST API returns."""
        return {
            "connectUri": f"{scheme}://{host}/channels/{self.id}",
            "id": self.id,
            "expires": format_timestamp(self.expires),
        }


class ChannelRegistry:
    """All channels, their subscriptions and a topic -> channel index for fan-out; lifetimes
    run on ``clock`` (:mod:`chaosgenesys.clock`)."""

    def __init__(self, lifetime: float, clock: Clock = REAL_CLOCK) -> None:
        self.lifetime = lifetime
        self.clock = clock
        self._channels: dict[str, Channel] = {}
        self._by_topic: dict[str, set[str]] = {}

    def __len__(self) -> int:
        return len(self._channels)

    def __iter__(self) -> Iterator[Channel]:
        return iter(list(self._channels.values()))

    def get(self, channel_id: str) -> Channel | None:
        """The channel, or ``None`` when unknown (expiry is the caller's business)."""
        return self._channels.get(channel_id)

    def create(
        self, client_id: str, token: str, user_id: str | None = None
    ) -> tuple[Channel, list[Channel]]:
        """A new channel for ``client_id`` (and ``user_id``, the token's user, None for client
        credentials), and the channels evicted to make room for it.

        Over :data:`MAX_CHANNELS_PER_USER_AND_CLIENT` channels of that user and client, the
        oldest channel without a socket goes first, else the oldest one.
        """
        evicted: list[Channel] = []
        own = sorted(
            (
                c for c in self._channels.values()
                if c.client_id == client_id and c.owner_user == user_id
            ),
            key=lambda c: c.created,
        )
        while len(own) >= MAX_CHANNELS_PER_USER_AND_CLIENT:
            victim = next((c for c in own if not c.connected), own[0])
            own.remove(victim)
            self.remove(victim.id)
            evicted.append(victim)
        now = self.clock.monotonic()
        channel = Channel(
            id=f"streaming-0-{uuid.uuid4().hex[:26]}",
            client_id=client_id,
            token=token,
            owner_user=user_id,
            created=now,
            deadline=now + self.lifetime,
            expires=self.clock.now() + timedelta(seconds=self.lifetime),
        )
        self._channels[channel.id] = channel
        return channel, evicted

    def extend(self, channel: Channel) -> None:
        """Push the channel's expiry to a full lifetime from now."""
        channel.deadline = self.clock.monotonic() + self.lifetime
        channel.expires = self.clock.now() + timedelta(seconds=self.lifetime)

    def remove(self, channel_id: str) -> Channel | None:
        """Forget a channel and its subscriptions."""
        channel = self._channels.pop(channel_id, None)
        if channel is not None:
            self._unindex(channel)
            channel.subscriptions.clear()
        return channel

    def set_subscriptions(
        self, channel: Channel, checks: Iterable[TopicCheck], *, replace: bool
    ) -> None:
        """Add (or with ``replace`` set) the permitted topics among ``checks``.

        Raises :class:`TopicLimitExceeded` without changing anything when the result would hold
        more than :data:`MAX_TOPICS_PER_CHANNEL` single topics.
        """
        new = {} if replace else dict(channel.subscriptions)
        for check in checks:
            if check.permitted:
                new[check.id] = check
        count = len({t for check in new.values() for t in check.topics})
        if count > MAX_TOPICS_PER_CHANNEL:
            raise TopicLimitExceeded(channel.id, count)
        self._unindex(channel)
        channel.subscriptions = new
        for topic in channel.single_topics():
            self._by_topic.setdefault(topic, set()).add(channel.id)

    def clear_subscriptions(self, channel: Channel) -> None:
        """Remove every subscription of the channel."""
        self._unindex(channel)
        channel.subscriptions = {}

    def subscribers(self, topic: str) -> AbstractSet[str]:
        """Ids of the channels subscribed to ``topic`` (a live view: copy before mutating)."""
        return self._by_topic.get(topic, _EMPTY)

    def subscription_count(self) -> int:
        """Single topics summed over all channels."""
        return sum(len(ids) for ids in self._by_topic.values())

    def _unindex(self, channel: Channel) -> None:
        for topic in channel.single_topics():
            ids = self._by_topic.get(topic)
            if ids is not None:
                ids.discard(channel.id)
                if not ids:
                    del self._by_topic[topic]


_EMPTY: frozenset[str] = frozenset()
