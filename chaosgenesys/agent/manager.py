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

A ``duration`` counts from the start, or, with ``ready_allowance`` seconds, from when every agent
is first ready at once (logged in, On Queue, connected) if that comes within the allowance, so a
slow login does not eat into the window (``start_agents`` asks for that). The status file says
when every agent was first ready (``all_ready_at``) and when the window ends (``deadline``, epoch
seconds, the latest it can be until the window opens; ``null`` without a duration).

Two HTTP connection pools are shared by all agents: one for API calls and WebSockets, one for
``/oauth/token`` only, so a token refresh never waits behind application requests.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import ssl
import time
from collections import deque
from pathlib import Path
from typing import Any

import aiohttp

from chaosgenesys import processes
from chaosgenesys.agent.agent import SyntheticAgent
from chaosgenesys.agent.config import AgentConfig, Endpoint
from chaosgenesys.agent.eventlog import EventLog
from chaosgenesys.agent.runtime import read_json, write_text_atomic
from chaosgenesys.platform.metrics import CallRecord, MetricsRecorder

__all__ = [
    "API_CALLS_KEPT", "API_CALLS_SECONDS", "AgentManager", "request_kwargs", "status_interval",
]

#: The status file is rewritten every ``STATUS_INTERVAL`` seconds for up to 100 agents; it holds
#: about 1.2 KB per agent, so beyond that its period grows with the agents (``agents / 200``
#: seconds, at most ``STATUS_INTERVAL_MAX``) and its cost per agent stays bounded
#: (:func:`status_interval`; benchmarks/agents_scale.py).
STATUS_INTERVAL = 0.5
STATUS_INTERVAL_MAX = 5.0


def status_interval(agents: int) -> float:
    """Seconds between two writes of the status file of a process running ``agents``."""
    return min(STATUS_INTERVAL_MAX, max(STATUS_INTERVAL, agents / 200))

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
    """Runs agents, writes their status file every 0.5 s (:func:`status_interval` for many
    agents), stops them all on :meth:`stop`."""

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
        #: When every agent was first ready at once (epoch seconds), None before.
        self._all_ready_at: float | None = None
        self._duration = 0.0
        self._ready_allowance = 0.0
        self._run_started_at = self._started_at
        self.running = False
        #: Every agent's API calls (token requests included), latest last.
        self.calls = MetricsRecorder(max_records=API_CALLS_KEPT)
        #: Every agent's REST calls under way: a key per call to its wall-clock start.
        self.in_flight: dict[object, float] = {}
        #: The Prometheus endpoint (``chaosgenesys.agent.metrics.AgentMetrics``) while running.
        self.metrics: Any = None
        #: The status file's ``api_calls`` rows, each with the call it encodes.
        self._call_rows: deque[tuple[CallRecord, str]] = deque()

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
        if self.metrics is not None:
            self.metrics.update(self.summaries())
        if self.status_path is None:
            return
        deadline = self.deadline()  # notes all_ready_at first: the head says both alike
        head = {
            "pid": os.getpid(),
            "mode": self.config.mode,
            "running": self.running,
            "started_at": self._started_at,
            "updated_at": time.time(),
            "all_ready_at": self._all_ready_at,
            "deadline": deadline,
            "log": str(self.log.path) if self.log.path else "",
            "metrics": None if self.metrics is None
            else {"port": self.metrics.port, "url": self.metrics.url},
            "api_in_flight": sorted(round(start, 3) for start in list(self.in_flight.values())),
        }
        # The agents' entries and the calls' rows are encoded once and reused (an idle
        # agent's entry does not change; calls only come and go): the file is megabytes for
        # thousands of agents.
        agents = ",".join(
            f"{json.dumps(agent.user_id)}:{agent.stats.status_json()}" for agent in self.agents
        )
        text = (f'{json.dumps(head)[:-1]},"agents":{{{agents}}},'
                f'"api_calls":{self._api_calls_json()}}}')
        with contextlib.suppress(OSError):
            write_text_atomic(self.status_path, text)

    def _api_calls_json(self) -> str:
        """``[[epoch, latency ms, status], ...]`` of the calls of the last
        ``API_CALLS_SECONDS``, oldest first; a call's row is encoded once."""
        records = self.calls.records(API_CALLS_SECONDS)
        rows = self._call_rows
        kept = 0
        if rows:
            last = rows[-1][0]
            for index in range(len(records) - 1, -1, -1):
                if records[index] is last:
                    kept = index + 1
                    break
        while len(rows) > kept:  # the oldest have left the window (or nothing lines up)
            rows.popleft()
        if kept and rows[0][0] is not records[0]:
            rows.clear()
            kept = 0
        for record in records[kept:]:
            rows.append((record, json.dumps(
                [round(record.timestamp, 3), round(record.latency_ms, 1), record.status]
            )))
        return "[" + ",".join(row for _, row in rows) + "]"

    async def wait_ready(self, timeout: float) -> bool:
        """Wait until every agent is connected and has gone On Queue once."""
        try:
            async with asyncio.timeout(timeout):
                while not self.agents or not all(a.stats.ready for a in self.agents):
                    await asyncio.sleep(0.05)
        except TimeoutError:
            return False
        return True

    def deadline(self) -> float | None:
        """When the run's ``duration`` ends (epoch seconds; None without one): ``duration``
        after every agent was first ready at once, when that came within the run's
        ``ready_allowance`` of its start; else ``duration`` after the allowance (the latest the
        window can open, until it has). Notes when every agent was first ready (the status file
        and the run loop both ask)."""
        if (
            self._all_ready_at is None
            and self.agents
            and all(a.stats.ready for a in self.agents)
        ):
            self._all_ready_at = time.time()
        if self._duration <= 0:
            return None
        latest = self._run_started_at + self._ready_allowance
        ready = self._all_ready_at
        opened = ready if ready is not None and ready <= latest else latest
        return opened + self._duration

    async def run(self, duration: float = 0.0, ready_allowance: float = 0.0) -> None:
        """Run until :meth:`stop`, ``duration`` seconds (0: no limit; counted from the start,
        or from when every agent is ready if that comes within ``ready_allowance`` seconds:
        :meth:`deadline`) or the owner's death."""
        self._stop = asyncio.Event()
        self._duration = max(0.0, duration)
        self._ready_allowance = max(0.0, ready_allowance)
        self._run_started_at = time.time()
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
            while not self._stop.is_set():
                deadline = self.deadline()
                if deadline is not None and time.time() >= deadline:
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
        interval = status_interval(len(self.agents))
        while True:
            self.write_status()
            await asyncio.sleep(interval)
