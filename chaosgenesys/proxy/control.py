"""Start, steer and stop proxy processes from the extension's side.

A proxy is a ``python -m chaosgenesys.proxy.server`` process (mitmproxy with our addon), named,
recorded in the fault registry (kind ``proxy``) **before** it starts: its record's spec holds the
pid, the ports, the control endpoint and the state folder, so :func:`revert` can stop it from any
process (``revert_all``, ``chaosgenesys cleanup``, the guardian at the deadline or when the
owner dies). The control token is in a 0600 file in the state folder, never in the record.

This module imports neither mitmproxy nor requests at import time.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from chaoslib.exceptions import ActivityFailed

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.faults.registry import FaultRecord

__all__ = [
    "KIND",
    "alive",
    "call",
    "check_mitmproxy",
    "check_port_free",
    "find",
    "revert",
    "running_names",
    "start",
    "stop",
]

KIND = "proxy"
REVERTER = "chaosgenesys.proxy.control:revert"
TOKEN_HEADER = "X-Chaosgenesys-Token"
START_TIMEOUT = 20.0
STOP_TIMEOUT = 5.0
CONTROL_TIMEOUT = 10.0
DEFAULT_CONFDIR = "~/.mitmproxy"

#: Proxy processes started by this process (reaped when stopped, so no zombie is left).
_children: dict[int, subprocess.Popen[bytes]] = {}


def check_mitmproxy() -> None:
    """Raise ``ActivityFailed`` saying how to install mitmproxy when it is not importable."""
    if importlib.util.find_spec("mitmproxy") is None:
        raise ActivityFailed(
            "mitmproxy is not installed in this Python environment "
            f"({sys.executable}); install it with: pip install 'chaosgenesys[proxy]' "
            "(or pip install 'mitmproxy>=12')"
        )


def check_port_free(listen_host: str, port: int) -> None:
    """Raise ``ActivityFailed`` naming the port when something already listens there, or
    ``listen_host`` when it cannot be listened on (port 0: only the address is tried)."""
    family = socket.AF_INET6 if ":" in listen_host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((listen_host, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                raise ActivityFailed(
                    f"port {port} on {listen_host} is already in use (port={port}); stop what "
                    "listens there or choose another port (0 picks a free one)"
                ) from None
            raise ActivityFailed(
                f"cannot listen on {listen_host}:{port} (listen_host={listen_host!r}, "
                f"port={port}): {error.strerror or error}"
            ) from None


def _registry() -> Any:
    from chaosgenesys.faults import registry

    return registry


def find(name: str) -> FaultRecord | None:
    """The registry record of the proxy called ``name``, if one is recorded."""
    for fault in _registry().active(KIND):
        if fault.spec.get("name") == name:
            return fault  # type: ignore[no-any-return]
    return None


def running_names() -> list[str]:
    """Names of every recorded proxy."""
    return sorted(str(f.spec.get("name")) for f in _registry().active(KIND))


def alive(spec: dict[str, Any]) -> bool:
    """Whether the proxy process of a record's ``spec`` is running."""
    return _alive(spec)


def _alive(spec: dict[str, Any]) -> bool:
    pid = spec.get("pid")
    if not isinstance(pid, int):
        return False
    child = _children.get(pid)
    if child is not None and child.poll() is not None:
        return False
    alive: bool = _registry().process_alive(pid, spec.get("pid_start"))
    return alive


def _log_tail(state_dir: Path, lines: int = 8) -> str:
    try:
        text = (state_dir / "proxy.log").read_text(errors="replace")
    except OSError:
        return ""
    kept = [line for line in text.splitlines() if line.strip()][-lines:]
    return " | ".join(kept)[-1500:]


def start(
    *,
    name: str,
    port: int,
    mode: str,
    listen_host: str,
    duration: float | None,
    confdir: str,
    ignore_hosts: list[str],
    verify_upstream: bool,
    upstream_ca: str,
) -> dict[str, Any]:
    """Start a proxy (arguments already checked) and return how to reach it."""
    check_mitmproxy()
    registry = _registry()
    existing = find(name)
    if existing is not None:
        if _alive(existing.spec):
            old = existing.spec
            raise ActivityFailed(
                f"a proxy named {name!r} is already running (pid {old.get('pid')}, "
                f"{old.get('listen_host')}:{old.get('port')}); stop_proxy(name={name!r}) "
                "first or choose another name"
            )
        registry.revert(existing.id)
    check_port_free(listen_host, port)
    confdir_path = os.path.abspath(os.path.expanduser(confdir or DEFAULT_CONFDIR))
    base = Path(registry.registry_dir()) / "proxies"
    base.mkdir(parents=True, exist_ok=True, mode=0o700)
    state_dir = Path(tempfile.mkdtemp(prefix=f"{name[:40]}-", dir=base))
    token = secrets.token_urlsafe(24)
    token_file = state_dir / "token"
    fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(token)
    ready_file = state_dir / "ready.json"
    spec: dict[str, Any] = {
        "name": name,
        "mode": mode,
        "listen_host": listen_host,
        "port": port,
        "confdir": confdir_path,
        "state_dir": str(state_dir),
        "pid": None,
        "pid_start": None,
    }
    where = f"{listen_host}:{port}" if port else f"{listen_host} (free port)"
    # Until the proxy listens, the record's deadline leaves it the time to start; then it becomes
    # that moment plus ``duration``, the proxy's own deadline (a slow start eats none of it).
    fault = registry.record(
        kind=KIND,
        description=f"proxy {name!r} ({mode}) on {where}",
        reverter=REVERTER,
        spec=spec,
        duration=None if duration is None else duration + START_TIMEOUT,
    )
    with registry.undone_on_failure(fault.id):
        config = {
            "name": name,
            "token": token,
            "listen_host": listen_host,
            "port": port,
            "mode": mode,
            "confdir": confdir_path,
            "ignore_hosts": ignore_hosts,
            "ssl_insecure": not verify_upstream,
            "upstream_ca": upstream_ca,
            "duration": duration,
            "ready_file": str(ready_file),
        }
        from chaosgenesys.faults.holders import start_holder

        with open(state_dir / "proxy.log", "wb") as log:
            process, spec = start_holder(fault.id, spec, "chaosgenesys.proxy.server", log, config)
        _children[process.pid] = process
        ready = _wait_ready(process, ready_file, state_dir)
        listen = ready["listen"]
        actual_port = int(listen[0][1]) if listen else port
        spec = {
            **spec,
            "port": actual_port,
            "listen": listen,
            "control_url": f"http://127.0.0.1:{ready['control_port']}",
        }
        deadline = ready.get("deadline")
        fault = registry.update(
            fault.id,
            spec=spec,
            description=f"proxy {name!r} ({mode}) on {listen_host}:{actual_port}",
            deadline=float(deadline) if isinstance(deadline, int | float) else None,
        )
    host = f"[{listen_host}]" if ":" in listen_host else listen_host
    if listen_host in ("0.0.0.0", "::"):
        host = "127.0.0.1"
    return {
        "name": name,
        "pid": process.pid,
        "mode": mode,
        "listen_host": listen_host,
        "port": actual_port,
        "proxy_url": f"http://{host}:{actual_port}",
        "control_url": spec["control_url"],
        "confdir": confdir_path,
        "ca_cert": os.path.join(confdir_path, "mitmproxy-ca-cert.pem"),
        "fault_id": fault.id,
        "deadline": fault.deadline,
    }


def _wait_ready(
    process: subprocess.Popen[bytes], ready_file: Path, state_dir: Path
) -> dict[str, Any]:
    deadline = time.monotonic() + START_TIMEOUT
    pause = 0.01
    while time.monotonic() < deadline:
        if ready_file.exists():
            try:
                ready: dict[str, Any] = json.loads(ready_file.read_text())
                return ready
            except ValueError:
                pass
        code = process.poll()
        if code is not None:
            tail = _log_tail(state_dir)
            if "address already in use" in tail.lower():
                raise ActivityFailed(f"the proxy could not listen: port already in use ({tail})")
            raise ActivityFailed(f"the proxy exited with status {code} while starting: {tail}")
        time.sleep(pause)
        pause = min(0.05, pause * 1.5)
    raise ActivityFailed(
        f"the proxy did not start within {START_TIMEOUT:g} s: {_log_tail(state_dir)}"
    )


def _stop_process(pid: int, pid_start: int | None) -> bool:
    """SIGTERM, then SIGKILL after :data:`STOP_TIMEOUT`; True if a process was stopped."""
    registry = _registry()
    child = _children.pop(pid, None)
    if not registry.process_alive(pid, pid_start) or (
        child is not None and child.poll() is not None
    ):
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    end = time.monotonic() + STOP_TIMEOUT
    while time.monotonic() < end:
        if child is not None:
            if child.poll() is not None:
                return True
        elif not registry.process_alive(pid, pid_start):
            return True
        time.sleep(0.02)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    if child is not None:
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.wait(timeout=STOP_TIMEOUT)
    return True


def revert(fault: FaultRecord) -> None:
    """The registry's reverter: stop the proxy process (if it runs) and remove its state folder.

    Idempotent, and works in any process from the record's spec alone.
    """
    spec = fault.spec
    pid = spec.get("pid")
    if isinstance(pid, int) and pid > 0:
        _stop_process(pid, spec.get("pid_start"))
    state_dir = spec.get("state_dir")
    if isinstance(state_dir, str) and state_dir:
        shutil.rmtree(state_dir, ignore_errors=True)


def stop(name: str) -> dict[str, Any]:
    """Stop the proxy called ``name`` (idempotent); its last statistics when it was running."""
    fault = find(name)
    if fault is None:
        return {"name": name, "stopped": False, "was_running": False}
    stats: dict[str, Any] | None = None
    if _alive(fault.spec):
        with contextlib.suppress(ActivityFailed):
            stats = call(name, "GET", "/stats", fault=fault, timeout=2.0)
    _registry().revert(fault.id)
    return {"name": name, "stopped": True, "was_running": stats is not None, "stats": stats}


def call(
    name: str,
    method: str,
    path: str,
    body: Any = None,
    *,
    fault: FaultRecord | None = None,
    timeout: float = CONTROL_TIMEOUT,
) -> dict[str, Any]:
    """One request to the control API of proxy ``name``; its JSON answer."""
    from chaosgenesys.platform import http

    fault = fault or find(name)
    if fault is None:
        names = running_names()
        running = f"running: {', '.join(map(repr, names))}" if names else "none is running"
        raise ActivityFailed(
            f"no proxy named {name!r} is running (name={name!r}; {running}); start it with "
            "chaosgenesys.proxy.actions.start_proxy"
        )
    spec = fault.spec
    control_url = spec.get("control_url")
    if not control_url or not _alive(spec):
        raise ActivityFailed(
            f"the proxy named {name!r} is not running any more (pid {spec.get('pid')}); "
            f"start it again with start_proxy(name={name!r})"
        )
    try:
        token = (Path(spec["state_dir"]) / "token").read_text().strip()
    except OSError as error:
        raise ActivityFailed(f"cannot read the control token of proxy {name!r}: {error}") from None
    response = http.send(
        method,
        control_url + path,
        json=body,
        # A connection per call: the control endpoint closes connections idle for 5 s, and a
        # pooled one could be closed just as it is reused.
        headers={TOKEN_HEADER: token, "Connection": "close"},
        timeout=timeout,
        verify=True,
    )
    try:
        answer: dict[str, Any] = response.json()
    except ValueError:
        answer = {"error": response.text[:300]}
    if response.status_code >= 400:
        raise ActivityFailed(
            f"proxy {name!r} refused {method} {path}: {answer.get('error', response.status_code)}"
        )
    return answer
