"""The fault-injecting HTTP(S)/WebSocket proxy: mitmproxy out of process with our addon.

- :mod:`chaosgenesys.proxy.rules`: the rule model (validation, matching, Fiddler import); pure.
- :mod:`chaosgenesys.proxy.addon`: the mitmproxy addon (runs only in the proxy process).
- :mod:`chaosgenesys.proxy.reverse`: reverse mode's ``connectUri`` rewrite and socket routes; pure.
- :mod:`chaosgenesys.proxy.server`: ``python -m chaosgenesys.proxy.server``, the proxy process.
- :mod:`chaosgenesys.proxy.control`: start, steer (control API) and stop proxies; the registry
  reverter ``chaosgenesys.proxy.control:revert``.
- :mod:`chaosgenesys.proxy.actions` / :mod:`chaosgenesys.proxy.probes`: the activities.

Importing this package (or its activity modules) imports neither mitmproxy nor aiohttp.
"""
