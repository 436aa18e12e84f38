"""``chaosgenesys doctor`` against this machine: the checks apply real faults in throwaway
namespaces, agree with what the kernel can do, leave nothing behind, and fail clearly without
CAP_NET_ADMIN."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import without_net_admin
from tests.network.conftest import is_root

CHAOSGENESYS = str(Path(sys.executable).with_name("chaosgenesys"))
needs_root = pytest.mark.skipif(not is_root(), reason="network namespaces need root")


def _doctor(
    tmp_path: Path, *args: str, drop_net_admin: bool = False
) -> tuple[int, dict[str, Any]]:
    [result] = _doctors_at_once(tmp_path, 1, *args, drop_net_admin=drop_net_admin)
    return result


def _doctors_at_once(
    tmp_path: Path, count: int, *args: str, drop_net_admin: bool = False
) -> list[tuple[int, dict[str, Any]]]:
    """``count`` doctors started together on one registry (pipelines sharing a runner)."""
    command = [CHAOSGENESYS, "doctor", "--json", *args]
    if drop_net_admin:
        command = without_net_admin(command)
    started = [
        subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")},
        )
        for _ in range(count)
    ]
    results = []
    for process in started:
        out, err = process.communicate(timeout=120)
        assert out, err
        results.append((process.returncode, json.loads(out)))
    return results


def _by_name(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {check["name"]: check for check in report["checks"]}


def _outcomes(report: dict[str, Any]) -> dict[str, bool | None]:
    return {check["name"]: check["ok"] for check in report["checks"]}


def _namespace(report: dict[str, Any]) -> str:
    """The doctor's own namespace, as its throttle check names it (``cgdoctor<pid>-a``)."""
    detail = _by_name(report)["throttle_bandwidth: htb, tbf and u32 filters"]["detail"]
    found = re.search(r"netns (cgdoctor\d+-a)$", detail)
    assert found, detail
    return found.group(1)


def _nothing_left(tmp_path: Path) -> None:
    assert not [n for n in os.listdir("/run/netns") if n.startswith("cgdoctor")]
    records = list((tmp_path / "runtime").glob("*.json"))
    assert records == [], records


def test_platform_and_proxy_checks_pass_here(tmp_path: Path) -> None:
    code, report = _doctor(tmp_path, "--only", "platform", "--only", "proxy")
    assert code == 0 and report["ok"] is True, report
    checks = _by_name(report)
    assert {c["group"] for c in report["checks"]} == {"platform", "proxy"}
    assert checks["Python 3.12 or newer"]["detail"].startswith("3.1")
    assert checks["mitmproxy 12"]["detail"].startswith("12.")
    assert checks["runtime directory (fault registry, agent runs)"]["detail"] == str(
        tmp_path / "runtime"
    )


def _chromium_processes() -> set[int]:
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
                if b"chaosgenesys-observer-" in cmdline.read():
                    found.add(int(pid))
        except OSError:
            continue
    return found


def test_the_browser_check_launches_chromium_and_leaves_nothing(tmp_path: Path) -> None:
    before = _chromium_processes()
    code, report = _doctor(tmp_path, "--only", "browser")
    assert code == 0 and report["ok"] is True, report
    (check,) = report["checks"]
    assert check["group"] == "browser" and check["name"] == "Chromium with a DevTools port"
    assert re.match(r"(Chrome|Chromium|HeadlessChrome)/\d+\.", check["detail"]), check
    assert _chromium_processes() <= before  # stopped, not left behind


def test_the_browser_check_says_what_to_install_when_there_is_none(tmp_path: Path) -> None:
    done = subprocess.run(
        [CHAOSGENESYS, "doctor", "--json", "--only", "browser"],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime"),
             "CHAOSGENESYS_CHROMIUM": str(tmp_path / "no-chromium")},
    )  # fmt: skip
    assert done.returncode == 1
    (check,) = json.loads(done.stdout)["checks"]
    assert check["ok"] is False
    assert f"{tmp_path / 'no-chromium'} not found: install Chromium" in check["detail"]
    assert "CHAOSGENESYS_CHROMIUM" in check["detail"]


def test_the_human_report_lists_each_check_and_the_verdict(tmp_path: Path) -> None:
    done = subprocess.run(
        [CHAOSGENESYS, "doctor", "--only", "platform"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CHAOSGENESYS_RUNTIME_DIR": str(tmp_path / "runtime")},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "platform:" and lines[-1] == "every check passed"
    assert all(line.startswith("  ok") for line in lines[1:-1]), lines


@needs_root
def test_kernel_checks_match_what_the_kernel_does_and_leave_nothing(tmp_path: Path) -> None:
    """Two doctors at once, as two pipelines on one runner: each checks in its own namespaces
    (named after its process), and neither disturbs the other's."""
    from chaosgenesys.network.probes import netem_supported

    [(code, report), (other_code, other)] = _doctors_at_once(
        tmp_path, 2, "--only", "network", "--only", "sockets"
    )
    assert (other_code, _outcomes(other)) == (code, _outcomes(report)), other
    names = {_namespace(report), _namespace(other)}
    assert len(names) == 2, names
    checks = _by_name(report)
    # design.md: this kernel has htb, tbf, u32, ifb, mirred, nftables and SOCK_DESTROY.
    for name in (
        "throttle_bandwidth: htb, tbf and u32 filters",
        "direction ingress: ifb and mirred",
        "nftables netdev egress hook",
        "nftables netdev ingress hook",
        "SOCK_DESTROY (sock_diag)",
        "nftables reject with tcp reset",
    ):
        assert checks[name]["ok"] is True, checks[name]
        assert _namespace(report) in checks[name]["detail"] or "reset" in checks[name]["detail"]
    netem = checks["sch_netem"]
    assert netem["ok"] is netem_supported(), netem
    if not netem["ok"]:
        assert "netem" in netem["detail"], netem  # the activity's own explanation
    assert code == (0 if netem["ok"] else 1) and report["ok"] is (code == 0)
    _nothing_left(tmp_path)


@pytest.mark.netem
@needs_root
def test_netem_check_passes_where_the_kernel_has_netem(tmp_path: Path) -> None:
    _code, report = _doctor(tmp_path, "--only", "network")
    checks = _by_name(report)
    assert checks["sch_netem"]["ok"] is True, checks["sch_netem"]
    assert checks["throttle_bandwidth: htb, tbf and u32 filters"]["ok"] is True
    _nothing_left(tmp_path)


@needs_root
def test_without_cap_net_admin_the_kernel_checks_fail_clearly(tmp_path: Path) -> None:
    code, report = _doctor(
        tmp_path, "--only", "network", "--only", "sockets", drop_net_admin=True
    )
    assert code == 1 and report["ok"] is False
    capability = [c for c in report["checks"] if c["name"] == "CAP_NET_ADMIN"]
    assert [c["group"] for c in capability] == ["network", "sockets"]
    assert all(c["ok"] is False and "need CAP_NET_ADMIN" in c["detail"] for c in capability)
    others = [c for c in report["checks"] if c["name"] != "CAP_NET_ADMIN"]
    assert len(others) == 7 and all(c["ok"] is None for c in others), others
    _nothing_left(tmp_path)
