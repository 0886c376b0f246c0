"""Where pinpanel keeps its state when ``[server] data_dir`` is empty, and what is in it."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the XDG state directory."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pinpanel"


#: The HomeKit bridge's file in the data dir (its identity and keys, pairings, setup code and
#: accessory ids): kept by the HomeKit adapter, shown by its page, carried by a backup.
HOMEKIT_STATE = "homekit.state"
