"""Actions on the tooling's own OAuth token: revoke it, or wait until it is about to expire.

The guide's second trap is the token lifecycle: experiments longer than a token's life see
401s, and a refresh racing application calls can drop a session. ``wait_until_token_expiry``
lines a fault up with the end of the token's life; ``revoke_token`` kills the token now.
"""

import datetime as dt
import logging
import time
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_number
from chaosgenesys.platform_reads import experiment_client

__all__ = ["revoke_token", "wait_until_token_expiry"]

logger = logging.getLogger("chaostoolkit")

#: ``wait_until_token_expiry`` never accepts a ``max_wait`` above this (48 h, the longest
#: token lifetime Genesys Cloud allows).
MAX_WAIT_CAP = 48 * 3600.0


def _iso(epoch: float) -> str:
    moment = dt.datetime.fromtimestamp(epoch, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def revoke_token(configuration: Configuration = None, secrets: Secrets = None) -> dict[str, Any]:
    """Revoke the current access token (``DELETE /api/v2/tokens/me``) and drop it from the cache.

    The next call of any activity fetches a new token. Returns ``{"revoked": true,
    "expired_at_would_have_been": "<ISO time>"}``; never the token.

    ```json
    {"type": "action", "name": "revoke-the-tooling-token",
     "provider": {"type": "python", "module": "chaosgenesys.auth.actions",
                  "func": "revoke_token"}}
    ```
    """
    client = experiment_client(configuration, secrets)
    client.delete("/api/v2/tokens/me")
    token = client.tokens.peek(client.settings)
    client.tokens.invalidate(client.settings)
    logger.info("revoked the Genesys Cloud access token of client %s", client.settings.client_id)
    return {
        "revoked": True,
        "client_id": client.settings.client_id,
        "expires_at_would_have_been": _iso(token.expires_at) if token is not None else None,
    }


def wait_until_token_expiry(
    seconds_before: float = 60.0,
    max_wait: float = 3600.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Sleep until the current cached token expires in ``seconds_before`` seconds or less.

    Use it to line a fault up with the end of the token's life (the guide's third edge case:
    a delay injected about 60 s before expiry). Refuses with ``ActivityFailed``, before
    waiting, when that moment is more than ``max_wait`` seconds away (default 3600; at most
    172800); returns at once when the token is already that close to expiry. Returns
    ``{"waited": seconds, "seconds_left": seconds, "expires_at": "<ISO time>"}``. Lower the
    token lifetime first (for example ``chaosgenesys.sandbox.actions.set_token_lifetime``) to
    keep experiments short.

    ```json
    {"type": "action", "name": "wait-until-a-minute-before-token-expiry",
     "provider": {"type": "python", "module": "chaosgenesys.auth.actions",
                  "func": "wait_until_token_expiry",
                  "arguments": {"seconds_before": 60, "max_wait": 600}}}
    ```
    """
    before = require_number("seconds_before", seconds_before, minimum=0.0)
    bound = require_number("max_wait", max_wait, minimum=0.0, maximum=MAX_WAIT_CAP)
    client = experiment_client(configuration, secrets)
    token = client.tokens.peek(client.settings)
    if token is None or token.seconds_left() <= 0:
        token = client.tokens.get(client.settings)
    wait = token.expires_at - before - time.time()
    if wait > bound:
        raise ActivityFailed(
            f"the access token expires in {token.seconds_left():.0f} s: waiting until "
            f"seconds_before={seconds_before!r} s before expiry would take {wait:.0f} s, more "
            f"than max_wait={max_wait!r}; shorten the token lifetime or raise max_wait"
        )
    started = time.monotonic()
    if wait > 0:
        logger.info("waiting %.1f s until the token is %.0f s from expiry", wait, before)
        time.sleep(wait)
    return {
        "waited": round(time.monotonic() - started, 3),
        "seconds_left": round(token.seconds_left(), 3),
        "expires_at": _iso(token.expires_at),
    }
