"""Helpers of the synthetic agent tests: agents on a thread, polling, and a TCP relay that can
stall (a silent socket: the zombie state)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from tests import polling
from tests.conftest import CLIENT_ID, CLIENT_SECRET, make_seed


def wait_for(condition: Callable[[], object], timeout: float, interval: float = 0.05) -> bool:
    """:func:`tests.polling.wait_until` every 50 ms: these tests poll the API, and a faster poll
    meets the sandbox's 300 requests per minute per token."""
    return polling.wait_until(condition, timeout, interval)


HEARTBEAT = 0.2


def agent_seed(**queue: Any) -> dict[str, Any]:
    """The shared seed; ``queue`` overrides the chaos queue's fields (e.g. wrapup_timeout)."""
    seed = make_seed()
    seed["queues"][0].update(queue)
    return seed


def fast_options(**overrides: Any) -> dict[str, Any]:
    """Agent timings scaled to the 0.2 s heartbeat."""
    options: dict[str, Any] = {
        "ping_interval": 0.25,
        "heartbeat_interval": HEARTBEAT,
        "sync_interval": 0.3,
        "answer_delay": 0.1,
        "talk_time": 0.3,
        "wrapup_time": 0.3,
    }
    options.update(overrides)
    return options


class AgentsThread:
    """An :class:`AgentManager` running on its own thread and event loop."""

    def __init__(self, url: str, users: list[str], mode: str = "resilient",
                 log_path: str | None = None, timeout: float = 2.0,
                 status_path: str | None = None, wait_ready: bool = True,
                 **options: Any) -> None:
        from chaosgenesys.agent.config import Endpoint, config_from_options
        from chaosgenesys.agent.manager import AgentManager

        endpoint = Endpoint(url, url, CLIENT_ID, CLIENT_SECRET, timeout=timeout)
        config = config_from_options(mode, fast_options(**options))
        self.manager = AgentManager([(u, endpoint) for u in users], config, log_path=log_path,
                                    status_path=status_path, rng_seed=1)
        self._wait_ready = wait_ready
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        self._loop.run_until_complete(self.manager.run())
        self._loop.close()

    def __enter__(self) -> AgentsThread:
        self._thread.start()
        if not self._wait_ready:
            assert wait_for(lambda: bool(self.manager.agents), 10), "no agent started"
            return self
        assert wait_for(lambda: bool(self.manager.agents) and all(
            a.stats.ready for a in self.manager.agents), 10), "agents not ready"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self.manager.stop)
        self._thread.join(15)

    def stats(self, index: int = 0) -> dict[str, Any]:
        return self.manager.agents[index].stats.to_dict()

    @property
    def agent(self) -> Any:
        return self.manager.agents[0]


class StallingRelay:
    """A TCP relay to ``port``; :meth:`stall` holds every byte (connections stay open)."""

    def __init__(self, port: int) -> None:
        self.target = port
        self.port = 0
        self._flowing: asyncio.Event | None = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._server: asyncio.Server | None = None

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        self._loop.run_until_complete(self._start())
        self._ready.set()
        self._loop.run_forever()

    async def _start(self) -> None:
        self._flowing = asyncio.Event()
        self._flowing.set()
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _pump(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert self._flowing is not None
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                await self._flowing.wait()
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            with contextlib.suppress(RuntimeError):
                writer.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))

    def stall(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def resume(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def __enter__(self) -> StallingRelay:
        self._thread.start()
        self._ready.wait(5)
        return self

    async def _close(self) -> None:
        if self._server is not None:
            self._server.close()
        tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def __exit__(self, *exc: object) -> None:
        asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(5)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()


__all__ = [
    "CLIENT_ID",
    "CLIENT_SECRET",
    "AgentsThread",
    "StallingRelay",
    "agent_seed",
    "fast_options",
    "wait_for",
]


def agent_run_alive(run_id: str) -> bool:
    """Whether the agent process of run ``run_id`` (its ``run.json``) is running."""
    from chaosgenesys.agent import process

    for record in process.list_runs():
        if record.get("id") == run_id:
            return process.process_alive(int(record["pid"]), str(record.get("start_time") or ""))
    return False
