"""The kill switch's Prometheus source: the guide's two signals as PromQL, and blindness.

``chaosgenesys.controls.killswitch`` with ``prometheus_url`` evaluates two instant queries
through Prometheus's HTTP API (``GET <url>/api/v1/query``) at every check:

* ``api_p99_query``: the API latency p99 in **seconds** (Prometheus's base unit), compared
  with ``max_api_p99_ms`` / 1000;
* ``websocket_error_rate_query``: the WebSocket error rate as a fraction (0..1), compared with
  ``max_websocket_error_rate``.

A query answering several series is judged by its highest value; an empty answer or NaN (no
calls in the range) is *no data*, as a check without calls is for the run's own samples.

When Prometheus does not answer (refused, timeout, an error status, an answer that is not
Prometheus's JSON) or rejects a query, the source is **blind**: it says so at WARNING once per
blind stretch (since when, why), the stretch goes to the journal, and the kill switch stops the
run or goes on as ``when_blind`` says. A query Prometheus rejects as invalid when the switch is
armed refuses the run, naming the argument. Requests go through ``chaosgenesys.platform.http.send``
(the one HTTP layer); no new dependency. docs/observability.md.
"""

from __future__ import annotations

import logging
import math
import time
from typing import Any
from urllib.parse import urlsplit

from chaoslib.exceptions import ActivityFailed

from chaosgenesys.platform.http import safe_url, send

__all__ = [
    "BLIND_CHOICES",
    "DEFAULT_API_P99_QUERY",
    "DEFAULT_WEBSOCKET_ERROR_RATE_QUERY",
    "PrometheusError",
    "PrometheusSource",
    "query",
    "source_from_arguments",
]

logger = logging.getLogger("chaostoolkit")

#: The guide's "API p99 > 2,000 ms for 30 s" over the synthetic agents' histogram (seconds).
DEFAULT_API_P99_QUERY = (
    "histogram_quantile(0.99, sum by (le) "
    "(rate(chaosgenesys_api_request_duration_seconds_bucket[30s])))"
)
#: The guide's "WebSocket error rate > 5 % for 10 s": the fraction of desktops whose
#: notification WebSocket is down (the gauge exists once a desktop has connected once).
DEFAULT_WEBSOCKET_ERROR_RATE_QUERY = "avg(1 - chaosgenesys_websocket_connected)"
BLIND_CHOICES = ("stop", "continue")
#: The arguments this module reads (the kill switch's Prometheus arguments).
ARGUMENTS = (
    "prometheus_url",
    "api_p99_query",
    "websocket_error_rate_query",
    "when_blind",
    "run_samples",
    "prometheus_timeout",
)


class PrometheusError(Exception):
    """A query failed: ``kind`` is ``unreachable``, ``invalid`` (Prometheus rejected the
    PromQL) or ``answer`` (an error status or an answer that is not Prometheus's JSON)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message)


def query(url: str, expression: str, timeout: float) -> float | None:
    """The highest value of an instant query now; ``None`` for no data (no series, NaN)."""
    endpoint = url.rstrip("/") + "/api/v1/query"
    try:
        response = send("GET", endpoint, params={"query": expression}, timeout=timeout)
    except ActivityFailed as error:
        raise PrometheusError("unreachable", f"no answer: {error}") from None
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise PrometheusError(
            "answer", f"{safe_url(url)} answered {response.status_code} without Prometheus JSON"
        )
    if body.get("status") != "success":
        kind = "invalid" if body.get("errorType") == "bad_data" else "answer"
        raise PrometheusError(
            kind,
            f"{safe_url(url)} answered {response.status_code} {body.get('errorType') or ''}: "
            f"{str(body.get('error') or '')[:300]}",
        )
    try:
        values = _values(body.get("data"))
    except (AttributeError, TypeError) as error:
        raise PrometheusError(
            "answer", f"{safe_url(url)} answered a result that is not Prometheus's: {error}"
        ) from None
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) if finite else None


def _values(data: Any) -> list[float]:
    """The sample values of an instant query's ``data``."""
    if data.get("resultType") == "scalar":
        return [_value(data.get("result"))]
    if data.get("resultType") == "vector":
        return [_value(item.get("value")) for item in data.get("result") or ()]
    raise PrometheusError(
        "invalid", f"the query gives a {data.get('resultType')!r}, not an instant vector"
    )


def _value(pair: Any) -> float:
    try:
        return float(pair[1])
    except (TypeError, ValueError, IndexError):
        return math.nan


class PrometheusSource:
    """Evaluates the two queries at each check; keeps track of blindness."""

    def __init__(
        self,
        url: str,
        api_p99_query: str,
        websocket_error_rate_query: str,
        when_blind: str,
        run_samples: bool,
        timeout: float,
    ) -> None:
        self.url = url
        self.queries = {
            "api_p99_query": api_p99_query,
            "websocket_error_rate_query": websocket_error_rate_query,
        }
        self.when_blind = when_blind
        self.run_samples = run_samples
        self.timeout = timeout
        #: The open blind stretch: ``{"since", "why"}``; None while Prometheus answers.
        self.blind: dict[str, Any] | None = None
        self.blind_periods: list[dict[str, Any]] = []
        self.peaks: dict[str, float | None] = {"api_p99_ms": None, "websocket_error_rate": None}
        self.last: dict[str, Any] = {}
        self._signals: list[Any] = []
        #: The last p99 (ms) Prometheus gave (a check without data keeps its verdict).
        self._p99_judged: float | None = None

    def check_queries(self) -> None:
        """Arming: a query Prometheus rejects raises ``ActivityFailed`` naming its argument;
        no answer makes the source blind (the run starts, ``when_blind`` decides later)."""
        for name, expression in self.queries.items():
            try:
                query(self.url, expression, self.timeout)
            except PrometheusError as error:
                if error.kind == "invalid":
                    raise ActivityFailed(
                        f"{name}: Prometheus rejects the query {expression!r}: {error}"
                    ) from None
                self._blind(f"{name}: {error}", time.time())
                return
        self._sees(time.time())

    def sample(self, max_api_p99_ms: float, max_websocket_error_rate: float) -> dict[str, Any]:
        """One check: ``{"api": {"p99_ms", "over"}, "websocket": {"error_rate", "over"},
        "blind": bool}``; ``over`` is None without data (and while blind)."""
        now = time.time()
        values: dict[str, float | None] = {}
        for name, expression in self.queries.items():
            try:
                values[name] = query(self.url, expression, self.timeout)
            except PrometheusError as error:
                self._blind(f"{name}: {error}", now)
                self.last = {
                    "at": round(now, 3),
                    "api": {"p99_ms": None, "over": None},
                    "websocket": {"error_rate": None, "over": None},
                    "blind": True,
                }
                return self.last
        p99, rate = values["api_p99_query"], values["websocket_error_rate_query"]
        self._sees(now)
        p99_ms = None if p99 is None else round(p99 * 1000, 1)
        rate = None if rate is None else round(rate, 4)
        for key, value in (("api_p99_ms", p99_ms), ("websocket_error_rate", rate)):
            peak = self.peaks[key]
            if value is not None and (peak is None or value > peak):
                self.peaks[key] = value
        self.last = {
            "at": round(now, 3),
            "api": {"p99_ms": p99_ms, "over": None if p99_ms is None else p99_ms > max_api_p99_ms},
            "websocket": {
                "error_rate": rate,
                "over": None if rate is None else rate > max_websocket_error_rate,
            },
            "blind": False,
        }
        return self.last

    def judge(self, limits: Any, now: float) -> list[str]:
        """One check against the kill switch's ``Thresholds``, each signal over its window as
        the run's own samples are judged: the reasons to trip (breaches, or blindness for
        the shorter window when ``when_blind`` is ``stop``)."""
        from chaosgenesys.controls.killswitch_signals import Signal

        if not self._signals:
            self._signals = [
                Signal(limits.api_window_seconds, keep_without_data=True),
                Signal(limits.websocket_window_seconds),
            ]
        api_signal, ws_signal = self._signals
        sample = self.sample(limits.max_api_p99_ms, limits.max_websocket_error_rate)
        where = f"Prometheus at {safe_url(self.url)}"
        reasons = []
        if sample["api"]["p99_ms"] is not None:
            self._p99_judged = sample["api"]["p99_ms"]
        if api_signal.update(sample["api"]["over"], now):
            reasons.append(
                f"{where}: API latency p99 {self._p99_judged} ms "
                f"(api_p99_query) has stayed above {limits.max_api_p99_ms:g} ms for "
                f"{limits.api_window_seconds:g} s"
            )
        if ws_signal.update(sample["websocket"]["over"], now):
            reasons.append(
                f"{where}: WebSocket error rate {sample['websocket']['error_rate']:.0%} "
                f"(websocket_error_rate_query) has stayed above "
                f"{limits.max_websocket_error_rate:.0%} for {limits.websocket_window_seconds:g} s"
            )
        grace = min(limits.api_window_seconds, limits.websocket_window_seconds)
        if self.when_blind == "stop" and self.blind is not None and self.blind_for(now) >= grace:
            reasons.append(
                f"blind: {where} has not answered for {self.blind_for(now):.1f} s "
                f"({self.blind['why']}) and when_blind is stop"
            )
        return reasons

    def longest_over(self) -> dict[str, float]:
        """The longest each signal stayed over its limit by Prometheus's figures (seconds)."""
        api, ws = self._signals or (None, None)
        return {
            "api_p99_ms": round(api.longest, 1) if api is not None else 0.0,
            "websocket_error_rate": round(ws.longest, 1) if ws is not None else 0.0,
        }

    def blind_for(self, now: float) -> float:
        """Seconds the source has been blind (0 when it sees)."""
        return 0.0 if self.blind is None else now - float(self.blind["since"])

    def _blind(self, why: str, now: float) -> None:
        if self.blind is None:
            self.blind = {"since": round(now, 3), "why": why}
            logger.warning(
                "Kill switch: blind: Prometheus at %s does not answer its queries (%s); "
                "when_blind is %s%s",
                safe_url(self.url),
                why,
                self.when_blind,
                ": the run stops if it stays blind for the shorter window"
                if self.when_blind == "stop"
                else (": the run goes on, watched by its own samples only" if self.run_samples
                      else ": the run goes on UNWATCHED"),
            )
        else:
            self.blind["why"] = why

    def _sees(self, now: float) -> None:
        if self.blind is None:
            return
        period = {**self.blind, "until": round(now, 3)}
        self.blind_periods.append(period)
        self.blind = None
        logger.warning(
            "Kill switch: Prometheus at %s answers again after %.1f s blind",
            safe_url(self.url), now - float(period["since"]),
        )

    def report(self) -> dict[str, Any]:
        return {
            "url": safe_url(self.url),
            "queries": dict(self.queries),
            "when_blind": self.when_blind,
            "run_samples": self.run_samples,
            "blind": None if self.blind is None else dict(self.blind),
            "blind_periods": [*self.blind_periods]
            + ([{**self.blind, "until": None}] if self.blind is not None else []),
            "peaks": dict(self.peaks),
            "longest_over_seconds": self.longest_over(),
            "last_sample": dict(self.last),
        }


def _text(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ActivityFailed(f"{name} must be a non-empty string, got {value!r}")
    return value.strip()


def source_from_arguments(arguments: dict[str, Any]) -> PrometheusSource | None:
    """The checked source from the kill switch's arguments (``None`` without
    ``prometheus_url``); ``ActivityFailed`` naming a bad argument. Does no I/O."""
    url = arguments.get("prometheus_url")
    if url is None or url == "":
        extra = [name for name in ARGUMENTS if arguments.get(name) is not None]
        if extra:
            raise ActivityFailed(f"{', '.join(extra)} needs prometheus_url (none given)")
        return None
    url = _text("prometheus_url", url)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query:
        raise ActivityFailed(
            f"prometheus_url must be an http:// or https:// URL without a query, got "
            f"{safe_url(url)!r}"
        )
    run_samples = arguments.get("run_samples")
    run_samples = True if run_samples is None else run_samples
    if not isinstance(run_samples, bool):
        raise ActivityFailed(f"run_samples must be true or false, got {run_samples!r}")
    when_blind = arguments.get("when_blind")
    if when_blind is None:  # blind with no other eyes: stop; with the run's own: go on
        when_blind = "continue" if run_samples else "stop"
    if when_blind not in BLIND_CHOICES:
        raise ActivityFailed(
            f"when_blind must be one of {', '.join(BLIND_CHOICES)}, got {when_blind!r}"
        )
    timeout = arguments.get("prometheus_timeout")
    timeout = 2.0 if timeout is None else timeout
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not math.isfinite(timeout)
        or not 0 < timeout <= 60
    ):
        raise ActivityFailed(
            f"prometheus_timeout must be a number above 0 and at most 60, got {timeout!r}"
        )
    api_query = arguments.get("api_p99_query")
    ws_query = arguments.get("websocket_error_rate_query")
    return PrometheusSource(
        url,
        DEFAULT_API_P99_QUERY if api_query is None else _text("api_p99_query", api_query),
        DEFAULT_WEBSOCKET_ERROR_RATE_QUERY
        if ws_query is None
        else _text("websocket_error_rate_query", ws_query),
        when_blind,
        run_samples,
        float(timeout),
    )
