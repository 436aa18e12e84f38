"""Every activity and control is in the preflight's table, and every endpoint it names has its
scopes and permissions on record: a new activity cannot slip past the preflight."""

from __future__ import annotations

from pathlib import Path

import chaosgenesys
from chaosgenesys.activity_needs import ACTIVITY_ENDPOINTS, CONTROL_ENDPOINTS, TOOLING_TOKEN
from chaosgenesys.platform.permissions import ENDPOINT_NEEDS

ROOT = Path(__file__).resolve().parents[2]


def test_every_discovered_activity_is_listed() -> None:
    discovered = {f"{a['mod']}.{a['name']}" for a in chaosgenesys.discover()["activities"]}
    assert discovered == set(ACTIVITY_ENDPOINTS)


def test_every_control_module_is_listed() -> None:
    hooks = ("before_experiment_control", "after_experiment_control", "configure_control")
    modules = {
        "chaosgenesys." + ".".join(path.relative_to(ROOT / "chaosgenesys").with_suffix("").parts)
        for path in (ROOT / "chaosgenesys").rglob("*.py")
        if any(f"\ndef {hook}(" in path.read_text() for hook in hooks)
    }
    assert modules == set(CONTROL_ENDPOINTS)


def test_every_endpoint_named_has_its_needs_on_record() -> None:
    named = {TOOLING_TOKEN}
    for endpoints in (*ACTIVITY_ENDPOINTS.values(), *CONTROL_ENDPOINTS.values()):
        named.update(endpoints)
    assert named - set(ENDPOINT_NEEDS) == set()
