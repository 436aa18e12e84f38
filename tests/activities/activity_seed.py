"""Ids of the seed in ``tests/conftest.py`` (``make_seed``), for the activity tests."""

from __future__ import annotations

from typing import Any

AGENT_1 = "0b6b3c5e-0000-4000-8000-000000000001"
AGENT_2 = "0b6b3c5e-0000-4000-8000-000000000002"
AGENT_3 = "0b6b3c5e-0000-4000-8000-000000000003"
QUEUE = "7c1d2a90-0000-4000-8000-0000000000aa"
CLIENT_ID = "chaos-client"
CLIENT_SECRET = "chaos-secret-value-never-printed"
UNKNOWN_USER = "0b6b3c5e-0000-4000-8000-00000000dead"

#: Client settings that keep retry tests fast.
FAST_RETRIES = {
    "genesys_retry_backoff": 0.05,
    "genesys_max_retry_wait": 3,
    "genesys_max_retries": 3,
}


def seed(**overrides: Any) -> dict[str, Any]:
    """The same seed as ``tests/conftest.make_seed``: agents 1 and 2 On Queue in QUEUE, 3 out."""
    value: dict[str, Any] = {
        "clients": [
            {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "token_lifetime": 86400}
        ],
        "users": [
            {"id": AGENT_1, "name": "Test Agent 1", "presence": "On Queue"},
            {"id": AGENT_2, "name": "Test Agent 2", "presence": "On Queue"},
            {"id": AGENT_3, "name": "Outside Agent", "presence": "Available"},
        ],
        "queues": [{"id": QUEUE, "name": "Chaos Queue", "members": [AGENT_1, AGENT_2]}],
    }
    value.update(overrides)
    return value
