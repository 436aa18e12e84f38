"""Argument checking: every refusal names the argument and the value it got."""

from __future__ import annotations

import math

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys import arguments as a


@pytest.mark.parametrize("value", ["", " x", "a/b", "a?b", None, 3, ["x"]])
def test_require_id_refuses(value: object) -> None:
    with pytest.raises(ActivityFailed, match=r"user_id must be a non-empty string") as info:
        a.require_id("user_id", value)
    assert repr(value)[:20] in str(info.value)


def test_require_id_accepts_any_non_uuid_id() -> None:
    assert a.require_id("user_id", "agent-1") == "agent-1"


def test_require_ids_dedupes_in_order_and_accepts_comma_string() -> None:
    assert a.require_ids("user_ids", ["b", "a", "b"]) == ["b", "a"]
    assert a.require_ids("user_ids", "a, b") == ["a", "b"]
    with pytest.raises(ActivityFailed, match=r"user_ids.*at index 1"):
        a.require_ids("user_ids", ["a", ""])
    with pytest.raises(ActivityFailed, match="user_ids must be an id or a list"):
        a.require_ids("user_ids", 42)
    with pytest.raises(ActivityFailed, match="at least one"):
        a.require_ids("user_ids", [])
    with pytest.raises(ActivityFailed, match="at most 2 ids, got 3"):
        a.require_ids("user_ids", ["a", "b", "c"], max_count=2)


@pytest.mark.parametrize("spelling", ["On Queue", "OnQueue", "ON_QUEUE", "on-queue", " on queue "])
def test_presence_spellings(spelling: str) -> None:
    assert a.presence_name("presence", spelling) == "On Queue"


def test_presence_unknown_names_value() -> None:
    with pytest.raises(ActivityFailed, match=r"expected must be a system presence.*'Lunch'"):
        a.presence_names("expected", ["On Queue", "Lunch"])


def test_routing_status_names() -> None:
    assert a.routing_status_names("expected", "idle, off queue") == ["IDLE", "OFF_QUEUE"]
    with pytest.raises(ActivityFailed, match=r"expected must be a routing status.*'BUSY'"):
        a.routing_status_name("expected", "BUSY")


def test_numbers() -> None:
    assert a.require_number("timeout", 3) == 3.0
    for bad in (-1, True, "3", math.nan, math.inf):
        with pytest.raises(ActivityFailed, match="timeout must be"):
            a.require_number("timeout", bad)
    with pytest.raises(ActivityFailed, match="interval must be greater than 0, got 0"):
        a.require_number("interval", 0, exclusive_minimum=True)
    assert a.require_int("count", 2.0) == 2
    with pytest.raises(ActivityFailed, match=r"count must be an integer, got 2\.5"):
        a.require_int("count", 2.5)
    with pytest.raises(ActivityFailed, match="delay_ms must be at most 10, got 11"):
        a.require_int("delay_ms", 11, maximum=10)


def test_status_regex_bool() -> None:
    assert a.require_http_status("status", 0) == 0
    assert a.require_http_status("status", 503) == 503
    with pytest.raises(ActivityFailed, match="status must be an HTTP status code from 100 to 599"):
        a.require_http_status("status", 99)
    with pytest.raises(ActivityFailed, match=r"path_pattern must be a valid regular expression"):
        a.require_regex("path_pattern", "(")
    with pytest.raises(ActivityFailed, match="answer must be true or false, got 'yes'"):
        a.require_bool("answer", "yes")
