"""A stateful local simulator of the parts of Genesys Cloud that chaosgenesys touches.

Use it from Python::

    from chaosgenesys.sandbox import Sandbox

    with Sandbox(seed="examples/seed.yaml") as sandbox:
        print(sandbox.url)

or from a shell with ``chaosgenesys sandbox --seed examples/seed.yaml --port 8765``, or for one
experiment through the ``chaosgenesys.controls.sandbox`` control.

The server itself (aiohttp) is imported lazily: importing ``chaosgenesys.sandbox.actions`` stays
cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from chaosgenesys.sandbox.runner import Sandbox

__all__ = ["Sandbox"]


def __getattr__(name: str) -> Any:
    if name == "Sandbox":
        from chaosgenesys.sandbox.runner import Sandbox

        return Sandbox
    raise AttributeError(name)
