"""Isolation for platform tests: no GENESYSCLOUD_* variables, fresh caches and metrics.

Not a ``conftest.py``: the suite's modules do ``from conftest import ...`` and a second
``conftest`` module here would shadow the top-level one. Test modules import the autouse
fixture instead: ``from platform_fixtures import isolated_platform``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from chaosgenesys.platform import client, metrics, settings, tokens

__all__ = ["isolated_platform"]

ENV_VARS = (
    "GENESYSCLOUD_OAUTHCLIENT_ID",
    "GENESYSCLOUD_OAUTHCLIENT_SECRET",
    "GENESYSCLOUD_REGION",
    "GENESYSCLOUD_API_REGION",
)


@pytest.fixture(autouse=True)
def isolated_platform(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No GENESYSCLOUD_* variables; empty token cache, clients, default credentials, metrics."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    tokens.token_cache().clear()
    client.clear_clients()
    settings.clear_default_credentials()
    metrics.reset()
    yield
    tokens.token_cache().clear()
    client.clear_clients()
    settings.clear_default_credentials()
    metrics.reset()
