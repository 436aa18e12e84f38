"""The notification service's data model (``channels.py``): topic syntax and limits, no I/O."""

from __future__ import annotations

import pytest

from chaosgenesys.sandbox.channels import (
    MAX_CHANNELS_PER_USER_AND_CLIENT,
    ChannelRegistry,
    TopicLimitExceeded,
    check_topic,
    format_timestamp,
)


@pytest.mark.parametrize(
    "topic",
    [
        "v2.users.U1.presence",
        "v2.users.U1.routingStatus",
        "v2.users.U1.activity",
        "v2.users.U1.conversations",
        "v2.users.U1.conversations.calls",
        "v2.routing.queues.Q1.conversations",
        "v2.routing.queues.Q1.conversations.calls",
        "v2.users.U1?presence&routingStatus",
    ],
)
def test_known_topics_are_permitted(topic: str) -> None:
    check = check_topic(topic)
    assert check.permitted and check.rejection_reason is None
    assert check.as_entity() == {"id": topic, "state": "Permitted", "missingPermissions": []}


@pytest.mark.parametrize(
    "topic",
    [
        "",
        "v2.users.U1",
        "v2.users.U1.presences",
        "v2.users..presence",
        "v2.users.U1?presence&nope",
        "v2.users.U1?presence&presence",
        "v2.routing.queues.Q1.presence",
        "v2.system.socket_closing",
        "v2.users.U 1.presence",
    ],
)
def test_unknown_topics_are_rejected_with_a_reason(topic: str) -> None:
    entity = check_topic(topic).as_entity()
    assert entity["state"] == "Rejected"
    assert entity["rejectionReason"]


def test_combined_topic_stands_for_each_single_topic() -> None:
    check = check_topic("v2.users.U1?presence&routingStatus")
    assert check.topics == ("v2.users.U1.presence", "v2.users.U1.routingStatus")
    assert check.user_id == "U1"


def test_topic_index_follows_subscription_changes() -> None:
    registry = ChannelRegistry(lifetime=60)
    channel, _ = registry.create("client", "token")
    registry.set_subscriptions(
        channel, [check_topic("v2.users.U1?presence&routingStatus")], replace=False
    )
    assert registry.subscribers("v2.users.U1.routingStatus") == {channel.id}
    registry.set_subscriptions(channel, [check_topic("v2.users.U2.presence")], replace=True)
    assert not registry.subscribers("v2.users.U1.routingStatus")
    assert registry.subscribers("v2.users.U2.presence") == {channel.id}
    assert channel.user_ids() == {"U2"}
    registry.remove(channel.id)
    assert not registry.subscribers("v2.users.U2.presence")
    assert registry.subscription_count() == 0


def test_topic_limit_counts_single_topics_and_changes_nothing() -> None:
    registry = ChannelRegistry(lifetime=60)
    channel, _ = registry.create("client", "token")
    combined = [check_topic(f"v2.users.U{n}?presence&routingStatus") for n in range(500)]
    registry.set_subscriptions(channel, combined, replace=True)  # exactly 1000
    with pytest.raises(TopicLimitExceeded, match="1001"):
        registry.set_subscriptions(channel, [check_topic("v2.users.X.presence")], replace=False)
    assert channel.topic_count() == 1000


def test_eviction_prefers_the_oldest_unconnected_channel() -> None:
    registry = ChannelRegistry(lifetime=60)
    channels = [
        registry.create("client", "token")[0] for _ in range(MAX_CHANNELS_PER_USER_AND_CLIENT)
    ]
    registry.create("someone-else", "token")  # other clients do not count
    channels[0].connected = True
    newer, evicted = registry.create("client", "token")
    assert evicted == [channels[1]]
    for channel in [*channels[2:], newer]:
        channel.connected = True
    _, evicted = registry.create("client", "token")
    assert evicted == [channels[0]]  # all connected: the oldest


def test_the_limit_is_per_user_of_a_client() -> None:
    """20 channels per user and client: users of one client do not evict one another, and a
    client-credentials token (no user) counts apart from the client's users."""
    registry = ChannelRegistry(lifetime=60)
    for user in ("U1", "U2"):
        for _ in range(MAX_CHANNELS_PER_USER_AND_CLIENT):
            assert registry.create("client", f"token-{user}", user)[1] == []
    for _ in range(MAX_CHANNELS_PER_USER_AND_CLIENT):
        assert registry.create("client", "client-token")[1] == []
    newest, evicted = registry.create("client", "token-U1", "U1")  # U1's 21st
    assert [c.owner_user for c in evicted] == ["U1"]
    assert newest.owner_user == "U1"
    assert len(list(registry)) == 3 * MAX_CHANNELS_PER_USER_AND_CLIENT


def test_timestamps_are_utc_milliseconds_with_z() -> None:
    from datetime import UTC, datetime

    moment = datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=UTC)
    assert format_timestamp(moment) == "2024-05-01T10:00:00.123Z"
