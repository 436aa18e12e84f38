"""Importing the platform client stays light: no aiohttp, pyroute2 or mitmproxy, and not even
asyncio (about 10 ms of a probe's first call: benchmarks/probe_cost.py)."""

from __future__ import annotations

from tests.fresh_imports import imported_by
from tests.platform.platform_fixtures import isolated_platform  # noqa: F401 - autouse


def test_platform_import_pulls_no_heavy_library() -> None:
    modules = ["chaosgenesys.platform", "chaosgenesys.platform.client"]
    assert imported_by(modules, ("aiohttp", "pyroute2", "mitmproxy", "asyncio")) == []


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
