"""The proxy process: mitmproxy's DumpMaster with the chaosgenesys addon.

``python -m chaosgenesys.proxy.server`` reads its configuration as one JSON object on standard
input (so the control token never shows in ``ps``)::

    {"name": "default", "token": "...", "listen_host": "127.0.0.1", "port": 8080,
     "mode": "regular", "confdir": "~/.mitmproxy", "ignore_hosts": [], "ssl_insecure": false,
     "upstream_ca": "", "duration": null, "ready_file": "/run/chaosgenesys/proxy-x/ready.json"}

When the proxy listens it writes ``ready_file`` (pid, listen addresses, control port, confdir and
its deadline). SIGTERM and SIGINT stop it; so does its deadline, ``duration`` seconds after it
listens. Startup errors (a port in use, a bad mode) are printed on standard error and the
process exits 1.
"""

from __future__ import annotations

import asyncio
import json
import logging
import signal
import sys
from typing import Any

__all__ = ["main", "run"]


async def run(config: dict[str, Any]) -> None:
    """Run the proxy until it is shut down."""
    from mitmproxy.options import Options
    from mitmproxy.tools.dump import DumpMaster

    from chaosgenesys.proxy.addon import ChaosAddon

    options: Any = Options()
    master: Any = DumpMaster(options, with_termlog=True, with_dumper=False)
    updates: dict[str, Any] = {
        "listen_host": config["listen_host"],
        "listen_port": int(config["port"]),
        "mode": [config["mode"]],
        "confdir": config["confdir"],
        "ignore_hosts": list(config.get("ignore_hosts") or []),
        "ssl_insecure": bool(config.get("ssl_insecure", False)),
        "termlog_verbosity": "warn",
        "flow_detail": 0,
    }
    if config.get("upstream_ca"):
        updates["ssl_verify_upstream_trusted_ca"] = config["upstream_ca"]
    options.update(**{k: v for k, v in updates.items() if k in options})
    master.addons.add(
        ChaosAddon(
            name=config["name"],
            token=config["token"],
            ready_file=config.get("ready_file") or "",
            duration=config.get("duration"),
        )
    )
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    if hasattr(signal, "SIGPIPE"):
        signal.signal(signal.SIGPIPE, signal.SIG_IGN)
    await master.run()


def main() -> int:
    """Entry point: configuration from standard input, then :func:`run`."""
    logging.getLogger("asyncio").setLevel(logging.WARNING)
    try:
        config = json.loads(sys.stdin.read())
    except ValueError as error:
        print(f"chaosgenesys proxy: bad configuration on stdin: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(run(config))
    except SystemExit as exit_:
        return int(exit_.code or 0)
    except Exception as error:
        print(f"chaosgenesys proxy: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
