"""The official Genesys Cloud JavaScript SDK (``purecloud-platform-client-v2``) as a second
independent client, beside the Python SDK (``test_sdk_faithfulness.py``).

``tests/js/sdk_faithfulness.cjs`` points the SDK at a real sandbox (``setGateway``), logs in with
client credentials, makes the calls an integration makes and checks every response and every
notification event against the SDK's own typings (``tests/js/typings.cjs`` reads its
``index.d.ts``). The SDK is the version pinned in ``package.json`` / ``package-lock.json``,
installed by ``scripts/bootstrap`` (``npm ci``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import AGENT_1, AGENT_2, AGENT_3, CLIENT_ID, CLIENT_SECRET, QUEUE

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "js" / "sdk_faithfulness.cjs"
SDK = ROOT / "node_modules" / "purecloud-platform-client-v2"
RESOLVED = "4c4d5a11-0000-4000-8000-0000000000c1"  # the shared seed's "Resolved" wrap-up code

#: Every check the script makes; a check that vanished from the script fails here.
CHECKS = [
    "tokens/me is a TokenInfo of our client",
    "a user with expands is a User",
    "users by id are a UserEntityListing",
    "users/me needs a user context: 400 ErrorBody",
    "routing/queues/me needs a user context: 400 ErrorBody",
    "an unknown user is a 404 ErrorBody",
    "systempresences are SystemPresence items",
    "a presence change is read back, and its event is a PresenceEventUserPresence",
    "the older presencedefinitions are an OrganizationPresenceEntityListing",
    "bulk presences are UcUserPresence items",
    "a routing status is a RoutingStatus",
    "queue members are a QueueMemberEntityListing",
    "wrap-up codes are a WrapupCodeEntityListing",
    "a routed call is a Conversation and a CallConversation",
    "conversation events are the event models (user and queue topics)",
    "a channel and its subscriptions are Channel and ChannelTopicEntityListing",
]

pytestmark = pytest.mark.timeout(120)


def _node() -> str:
    """``node``, 18 or newer (Debian bookworm's), with the pinned SDK installed."""
    node = shutil.which("node")
    assert node, "node is not installed: run scripts/bootstrap (it installs Debian's nodejs)"
    assert (SDK / "index.d.ts").is_file(), (
        "the JavaScript SDK is not installed: run scripts/bootstrap (npm ci)"
    )
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True)
    found = re.match(r"v(\d+)", version.stdout.strip())
    assert found, f"node --version said {version.stdout!r}"
    major = int(found.group(1))
    assert major >= 18, f"Node.js 18 or newer is needed, found {version.stdout.strip()}"
    return node


def test_installed_sdk_is_the_pinned_one() -> None:
    pinned = json.loads((ROOT / "package.json").read_text())["dependencies"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned["purecloud-platform-client-v2"]), pinned
    lock = json.loads((ROOT / "package-lock.json").read_text())
    locked = lock["packages"]["node_modules/purecloud-platform-client-v2"]["version"]
    installed = json.loads((SDK / "package.json").read_text())["version"]
    assert pinned["purecloud-platform-client-v2"] == locked == installed
    assert re.fullmatch(r"\d+\.\d+\.\d+", pinned["ws"]), pinned
    # the lockfile downloads from nowhere but the npm registry
    hosts = {
        re.sub(r"^(\w+://[^/]+).*", r"\1", entry["resolved"])
        for entry in lock["packages"].values()
        if "resolved" in entry
    }
    assert hosts <= {"https://registry.npmjs.org"}, hosts


def test_js_sdk_against_the_sandbox(sandbox: Any, tmp_path: Path) -> None:
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        # the SDK reads (and watches) ~/.genesyscloudjavascript/config: a scratch home
        "HOME": str(tmp_path),
        "SANDBOX_URL": sandbox.url,
        "SANDBOX_CLIENT_ID": CLIENT_ID,
        "SANDBOX_CLIENT_SECRET": CLIENT_SECRET,
        "SANDBOX_AGENT_1": AGENT_1,
        "SANDBOX_AGENT_2": AGENT_2,
        "SANDBOX_AGENT_3": AGENT_3,
        "SANDBOX_QUEUE": QUEUE,
        "SANDBOX_WRAPUP_CODE": RESOLVED,
    }
    result = subprocess.run(
        [_node(), str(SCRIPT)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )
    output = result.stdout + result.stderr
    assert CLIENT_SECRET not in output
    issued = list(sandbox.state.tokens._tokens)  # after the run: the SDK's token(s)
    assert issued, "the SDK never logged in"
    assert not any(token in output for token in issued), "a token was printed"
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    assert failures == [], "\n".join(failures) + "\n" + result.stderr[-2000:]
    assert result.returncode == 0, output[-4000:]
    assert [line.removeprefix("ok ") for line in lines if line.startswith("ok ")] == CHECKS
    assert lines[-1] == f"summary {len(CHECKS)} 0"

