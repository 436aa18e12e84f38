"""The official JavaScript SDK logs a user in against the sandbox with its own browser flows.

``tests/js/sdk_browser_login.cjs`` plays the browser around ``purecloud-platform-client-v2``:
``loginPKCEGrant`` (authorization code + PKCE) and ``loginImplicitGrant`` each build the
``/oauth/authorize`` URL, the script follows it (``login_hint`` names the seeded user, so the
sandbox answers at once with the redirect), and on the second page load the SDK exchanges the
code with its verifier and checks the token with ``tokens/me``; then it reads ``users/me``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chaosgenesys.sandbox import Sandbox
from tests.sandbox.sandbox_helpers import AGENT_1, CLIENT_ID, CLIENT_SECRET
from tests.sandbox.test_browser_login import EMAIL, REDIRECT, login_seed
from tests.sandbox.test_js_sdk_faithfulness import ROOT, _node

SCRIPT = ROOT / "tests" / "js" / "sdk_browser_login.cjs"

#: Every check the script makes, in order; a check that vanished from the script fails here.
CHECKS = [
    f"{flow}: {check}"
    for flow in ("pkce", "implicit")
    for check in (
        "the SDK logs the user in",
        "users/me is the user, a UserMe",
        "tokens/me names the user grant",
    )
]

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(seed=login_seed(), rate_limit_per_minute=0) as sandbox:
        yield sandbox


def _run(sb: Sandbox, user: str, home: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_node(), str(SCRIPT), sb.url, CLIENT_ID, REDIRECT, user],
        cwd=ROOT,
        # the SDK reads (and watches) ~/.genesyscloudjavascript/config: a scratch home
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
    )


@pytest.mark.parametrize("user", [AGENT_1, EMAIL.upper()], ids=["by-id", "by-email"])
def test_the_sdk_logs_a_user_in_with_pkce_and_implicit_grants(
    sb: Sandbox, tmp_path: Path, user: str
) -> None:
    result = _run(sb, user, tmp_path)
    output = result.stdout + result.stderr
    lines = result.stdout.splitlines()
    failures = [line for line in lines if line.startswith("FAIL")]
    assert failures == [], "\n".join(failures) + "\n" + result.stderr[-2000:]
    assert result.returncode == 0, output[-4000:]
    assert [line.removeprefix("ok ") for line in lines if line.startswith("ok ")] == CHECKS
    assert [line for line in lines if line.startswith("user ")] == [
        f"user pkce {AGENT_1}", f"user implicit {AGENT_1}"
    ]
    assert lines[-1] == f"summary {len(CHECKS)} 0"
    # Two user tokens, one per flow, named by their grant; none printed; no client secret used.
    records = list(sb.state.tokens._tokens.items())
    assert sorted((r.user_id, r.grant) for _t, r in records) == [
        (AGENT_1, "CODE"), (AGENT_1, "TOKEN")
    ]
    assert not any(token in output for token, _r in records)
    assert CLIENT_SECRET not in output


def test_an_unknown_user_is_refused_before_any_token(sb: Sandbox, tmp_path: Path) -> None:
    result = _run(sb, "nobody@example.com", tmp_path)
    assert result.returncode == 1
    assert "FAIL pkce: the SDK logs the user in: the login page answered 400" in result.stdout
    assert list(sb.state.tokens._tokens) == []
