"""Isolation for activity tests: no GENESYSCLOUD_* variables, fresh caches, nothing remembered."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

ENV_VARS = (
    "GENESYSCLOUD_OAUTHCLIENT_ID",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    "GENESYSCLOUD_REGION",
    "GENESYSCLOUD_API_REGION",
)


def _reset() -> None:
    from chaosgenesys.platform import client, metrics, tokens
    from chaosgenesys.users import actions

    tokens.token_cache().clear()
    client.clear_clients()
    metrics.reset()
    actions._remembered.clear()
    actions._definitions.clear()


@pytest.fixture(autouse=True)
def _isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    _reset()
    yield
    _reset()


@pytest.fixture
def fast_configuration(configuration: dict[str, Any]) -> dict[str, Any]:
    """The sandbox configuration with short retry budgets, for fault tests."""
    from tests.activities.activity_seed import FAST_RETRIES

    return {**configuration, **FAST_RETRIES}
