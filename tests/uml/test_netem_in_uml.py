"""Every ``netem``-marked test runs, and passes, inside the user-mode-linux kernel.

This machine's kernel has no sch_netem, so the plain ``pytest`` run (what CI runs) skips the
netem tests with a reason naming this runner, and this test runs all of them inside Debian's
user-mode-linux kernel through ``scripts/uml-run``. It fails, never skips, when UML cannot
boot: a skipped netem test is not a passed one. It asserts on the JUnit XML written inside:
as many tests ran as the host collects with ``-m netem``, none skipped, none failed.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from tests.uml import background
from tests.uml.background import ROOT, UML_TIMEOUT, uml_missing
from tests.uml.netem_plugin import in_uml, kernel_has_netem


def _uml_missing() -> str | None:
    return uml_missing()


@pytest.mark.timeout(UML_TIMEOUT + 120)
@pytest.mark.skipif(in_uml(), reason="already inside the UML kernel")
def test_netem_tests_pass_inside_user_mode_linux() -> None:
    missing = _uml_missing()
    if missing is not None:
        pytest.fail(
            f"the netem tests cannot run: {missing} is not installed. Run scripts/bootstrap "
            "(it installs user-mode-linux and busybox-static), then the tests again."
        )
    if os.geteuid() != 0:
        pytest.fail("the netem tests need root inside UML: run the test suite as root (CI does)")

    # Started in the background when the session collected this test (tests/uml/background.py):
    # the UML kernel runs the netem tests while the host runs the rest.
    outcome = background.result()
    expected, run, elapsed, junit = outcome.expected, outcome.run, outcome.elapsed, outcome.junit
    assert expected, "no test is marked netem: the netem tests went missing"
    output = (run.stdout + run.stderr)[-6000:]
    assert run.returncode != 127, output + "\nrun scripts/bootstrap to install user-mode-linux"
    assert run.returncode == 0, f"netem tests inside UML exited {run.returncode}:\n{output}"
    assert junit.exists(), f"no JUnit XML from inside UML:\n{output}"

    suite = ET.parse(junit).getroot()
    if suite.tag == "testsuites":
        suite = suite[0]
    counts = {key: int(suite.get(key, "0")) for key in ("tests", "skipped", "failures", "errors")}
    ran = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")]
    assert counts["failures"] == 0 and counts["errors"] == 0, output
    assert counts["skipped"] == 0, f"netem tests skipped inside UML:\n{output}"
    assert counts["tests"] == len(expected), (
        f"{counts['tests']} netem tests ran inside UML, the host collects {len(expected)}:\n"
        f"ran {ran}\nexpected {expected}\n{output}"
    )
    summary = re.findall(r"\d+ passed.*", run.stdout)
    print(f"UML netem run: {summary[-1] if summary else counts} in {elapsed:.1f} s wall"
          f" ({'in the background' if outcome.background else 'in the foreground'})")


def test_netem_tests_run_where_netem_is_and_skip_naming_the_runner_elsewhere() -> None:
    """On a kernel without netem the netem tests skip, naming the UML runner (and the test
    above runs them there); on a kernel with netem they run here, and none may skip."""
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-rs",
            "-m",
            "netem",
            "-p",
            "no:cacheprovider",
            "--color=no",
            "tests/uml/test_netem_smoke.py",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if in_uml() or kernel_has_netem():
        assert "passed" in result.stdout, result.stdout
        assert "skipped" not in result.stdout and "failed" not in result.stdout, result.stdout
        return
    assert "passed" not in result.stdout and "failed" not in result.stdout, result.stdout
    assert "skipped" in result.stdout, result.stdout
    assert "scripts/uml-run" in result.stdout, result.stdout
