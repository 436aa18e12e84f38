"""What stopped a control from setting up, kept until the run can be stopped.

chaoslib swallows exceptions from ``configure_control`` (logged at DEBUG, the control dropped),
so a control that sets something up there (the sandbox, the network lab) must remember its
failure and refuse in ``before_experiment_control``, where ``InterruptExecution`` stops the run
before anything executes::

    _startup = StartupFailure("the Genesys sandbox did not start")

    def configure_control(...):
        with _startup.remembering("The Genesys sandbox control could not start"):
            start_the_sandbox()

    def before_experiment_control(context, **kwargs):
        _startup.refuse_if_failed()
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

from chaoslib.exceptions import InterruptExecution

__all__ = ["StartupFailure"]

logger = logging.getLogger("chaostoolkit")


class StartupFailure:
    """The last set-up failure of one control (None when the last set-up succeeded)."""

    def __init__(self, refusal: str) -> None:
        self.refusal = refusal
        self.error: str | None = None

    @contextlib.contextmanager
    def remembering(self, log_message: str) -> Iterator[None]:
        """Forget the previous failure; log and keep the one raised inside (then re-raise)."""
        self.error = None
        try:
            yield
        except Exception as error:
            self.error = str(error)
            logger.error("%s: %s", log_message, error)
            raise

    def refuse_if_failed(self) -> None:
        """``InterruptExecution`` saying why, when the last set-up failed."""
        if self.error is not None:
            raise InterruptExecution(f"{self.refusal}: {self.error}")
