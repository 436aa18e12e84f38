"""What every platform activity module shares: the client of the experiment and reads whose
404 names the argument it is about.

Activity modules import this at import time; it imports the platform client (and requests) only
when an activity first runs, so importing a probe module stays cheap (see
``benchmarks/probe_cost.py``)::

    from chaosgenesys.platform_reads import experiment_client, get_or_not_found

    body = get_or_not_found(experiment_client(configuration, secrets), f"/api/v2/users/{user_id}",
                            "user_id", user_id)
"""

from typing import TYPE_CHECKING, Any

from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import not_found

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.platform.client import GenesysClient

__all__ = ["experiment_client", "get_or_not_found"]


def experiment_client(configuration: Configuration, secrets: Secrets) -> "GenesysClient":
    """The platform client for this experiment's configuration and secrets (cached)."""
    from chaosgenesys.platform import client_for

    return client_for(configuration, secrets)


def get_or_not_found(
    api: "GenesysClient", path: str, name: str, value: str, **kwargs: Any
) -> Any:
    """``api.get(path, **kwargs)``; a 404 becomes ``ActivityFailed`` naming ``name=value``."""
    from chaosgenesys.platform import GenesysApiError

    try:
        return api.get(path, **kwargs)
    except GenesysApiError as error:
        if error.status == 404:
            raise not_found(name, value, error) from None
        raise
