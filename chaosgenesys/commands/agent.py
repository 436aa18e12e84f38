"""``chaosgenesys agent``: run synthetic agent desktops until SIGTERM/SIGINT (or a duration).

::

    export GENESYSCLOUD_OAUTHCLIENT_ID=chaos-client GENESYSCLOUD_OAUTHCLIENT_SECRET=...
    chaosgenesys agent --api-url http://127.0.0.1:8765 --user U1 --user U2 \\
        [--proxy http://127.0.0.1:8080] [--ca-file mitm-ca.pem] [--mode resilient|naive] \\
        [--log agents.jsonl] [--status-file status.json] [--duration 60 [--ready-allowance 30]] \\
        [--option ping_interval=0.5 --option talk_time=3]

Credentials come from the environment only (``GENESYSCLOUD_OAUTHCLIENT_ID`` /
``GENESYSCLOUD_OAUTHCLIENT_SECRET``; ``--client-id`` may name the id, the secret is always read
from ``GENESYSCLOUD_OAUTHCLIENT_SECRET``), never from the command line. Inside a network
namespace: ``ip netns exec NS chaosgenesys agent ...``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from typing import Any

from chaosgenesys.commands.arguments import non_negative_float, positive_float

__all__ = ["main", "register"]

ENV_CLIENT_ID = "GENESYSCLOUD_OAUTHCLIENT_ID"
ENV_CLIENT_SECRET = "GENESYSCLOUD_OAUTHCLIENT_SECRET"


def register(commands: Any) -> None:
    """Add the ``agent`` sub-command to the ``chaosgenesys`` parser."""
    parser = commands.add_parser(
        "agent",
        help="run synthetic agent desktops until interrupted",
        description="Run synthetic Genesys Cloud agent desktops (many in one process): they "
        "log in, go On Queue, hold a notification channel, answer calls and wrap up, and "
        "reconnect like the real desktop (resilient) or badly (naive).",
    )
    add_arguments(parser)
    parser.set_defaults(handler=run_command)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``agent`` sub-command's arguments."""
    parser.add_argument("--user", action="append", required=True, metavar="ID",
                        help="user id of an agent (repeat for more agents)")
    parser.add_argument("--mode", choices=("resilient", "naive"), default="resilient",
                        help="behaviour (default %(default)s)")
    parser.add_argument("--proxy", default="", metavar="URL",
                        help="HTTP(S) proxy for the API, the login and the WebSocket")
    parser.add_argument("--ca-file", default="", metavar="FILE",
                        help="CA bundle to trust (e.g. a TLS-intercepting proxy's CA)")
    parser.add_argument("--insecure", action="store_true",
                        help="do not verify TLS certificates (tests only)")
    parser.add_argument("--api-url", default="", metavar="URL",
                        help="API base URL (default: GENESYSCLOUD_API_REGION or --region)")
    parser.add_argument("--login-url", default="", metavar="URL",
                        help="login base URL (default: derived from the API URL)")
    parser.add_argument("--region", default="", help="Genesys Cloud region, e.g. us_east_1")
    parser.add_argument("--client-id", default="", metavar="ID",
                        help=f"OAuth client id (default ${ENV_CLIENT_ID}); the secret is "
                        f"read from ${ENV_CLIENT_SECRET} only")
    parser.add_argument("--timeout", type=positive_float, default=10.0, metavar="SECONDS",
                        help="timeout of each HTTP request (default %(default)s)")
    parser.add_argument("--log", default="", metavar="FILE", help="JSONL event log")
    parser.add_argument("--status-file", default="", metavar="FILE",
                        help="JSON summary of every agent, rewritten every 0.5 s")
    parser.add_argument("--duration", type=non_negative_float, default=0.0, metavar="SECONDS",
                        help="stop after this many seconds (default: until SIGTERM/SIGINT)")
    parser.add_argument("--ready-allowance", type=non_negative_float, default=0.0,
                        metavar="SECONDS",
                        help="count --duration from when every agent is ready, if that comes "
                        "within this many seconds of the start (default 0: from the start)")
    parser.add_argument("--seed", type=int, default=None, metavar="N",
                        help="random seed of the reconnect jitter (reproducible runs)")
    parser.add_argument("--owner-pid", type=int, default=0, metavar="PID",
                        help="stop when this process is gone")
    parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                        help="agent option, e.g. ping_interval=0.5, talk_time=3, "
                        "wrapup_time=2 (see docs/agent.md)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON line when every agent is ready")


def _options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name:
            raise ValueError(f"--option must be NAME=VALUE, got {pair!r}")
        try:
            value: Any = json.loads(text)
        except ValueError:
            value = text
        options[name.strip()] = value
    return options


def run_command(args: argparse.Namespace) -> int:
    """The handler: build the endpoint from arguments and environment, run the agents."""
    from chaoslib.exceptions import ActivityFailed

    from chaosgenesys.agent.config import Endpoint, config_from_options
    from chaosgenesys.platform.settings import settings_from

    configuration: dict[str, Any] = {}
    if args.api_url:
        configuration["genesys_api_url"] = args.api_url
    if args.login_url:
        configuration["genesys_login_url"] = args.login_url
    if args.region:
        configuration["genesys_region"] = args.region
    secrets: dict[str, str] = {}
    if args.client_id:
        secret = os.environ.get(ENV_CLIENT_SECRET, "")
        if not secret:
            print(f"chaosgenesys agent: --client-id needs ${ENV_CLIENT_SECRET}", file=sys.stderr)
            return 2
        secrets = {"client_id": args.client_id, "client_secret": secret}
    try:
        settings = settings_from(configuration, secrets or None)
        config = config_from_options(args.mode, _options(args.option))
    except (ActivityFailed, ValueError) as error:
        print(f"chaosgenesys agent: {error}", file=sys.stderr)
        return 2
    endpoint = Endpoint(
        api_url=settings.api_url,
        login_url=settings.login_url,
        client_id=settings.client_id,
        client_secret=settings.client_secret,
        proxy=args.proxy,
        ca_file=args.ca_file,
        verify_tls=not args.insecure,
        timeout=args.timeout,
    )
    users = list(dict.fromkeys(args.user))
    _raise_open_files_limit(len(users))
    return asyncio.run(_run(args, users, endpoint, config))


#: File descriptors one agent may hold at once: its socket, and its REST calls' connections
#: while a reconnect storm re-reads state.
FILES_PER_AGENT = 4


def _raise_open_files_limit(agents: int) -> None:
    """Many agents in one process need more sockets than a common soft limit (1,024): raise
    the soft limit towards the hard one, and say so when even that is short."""
    import resource

    needed = agents * FILES_PER_AGENT + 64
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
    if soft != resource.RLIM_INFINITY and soft < needed:
        _say(f"{agents} agents may need {needed} open files; the limit is {soft} "
             "(raise it with ulimit -n, or run fewer agents per process)")


#: After SIGTERM/SIGINT (or the duration), how long the agents get to log off cleanly before
#: their tasks are cancelled (an HTTP call in flight to a silent host would hold them for its
#: whole timeout); then as long again for the cancellation itself.
STOP_GRACE = 1.0
#: How long ``--json`` waits for every agent to be ready before printing ``"ready": false``.
READY_TIMEOUT = 60.0
#: Errors reported on stderr per agent while it cannot start (it keeps retrying).
MAX_REPORTED_ERRORS = 5


def _say(text: str) -> None:
    print(f"chaosgenesys agent: {text}", file=sys.stderr, flush=True)


async def _report_start_errors(manager: Any, endpoint: Any) -> None:
    """Say on stderr why an agent cannot start (it keeps retrying), each new error once."""
    from chaosgenesys.platform.http import safe_url

    reported: dict[str, list[str]] = {}
    while True:
        if manager.agents and all(agent.stats.ready for agent in manager.agents):
            return  # errors of a ready agent are its summary's, not start errors
        for agent in list(manager.agents):
            error = agent.stats.last_error
            seen = reported.setdefault(agent.user_id, [])
            if agent.stats.ready or not error or error in seen or len(seen) >= MAX_REPORTED_ERRORS:
                continue
            seen.append(error)
            _say(f"agent {agent.user_id} cannot start against {safe_url(endpoint.api_url)}: "
                 f"{error} (retrying)")
        await asyncio.sleep(0.25)


async def _run(args: argparse.Namespace, users: list[str], endpoint: Any, config: Any) -> int:
    from chaosgenesys.agent.manager import AgentManager
    from chaosgenesys.platform.http import safe_url

    manager = AgentManager(
        [(user, endpoint) for user in users],
        config,
        log_path=args.log or None,
        status_path=args.status_file or None,
        owner_pid=args.owner_pid,
        rng_seed=args.seed,
    )
    loop = asyncio.get_running_loop()
    stopping = asyncio.Event()

    def stop() -> None:
        stopping.set()
        manager.stop()

    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop)
    runner = loop.create_task(
        manager.run(duration=args.duration, ready_allowance=args.ready_allowance)
    )
    reporter = loop.create_task(_report_start_errors(manager, endpoint))
    stopped = loop.create_task(stopping.wait())
    try:
        if args.json:
            # ready, or the run over (duration, owner gone, every agent logged out), or a signal
            waiting = loop.create_task(manager.wait_ready(timeout=READY_TIMEOUT))
            await asyncio.wait({waiting, runner, stopped}, return_when=asyncio.FIRST_COMPLETED)
            ready = waiting.done() and not waiting.cancelled() and waiting.result()
            waiting.cancel()
            print(json.dumps({"ready": ready, "pid": os.getpid(), "users": users}), flush=True)
        await asyncio.wait({runner, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if not runner.done():  # a signal: the agents get STOP_GRACE to log off, then are cut
            await asyncio.wait({runner}, timeout=STOP_GRACE)
        if not runner.done():
            _say(f"agents still busy {STOP_GRACE:g} s after the stop request; cancelling them")
            runner.cancel()
            await asyncio.wait({runner}, timeout=STOP_GRACE)
    finally:
        for task in (reporter, stopped):
            task.cancel()
    failed = runner.exception() if runner.done() and not runner.cancelled() else None
    if failed is not None:
        _say(f"the agents stopped on an error: {failed!r}")
    summaries = manager.summaries()
    logged_out = [user for user, s in summaries.items() if s["logged_out"]]
    print(
        json.dumps({"stopped": True, "agents": len(summaries), "logged_out": logged_out}),
        flush=True,
    )
    never_ready = [user for user in users if not summaries.get(user, {}).get("ready")]
    for user in never_ready:
        error = summaries.get(user, {}).get("last_error") or "no answer yet"
        _say(f"agent {user} never got ready (logged in, On Queue, channel connected) against "
             f"{safe_url(endpoint.api_url)}: {error}")
    return 1 if never_ready or failed is not None else 0


def main(argv: list[str] | None = None) -> int:
    """``python -m chaosgenesys.agent``: the same command without the ``chaosgenesys`` CLI."""
    parser = argparse.ArgumentParser(prog="chaosgenesys agent")
    add_arguments(parser)
    return run_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
