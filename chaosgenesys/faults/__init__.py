"""The fault registry: every fault that outlives the call that made it, and its guardian.

``chaosgenesys.faults.registry`` records a fault **before** it is applied and forgets it only
**after** its reverter succeeded; ``chaosgenesys.faults.guardian`` is the detached process that
reverts a fault at its deadline or when the process that applied it is gone. The activities
``chaosgenesys.faults.actions.revert_all`` and ``chaosgenesys.faults.probes.active_faults`` and
the ``chaosgenesys status`` / ``chaosgenesys cleanup`` commands sit on top. See ``docs/faults.md``.

Importing this package imports nothing else.
"""

__all__: list[str] = []
