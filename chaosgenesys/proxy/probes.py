"""Probes of the fault-injecting proxy: its statistics and its rules.

Importing this module imports neither mitmproxy nor aiohttp.
"""

from typing import Any

from chaoslib.types import Configuration, Secrets

from chaosgenesys.proxy.proxy_args import check_name

__all__ = ["list_rules", "proxy_stats"]


def proxy_stats(
    name: str = "default", configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """Statistics of proxy ``name``: requests, responses, errors, resets, WebSockets,
    ``latency_ms`` percentiles (``p50``, ``p90``, ``p99``, ``max`` over the last 20,000
    requests, client side: injected delays included), ``injected_delay_ms`` in total, and per
    rule (``rules[].stats``): ``matched``, ``applied``, ``injected_delay_ms``.

    ```json
    {"type": "probe", "name": "oauth-requests-were-delayed",
     "tolerance": {"type": "jsonpath", "path": "$.rules[0].stats.applied", "expect": 1},
     "provider": {"type": "python", "module": "chaosgenesys.proxy.probes",
                  "func": "proxy_stats", "arguments": {"name": "default"}}}
    ```
    """
    from chaosgenesys.proxy import control

    return control.call(check_name(name), "GET", "/stats")


def list_rules(
    name: str = "default", configuration: Configuration = None, secrets: Secrets = None
) -> list[dict[str, Any]]:
    """The rules of proxy ``name``, in the order they are tried, with their counters.

    ```json
    {"type": "probe", "name": "proxy-rules",
     "provider": {"type": "python", "module": "chaosgenesys.proxy.probes",
                  "func": "list_rules", "arguments": {"name": "default"}}}
    ```
    """
    from chaosgenesys.proxy import control

    rules: list[dict[str, Any]] = control.call(check_name(name), "GET", "/rules").get("rules", [])
    return rules
