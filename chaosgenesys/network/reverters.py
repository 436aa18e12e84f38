"""The reverters of the network faults, by the names their records store, in one place: the
activities that pick the network faults out of the registry (``remove_faults``,
``list_faults``) read them here without importing the engines the names point to::

    from chaosgenesys.network.reverters import NETWORK_REVERTERS

    network_faults = [f for f in registry.active() if f.reverter in NETWORK_REVERTERS]
"""

from __future__ import annotations

__all__ = ["LEGACY_NFT_REVERTER", "NETWORK_REVERTERS", "NFT_REVERTER", "TC_REVERTER"]

#: The reverter of the tc faults (netem, throttle): ``engine.revert``.
TC_REVERTER = "chaosgenesys.network.engine:revert"
#: The reverter of the nftables faults (loss without netem, blackhole).
NFT_REVERTER = "chaosgenesys.network.nft_faults:revert_nft"
#: The same reverter as records written before ``nft_faults`` existed name it (``engine`` keeps
#: a shim), so that a fault recorded then is still reverted and listed as a network fault.
LEGACY_NFT_REVERTER = "chaosgenesys.network.engine:revert_nft"
#: Every reverter whose faults are network faults.
NETWORK_REVERTERS = frozenset({TC_REVERTER, NFT_REVERTER, LEGACY_NFT_REVERTER})
