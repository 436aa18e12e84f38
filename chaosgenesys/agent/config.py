"""What a synthetic agent is told: where the org is (:class:`Endpoint`) and how to behave
(:class:`AgentConfig`). Plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from typing import Any

__all__ = ["LOGINS", "MODES", "AgentConfig", "Endpoint", "config_from_options"]

#: ``resilient`` behaves like the real desktop; ``naive`` like a bad one.
MODES = ("resilient", "naive")
#: How an agent logs in (``chaosgenesys.agent.tokens``): a token of the OAuth client, or, as a
#: real desktop, a token of its own user (authorization code + PKCE).
LOGINS = ("client_credentials", "user")


@dataclass(frozen=True)
class Endpoint:
    """One org: API and login base URLs, OAuth client credentials, proxy and TLS trust.

    ``client_secret`` is left out of ``repr``; it is never logged.
    """

    api_url: str
    login_url: str
    client_id: str
    client_secret: str = field(repr=False)
    proxy: str = ""
    #: A CA bundle to trust (for a TLS-intercepting proxy), "" for the system store.
    ca_file: str = ""
    #: False turns certificate verification off (never the default).
    verify_tls: bool = True
    #: Seconds every HTTP request may take.
    timeout: float = 10.0


@dataclass(frozen=True)
class AgentConfig:
    """How one synthetic agent behaves. Defaults follow genesys-cloud-streaming-client."""

    mode: str = "resilient"
    #: Seconds between ``{"message":"ping"}`` health checks (resilient only).
    ping_interval: float = 14.0
    #: The server's heartbeat interval the agent expects (30 s on the platform).
    heartbeat_interval: float = 30.0
    #: Silence (no frame at all) after which the resilient agent declares the socket dead;
    #: 0 = two ping intervals ("drop after one missed ping beyond the first").
    dead_after: float = 0.0
    #: Reconnect backoff (today's streaming client, API reference §7): first delay, cap,
    #: factor, jitter (none), tries on the same channel before hard reconnects on a new one.
    backoff_initial: float = 2.0
    backoff_max: float = 90.0
    backoff_factor: float = 2.0
    backoff_jitter: float = 0.0
    backoff_tries: int = 10
    #: A REST change that could not be sent (a presence change) is retried after this many
    #: seconds, doubling up to ``change_retry_max`` (``Retry-After`` honoured), until it lands
    #: or a newer wanted state supersedes it (resilient only).
    change_retry_initial: float = 1.0
    change_retry_max: float = 8.0
    #: Naive reconnects: the gap between attempts (bounded so it cannot DoS) and the most tries.
    naive_retry_gap: float = 0.1
    naive_max_tries: int = 600
    #: Refresh the token this many seconds before expiry (at most half its lifetime).
    token_refresh_margin: float = 60.0
    #: Seconds between state reads (presence, routing status) while connected; 0 = never,
    #: the default: the real desktop does not poll, it re-reads its state after every
    #: reconnect (an experiment that wants a polling desktop sets it).
    sync_interval: float = 0.0
    #: Seconds an alerting call rings before the agent answers.
    answer_delay: float = 0.5
    #: Seconds of talk before the agent hangs up; 0 = wait for the customer to hang up.
    talk_time: float = 5.0
    #: Seconds the agent spends on wrap-up before submitting the code.
    wrapup_time: float = 2.0
    #: The wrap-up code id to submit; "" = the first code of ``/api/v2/routing/wrapupcodes``.
    wrapup_code: str = ""
    #: Go (back) On Queue at start and after a reconnect when the platform took it off queue.
    stay_on_queue: bool = True
    #: Seconds a channel subscription is renewed after (channels live 24 h); 0 = never.
    resubscribe_interval: float = 3600.0
    #: Revoke the desktop's access token when it stops (the run is over: the guide's PCI-DSS
    #: trap is a session token left valid after the test), and check it no longer works.
    revoke_token_on_stop: bool = True
    #: Serve the agents' figures for Prometheus at ``http://127.0.0.1:<port>/metrics``
    #: (``chaosgenesys.agent.metrics``); 0 = off.
    metrics_port: int = 0
    #: How the desktop logs in: ``client_credentials`` (a token of the OAuth client, no user;
    #: every agent of the client shares the platform's per-user limits, such as 20
    #: notification channels) or ``user`` (as a real desktop: authorization code + PKCE as its
    #: own user, so those limits apply per agent), which needs ``redirect_uri``.
    login: str = "client_credentials"
    #: The OAuth client's registered redirect URI, for ``login: user``.
    redirect_uri: str = ""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.login not in LOGINS:
            raise ValueError(f"login must be one of {', '.join(LOGINS)}, got {self.login!r}")
        if self.login == "user" and not self.redirect_uri.startswith(("http://", "https://")):
            raise ValueError(
                "login user needs redirect_uri, an http(s) URL registered for the OAuth client, "
                f"got {self.redirect_uri!r}"
            )
        if self.redirect_uri and not self.redirect_uri.startswith(("http://", "https://")):
            raise ValueError(f"redirect_uri must be an http(s) URL, got {self.redirect_uri!r}")
        for item in fields(self):
            value = getattr(self, item.name)
            if isinstance(value, float | int) and not isinstance(value, bool) and value < 0:
                raise ValueError(f"{item.name} must be 0 or more, got {value!r}")
        if self.ping_interval <= 0 or self.heartbeat_interval <= 0:
            raise ValueError("ping_interval and heartbeat_interval must be greater than 0")
        if self.backoff_tries < 1:
            raise ValueError(f"backoff_tries must be at least 1, got {self.backoff_tries}")
        if self.change_retry_initial <= 0 or self.backoff_initial <= 0:
            raise ValueError("backoff_initial and change_retry_initial must be greater than 0")
        if self.metrics_port > 65535:
            raise ValueError(f"metrics_port must be a TCP port (1-65535, 0 = off), got "
                             f"{self.metrics_port}")

    @property
    def resilient(self) -> bool:
        """The real desktop's behaviour (not ``naive``)."""
        return self.mode == "resilient"

    @property
    def silence_limit(self) -> float:
        """Silence after which a resilient agent declares its socket dead."""
        return self.dead_after or 2 * self.ping_interval

    @property
    def zombie_after(self) -> float:
        """Silence after which a socket the agent believes open counts as a zombie: the
        expected gap between frames (a pong or a heartbeat) plus half of it as slack."""
        gap = min(self.heartbeat_interval, self.ping_interval) if self.resilient else (
            self.heartbeat_interval
        )
        return 1.5 * gap


#: Options ``start_agents(options=...)`` and the CLI accept (names of :class:`AgentConfig`).
OPTION_NAMES = tuple(f.name for f in fields(AgentConfig) if f.name != "mode")


def config_from_options(mode: str, options: dict[str, Any] | None) -> AgentConfig:
    """An :class:`AgentConfig` from a mode and a mapping of option names to values.

    Raises ``ValueError`` naming an unknown option or a bad value.
    """
    config = AgentConfig(mode=mode)
    if not options:
        return config
    changes: dict[str, Any] = {}
    kinds = {f.name: type(getattr(config, f.name)) for f in fields(AgentConfig)}
    for name, value in options.items():
        if name not in OPTION_NAMES:
            raise ValueError(
                f"unknown agent option {name!r} (known: {', '.join(OPTION_NAMES)})"
            )
        kind = kinds[name]
        if kind is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{name} must be true or false, got {value!r}")
        elif kind is int:
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"{name} must be a whole number, got {value!r}")
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{name} must be a number, got {value!r}")
            value = float(value)
        elif not isinstance(value, str):
            raise ValueError(f"{name} must be a string, got {value!r}")
        changes[name] = value
    return replace(config, **changes)


__all__ += ["OPTION_NAMES"]
