"""The synthetic agent desktop: a headless client that acts like the Genesys Cloud agent desktop.

It authenticates, keeps its token fresh, goes On Queue, holds a notification channel open
(heartbeats, ``{"message":"ping"}`` health checks, zombie detection, reconnects with today's
streaming client's backoff), answers routed calls, completes wrap-up, retries presence changes
until they land, and applies "last known good state" after every reconnect. A ``naive`` mode
does all of it badly, so experiments can show they catch a bad desktop.

Modules, one job each:

- ``config``: :class:`AgentConfig` (mode and timings) and :class:`Endpoint` (URLs, credentials,
  proxy, TLS); no I/O.
- ``backoff``: the reconnect delays (2 s, doubling, 90 s at most, no jitter, remembered).
- ``tokens``: :class:`TokenKeeper`, client-credentials tokens, proactive single-flight refresh.
- ``api``: :class:`ApiClient`, the agent's REST calls (401 -> refresh and retry).
- ``channel``: :class:`NotificationSocket`, one WebSocket with heartbeat/pong tracking.
- ``store``: :class:`InteractionStore`, local interactions with versions and pending changes.
- ``eventlog``: the JSONL event log.
- ``summary``: :class:`AgentStats`, the figures ``agent_summary`` reports.
- ``core``: :class:`AgentCore`, one desktop's state and shared plumbing (events, tasks, sleep).
- ``presence``: presence and routing status; the wanted presence retried until it lands.
- ``interactions``: calls answered, hung up and wrapped up, with optimistic locking.
- ``connection``: the channel and socket: read, watch (zombies), rotate, one reconnect try.
- ``policies``: how a desktop reconnects and what it does after: resilient or naive.
- ``agent``: :class:`SyntheticAgent`, the parts put together: start, periodic work, shutdown.
- ``manager``: :class:`AgentManager`, many agents in one process, the status file.
- ``runtime``: where runs, pid and status files live (no aiohttp).
- ``process``: start and stop the background ``chaosgenesys agent`` process (no aiohttp).
- ``actions`` / ``probes``: the Chaos Toolkit activities.

Importing this package, ``runtime``, ``process``, ``actions`` or ``probes`` does not import aiohttp.
"""

__all__: list[str] = []
