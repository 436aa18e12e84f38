"""``chaos discover`` sees every activity of the public contract, typed and documented."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import chaosgenesys

ROOT = Path(__file__).resolve().parent.parent
CHAOS = str(Path(sys.executable).with_name("chaos"))

#: The rows of design.md's public contract that this package implements, with their arguments.
CONTRACT: dict[str, dict[str, tuple[str, ...]]] = {
    "chaosgenesys.users.probes": {
        "get_user": ("user_id",),
        "get_presence": ("user_id",),
        "get_routing_status": ("user_id",),
        "presence_is": ("user_id", "expected"),
        "routing_status_is": ("user_id", "expected"),
        "wait_for_presence": ("user_id", "expected", "timeout", "interval"),
        "presence_and_routing_agree": ("user_id",),
        "agents_state": ("user_ids",),
    },
    "chaosgenesys.users.actions": {
        "set_presence": ("user_id", "presence"),
        "restore_presence": ("user_id",),
    },
    "chaosgenesys.conversations.probes": {
        "get_conversation": ("conversation_id",),
        "participant_state": ("conversation_id", "user_id"),
        "call_is_connected": ("conversation_id", "user_id"),
        "active_interactions": ("user_id",),
        "wrapup_state": ("conversation_id", "user_id"),
    },
    "chaosgenesys.routing.probes": {
        "queue_members": ("queue_id",),
        "queue_observations": ("queue_id",),
        "queue_is_isolated": ("queue_id", "user_ids"),
    },
    "chaosgenesys.auth.probes": {"token_info": ()},
    "chaosgenesys.auth.actions": {
        "revoke_token": (),
        "wait_until_token_expiry": ("seconds_before",),
    },
    "chaosgenesys.notifications.probes": {
        "watch_events": ("user_ids", "duration", "topics"),
        "longest_not_on_queue": ("user_id", "timeline_path"),
        "max_reconnect_latency": ("user_id", "timeline_path"),
    },
    "chaosgenesys.faults.actions": {"revert_all": ()},
    "chaosgenesys.agent.actions": {
        "start_agents": ("user_ids", "proxy", "mode"),
        "stop_agents": (),
    },
    "chaosgenesys.agent.probes": {"agent_summary": ("user_id",)},
    "chaosgenesys.network.actions": {
        "add_latency": ("delay_ms", "jitter_ms"),
        "add_packet_loss": ("loss_percent",),
        "apply_netem": (),
        "throttle_bandwidth": ("rate",),
        "blackhole": (),
        "remove_faults": (),
    },
    "chaosgenesys.network.probes": {"list_faults": (), "netem_supported": ()},
    "chaosgenesys.proxy.actions": {
        "start_proxy": ("name", "port", "mode", "listen_host", "duration"),
        "stop_proxy": ("name",),
        "delay_requests": ("path_pattern", "delay_ms"),
        "fail_requests": ("path_pattern", "status"),
        "reset_requests": ("path_pattern",),
        "close_websockets": ("path_pattern", "code"),
        "drop_websocket_messages": ("path_pattern",),
        "load_fiddler_rules": ("rules",),
        "clear_rules": ("name",),
    },
    "chaosgenesys.proxy.probes": {"proxy_stats": ("name",)},
    "chaosgenesys.sockets.actions": {
        "reset_connections": ("destinations", "ports"),
        "reject_connections": ("destinations", "ports", "duration"),
    },
    "chaosgenesys.faults.probes": {"active_faults": ()},
    "chaosgenesys.sandbox.actions": {
        "inject_api_fault": ("path_pattern", "delay_ms", "status"),
        "expire_tokens": (),
        "close_notification_sockets": ("code", "user_ids"),
        "route_call": ("queue_id",),
        "clear_sandbox_faults": (),
    },
}


EXPECTED_TYPES = {
    "user_id": "string",
    "conversation_id": "string",
    "queue_id": "string",
    "path_pattern": "string",
    "presence": "string",
    "user_ids": "list",
    "timeout": "number",
    "interval": "number",
    "configuration": "mapping",
    "secrets": "mapping",
}


@pytest.fixture(scope="module")
def discovery(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    path = tmp_path_factory.mktemp("discover") / "discovery.json"
    result = subprocess.run(
        [
            CHAOS,
            "--no-version-check",
            "--no-log-file",
            "discover",
            "--no-install",
            "--no-system-info",
            "--discovery-path",
            str(path),
            "chaosgenesys",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    loaded: dict[str, object] = json.loads(path.read_text())
    return loaded


def test_discovery_lists_every_contract_activity_with_its_type(discovery: dict) -> None:
    found = {(a["mod"], a["name"]): a for a in discovery["activities"]}
    for module, functions in CONTRACT.items():
        kind = "probe" if module.endswith(".probes") else "action"
        for name, arguments in functions.items():
            activity = found.get((module, name))
            assert activity is not None, f"{module}.{name} is not discovered"
            assert activity["type"] == kind, f"{module}.{name} is a {activity['type']}"
            assert activity["doc"], f"{module}.{name} has no docstring"
            names = [arg["name"] for arg in activity["arguments"]]
            assert names[: len(arguments)] == list(arguments), f"{module}.{name}: {names}"
            for arg in activity["arguments"]:
                # `chaos init` prompts with the portable type: every argument must have one.
                # "object" (a union, or no annotation) makes `chaos init` crash when it prompts.
                assert arg.get("type") in {
                    "string",
                    "integer",
                    "number",
                    "boolean",
                    "list",
                    "mapping",
                }, f"{module}.{name}({arg['name']}) has type {arg.get('type')!r}"
                # String annotations (``from __future__ import annotations``) would all port as
                # "object": the obvious ones must come out precise.
                expected_type = EXPECTED_TYPES.get(arg["name"])
                if expected_type:
                    assert arg["type"] == expected_type, f"{module}.{name}({arg['name']})"


def test_every_discovered_argument_has_a_type_chaos_init_can_prompt_for(discovery: dict) -> None:
    untyped = [
        f"{a['mod']}.{a['name']}({arg['name']}): {arg.get('type')}"
        for a in discovery["activities"]
        for arg in a["arguments"]
        if arg.get("type") not in {"string", "integer", "number", "boolean", "list", "mapping"}
    ]
    assert untyped == []


def test_discovery_names_the_extension(discovery: dict) -> None:
    assert discovery["extension"]["name"] == "chaosgenesys"
    assert discovery["extension"]["version"] == chaosgenesys.__version__


def test_every_public_function_is_in_all_and_takes_configuration_and_secrets() -> None:
    import importlib
    import inspect

    for module_name in (*chaosgenesys.ACTION_MODULES, *chaosgenesys.PROBE_MODULES):
        module = importlib.import_module(module_name)
        public = {
            name
            for name, obj in vars(module).items()
            if inspect.isfunction(obj)
            and obj.__module__ == module_name
            and not name.startswith("_")
        }
        exported = {name: getattr(module, name) for name in module.__all__}
        assert all(inspect.isfunction(obj) for obj in exported.values()), module_name
        # Defined here, or re-exported from a module of the same package (browser.actions
        # re-exports browser.faults' activities so that experiments name one module).
        here = {name for name, obj in exported.items() if obj.__module__ == module_name}
        package = module_name.rsplit(".", 1)[0] + "."
        assert all(obj.__module__.startswith(package) for obj in exported.values()), module_name
        assert public == here, module_name
        for name in module.__all__:
            params = list(inspect.signature(getattr(module, name)).parameters)
            assert params[-2:] == ["configuration", "secrets"], f"{module_name}.{name}"


def test_activity_modules_do_not_import_heavy_libraries() -> None:
    # `chaos validate` imports every module an experiment names: it must stay cheap.
    modules = ", ".join((*chaosgenesys.ACTION_MODULES, *chaosgenesys.PROBE_MODULES))
    code = (
        "import importlib, sys\n"
        f"for name in {modules!r}.split(', '):\n"
        "    importlib.import_module(name)\n"
        "heavy = sorted(m for m in ('aiohttp', 'pyroute2', 'mitmproxy', 'matplotlib',\n"
        "                           'prometheus_client') if m in sys.modules)\n"
        "print(','.join(heavy))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
