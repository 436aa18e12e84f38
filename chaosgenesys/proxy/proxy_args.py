"""The checks of the proxy activities' arguments, each an ``ActivityFailed`` that names the
argument and the value, raised before a proxy starts or a rule is sent::

    from chaosgenesys.proxy.proxy_args import check_name, rule_spec

    check_name("genesys")                    # "genesys"; ActivityFailed for "../x"
    rule_spec("delay", "^/api/v2/", "", "", {}, 1.0, 0, 0, 0)   # one HTTP rule's fields
"""

from __future__ import annotations

import re
from typing import Any

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.arguments import require_int, require_number, require_regex, require_text

__all__ = [
    "MODE",
    "NAME",
    "check_ca_bundle",
    "check_listen_host",
    "check_name",
    "rule_error",
    "rule_spec",
]

MODE = re.compile(r"^(regular|socks5|(reverse|upstream):(https?|wss?|tls|tcp)://[^\s/@]+(/.*)?)$")
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_name(name: Any) -> str:
    """A proxy's name: 1-64 letters, digits, '.', '_' or '-'."""
    if not isinstance(name, str) or not NAME.match(name):
        raise ActivityFailed(
            "name must be 1-64 letters, digits, '.', '_' or '-' (starting with a letter or "
            f"digit), got {name!r}"
        )
    return name


def check_listen_host(value: Any) -> str:
    """An IP address (``127.0.0.1``, ``::1``, ``0.0.0.0``) or a host name that resolves."""
    import ipaddress
    import socket

    text = require_text("listen_host", value).strip()
    if ":" in text or all(ch.isdigit() or ch == "." for ch in text):
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            raise ActivityFailed(
                "listen_host must be an IP address of this machine (127.0.0.1, ::1, 0.0.0.0) "
                f"or a host name, got {value!r}: not a valid IP address"
            ) from None
    try:
        socket.getaddrinfo(text, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as error:
        raise ActivityFailed(
            f"listen_host must be an IP address of this machine or a host name, got {value!r}: "
            f"it does not resolve ({error})"
        ) from None
    return text


#: The largest CA bundle read (the system's whole bundle is about 200 KiB).
MAX_CA_BYTES = 16 * 1024 * 1024


def check_ca_bundle(path: str) -> None:
    """ActivityFailed unless ``path`` is a readable PEM file of at least one X.509 certificate."""
    import ssl

    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_CA_BYTES + 1)
    except OSError as error:
        raise ActivityFailed(
            f"upstream_ca must be a readable PEM certificate bundle, got {path!r}: "
            f"{error.strerror or error}"
        ) from None
    if len(data) > MAX_CA_BYTES:
        raise ActivityFailed(
            f"upstream_ca must be a PEM certificate bundle, got {path!r}: larger than 16 MiB"
        )
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ActivityFailed(
            f"upstream_ca must be a PEM certificate bundle, got {path!r}: it holds no "
            "'-----BEGIN CERTIFICATE-----' block"
        )
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_verify_locations(
            cadata=data.decode("ascii", errors="replace")
        )
    except (ssl.SSLError, ValueError) as error:
        raise ActivityFailed(
            f"upstream_ca must be a PEM certificate bundle, got {path!r}: a certificate in it "
            f"cannot be read ({error})"
        ) from None


def rule_error(error: Exception) -> ActivityFailed:
    """A rule the proxy's model refused, named as the activities' argument (``path_pattern``)."""
    text = str(error)
    if text.startswith("path "):
        text = "path_pattern " + text[len("path ") :]
    return ActivityFailed(text)


def rule_spec(
    action: str,
    path_pattern: str,
    method: str,
    host: str,
    headers: dict[str, str],
    probability: float,
    start_after: float,
    duration: float,
    count: int,
) -> dict[str, Any]:
    """One HTTP rule from the activities' common arguments, each checked and named."""
    require_regex("path_pattern", path_pattern)
    require_text("method", method, allow_empty=True)
    require_text("host", host, allow_empty=True)
    if host:
        require_regex("host", host)
    if not isinstance(headers, dict):
        raise ActivityFailed(f"headers must be an object of header name -> regex, got {headers!r}")
    return {
        "action": action,
        "path": path_pattern,
        "method": method,
        "host": host,
        "headers": dict(headers),
        "probability": require_number("probability", probability, maximum=1.0),
        "start_after": require_number("start_after", start_after),
        "duration": require_number("duration", duration),
        "count": require_int("count", count),
    }
