"""An action for the control tests' experiments: a recorded fault that is a marker file.

``apply_marker`` records a registry fault reverted by ``tests.faults.reverters:remove_marker``,
then creates the file: a fault that outlives the call, like a qdisc or a proxy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from chaosgenesys.faults import registry

__all__ = ["apply_marker"]


def apply_marker(path: str) -> dict[str, Any]:
    """Record the fault, then create ``path``; returns the fault id."""
    fault = registry.record(
        kind="marker",
        description=f"marker file {path}",
        reverter="tests.faults.reverters:remove_marker",
        spec={"path": path},
    )
    Path(path).write_text("fault applied\n", encoding="utf-8")
    return {"id": fault.id}
