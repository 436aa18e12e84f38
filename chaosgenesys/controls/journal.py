"""What the controls write into the journal Chaos Toolkit is about to save."""

from __future__ import annotations

from typing import Any

__all__ = ["add_extension"]


def add_extension(journal: Any, entry: dict[str, Any]) -> None:
    """Append ``entry`` (``{"name": "chaosgenesys-...", ...}``) to the journal's
    ``experiment.extensions``; a journal without an experiment (an interrupted run's
    ``None``) is left alone."""
    if not isinstance(journal, dict):
        return
    experiment = journal.get("experiment")
    if isinstance(experiment, dict):
        extensions = experiment.setdefault("extensions", [])
        if isinstance(extensions, list):
            extensions.append(entry)
