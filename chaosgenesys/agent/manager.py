"""Many synthetic agents in one process (one asyncio loop) and the status file they report to.

The status file holds every agent's summary and ``api_calls``: ``[timestamp, latency_ms,
status]`` of the agents' API calls of the last five minutes (status ``null``: no answer), and
``api_in_flight``: the wall-clock start of each REST call still under way, which
``chaosgenesys.controls.killswitch`` adds to the API latency it watches. With the
``metrics_port`` option the process also serves the agents' figures for Prometheus
(``chaosgenesys.agent.metrics``) and the status file's ``metrics`` says where (``port``,
``url``; ``null`` when off).

::

    manager = AgentManager([(user_id, endpoint), ...], AgentConfig(mode="resilient"),
                           log_path="agents.jsonl", status_path="status.json")
    await manager.run(duration=0)        # until manager.stop() (or the duration, or owner death)

Two HTTP connection pools are shared by all agents: one for API calls and WebSockets, one for
``/oauth/token`` only, so a token refresh never waits behind application requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import ssl
import time
from pathlib import Path
from typing import Any

import aiohttp

from chaosgenesys import processes
from chaosgenesys.agent.agent import SyntheticAgent
from chaosgenesys.agent.config import AgentConfig, Endpoint
from chaosgenesys.agent.eventlog import EventLog
from chaosgenesys.agent.runtime import read_json, write_json_atomic
from chaosgenesys.platform.metrics import MetricsRecorder

__all__ = ["API_CALLS_KEPT", "API_CALLS_SECONDS", "AgentManager", "request_kwargs"]

STATUS_INTERVAL = 0.5
#: The status file lists the agents' API calls of the last ``API_CALLS_SECONDS``, at most the
#: latest ``API_CALLS_KEPT`` of them (the kill switch reads their latencies).
API_CALLS_SECONDS = 300.0
API_CALLS_KEPT = 5000


def request_kwargs(endpoint: Endpoint) -> dict[str, Any]:
    """aiohttp per-request options for an endpoint: proxy and TLS trust."""
    kwargs: dict[str, Any] = {}
    if endpoint.proxy:
        kwargs["proxy"] = endpoint.proxy
    if endpoint.ca_file:
        kwargs["ssl"] = ssl.create_default_context(cafile=endpoint.ca_file)
    elif not endpoint.verify_tls:
        kwargs["ssl"] = False
    return kwargs


class AgentManager:
    """Runs agents, writes their status file every 0.5 s, stops them all on :meth:`stop`."""

    def __init__(
        self,
        agents: list[tuple[str, Endpoint]],
        config: AgentConfig,
        *,
        log_path: str | Path | None = None,
        status_path: str | Path | None = None,
        owner_pid: int = 0,
        rng_seed: int | None = None,
        start_spread: float = 0.0,
    ) -> None:
        if not agents:
            raise ValueError("at least one agent (user id) is needed")
        self._specs = agents
        self.config = config
        self.log = EventLog(log_path)
        self.status_path = Path(status_path) if status_path else None
        self.owner_pid = owner_pid
        self.start_spread = start_spread
        self.agents: list[SyntheticAgent] = []
        self._rng_seed = rng_seed
        self._stop: asyncio.Event | None = None
        self._started_at = time.time()
        self.running = False
        #: Every agent's API calls (token requests included), latest last.
        self.calls = MetricsRecorder(max_records=API_CALLS_KEPT)
        #: Every agent's REST calls under way: a key per call to its wall-clock start.
        self.in_flight: dict[object, float] = {}
        #: The Prometheus endpoint (``chaosgenesys.agent.metrics.AgentMetrics``) while running.
        self.metrics: Any = None

    def stop(self) -> None:
        """Stop every agent (safe from signal handlers on the loop)."""
        if self._stop is not None:
            self._stop.set()

    def summaries(self) -> dict[str, dict[str, Any]]:
        """Every agent's summary by user id."""
        return {agent.user_id: agent.stats.to_dict() for agent in self.agents}

    def write_status(self) -> None:
        """Write the status file now (atomically)."""
        if self.status_path is None and self.metrics is None:
            return
        summaries = self.summaries()
        if self.metrics is not None:
            self.metrics.update(summaries)
        if self.status_path is None:
            return
        data = {
            "pid": os.getpid(),
            "mode": self.config.mode,
            "running": self.running,
            "started_at": self._started_at,
            "updated_at": time.time(),
            "log": str(self.log.path) if self.log.path else "",
            "agents": summaries,
            "metrics": None if self.metrics is None
            else {"port": self.metrics.port, "url": self.metrics.url},
            "api_calls": [
                [round(r.timestamp, 3), round(r.latency_ms, 1), r.status]
                for r in self.calls.records(API_CALLS_SECONDS)
            ],
            "api_in_flight": sorted(round(start, 3) for start in list(self.in_flight.values())),
        }
        with contextlib.suppress(OSError):
            write_json_atomic(self.status_path, data)

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until every agent is connected and has gone On Queue once."""
        try:
            async with asyncio.timeout(timeout):
                while not self.agents or not all(a.stats.ready for a in self.agents):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            return False
        return True

    async def run(self, duration: float = 0.0) -> None:
        """Run until :meth:`stop`, ``duration`` seconds (0: no limit) or the owner's death."""
        self._stop = asyncio.Event()
        if self.config.metrics_port:
            self._start_metrics()
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=0)
        login_connector = aiohttp.TCPConnector(limit=64, limit_per_host=0)
        session = aiohttp.ClientSession(connector=connector)
        login_session = aiohttp.ClientSession(connector=login_connector)
        rng = random.Random(self._rng_seed)
        shared: dict[str, Any] = {"rng": rng}
        self.running = True
        tasks: list[asyncio.Task[None]] = []
        try:
            for user_id, endpoint in self._specs:
                agent = SyntheticAgent(
                    user_id, endpoint, self.config, session, login_session, self.log,
                    request_kwargs=request_kwargs(endpoint), shared=shared, calls=self.calls,
                )
                agent.api.in_flight = self.in_flight
                self.agents.append(agent)
            self._restore_backoff()
            for agent in self.agents:
                delay = rng.uniform(0, self.start_spread) if self.start_spread else 0.0
                tasks.append(asyncio.get_running_loop().create_task(
                    self._run_agent(agent, delay), name=f"agent:{agent.user_id}"))
            status = asyncio.get_running_loop().create_task(self._status_loop())
            deadline = time.monotonic() + duration if duration > 0 else None
            while not self._stop.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    break
                if self.owner_pid and not processes.alive(self.owner_pid):
                    break
                if tasks and all(t.done() for t in tasks):
                    break
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(0.5):
                        await self._stop.wait()
            for agent in self.agents:
                agent.stop()
            await asyncio.gather(*tasks, return_exceptions=True)
            status.cancel()
            await asyncio.gather(status, return_exceptions=True)
        finally:
            self.running = False
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await session.close()
            await login_session.close()
            self.write_status()
            self.log.close()
            if self.metrics is not None:
                self.metrics.stop()

    def _start_metrics(self) -> None:
        """Serve ``/metrics`` (prometheus-client, imported only here); ``OSError`` when the
        port cannot be had, before any agent starts."""
        from chaosgenesys.agent.metrics import AgentMetrics, ObservedRecorder

        metrics = AgentMetrics(self.config.metrics_port)
        metrics.start()
        metrics.add_users([user for user, _ in self._specs])
        self.calls = ObservedRecorder(API_CALLS_KEPT, metrics.api_call)
        self.log.listener = metrics.event
        self.metrics = metrics

    def _restore_backoff(self) -> None:
        """A restart with the same status file remembers each agent's reconnect backoff (the
        streaming client keeps it across a page reload)."""
        if self.status_path is None:
            return
        previous = read_json(self.status_path)
        agents = (previous or {}).get("agents")
        if not isinstance(agents, dict):
            return
        for agent in self.agents:
            summary = agents.get(agent.user_id)
            if isinstance(summary, dict):
                agent.restore_backoff(summary.get("reconnect_backoff"))

    async def _run_agent(self, agent: SyntheticAgent, delay: float) -> None:
        if delay:
            await asyncio.sleep(delay)
        await agent.run()

    async def _status_loop(self) -> None:
        while True:
            self.write_status()
            await asyncio.sleep(STATUS_INTERVAL)
