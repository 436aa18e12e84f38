"""Socket faults: SOCK_DESTROY resets of live TCP connections, and nftables reject windows.

- ``actions``: ``reset_connections``, ``reject_connections``, ``remove_rejections`` (activities)
- ``probes``: ``list_connections`` (activity)
- ``targets``: the sockets' :class:`Target` (sock_diag matching, nftables sets); the targeting
  arguments themselves are checked by :mod:`chaosgenesys.network.arguments`, as for network faults
- ``diag``: sock_diag netlink packed by hand on one raw socket (list, destroy)
- ``reject``: the nftables table of a reject window (through ``network.nft.run``) and its
  registry reverter

See ``docs/sockets.md``. Importing this package imports nothing else.
"""

__all__: list[str] = []
