"""``python -m chaosgenesys.agent``: the ``chaosgenesys agent`` command (see its ``--help``)."""

import sys

from chaosgenesys.commands.agent import main

if __name__ == "__main__":
    sys.exit(main())
