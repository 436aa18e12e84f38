"""Probes about the tooling's own OAuth token (never the token itself)."""

import datetime as dt
import time
from typing import Any

from chaoslib.types import Configuration, Secrets

from chaosgenesys.platform_reads import experiment_client

__all__ = ["token_info"]


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def token_info(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """What the current access token is: org, OAuth client, scopes and time left.

    ``GET /api/v2/tokens/me`` shaped as ``{"organization": {"id", "name"},
    "home_organization": {...} | null, "oauth_client": {"id", "name"}, "authorized_scope":
    [...], "date_token_idles", "expires_at": "2024-05-01T10:00:00.000Z", "seconds_left": 86123.4}``.
    ``expires_at``/``seconds_left`` come from the client's token cache. The token itself is
    never returned or logged.

    ```json
    {"type": "probe", "name": "token-has-an-hour-left",
     "tolerance": {"type": "range", "range": [3600, 172800], "target": "seconds_left"},
     "provider": {"type": "python", "module": "chaosgenesys.auth.probes", "func": "token_info"}}
    ```
    """
    client = experiment_client(configuration, secrets)
    body = client.get("/api/v2/tokens/me")
    body = body if isinstance(body, dict) else {}
    token = client.tokens.peek(client.settings)
    expires_at = token.expires_at if token is not None else client.access_token_expires_at

    def _named(value: Any) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            return None
        return {"id": value.get("id"), "name": value.get("name")}

    oauth_client = body.get("OAuthClient") or body.get("oAuthClient") or body.get("oauthClient")
    return {
        "organization": _named(body.get("organization")),
        "home_organization": _named(body.get("homeOrganization")),
        "oauth_client": _named(oauth_client),
        "authorized_scope": list(body.get("authorizedScope") or []),
        "date_token_idles": body.get("dateTokenIdles"),
        "expires_at": _iso(expires_at),
        "seconds_left": round(expires_at - time.time(), 3),
    }
