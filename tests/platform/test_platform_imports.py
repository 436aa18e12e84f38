"""Importing the platform client stays light: no aiohttp, pyroute2 or mitmproxy, and not even
asyncio (about 10 ms of a probe's first call: benchmarks/probe_cost.py)."""

from __future__ import annotations

import subprocess
import sys

from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse


def test_platform_import_pulls_no_heavy_library() -> None:
    code = (
        "import sys, chaosgenesys.platform, chaosgenesys.platform.client;"
        "print(sorted(m for m in ('aiohttp', 'pyroute2', 'mitmproxy', 'asyncio')"
        " if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == "[]"


def test_public_names() -> None:
    import chaosgenesys.platform as platform

    assert set(platform.__all__) >= {
        "client_for",
        "GenesysClient",
        "GenesysApiError",
        "ClientSettings",
        "settings_from",
        "register_default_credentials",
    }


def test_only_http_module_imports_requests() -> None:
    from pathlib import Path

    import chaosgenesys.platform as platform

    folder = Path(platform.__file__).parent
    importers = sorted(
        p.name
        for p in folder.glob("*.py")
        if any(
            line.strip().startswith(("import requests", "from requests"))
            for line in p.read_text().splitlines()
        )
    )
    assert importers == ["http.py"]
