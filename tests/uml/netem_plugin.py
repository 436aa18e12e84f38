"""pytest plugin (``-p tests.uml.netem_plugin`` in pyproject.toml): the ``netem`` marker.

The marker itself is registered in pyproject.toml.

A test marked ``@pytest.mark.netem`` needs the ``sch_netem`` qdisc. It runs where the kernel has
netem: inside the user-mode-linux kernel that ``scripts/uml-run`` boots (``CHAOSGENESYS_IN_UML=1``)
or on a host whose kernel has the module. Elsewhere, as on this project's CI machines, it is
skipped with a reason naming the runner, and ``tests/uml/test_netem_in_uml.py`` (part of the
plain ``pytest`` run) runs all of them inside UML and fails unless every one ran and passed.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MARKER = "netem"
SKIP_REASON = (
    "needs sch_netem, which this kernel lacks: tests/uml/test_netem_in_uml.py runs the netem "
    "tests inside user-mode-linux (scripts/uml-run; see docs/testing.md)"
)


def in_uml() -> bool:
    """Whether this process runs inside scripts/uml-run's kernel."""
    return os.environ.get("CHAOSGENESYS_IN_UML") == "1"


def kernel_has_netem() -> bool:
    """Loaded, built in, or a module of the running kernel."""
    if Path("/sys/module/sch_netem").exists():
        return True
    modules = Path("/lib/modules") / os.uname().release
    for index in ("modules.builtin", "modules.dep"):
        try:
            if "sch_netem.ko" in (modules / index).read_text():
                return True
        except OSError:
            continue
    return False


def netem_available() -> bool:
    return in_uml() or kernel_has_netem()


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if netem_available():
        return
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if item.get_closest_marker(MARKER) is not None:
            item.add_marker(skip)
    # The UML run of the netem tests starts now and runs alongside the rest of the session
    # (tests/uml/background.py); its test waits for it.
    if not config.option.collectonly:
        from tests.uml import background

        if any(item.nodeid == background.TEST for item in items):
            background.start()
