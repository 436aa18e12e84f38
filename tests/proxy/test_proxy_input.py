"""Bad input to the proxy, named and with nothing left behind; its control endpoint's guards.

``start_proxy`` names ``listen_host`` and ``upstream_ca`` when they are wrong, before a process is
started or recorded. The control endpoint (token-guarded HTTP on 127.0.0.1) checks the token
before it reads a body, caps the body and the head, closes idle connections and answers 403 to a
token that is not ASCII: tried over real sockets against a running proxy.
"""

from __future__ import annotations

import socket
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from chaoslib.exceptions import ActivityFailed

from chaosgenesys.proxy import actions, control, probes

#: The server side's idle timeout is 5 s; a client waiting this long means it never came.
CLIENT_WAIT = 30.0


def _recorded(name: str) -> list[Any]:
    from chaosgenesys.faults import registry

    return [f for f in registry.active("proxy") if f.spec.get("name") == name]


@pytest.mark.parametrize("host", ["999.1.1.1", "10.0.0.256", "::gg", "no-such-host.invalid"])
@pytest.mark.parametrize("port", [0, 8080])
def test_a_bad_listen_host_is_named(host: str, port: int, proxy_ca_dir: Path) -> None:
    with pytest.raises(ActivityFailed) as caught:
        actions.start_proxy(name="badhost", port=port, listen_host=host, confdir=str(proxy_ca_dir))
    assert "listen_host must be an IP address of this machine" in str(caught.value)
    assert repr(host) in str(caught.value)
    assert _recorded("badhost") == []


def test_an_address_of_another_machine_is_named(proxy_ca_dir: Path) -> None:
    with pytest.raises(ActivityFailed, match=r"listen_host='192\.0\.2\.7'"):
        actions.start_proxy(
            name="badhost", port=0, listen_host="192.0.2.7", confdir=str(proxy_ca_dir)
        )
    assert _recorded("badhost") == []


FAKE_PEM = "-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n"


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (None, "/etc/hostname"),
        ("", "holds no '-----BEGIN CERTIFICATE-----' block"),
        ("just some text\n", "holds no '-----BEGIN CERTIFICATE-----' block"),
        (FAKE_PEM, "a certificate in it cannot be read"),
    ],
)
def test_upstream_ca_must_be_a_pem_bundle(
    content: str | None, needle: str, tmp_path: Path, proxy_ca_dir: Path
) -> None:
    if content is None:
        path = "/etc/hostname"
    else:
        path = str(tmp_path / "ca.pem")
        Path(path).write_text(content)
    with pytest.raises(ActivityFailed) as caught:
        actions.start_proxy(name="badca", port=0, upstream_ca=path, confdir=str(proxy_ca_dir))
    message = str(caught.value)
    assert message.startswith("upstream_ca must be a ")
    assert repr(path) in message and needle in message
    assert _recorded("badca") == []


def test_an_unreadable_or_missing_upstream_ca_is_named(tmp_path: Path) -> None:
    for path in (str(tmp_path / "missing.pem"), str(tmp_path)):
        with pytest.raises(ActivityFailed, match="upstream_ca must be a readable PEM"):
            actions.start_proxy(name="badca", port=0, upstream_ca=path)
    assert _recorded("badca") == []


def test_the_system_bundle_is_accepted(proxy_ca_dir: Path) -> None:
    bundle = "/etc/ssl/certs/ca-certificates.crt"
    info = actions.start_proxy(name="goodca", port=0, upstream_ca=bundle, confdir=str(proxy_ca_dir))
    try:
        assert probes.proxy_stats("goodca")["name"] == "goodca"
    finally:
        actions.stop_proxy("goodca")
    assert info["port"] > 0


# -- the control endpoint ------------------------------------------------------------------------


def _endpoint(name: str) -> tuple[tuple[str, int], str, int]:
    """(control address, token, proxy pid) of the running proxy ``name``."""
    fault = control.find(name)
    assert fault is not None
    parts = urllib.parse.urlsplit(fault.spec["control_url"])
    token = (Path(fault.spec["state_dir"]) / "token").read_text().strip()
    return (parts.hostname or "", parts.port or 0), token, int(fault.spec["pid"])


def _connect(address: tuple[str, int]) -> socket.socket:
    sock = socket.create_connection(address, timeout=CLIENT_WAIT)
    return sock


def _response(sock: socket.socket) -> tuple[int, bytes]:
    """The status and everything the server sent until it closed (or the client timeout)."""
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
        if b"\r\n\r\n" in data:
            head, _, body = data.partition(b"\r\n\r\n")
            length = next(
                (
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                ),
                0,
            )
            if len(body) >= length:
                break
    assert data.startswith(b"HTTP/1.1 "), data[:200]
    return int(data.split(b" ", 2)[1]), data


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_the_token_is_checked_before_the_body_is_read(regular_proxy: dict[str, Any]) -> None:
    address, _token, _pid = _endpoint(regular_proxy["name"])
    with _connect(address) as sock:
        # a huge body announced, none sent: the answer must not wait for it
        sock.sendall(
            b"POST /rules HTTP/1.1\r\nHost: x\r\nX-Chaosgenesys-Token: wrong\r\n"
            b"Content-Type: application/json\r\nContent-Length: 262144000\r\n\r\n"
        )
        status, data = _response(sock)
    assert status == 403
    assert b"missing or wrong control token" in data
    assert b"Connection: close" in data


def test_an_unauthenticated_big_body_does_not_grow_the_proxy(
    regular_proxy: dict[str, Any],
) -> None:
    address, _token, pid = _endpoint(regular_proxy["name"])
    before = _rss_kib(pid)
    sent = 0
    chunk = b"x" * (1024 * 1024)
    with _connect(address) as sock:
        sock.sendall(b"POST /rules HTTP/1.1\r\nHost: x\r\nContent-Length: 262144000\r\n\r\n")
        try:
            while sent < 262144000:
                sock.sendall(chunk)
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
    assert sent < 262144000, "the proxy read a 250 MiB body without a token"
    assert _rss_kib(pid) - before < 64 * 1024
    assert probes.proxy_stats(regular_proxy["name"])["name"] == regular_proxy["name"]


def test_a_body_over_the_cap_is_413_and_not_read(regular_proxy: dict[str, Any]) -> None:
    address, token, _pid = _endpoint(regular_proxy["name"])
    with _connect(address) as sock:
        sock.sendall(
            b"POST /rules HTTP/1.1\r\nHost: x\r\nX-Chaosgenesys-Token: "
            + token.encode()
            + b"\r\nContent-Type: application/json\r\nContent-Length: 2097152\r\n\r\n"
        )
        status, data = _response(sock)
    assert status == 413
    assert b"request body larger than" in data
    assert probes.list_rules(regular_proxy["name"]) == []


def test_a_non_ascii_token_is_403(regular_proxy: dict[str, Any]) -> None:
    address, token, _pid = _endpoint(regular_proxy["name"])
    for given in ("é" + token[1:], "☃", token + "é"):
        with _connect(address) as sock:
            sock.sendall(
                b"GET /health HTTP/1.1\r\nHost: x\r\nX-Chaosgenesys-Token: "
                + given.encode("utf-8")
                + b"\r\n\r\n"
            )
            status, data = _response(sock)
        assert status == 403, data
    # the right token still works on a keep-alive connection, twice
    with _connect(address) as sock:
        for _ in range(2):
            sock.sendall(
                b"GET /health HTTP/1.1\r\nHost: x\r\nX-Chaosgenesys-Token: "
                + token.encode()
                + b"\r\n\r\n"
            )
            status, data = _response(sock)
            assert status == 200 and regular_proxy["name"].encode() in data


@pytest.mark.parametrize("sent", [b"", b"GET /health HTTP/1.1\r\nHost: x\r\n"])
def test_an_idle_connection_is_closed(regular_proxy: dict[str, Any], sent: bytes) -> None:
    address, _token, _pid = _endpoint(regular_proxy["name"])
    with _connect(address) as sock:
        sock.sendall(sent)
        try:
            closed = sock.recv(1) == b""
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
    assert closed, "the proxy kept an idle control connection open"


def test_an_oversized_head_is_431(regular_proxy: dict[str, Any]) -> None:
    address, _token, _pid = _endpoint(regular_proxy["name"])
    with _connect(address) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\n")
        try:
            for index in range(200):
                sock.sendall(f"X-Padding-{index}: {'y' * 100}\r\n".encode())
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and closed before the last header
        status, _data = _response(sock)
    assert status == 431


def test_control_calls_work_after_the_idle_timeout(regular_proxy: dict[str, Any]) -> None:
    """The extension's own calls never reuse a connection the endpoint closed as idle."""
    import time

    name = regular_proxy["name"]
    actions.fail_requests(name=name, path_pattern="^/never$", status=503)
    time.sleep(5.5)  # past the endpoint's 5 s idle timeout
    assert [rule["path"] for rule in probes.list_rules(name)] == ["^/never$"]
    actions.clear_rules(name)
    assert probes.list_rules(name) == []
