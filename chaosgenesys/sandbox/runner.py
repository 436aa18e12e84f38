"""``Sandbox``: the simulator on its own thread and event loop, with a thread-safe Python API.

::

    with Sandbox(seed="examples/seed.yaml") as sb:
        sb.url                                   # http://127.0.0.1:PORT (API, login, streaming)
        conversation_id = sb.route_call(queue_id)
        sb.inject_fault(r"/presences", status=503, method="GET", count=2)
        sb.expire_tokens()
        sb.requests(r"/oauth/token")             # how many token requests were made

    with Sandbox(clock=ManualClock(), session_grace_seconds=30) as sb:
        sb.advance(30)                           # time passes at once; due timers run


Every method runs its operation on the sandbox's loop (``asyncio.run_coroutine_threadsafe``) and
may be called from any thread except that loop's own (event listeners run there).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Coroutine, Sequence
from types import TracebackType
from typing import Any, TypeVar

from aiohttp import web

from chaosgenesys.clock import REAL_CLOCK, Clock
from chaosgenesys.sandbox.admin import AdminError, SandboxAdmin
from chaosgenesys.sandbox.events import EventBus
from chaosgenesys.sandbox.notifications import NotificationHub
from chaosgenesys.sandbox.seed import SeedSource, load_seed
from chaosgenesys.sandbox.server import ADMIN_KEY, create_app
from chaosgenesys.sandbox.sessions import PlatformSettings
from chaosgenesys.sandbox.state import SandboxState

__all__ = ["Sandbox"]

logger = logging.getLogger("chaostoolkit")

T = TypeVar("T")

_START_TIMEOUT = 30.0
_CALL_TIMEOUT = 30.0


class Sandbox:
    """A running simulator of the Genesys Cloud parts chaosgenesys touches.

    ``seed`` is a seed file path, a dict or ``None`` (the default seed: one client
    ``chaos-client``/``chaos-secret``, two On Queue agents and ``Chaos Queue``); it is validated
    here, so a bad seed raises :class:`~chaosgenesys.sandbox.seed.SeedError` at construction.
    ``port=0`` picks a free port. ``rate_limit_per_minute=0`` disables rate limiting.

    ``session_grace_seconds``, ``presence_renew_seconds`` and ``renew_on_queue`` set the
    platform's reaction to a lost agent session (``docs/platform-reaction.md``); ``None`` takes
    the seed's ``platform`` section, else the defaults (30 s, 60 s, false).
    ``session_grace_seconds=0`` turns the reaction off.

    ``clock`` is the sandbox's time (:mod:`chaosgenesys.clock`; default the real clock): token
    lifetimes, the session grace, alerting and wrap-up timeouts and channel expiry run on it.
    With a :class:`~chaosgenesys.clock.ManualClock`, time stands still until :meth:`advance`.
    """

    def __init__(
        self,
        seed: SeedSource | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_interval: float = 30.0,
        rate_limit_per_minute: int = 300,
        channel_lifetime: float = 86400.0,
        session_grace_seconds: float | None = None,
        presence_renew_seconds: float | None = None,
        renew_on_queue: bool | None = None,
        clock: Clock = REAL_CLOCK,
    ) -> None:
        if rate_limit_per_minute < 0:
            raise ValueError(f"rate_limit_per_minute must be >= 0, not {rate_limit_per_minute}")
        if heartbeat_interval <= 0:
            raise ValueError(f"heartbeat_interval must be > 0, not {heartbeat_interval}")
        if channel_lifetime <= 0:
            raise ValueError(f"channel_lifetime must be > 0, not {channel_lifetime}")
        self._seed = load_seed(seed)
        base = self._seed.platform or PlatformSettings()
        self.platform_settings = PlatformSettings(
            session_grace_seconds=base.session_grace_seconds
            if session_grace_seconds is None
            else session_grace_seconds,
            presence_renew_seconds=base.presence_renew_seconds
            if presence_renew_seconds is None
            else presence_renew_seconds,
            renew_on_queue=base.renew_on_queue if renew_on_queue is None else renew_on_queue,
        )
        self.host = host
        self._requested_port = port
        self.heartbeat_interval = heartbeat_interval
        self.rate_limit_per_minute = rate_limit_per_minute
        self.channel_lifetime = channel_lifetime
        self._state = SandboxState(self._seed, EventBus(), clock)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None
        self._admin: SandboxAdmin | None = None
        self._port: int | None = None
        self._stopped = threading.Event()
        self._stopped.set()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> Sandbox:
        """Start serving; returns once the port is listening (raises if it cannot)."""
        if self.running:
            return self
        ready = threading.Event()
        errors: list[BaseException] = []
        self._stopped.clear()
        self._thread = threading.Thread(
            target=self._run, args=(ready, errors), name="chaosgenesys-sandbox", daemon=True
        )
        self._thread.start()
        if not ready.wait(_START_TIMEOUT):
            self.stop()
            raise RuntimeError("the sandbox did not start within 30 s")
        if errors:
            self._thread.join()
            self._thread = None
            self._stopped.set()
            raise errors[0]
        logger.info("sandbox listening on %s", self.url)
        return self

    def _run(self, ready: threading.Event, errors: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            try:
                loop.run_until_complete(self._startup())
            except BaseException as exc:
                errors.append(exc)
                self._runner = None
                ready.set()
                return
            self._loop = loop
            # ready once the loop runs, not just before: a call made the moment start() returns
            # must find it running (a loaded machine once called in between and was refused)
            loop.call_soon(ready.set)
            loop.run_forever()
            loop.run_until_complete(self._shutdown())
        finally:
            self._loop = None
            pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in pending:
                task.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    async def _startup(self) -> None:
        hub = NotificationHub(
            self._state.events,
            heartbeat_interval=self.heartbeat_interval,
            channel_lifetime=self.channel_lifetime,
            clock=self._state.clock,
        )
        app = create_app(
            self._state,
            hub,
            rate_limit_per_minute=self.rate_limit_per_minute,
            platform=self.platform_settings,
        )
        self._admin = app[ADMIN_KEY]
        runner = web.AppRunner(app, access_log=None, handle_signals=False, shutdown_timeout=2.0)
        await runner.setup()
        self._runner = runner
        try:
            site = web.TCPSite(runner, self.host, self._requested_port)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        address = runner.addresses[0]
        self._port = int(address[1])

    async def _shutdown(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def stop(self) -> None:
        """Stop serving and join the thread; safe to call more than once."""
        loop, thread = self._loop, self._thread
        if loop is not None and loop.is_running():
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=15)
        self._thread = None
        if loop is not None:
            logger.info("sandbox stopped")

    def wait(self, timeout: float | None = None) -> bool:
        """Block until the sandbox stops (``True``), or ``timeout`` seconds pass (``False``)."""
        return self._stopped.wait(timeout)

    def serve_forever(self) -> None:
        """Start, block until interrupted (Ctrl-C) or stopped, then stop."""
        self.start()
        try:
            while not self.wait(0.5):
                pass
        except KeyboardInterrupt:
            pass
        finally:
            self.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ properties
    @property
    def running(self) -> bool:
        """Whether the server is up."""
        return self._loop is not None and self._loop.is_running()

    @property
    def port(self) -> int:
        """The listening port (after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("the sandbox has not been started")
        return self._port

    @property
    def url(self) -> str:
        """``http://host:port``: the API, login and streaming base URL."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def client_id(self) -> str:
        """The first seeded OAuth client's id."""
        return self._seed.clients[0].client_id

    @property
    def client_secret(self) -> str:
        """The first seeded OAuth client's secret."""
        return self._seed.clients[0].client_secret

    @property
    def state(self) -> SandboxState:
        """The live domain model. Read it or mutate it only on the sandbox's loop."""
        return self._state

    @property
    def clock(self) -> Clock:
        """The sandbox's clock (share a :class:`~chaosgenesys.clock.ManualClock` with a token
        cache under test and :meth:`advance` moves both)."""
        return self._state.clock

    @property
    def events(self) -> EventBus:
        """The event bus; listeners are called on the sandbox's loop thread."""
        return self._state.events

    # ------------------------------------------------------------------ thread-safe API
    def _call(self, operation: Callable[[SandboxAdmin], T]) -> T:
        async def run() -> T:
            assert self._admin is not None
            return operation(self._admin)

        return self._submit(run())

    def _submit(self, coroutine: Coroutine[Any, Any, T]) -> T:
        loop = self._loop
        if loop is None or not loop.is_running():
            coroutine.close()
            raise RuntimeError("the sandbox is not running: call start() first")
        if self._thread is threading.current_thread():
            coroutine.close()
            raise RuntimeError("Sandbox methods cannot be called from the sandbox's own loop")
        return asyncio.run_coroutine_threadsafe(coroutine, loop).result(_CALL_TIMEOUT)

    def advance(self, seconds: float) -> int:
        """Move the sandbox's :class:`~chaosgenesys.clock.ManualClock` ``seconds`` forward, on
        its loop; the timers that fall due have run when this returns. Returns how many ran.
        Raises :class:`AdminError` on the real clock."""
        return int(self._call(lambda admin: admin.advance_clock(seconds))["ran"])

    def route_call(
        self,
        queue_id: str,
        user_id: str | None = None,
        answer: bool = False,
        conversation_id: str | None = None,
    ) -> str:
        """A customer calls ``queue_id``: alerting on an idle member (or ``user_id``), or
        waiting in the queue. ``answer=True`` connects the agent at once. Returns the
        conversation id (``conversation_id`` when given). Raises :class:`AdminError`
        (``ValueError``) for unknown ids or a conversation id already in use."""
        return self._call(
            lambda admin: admin.route_call(queue_id, user_id, answer, conversation_id)
        )

    def disconnect_call(self, conversation_id: str) -> None:
        """The customer hangs up."""
        self._call(lambda admin: admin.disconnect_call(conversation_id))

    def set_presence(self, user_id: str, presence: str) -> None:
        """Set a user's presence by system presence name, in any spelling."""
        self._call(lambda admin: admin.set_presence(user_id, presence))

    def inject_fault(
        self,
        path_pattern: str,
        *,
        delay_ms: float = 0,
        status: int | None = None,
        method: str | None = None,
        count: int | None = None,
        duration: float | None = None,
        retry_after: int | None = None,
    ) -> str:
        """Add a server-side fault (see ``faults.py``); returns its id."""
        fault = self._call(
            lambda admin: admin.inject_fault(
                path_pattern,
                delay_ms=delay_ms,
                status=status,
                method=method,
                count=count,
                duration=duration,
                retry_after=retry_after,
            )
        )
        return fault.id

    def remove_fault(self, fault_id: str) -> bool:
        """Remove one fault; ``True`` if it was active."""
        return self._call(lambda admin: admin.remove_fault(fault_id))

    def clear_faults(self) -> int:
        """Remove every fault; returns how many there were."""
        return self._call(lambda admin: admin.clear_faults())

    def faults(self) -> list[dict[str, Any]]:
        """The active faults, as JSON."""
        return self._call(lambda admin: admin.faults.to_json())

    def expire_tokens(self, client_id: str | None = None) -> int:
        """Expire every valid token (of one client); returns how many."""
        return self._call(lambda admin: admin.expire_tokens(client_id))

    def revoke_tokens(self, client_id: str | None = None) -> int:
        """Revoke every valid token (of one client); returns how many."""
        return self._call(lambda admin: admin.revoke_tokens(client_id))

    def set_token_lifetime(self, client_id: str, seconds: int) -> None:
        """Lifetime of tokens issued to ``client_id`` from now on."""
        self._call(lambda admin: admin.set_token_lifetime(client_id, seconds))

    def close_notification_sockets(
        self,
        code: int = 1000,
        user_ids: Sequence[str] | None = None,
        sessions_only: bool = False,
    ) -> int:
        """Close notification WebSockets (all, or those watching these users; only the agent
        desktops' sessions, not observers, with ``sessions_only``)."""

        async def run() -> int:
            assert self._admin is not None
            return await self._admin.close_notification_sockets(code, user_ids, sessions_only)

        return self._submit(run())

    def send_socket_closing(self, user_ids: Sequence[str] | None = None) -> int:
        """Send ``v2.system.socket_closing`` to connected sockets; returns how many got it."""

        async def run() -> int:
            assert self._admin is not None
            return await self._admin.send_socket_closing(user_ids)

        return self._submit(run())

    def requests(self, path_regex: str | None = None, method: str | None = None) -> int:
        """How many requests matched ``path_regex`` (re.search) and ``method`` so far."""
        return self._call(lambda admin: admin.requests(path_regex, method))

    def reset_requests(self) -> None:
        """Forget the request counters."""
        self._call(lambda admin: admin.request_log.reset())

    def load_seed(self, seed: SeedSource | None) -> None:
        """Replace the state with a new seed (validated first)."""
        self._call(lambda admin: admin.load_seed(seed))

    def configure_platform(
        self,
        session_grace_seconds: float | None = None,
        presence_renew_seconds: float | None = None,
        renew_on_queue: bool | None = None,
    ) -> dict[str, Any]:
        """Change the reaction to lost agent sessions (``None`` keeps a setting); returns
        :meth:`platform`."""
        return self._call(
            lambda admin: admin.configure_platform(
                session_grace_seconds, presence_renew_seconds, renew_on_queue
            )
        )

    def platform(self) -> dict[str, Any]:
        """Reaction settings, users holding a session, pending and past reactions."""
        return self._call(lambda admin: admin.platform())

    def snapshot(self) -> dict[str, Any]:
        """Users, queues, conversations, faults and notifications, as JSON."""
        return self._call(lambda admin: admin.snapshot())


# Re-exported for callers that catch it.
__all__ += ["AdminError"]
