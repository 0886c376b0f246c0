"""Importing this module registers every optional subcommand with :mod:`pinpanel.cli`.

Each feature keeps its command next to its code; this list is the one place they meet.
"""

from pinpanel import (
    auth,  # noqa: F401  token
    client_commands,  # noqa: F401  pins, on, off, toggle, pulse, watch
    fleet,  # noqa: F401  fleet-sim
    service,  # noqa: F401  install-service
)
