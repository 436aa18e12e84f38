"""TLS interception: a local HTTPS server with a certificate of our own CA, through mitmproxy."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import ssl
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from chaosgenesys.proxy import actions, probes
from tests.proxy.conftest import direct_session


def _make_pki(directory: Path) -> tuple[Path, Path, Path]:
    """(CA cert, server cert, server key) PEM files: a CA and a cert for localhost/127.0.0.1."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chaosgenesys test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    ca_path, cert_path, key_path = (
        directory / "ca.pem",
        directory / "cert.pem",
        directory / "key.pem",
    )
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_path, cert_path, key_path


class _Hello(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b'{"hello": "tls"}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def https_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    directory = tmp_path_factory.mktemp("pki")
    ca, cert, key = _make_pki(directory)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    servers = []
    for _ in range(2):  # one intercepted, one passed through (ignore_hosts by port)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield {
            "port": servers[0].server_address[1],
            "passthrough_port": servers[1].server_address[1],
            "ca": str(ca),
        }
    finally:
        for server in servers:
            server.shutdown()
            server.server_close()


@pytest.fixture(scope="module")
def tls_proxy(
    https_server: dict[str, Any], proxy_ca_dir: Path, proxy_runtime: Path
) -> Iterator[dict[str, Any]]:
    """A proxy that trusts the test CA upstream and passes one server through untouched."""
    info = actions.start_proxy(
        name="tls",
        port=0,
        confdir=str(proxy_ca_dir),
        upstream_ca=https_server["ca"],
        ignore_hosts=[f":{https_server['passthrough_port']}$"],
    )
    try:
        yield info
    finally:
        actions.stop_proxy("tls")


def _get(url: str, proxy: dict[str, Any], verify: str) -> requests.Response:
    return direct_session().get(
        url, proxies={"https": proxy["proxy_url"]}, verify=verify, timeout=10
    )


def test_https_is_intercepted_and_faulted(
    https_server: dict[str, Any], tls_proxy: dict[str, Any]
) -> None:
    url = f"https://localhost:{https_server['port']}/hello"
    mitm_ca = tls_proxy["ca_cert"]
    assert Path(mitm_ca).is_file()
    assert _get(url, tls_proxy, mitm_ca).json() == {"hello": "tls"}
    # The client sees mitmproxy's certificate, not the server's: our CA does not verify it.
    with pytest.raises(requests.exceptions.SSLError):
        _get(url, tls_proxy, https_server["ca"])
    actions.delay_requests("^/hello$", 250, name="tls")
    start = time.monotonic()
    assert _get(url, tls_proxy, mitm_ca).status_code == 200
    assert time.monotonic() - start >= 0.25
    actions.fail_requests("^/hello$", 503, name="tls")  # after the delay rule: first match wins
    actions.clear_rules("tls")
    actions.fail_requests("^/hello$", 503, name="tls")
    assert _get(url, tls_proxy, mitm_ca).status_code == 503
    actions.clear_rules("tls")


def test_ignored_hosts_pass_through_untouched(
    https_server: dict[str, Any], tls_proxy: dict[str, Any]
) -> None:
    actions.fail_requests("^/hello$", 503, name="tls")
    try:
        url = f"https://localhost:{https_server['passthrough_port']}/hello"
        # The server's own certificate reaches the client, and no rule applies.
        response = _get(url, tls_proxy, https_server["ca"])
        assert response.status_code == 200
        assert probes.proxy_stats("tls")["rules"][0]["stats"]["matched"] == 0
    finally:
        actions.clear_rules("tls")


def test_upstream_certificates_are_verified_by_default(
    https_server: dict[str, Any], regular_proxy: dict[str, Any]
) -> None:
    # The module's proxy does not trust the test CA: mitmproxy refuses the upstream.
    response = _get(
        f"https://localhost:{https_server['port']}/hello", regular_proxy, regular_proxy["ca_cert"]
    )
    assert response.status_code == 502
    assert "certificate" in response.text.lower()
