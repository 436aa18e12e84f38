"""What the browser observer saw: the desktop's WebSocket life, REST calls, console and UI.

The probes read the files of an observer started by
:func:`chaosgenesys.browser.actions.start_observer` (``events.jsonl``, ``status.json``): they
import no Playwright and answer after the observer has stopped or the browser has gone. Without
``observer_id`` they read this run's newest observer.
"""


from pathlib import Path
from typing import Any

from chaoslib.exceptions import ActivityFailed
from chaoslib.types import Configuration, Secrets

from chaosgenesys.arguments import normalise_presence, require_id, require_number
from chaosgenesys.browser import runs
from chaosgenesys.browser.summary import SILENCE_S, read_events
from chaosgenesys.platform_reads import experiment_client, get_or_not_found

__all__ = ["browser_faults", "browser_summary", "ui_matches_api", "ui_presence"]


def browser_summary(
    observer_id: str = "",
    silence_s: float = SILENCE_S,
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """The figures of the browser observer (this run's newest, or ``observer_id``).

    ``reconnects``, ``reconnect_max_ms`` / ``reconnect_p50_ms`` (from a WebSocket's close to
    the first frame on the next socket to the same URL) and ``reconnect_ms`` per URL
    (``count``, ``max``, ``p50``); ``disconnected_s`` (the sum of those outages);
    ``zombie_s`` (seconds a socket stayed open with no frame in past ``silence_s``, the
    client's ping timeout, 35 s by default); ``websockets_opened``, ``websockets_closed``,
    ``websocket_errors`` (frame errors, refused handshakes among them),
    ``websocket_error_rate`` (errors per socket opened); ``api_calls``, ``api_errors``
    (status 0 or 5xx), ``api_p99_ms``; ``console_errors``, ``console_warnings``; ``ui`` (the
    last value of each UI selector); ``running``, ``attached``, ``page_url``, ``ended`` (why
    it stopped: ``stopped``, ``duration``, ``browser_gone``, ``page_closed``,
    ``owner_gone``), ``browser_gone``, ``events``.

    ```json
    {"type": "probe", "name": "desktop-reconnected-within-5-s",
     "tolerance": {"type": "jsonpath",
                   "path": "$[?(@.reconnect_max_ms < 5000 and @.zombie_s == 0)]"},
     "provider": {"type": "python", "module": "chaosgenesys.browser.probes",
                  "func": "browser_summary"}}
    ```
    """
    seconds = require_number("silence_s", silence_s, minimum=0.0, exclusive_minimum=True)
    return runs.summary_of(runs.pick_observer(observer_id), seconds)


def browser_faults(
    configuration: Configuration = None, secrets: Secrets = None
) -> dict[str, Any]:
    """This run's browser faults in force and what each has hit so far: a fault whose
    ``url_pattern`` matches nothing the desktop sends is in force and changes nothing, and this
    is how an experiment tells.

    Returns ``{"count": n, "matched": total, "faults": [{"id", "kind", "url_pattern",
    "matched", "passed"}, ...]}`` (oldest first). ``matched``: the requests a ``delay`` fault
    held or a ``fail`` fault answered, the WebSocket handshakes a ``block`` fault refused;
    ``passed``: the XHR/fetch requests a ``delay`` or ``fail`` fault let go as they were.
    ``null`` for an ``emulate`` fault (it slows everything) and before the holder first wrote
    its figures. Read in the steady state after the method, before the rollback ends the faults.

    ```json
    {"type": "probe", "name": "the-token-fault-held-a-request",
     "tolerance": {"type": "range", "range": [1, 1000000], "target": "matched"},
     "provider": {"type": "python", "module": "chaosgenesys.browser.probes",
                  "func": "browser_faults"}}
    ```
    """
    from chaosgenesys.browser.held_faults import KIND, hits
    from chaosgenesys.faults import registry

    faults = []
    for fault in registry.mine(kind=KIND):
        counts = hits(fault.spec)
        faults.append({
            "id": fault.id,
            "kind": fault.spec.get("fault"),
            "url_pattern": fault.spec.get("url_pattern"),
            "matched": None if counts is None else counts["matched"],
            "passed": None if counts is None else counts["passed"],
        })
    matched = sum(f["matched"] for f in faults if isinstance(f["matched"], int))
    return {"count": len(faults), "matched": matched, "faults": faults}


def _ui_value(record: dict[str, Any], name: str) -> Any:
    selectors = record.get("selectors") or {}
    if name not in selectors:
        raise ActivityFailed(
            f"the browser observer {record.get('id')!r} reads no {name!r} label (its selectors: "
            f"{', '.join(sorted(selectors)) or 'none'}); start it with selectors that name one"
        )
    value = None
    for event in read_events(Path(str(record["dir"])) / "events.jsonl"):
        if event.get("event") == "ui" and event.get("name") == name:
            value = event.get("value")
    return value


def ui_presence(
    observer_id: str = "", configuration: Configuration = None, secrets: Secrets = None
) -> str:
    """The desktop's presence label as its UI shows it now (the ``presence`` selector of the
    observer; the last value read, about 4 times a second; ``""`` when the element is absent).

    ```json
    {"type": "probe", "name": "desktop-shows-on-queue",
     "tolerance": "On Queue",
     "provider": {"type": "python", "module": "chaosgenesys.browser.probes",
                  "func": "ui_presence"}}
    ```
    """
    value = _ui_value(runs.pick_observer(observer_id), "presence")
    return value if isinstance(value, str) else ""


def ui_matches_api(
    user_id: str,
    observer_id: str = "",
    configuration: Configuration = None,
    secrets: Secrets = None,
) -> dict[str, Any]:
    """Whether the desktop's presence label agrees with the platform: the UI's ``presence``
    label against ``GET /api/v2/users/{user_id}?expand=presence``
    (``presence.presenceDefinition.systemPresence``), spellings compared loosely (``On Queue``
    = ``ON_QUEUE`` = ``OnQueue``). The guide's synchronization bug is the UI showing Available
    while the API says Offline. Returns ``{"matches", "ui", "api", "user_id"}``.

    ```json
    {"type": "probe", "name": "desktop-agrees-with-the-platform",
     "tolerance": {"type": "jsonpath", "path": "$.matches", "expect": true},
     "provider": {"type": "python", "module": "chaosgenesys.browser.probes",
                  "func": "ui_matches_api", "arguments": {"user_id": "${agent_id}"}}}
    ```
    """
    user = require_id("user_id", user_id)
    record = runs.pick_observer(observer_id)
    shown = _ui_value(record, "presence")
    body = get_or_not_found(
        experiment_client(configuration, secrets), f"/api/v2/users/{user}", "user_id", user,
        params={"expand": "presence"},
    )
    presence = (body.get("presence") if isinstance(body, dict) else None) or {}
    api = (presence.get("presenceDefinition") or {}).get("systemPresence")
    ui = shown if isinstance(shown, str) else None
    matches = (
        isinstance(ui, str) and bool(ui) and isinstance(api, str)
        and normalise_presence(ui) == normalise_presence(api)
    )
    return {"matches": matches, "ui": ui, "api": api, "user_id": user}
