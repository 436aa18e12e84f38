"""A proxy's life: recorded in the fault registry, stopped by revert_all, by its deadline, and
when the run that started it is killed; imports stay light."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.proxy import actions
from tests.proxy.conftest import guardians, wait_for

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def _records(name: str) -> list[Any]:
    from chaosgenesys.faults import registry

    return [f for f in registry.active("proxy") if f.spec.get("name") == name]


def test_activity_modules_import_no_heavy_library() -> None:
    code = (
        "import sys, chaosgenesys.proxy.actions, chaosgenesys.proxy.probes; "
        "print([m for m in ('mitmproxy', 'aiohttp', 'requests', 'wsproto') if m in sys.modules])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT
    )
    assert out.stdout.strip() == "[]"


def test_recorded_and_reverted_by_revert_all(proxy_ca_dir: Path) -> None:
    from chaosgenesys.faults import actions as fault_actions

    info = actions.start_proxy(name="recorded", port=0, confdir=str(proxy_ca_dir))
    (record,) = _records("recorded")
    assert record.kind == "proxy" and record.id == info["fault_id"]
    assert record.spec["pid"] == info["pid"] and record.spec["port"] == info["port"]
    assert record.reverter == "chaosgenesys.proxy.control:revert"
    assert "token" not in json.dumps(record.to_dict()).lower().replace("token_", "")
    fault_actions.revert_all()
    assert not _alive(info["pid"])
    assert _records("recorded") == []
    assert actions.stop_proxy("recorded")["stopped"] is False


def test_stop_after_the_process_died(proxy_ca_dir: Path) -> None:
    info = actions.start_proxy(name="crashed", port=0, confdir=str(proxy_ca_dir))
    os.kill(info["pid"], signal.SIGKILL)
    wait_for(lambda: not _alive(info["pid"]), 5)
    with pytest.raises(ActivityFailed, match="not running any more"):
        actions.delay_requests("/x", 10, name="crashed")
    answer = actions.stop_proxy("crashed")
    assert answer["stopped"] is True and answer["was_running"] is False
    assert actions.stop_proxy("crashed")["stopped"] is False
    # The name can be used again at once.
    again = actions.start_proxy(name="crashed", port=0, confdir=str(proxy_ca_dir))
    actions.stop_proxy("crashed")
    assert not _alive(again["pid"])


def test_proxy_stops_itself_at_its_deadline(proxy_ca_dir: Path, proxy_runtime: Path) -> None:
    asked = time.time()
    info = actions.start_proxy(name="deadline", port=0, confdir=str(proxy_ca_dir), duration=1.0)
    answered = time.time()
    # The window opens when the proxy listens (the last moments of the call), not when the
    # record was written: a start slowed by a loaded machine eats none of the duration.
    assert answered - asked > 0.2  # mitmproxy takes a while to start, so the test can tell
    assert answered + 1.0 - 0.15 <= info["deadline"] <= answered + 1.0
    (record,) = _records("deadline")
    assert record.deadline == info["deadline"]
    # Even without the guardian, the proxy honours its own deadline.
    for pid in guardians(proxy_runtime):
        os.kill(pid, signal.SIGKILL)
    waited = wait_for(lambda: not _alive(info["pid"]), 6)
    assert waited < 4
    actions.stop_proxy("deadline")  # forgets the record
    assert _records("deadline") == []


def test_killed_run_leaves_no_proxy_after_the_duration(proxy_ca_dir: Path) -> None:
    script = (
        "import json, time\n"
        "from chaosgenesys.proxy.actions import start_proxy\n"
        f"info = start_proxy(name='orphan', port=0, confdir={str(proxy_ca_dir)!r}, duration=2)\n"
        "print(json.dumps(info), flush=True)\n"
        "time.sleep(120)\n"
    )
    owner = subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, cwd=ROOT
    )
    try:
        assert owner.stdout is not None
        info = json.loads(owner.stdout.readline())
        assert _alive(info["pid"])
        owner.kill()  # SIGKILL: no rollback, no cleanup
        owner.wait(5)
        killed = time.monotonic()
        wait_for(lambda: not _alive(info["pid"]) and _records("orphan") == [], 8)
        assert time.monotonic() - killed < 2 + 3
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(5)
        if owner.stdout is not None:
            owner.stdout.close()
