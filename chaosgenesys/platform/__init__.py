"""chaosgenesys.platform: the one Genesys Cloud client.

Regions and base URLs, settings from configuration + secrets + ``GENESYSCLOUD_*`` variables, a
pooled HTTP layer with timeouts, a process-wide OAuth token cache with single-flight refresh,
retries that honour ``Retry-After``, errors that carry status, code, message and correlation id,
and in-memory call metrics::

    from chaosgenesys.platform import client_for

    client = client_for(configuration, secrets)
    user = client.get(f"/api/v2/users/{user_id}", params={"expand": "presence"})
"""

from __future__ import annotations

from chaosgenesys.platform.client import GenesysClient, client_for
from chaosgenesys.platform.errors import GenesysApiError
from chaosgenesys.platform.settings import (
    ClientSettings,
    clear_default_credentials,
    register_default_credentials,
    settings_from,
)

__all__ = [
    "ClientSettings",
    "GenesysApiError",
    "GenesysClient",
    "clear_default_credentials",
    "client_for",
    "register_default_credentials",
    "settings_from",
]
