"""Fixtures of the socket tests: a namespace pair, and a fault registry of the test's own."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.sockets.netns_helpers import Pair, make_pair


@pytest.fixture
def pair() -> Iterator[Pair]:
    with make_pair() as made:
        yield made


@pytest.fixture
def registry_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """``CHAOSGENESYS_RUNTIME_DIR`` of this test; whatever is left recorded is reverted after."""
    directory = tmp_path / "registry"
    monkeypatch.setenv("CHAOSGENESYS_RUNTIME_DIR", str(directory))
    yield directory
    from chaosgenesys.faults import registry

    registry.Registry(directory).revert_all()
