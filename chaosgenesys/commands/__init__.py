"""Sub-commands of the ``chaosgenesys`` console script, one module each with ``register()``."""

#: Modules whose ``register(subparsers)`` adds a sub-command, in the order ``--help`` lists them.
COMMAND_MODULES: tuple[str, ...] = (
    "chaosgenesys.commands.sandbox",
    "chaosgenesys.commands.proxy",
    "chaosgenesys.commands.agent",
    "chaosgenesys.commands.faults",
    "chaosgenesys.commands.doctor",
    "chaosgenesys.commands.verdict",
    "chaosgenesys.commands.report",
)
