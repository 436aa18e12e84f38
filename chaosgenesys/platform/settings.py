"""Client settings from an experiment's configuration and secrets.

:func:`settings_from` turns the Chaos Toolkit ``configuration`` and ``secrets`` dictionaries (plus
the ``GENESYSCLOUD_*`` environment variables of the Genesys CLI and Terraform provider) into one
frozen :class:`ClientSettings`. Every problem raises ``ActivityFailed`` naming the key to set or
the key and value that are wrong; a secret's value never appears in a message.
"""

from __future__ import annotations

import math
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.platform.regions import resolve_region

__all__ = [
    "ClientSettings",
    "clear_default_credentials",
    "normalize_base_url",
    "register_default_credentials",
    "settings_from",
]

ENV_CLIENT_ID = "GENESYSCLOUD_OAUTHCLIENT_ID"
ENV_CLIENT_SECRET = "GENESYSCLOUD_OAUTHCLIENT_SECRET"
ENV_REGION = "GENESYSCLOUD_REGION"
ENV_API_REGION = "GENESYSCLOUD_API_REGION"

DEFAULT_TIMEOUT = 10.0
DEFAULT_REFRESH_MARGIN = 60.0
DEFAULT_MAX_RETRY_WAIT = 30.0
DEFAULT_MAX_RETRIES = 5
DEFAULT_RETRY_BACKOFF = 3.0


@dataclass(frozen=True)
class ClientSettings:
    """Everything the platform client needs to reach one Genesys Cloud org.

    Instances are hashable: :func:`chaosgenesys.platform.client_for` keeps one client per settings.
    ``client_secret`` is left out of ``repr``.
    """

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT
    verify_tls: bool | str = True
    token_refresh_margin: float = DEFAULT_REFRESH_MARGIN
    max_retry_wait: float = DEFAULT_MAX_RETRY_WAIT
    max_retries: int = DEFAULT_MAX_RETRIES
    retry_backoff: float = DEFAULT_RETRY_BACKOFF


# -- process-wide default credentials (the sandbox control registers its client here) ----------

_defaults_lock = threading.Lock()
_default_credentials: dict[str, tuple[str, str]] = {}


def register_default_credentials(login_url: str, client_id: str, client_secret: str) -> None:
    """Use these credentials for ``login_url`` when neither secrets nor environment give any.

    The sandbox control calls this so that experiments against the sandbox need no ``secrets``.
    """
    key = normalize_base_url(login_url, "login_url")
    if not client_id or not client_secret:
        raise ActivityFailed("register_default_credentials needs a client_id and a client_secret")
    with _defaults_lock:
        _default_credentials[key] = (client_id, client_secret)


def clear_default_credentials(login_url: str | None = None) -> None:
    """Forget the default credentials of ``login_url`` (all of them when it is ``None``)."""
    with _defaults_lock:
        if login_url is None:
            _default_credentials.clear()
        else:
            _default_credentials.pop(normalize_base_url(login_url, "login_url"), None)


def _registered(login_url: str) -> tuple[str, str] | None:
    with _defaults_lock:
        return _default_credentials.get(login_url)


# -- parsing helpers -----------------------------------------------------------------------------


def normalize_base_url(value: object, key: str) -> str:
    """``scheme://host[:port][/path]`` without a trailing slash, scheme and host lower-cased.

    Raises ``ActivityFailed`` naming ``key`` when the value is not an http(s) URL with a host.
    """
    if not isinstance(value, str) or not value.strip():
        raise ActivityFailed(f"{key} must be an http(s) base URL, got {value!r}")
    text = value.strip()
    parts = urlsplit(text)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ActivityFailed(
            f"{key} must be an http(s) base URL such as https://api.mypurecloud.com, "
            f"got {_safe_url(text)!r}"
        )
    if parts.username or parts.password:
        raise ActivityFailed(f"{key} must not carry credentials in the URL")
    if parts.query or parts.fragment:
        raise ActivityFailed(f"{key} must be a base URL without query or fragment, got {text!r}")
    netloc = parts.hostname.lower()
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    if parts.port is not None:
        netloc = f"{netloc}:{parts.port}"
    return urlunsplit((parts.scheme.lower(), netloc, parts.path.rstrip("/"), "", ""))


def _safe_url(text: str) -> str:
    parts = urlsplit(text)
    if parts.password:
        return text.replace(parts.password, "***")
    return text


def _number(configuration: Mapping[str, Any], key: str, default: float) -> float:
    value = configuration.get(key)
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise ActivityFailed(f"{key} must be a number of seconds greater than 0, got {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ActivityFailed(
            f"{key} must be a number of seconds greater than 0, got {value!r}"
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise ActivityFailed(f"{key} must be a number of seconds greater than 0, got {value!r}")
    return number


def _non_negative(configuration: Mapping[str, Any], key: str, default: float) -> float:
    value = configuration.get(key)
    if value is None or value == "":
        return default
    try:
        number = float(value)
        if isinstance(value, bool) or not math.isfinite(number) or number < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ActivityFailed(
            f"{key} must be a number of seconds, 0 or more, got {value!r}"
        ) from None
    return number


def _count(configuration: Mapping[str, Any], key: str, default: int) -> int:
    value = configuration.get(key)
    if value is None or value == "":
        return default
    try:
        if isinstance(value, bool) or float(value) != int(value) or int(value) < 0:
            raise ValueError
    except (TypeError, ValueError):
        raise ActivityFailed(f"{key} must be a whole number, 0 or more, got {value!r}") from None
    return int(value)


_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def _verify(configuration: Mapping[str, Any]) -> bool | str:
    value = configuration.get("genesys_verify_tls")
    if value is None or value == "":
        return True
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in _TRUE:
            return True
        if lowered in _FALSE:
            return False
        if os.path.exists(value):
            return value
        raise ActivityFailed(
            f"genesys_verify_tls must be true, false or the path of a CA bundle, got {value!r} "
            "(no such file)"
        )
    raise ActivityFailed(
        f"genesys_verify_tls must be true, false or the path of a CA bundle, got {value!r}"
    )


def _login_from_api(api_url: str) -> str:
    """``https://api.<domain>`` → ``https://login.<domain>``; any other URL serves both."""
    parts = urlsplit(api_url)
    host = parts.hostname or ""
    if host.startswith("api.") and host.count(".") >= 2:
        netloc = "login." + parts.netloc[len("api.") :]
        return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
    return api_url


def _urls(configuration: Mapping[str, Any]) -> tuple[str, str]:
    api = configuration.get("genesys_api_url")
    login = configuration.get("genesys_login_url")
    region = configuration.get("genesys_region")
    api_url: str | None = None
    login_url: str | None = None
    if api not in (None, ""):
        api_url = normalize_base_url(api, "genesys_api_url")
    if login not in (None, ""):
        login_url = normalize_base_url(login, "genesys_login_url")
    if api_url is None and region not in (None, ""):
        found = resolve_region(region, "genesys_region")
        api_url = found.api_url
        login_url = login_url or found.login_url
    if api_url is None and os.environ.get(ENV_API_REGION):
        api_url = normalize_base_url(os.environ[ENV_API_REGION], ENV_API_REGION)
    if api_url is None and os.environ.get(ENV_REGION):
        found = resolve_region(os.environ[ENV_REGION], ENV_REGION)
        api_url = found.api_url
        login_url = login_url or found.login_url
    if api_url is None:
        if login_url is not None:
            raise ActivityFailed(
                "genesys_login_url is set but not the API: set the configuration key "
                "genesys_api_url (or genesys_region)"
            )
        raise ActivityFailed(
            "no Genesys Cloud org to talk to: set the configuration key genesys_region "
            "(e.g. us_east_1) or genesys_api_url (and genesys_login_url), or the environment "
            f"variable {ENV_REGION} or {ENV_API_REGION}"
        )
    if login_url is None:
        login_url = _login_from_api(api_url)
    return api_url, login_url


def _secret_scope(secrets: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """The mapping holding ``client_id``/``client_secret``: flat, ``genesys`` or any scope."""
    if not secrets:
        return {}
    if "client_id" in secrets or "client_secret" in secrets:
        return secrets
    scoped = secrets.get("genesys")
    if isinstance(scoped, Mapping):
        return scoped
    for value in secrets.values():
        if isinstance(value, Mapping) and ("client_id" in value or "client_secret" in value):
            return value
    return {}


def _credentials(secrets: Mapping[str, Any] | None, login_url: str) -> tuple[str, str]:
    scope = _secret_scope(secrets)
    client_id = scope.get("client_id")
    client_secret = scope.get("client_secret")
    if client_id or client_secret:
        pairs = (("client_id", client_id), ("client_secret", client_secret))
        missing = [name for name, value in pairs if not value]
        if missing:
            raise ActivityFailed(
                f"Genesys Cloud secrets are incomplete: set {' and '.join(missing)} in the "
                'experiment\'s secrets (for example under a "genesys" scope)'
            )
        if not isinstance(client_id, str) or not isinstance(client_secret, str):
            raise ActivityFailed(
                "Genesys Cloud secrets client_id and client_secret must be strings"
            )
        return client_id, client_secret
    # Credentials registered for this very login URL (the sandbox control's) are more
    # specific than the environment, which usually holds a real org's client.
    registered = _registered(login_url)
    if registered is not None:
        return registered
    env_id = os.environ.get(ENV_CLIENT_ID)
    env_secret = os.environ.get(ENV_CLIENT_SECRET)
    if env_id or env_secret:
        if not env_id or not env_secret:
            missing_env = ENV_CLIENT_ID if not env_id else ENV_CLIENT_SECRET
            raise ActivityFailed(
                f"Genesys Cloud credentials are incomplete: the environment variable "
                f"{missing_env} is not set"
            )
        return env_id, env_secret
    raise ActivityFailed(
        "no Genesys Cloud OAuth client credentials: set the secrets client_id and client_secret "
        '(for example under a "genesys" scope of the experiment\'s secrets) or the environment '
        f"variables {ENV_CLIENT_ID} and {ENV_CLIENT_SECRET}"
    )


def settings_from(
    configuration: Mapping[str, Any] | None, secrets: Mapping[str, Any] | None
) -> ClientSettings:
    """Build :class:`ClientSettings` from an experiment's configuration and secrets.

    Configuration keys: ``genesys_region``, ``genesys_api_url``, ``genesys_login_url``,
    ``genesys_timeout``, ``genesys_verify_tls``, ``genesys_token_refresh_margin``,
    ``genesys_max_retry_wait``, ``genesys_max_retries``, ``genesys_retry_backoff``.
    Secrets: ``client_id`` and ``client_secret``, flat or under a scope such as ``genesys``.
    Environment fallbacks: ``GENESYSCLOUD_OAUTHCLIENT_ID``, ``GENESYSCLOUD_OAUTHCLIENT_SECRET``,
    ``GENESYSCLOUD_REGION``, ``GENESYSCLOUD_API_REGION``. Credentials registered with
    :func:`register_default_credentials` for the login URL (the sandbox control does this) come
    before the environment variables, after explicit secrets.
    """
    config: Mapping[str, Any] = configuration or {}
    api_url, login_url = _urls(config)
    client_id, client_secret = _credentials(secrets, login_url)
    return ClientSettings(
        api_url=api_url,
        login_url=login_url,
        client_id=client_id,
        client_secret=client_secret,
        timeout=_number(config, "genesys_timeout", DEFAULT_TIMEOUT),
        verify_tls=_verify(config),
        token_refresh_margin=_non_negative(
            config, "genesys_token_refresh_margin", DEFAULT_REFRESH_MARGIN
        ),
        max_retry_wait=_non_negative(config, "genesys_max_retry_wait", DEFAULT_MAX_RETRY_WAIT),
        max_retries=_count(config, "genesys_max_retries", DEFAULT_MAX_RETRIES),
        retry_backoff=_non_negative(config, "genesys_retry_backoff", DEFAULT_RETRY_BACKOFF),
    )
