"""Fixtures of the synthetic agent tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.agent.helpers import HEARTBEAT, agent_seed


@pytest.fixture
def fast_sandbox() -> Iterator[Any]:
    """A sandbox with 0.2 s heartbeats and wrap-up that never times out."""
    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed=agent_seed(wrapup_timeout=0), heartbeat_interval=HEARTBEAT) as sb:
        yield sb
