"""chaosgenesys.notifications: watch the platform's notification stream from outside the agent.

``probes.watch_events`` is the activity; ``observer.EventObserver`` is the engine behind it (a
notification channel of its own, a ``websocket-client`` socket that reconnects itself), with
``observer_channel`` (its REST calls and socket), ``observer_records`` (what it records) and
``observer_figures`` (the figures it returns);
``timeline`` writes its figures to a file that ``probes.longest_not_on_queue`` and
``probes.max_reconnect_latency`` read after the method.
"""
