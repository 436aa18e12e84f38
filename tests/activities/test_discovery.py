"""The public activity contract: discovery, types chaos init can prompt for, cheap imports."""

from __future__ import annotations

import importlib
import inspect
import json
import re
import subprocess
import sys
from typing import Any

import pytest

import chaosgenesys

CONTRACT: dict[str, tuple[str, dict[str, list[str]]]] = {
    "chaosgenesys.users.probes": (
        "probe",
        {
            "get_user": ["user_id"],
            "get_presence": ["user_id"],
            "get_routing_status": ["user_id"],
            "presence_is": ["user_id", "expected"],
            "routing_status_is": ["user_id", "expected"],
            "wait_for_presence": ["user_id", "expected", "timeout", "interval"],
            "presence_and_routing_agree": ["user_id"],
            "agents_state": ["user_ids"],
        },
    ),
    "chaosgenesys.users.actions": (
        "action",
        {"set_presence": ["user_id", "presence"], "restore_presence": ["user_id"]},
    ),
    "chaosgenesys.conversations.probes": (
        "probe",
        {
            "get_conversation": ["conversation_id"],
            "participant_state": ["conversation_id", "user_id"],
            "call_is_connected": ["conversation_id", "user_id"],
            "active_interactions": ["user_id"],
            "wrapup_state": ["conversation_id", "user_id"],
        },
    ),
    "chaosgenesys.routing.probes": (
        "probe",
        {
            "queue_members": ["queue_id"],
            "queue_observations": ["queue_id"],
            "queue_is_isolated": ["queue_id", "user_ids"],
        },
    ),
    "chaosgenesys.auth.probes": ("probe", {"token_info": []}),
    "chaosgenesys.auth.actions": (
        "action",
        {"revoke_token": [], "wait_until_token_expiry": ["seconds_before"]},
    ),
    "chaosgenesys.sandbox.actions": (
        "action",
        {
            "inject_api_fault": ["path_pattern", "delay_ms", "status"],
            "expire_tokens": [],
            "close_notification_sockets": ["code", "user_ids"],
            "route_call": ["queue_id"],
            "clear_sandbox_faults": [],
        },
    ),
    # Issue 10's public names.
    "chaosgenesys.browser.actions": (
        "action",
        {
            "start_observer": ["devtools_url", "page_url_pattern"],
            "stop_observer": [],
            "delay_browser_requests": ["url_pattern", "delay_ms", "duration"],
            "fail_browser_requests": ["url_pattern", "status", "duration"],
            "block_websocket_handshakes": ["url_pattern", "duration"],
            "close_browser_websockets": ["url_pattern", "code"],
            "emulate_network": [
                "offline", "latency_ms", "download_kbps", "upload_kbps", "duration"
            ],
            "clear_browser_faults": [],
        },
    ),
    "chaosgenesys.browser.probes": (
        "probe",
        {"browser_summary": [], "browser_faults": [], "ui_presence": [],
         "ui_matches_api": ["user_id"]},
    ),
    # Issue 12's protocol.
    "chaosgenesys.protocol.probes": (
        "probe",
        {
            "measure_baseline": ["duration", "user_ids", "sample_interval"],
            "time_to_recover": [
                "user_ids", "expected_presence", "timeout", "interval", "check_desktops"
            ],
            "compare_with_baseline": ["metric", "phase", "max_ratio", "slack"],
            "recovery_within": ["max_seconds"],
            "protocol_figures": [],
        },
    ),
}

PROMPTABLE = {"string", "integer", "number", "boolean", "list", "mapping"}


@pytest.fixture(scope="module")
def discovered() -> dict[tuple[str, str], dict[str, Any]]:
    discovery = chaosgenesys.discover()
    json.dumps(discovery)  # chaos discover writes it as JSON
    return {(a["mod"], a["name"]): a for a in discovery["activities"]}


@pytest.mark.parametrize("module", sorted(CONTRACT))
def test_contract_functions_discovered_with_their_type(
    module: str, discovered: dict[tuple[str, str], dict[str, Any]]
) -> None:
    kind, functions = CONTRACT[module]
    for name, args in functions.items():
        activity = discovered.get((module, name))
        assert activity is not None, f"{module}.{name} is not discovered"
        assert activity["type"] == kind, f"{module}.{name} is discovered as {activity['type']}"
        names = [arg["name"] for arg in activity["arguments"]]
        assert names[: len(args)] == args, f"{module}.{name} arguments {names}"
        assert names[-2:] == ["configuration", "secrets"]


def test_every_discovered_activity_is_promptable_and_documented(
    discovered: dict[tuple[str, str], dict[str, Any]],
) -> None:
    mine = {m for m in CONTRACT}
    for (module, name), activity in discovered.items():
        if module not in mine:
            continue
        for arg in activity["arguments"]:
            assert arg.get("type") in PROMPTABLE, f"{module}.{name}({arg['name']}): {arg}"
        func = getattr(importlib.import_module(module), name)
        params = list(inspect.signature(func).parameters.values())
        assert [p.name for p in params[-2:]] == ["configuration", "secrets"]
        assert all(p.default is None for p in params[-2:])
        doc = activity["doc"] or ""
        snippet = re.search(r"```json\n(.*?)```", doc, re.S)
        assert snippet, f"{module}.{name} docstring has no JSON example"
        example = json.loads(snippet.group(1))
        assert example["provider"]["module"] == module
        assert example["provider"]["func"] == name
        assert example["type"] == activity["type"]
        required = {p.name for p in params if p.default is inspect.Parameter.empty}
        assert required <= set(example["provider"].get("arguments", {})), f"{module}.{name}"


def test_importing_activity_modules_is_cheap() -> None:
    code = (
        "import sys\n"
        f"mods = {sorted(CONTRACT)!r}\n"
        "import importlib\n"
        "for m in mods: importlib.import_module(m)\n"
        "heavy = sorted(n for n in ('aiohttp', 'pyroute2', 'mitmproxy', 'requests',\n"
        "                          'prometheus_client') if n in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "", f"activity modules imported {out.stdout.strip()}"


def test_reference_documents_every_activity() -> None:
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "activities.md").read_text()
    for block in re.findall(r"```json\n(.*?)```", text, re.S):
        json.loads(block.replace("…", "x"))
    for module in CONTRACT:
        mod = importlib.import_module(module)
        assert f"`{module}" in text, module
        for name in mod.__all__:
            assert re.search(rf"`{name}\(", text), f"{module}.{name} is not documented"
            assert f'"func": "{name}"' in text or name in ("token_info", "revoke_token")
