"""Where the fault registry (and every run's runtime files) lives on disk.

``CHAOSGENESYS_RUNTIME_DIR``, else ``/run/chaosgenesys`` when it is (or can be made) writable,
else ``$XDG_RUNTIME_DIR/chaosgenesys``, else ``/tmp/chaosgenesys-<uid>``; docs/internals.md
says why. Only ``os`` and ``pathlib``: whoever needs the path alone (the verdict control
checking whether the run left anything, the agents' and observers' folders) does not import
the registry.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENV_DIR", "registry_dir"]

#: The environment variable that names the registry directory.
ENV_DIR = "CHAOSGENESYS_RUNTIME_DIR"


#: Absolute directories named by ``CHAOSGENESYS_RUNTIME_DIR``, as paths (each fault's inject
#: and revert resolve the directory; a relative or ``~`` one depends on the moment, not kept).
_NAMED: dict[str, Path] = {}


def registry_dir() -> Path:
    """The registry directory, as ``docs/internals.md`` resolves it (not created here)."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        known = _NAMED.get(explicit)
        if known is None:
            known = Path(explicit).expanduser().absolute()
            if explicit.startswith("/") and len(_NAMED) < 64:
                _NAMED[explicit] = known
        return known
    run = Path("/run/chaosgenesys")
    if run.is_dir():
        if os.access(run, os.W_OK | os.X_OK):
            return run
    elif os.access("/run", os.W_OK | os.X_OK):
        return run
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and os.path.isabs(xdg) and os.access(xdg, os.W_OK | os.X_OK):
        return Path(xdg) / "chaosgenesys"
    return Path(f"/tmp/chaosgenesys-{os.getuid()}")
