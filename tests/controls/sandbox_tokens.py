"""A probe for tests: the sandbox's count of valid tokens per OAuth client (its admin view)."""

from __future__ import annotations

from typing import Any

import requests


def active_tokens(configuration: dict[str, Any] | None = None) -> dict[str, int]:
    """``{client id: valid tokens}`` from ``GET /sandbox/v1/state``."""
    base = str((configuration or {})["genesys_api_url"]).rstrip("/")
    state = requests.get(f"{base}/sandbox/v1/state", timeout=5).json()
    return {str(c["clientId"]): int(c["activeTokens"]) for c in state["clients"]}
