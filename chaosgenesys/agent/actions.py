"""Start and stop synthetic agent desktops for an experiment.

The agents run in a background process (``chaosgenesys agent``), recorded so that
:func:`stop_agents`, ``chaosgenesys cleanup`` (through the fault registry, when installed) or the
death of the process that started them stops them. Importing this module does not import aiohttp.
"""

from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import require_id, require_ids, require_number, require_text

__all__ = ["start_agents", "stop_agents", "wait_until_agent_token_expiry"]

_MODES = ("resilient", "naive")
#: The longest ``max_wait`` of :func:`wait_until_agent_token_expiry` (48 h, as the tooling's).
MAX_TOKEN_WAIT = 48 * 3600.0


def start_agents(
    user_ids: list[str],
    proxy: str = "",
    mode: str = "resilient",
    duration: float = 0.0,
    log_path: str = "",
    netns: str = "",
    options: dict = None,  # type: ignore[assignment,type-arg]  # noqa: RUF013
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Start synthetic agents for ``user_ids`` and wait until each one is On Queue and connected.

    They log in with the experiment's OAuth client (secrets ``client_id``/``client_secret`` or
    the registered/environment defaults, handed to the process through its environment only;
    with ``options: {"login": "user", "redirect_uri": ...}`` each agent logs in as its own user,
    as the real desktop, so any number of agents share one client: docs/agent.md),
    reach the org at ``genesys_api_url``/``genesys_login_url`` (or ``genesys_region``),
    optionally through ``proxy`` (an HTTP(S) proxy URL for HTTP and the WebSocket; a CA file to
    trust comes from ``genesys_verify_tls``). ``mode`` is ``resilient`` (like the real desktop)
    or ``naive`` (no backoff, no zombie detection, stale state pushed after a reconnect, no
    token refresh). ``duration`` (seconds, 0 = until ``stop_agents``; counted from when every
    agent is ready, so a slow login does not eat into it), ``log_path`` (JSONL event
    log; default a file in the run folder), ``netns`` (run inside ``ip netns exec``) and
    ``options`` (agent timings, e.g. ``{"ping_interval": 1, "talk_time": 3, "wrapup_time": 2}``;
    see docs/agent.md) are optional. Returns the run: ``id``, ``pid``, ``users``, ``mode``,
    ``log``, ``status`` (the status file ``agent_summary`` reads), ``metrics_url`` (the agents'
    Prometheus endpoint with the ``metrics_port`` option, else "").

    ```json
    {"type": "action", "name": "start-synthetic-agents",
     "provider": {"type": "python", "module": "chaosgenesys.agent.actions",
                  "func": "start_agents",
                  "arguments": {"user_ids": ["${agent_id}"], "mode": "resilient",
                                "options": {"ping_interval": 1, "heartbeat_interval": 1}}}}
    ```
    """
    from chaosgenesys.agent import process
    from chaosgenesys.agent.config import config_from_options
    from chaosgenesys.platform.settings import settings_from

    users = require_ids("user_ids", user_ids)
    if mode not in _MODES:
        raise ActivityFailed(f"mode must be one of {', '.join(_MODES)}, got {mode!r}")
    require_text("proxy", proxy, allow_empty=True)
    if proxy and not proxy.startswith(("http://", "https://")):
        raise ActivityFailed(f"proxy must be an http:// or https:// URL, got {proxy!r}")
    seconds = require_number("duration", duration, minimum=0.0)
    require_text("log_path", log_path, allow_empty=True)
    require_text("netns", netns, allow_empty=True)
    if netns:
        from chaosgenesys.network.arguments import resolve_netns

        if "/" in netns:  # the agents run under `ip netns exec`, which takes a name
            raise ActivityFailed(
                f"netns must be the name of a namespace under /run/netns, got {netns!r}"
            )
        resolve_netns(netns)  # exists, and is a network namespace
    if options is not None and not isinstance(options, dict):
        raise ActivityFailed(f"options must be a mapping of agent options, got {options!r}")
    try:
        config_from_options(mode, options)
    except ValueError as error:
        raise ActivityFailed(f"options: {error}") from None
    settings = settings_from(configuration, secrets)
    verify = settings.verify_tls
    try:
        record = process.start_run(
            user_ids=users,
            api_url=settings.api_url,
            login_url=settings.login_url,
            client_id=settings.client_id,
            client_secret=settings.client_secret,
            mode=mode,
            proxy=proxy,
            ca_file=verify if isinstance(verify, str) else "",
            verify_tls=verify is not False,
            timeout=settings.timeout,
            duration=seconds,
            log_path=log_path,
            netns=netns,
            options=options,
        )
    except OSError as error:
        raise ActivityFailed(f"could not start the agent process: {error}") from None
    ready, status = process.wait_ready(record, process.READY_TIMEOUT)
    if not ready:
        # nothing left half-applied: the process stopped and its fault record reverted, so no
        # guardian is left waiting on a run that never started
        process.stop_all([record["id"]])
        errors = _stderr_tail(record["stderr"])
        details = ""
        for user, summary in ((status or {}).get("agents") or {}).items():
            if not summary.get("ready"):
                details += f" {user}: {summary.get('last_error') or 'not ready'};"
        raise ActivityFailed(
            f"the synthetic agents were not ready within {process.READY_TIMEOUT:.0f} s:{details} "
            f"{errors}".strip()
        )
    process.follow_deadline(record, status)
    return {
        key: record[key]
        for key in ("id", "pid", "users", "mode", "log", "status", "dir", "metrics_url")
    }


def _stderr_tail(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as stream:
            return stream.read()[-600:].strip()
    except OSError:
        return ""


def stop_agents(
    run_id: str = "",
    scope: str = "run",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Stop the synthetic agents started by ``start_agents``: those of this run (``scope``
    ``run``, the default: started by this process or a process it started), every run's
    (``scope`` ``all``), or the one ``run_id`` names.

    Another ``chaos run`` on the machine keeps its agents unless ``scope`` is ``all``, as the
    fault registry's rule is (docs/faults.md). Idempotent: a natural rollback. Their final
    summaries stay readable by ``agent_summary``. Returns ``{"stopped": [run ids]}``.

    ```json
    {"type": "action", "name": "stop-synthetic-agents",
     "provider": {"type": "python", "module": "chaosgenesys.agent.actions",
                  "func": "stop_agents"}}
    ```
    """
    from chaosgenesys.agent import process
    from chaosgenesys.agent.this_run import this_runs
    from chaosgenesys.faults import registry

    require_text("run_id", run_id, allow_empty=True)
    chosen = registry.check_scope(scope)
    if run_id:
        run_ids: list[str] | None = [run_id]
    elif chosen == "all":
        run_ids = None
    else:
        run_ids = [str(record["id"]) for record in this_runs()]
    stopped = process.stop_all(run_ids)
    return {"stopped": [record["id"] for record in stopped]}


def wait_until_agent_token_expiry(
    user_id: str,
    seconds_before: float = 60.0,
    max_wait: float = 3600.0,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Sleep until the synthetic desktop of ``user_id`` has ``seconds_before`` seconds left on
    its access token (the token it holds when called, as its ``agent_summary`` reports it: this
    run's desktop of the user, another run's only when this run has none).

    Lines a fault up with the end of the *desktop's* token (the guide's edge case 3: a delay
    on ``/oauth/token`` about 60 s before expiry), not the tooling's own token that
    ``chaosgenesys.auth.actions.wait_until_token_expiry`` follows. Refuses with
    ``ActivityFailed``, before waiting, for a user with no synthetic desktop, a desktop
    without a token yet, or a moment more than ``max_wait`` seconds away (default 3600, at
    most 172800); returns at once when the token is already that close to expiry. A
    resilient desktop refreshes ahead of expiry (``token_refresh_margin``): with
    ``seconds_before`` under that margin, it has a new token by then (``refreshed``). Returns
    ``{"waited": s, "seconds_left": s, "expires_at": "<ISO time>", "refreshed": bool}``;
    never the token. Shorten the lifetime first (``chaosgenesys.sandbox.actions.
    set_token_lifetime``) to keep experiments short.

    ```json
    {"type": "action", "name": "wait-until-the-desktop-token-has-a-minute-left",
     "provider": {"type": "python", "module": "chaosgenesys.agent.actions",
                  "func": "wait_until_agent_token_expiry",
                  "arguments": {"user_id": "${agent_id}", "seconds_before": 60,
                                "max_wait": 600}}}
    ```
    """
    from chaosgenesys.agent.probes import agent_summary
    from chaosgenesys.token_moment import wait_until_token_moment

    user = require_id("user_id", user_id)
    before = require_number("seconds_before", seconds_before, minimum=0.0,
                            maximum=MAX_TOKEN_WAIT)
    bound = require_number("max_wait", max_wait, minimum=0.0, maximum=MAX_TOKEN_WAIT)
    summary = agent_summary(user, configuration=configuration, secrets=secrets)
    expires_at = summary.get("token_expires_at")
    if not isinstance(expires_at, int | float) or expires_at <= 0:
        raise ActivityFailed(
            f"the synthetic desktop of user_id {user!r} has no access token yet (its last "
            f"error: {summary.get('last_error') or 'none'})"
        )
    return wait_until_token_moment(
        float(expires_at), before, bound, whose=f"the desktop's access token of user_id {user!r}",
        latest_expiry=lambda: agent_summary(
            user, configuration=configuration, secrets=secrets
        ).get("token_expires_at"),
    )
