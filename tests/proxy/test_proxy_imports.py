"""The proxy process starts lean: its addon imports neither chaoslib nor an activity module
(proxy/rules.py keeps its own few checks for that reason)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_the_proxy_addon_imports_no_chaoslib_and_no_activity_module() -> None:
    code = (
        "import json, sys\n"
        "import chaosgenesys.proxy.addon\n"
        "print(json.dumps(sorted(sys.modules)))\n"
    )
    loaded = json.loads(
        subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert "chaosgenesys.proxy.addon" in loaded
    assert not [name for name in loaded if name == "chaoslib" or name.startswith("chaoslib.")]
    assert not [name for name in loaded if name.endswith((".actions", ".probes"))]
