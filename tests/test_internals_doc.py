"""docs/internals.md names every module of the package, so that its tree matches the code."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_internals_md_names_every_module_of_the_package() -> None:
    text = (ROOT / "docs" / "internals.md").read_text()
    missing = sorted(
        str(path.relative_to(ROOT))
        for path in (ROOT / "chaosgenesys").rglob("*.py")
        if path.name not in text
    )
    assert not missing, f"docs/internals.md does not name: {missing}"
