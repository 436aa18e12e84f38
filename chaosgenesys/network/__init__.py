"""Network faults over netlink: netem, htb/tbf, u32 targeting, IFB ingress, nftables.

Activities live in ``chaosgenesys.network.actions`` and ``chaosgenesys.network.probes``; the
engine modules (``arguments``, ``nl``, ``tc``, ``netem``, ``targeting``, ``engine``, ``nft``) never
import them. ``arguments`` (the targeting arguments, checked) is shared with the socket actions.
Importing this package imports nothing else (no pyroute2).
"""

__all__: list[str] = []
