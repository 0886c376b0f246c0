"""What the HomeKit bridge keeps across restarts, in one file: ``<data_dir>/homekit.state``.

HAP-python persists the bridge's identity (its MAC-like id and Ed25519 key pair), the config
version and the paired controllers, but not the setup code, the setup id (the last four
characters of the ``X-HM://`` payload), the names an admin gave the controllers, nor which
accessory id each pin has: a bridge that
forgot those would ask to be paired again with a new code, or show an iPhone's rooms and
automations on the wrong relay after a config edit. :class:`PinpanelEncoder` writes all of
them into HAP-python's own file, which it creates with mode 0600 (a temporary file renamed
over the old one), so a reset is one file to delete.
"""

from __future__ import annotations

import io
import json
import logging
import secrets
from pathlib import Path
from typing import Any, TextIO

from pyhap.encoder import AccessoryEncoder
from pyhap.state import State

from pinpanel.config.paths import HOMEKIT_STATE

log = logging.getLogger(__name__)

FILE_NAME = HOMEKIT_STATE

#: Codes the HomeKit Accessory Protocol forbids because they are too easy to guess.
_FORBIDDEN_CODES = frozenset({
    *(str(d) * 8 for d in range(10)), "12345678", "87654321"})
#: The first accessory id a pin or sensor can get (1 is the bridge itself).
FIRST_AID = 2


def new_setup_code() -> bytes:
    """Eight random digits laid out as ``123-45-678``, never one of the codes HAP forbids."""
    while True:
        digits = f"{secrets.randbelow(100_000_000):08d}"
        if digits not in _FORBIDDEN_CODES:
            return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}".encode("ascii")


class AccessoryIds:
    """A stable accessory id (``aid``) per pin or sensor, keyed by its id, never reused.

    HomeKit files rooms, names and automations under the aid; the config may reorder,
    rename or drop pins, so the aid is taken from this map, and a key seen for the first
    time gets the next number after every one handed out so far (a removed pin's number
    is not given to the next new one, whose automations would then be the old pin's).
    """

    def __init__(self, known: dict[str, int] | None = None, next_aid: int = FIRST_AID) -> None:
        self.changed = False
        self.restore(known or {}, next_aid)

    def restore(self, known: dict[str, int], next_aid: int) -> None:
        """Take the map as saved; the next id is past every one handed out, whatever the
        file said."""
        self.known = dict(known)
        self.next = max(next_aid, FIRST_AID, *(aid + 1 for aid in self.known.values()))

    def __call__(self, key: str) -> int:
        aid = self.known.get(key)
        if aid is None:
            aid = self.known[key] = self.next
            self.next += 1
            self.changed = True
        return aid


class PinpanelEncoder(AccessoryEncoder):  # type: ignore[misc]
    """HAP-python's encoder plus the setup code, the setup id and the accessory ids."""

    def __init__(self, aids: AccessoryIds, names: dict[str, str] | None = None) -> None:
        self.aids = aids
        #: An admin's names of paired controllers ("Anna's home"), by pairing id: HAP
        #: itself carries none, and the history names who switched a pin with them.
        self.names = names if names is not None else {}

    def persist(self, fp: TextIO, state: State) -> None:
        buffer = io.StringIO()
        AccessoryEncoder.persist(buffer, state)
        data: dict[str, Any] = json.loads(buffer.getvalue())
        data["pincode"] = state.pincode.decode("ascii")
        data["setup_id"] = state.setup_id
        data["pinpanel_aids"] = self.aids.known
        data["pinpanel_next_aid"] = self.aids.next
        data["pinpanel_names"] = {k: v for k, v in self.names.items()
                                  if k in data["paired_clients"]}
        json.dump(data, fp)
        self.aids.changed = False

    def load_into(self, fp: TextIO, state: State) -> None:
        text = fp.read()
        AccessoryEncoder.load_into(io.StringIO(text), state)
        data = json.loads(text)
        state.pincode = data["pincode"].encode("ascii")
        state.setup_id = data["setup_id"]
        self.aids.restore({str(k): int(v) for k, v in data.get("pinpanel_aids", {}).items()},
                          int(data.get("pinpanel_next_aid", FIRST_AID)))
        self.names.clear()
        self.names.update({str(k): str(v) for k, v in data.get("pinpanel_names", {}).items()})


def saved_code(path: Path) -> bytes | None:
    """The setup code a state file holds, so the driver starts with it (None: a first start).

    A file readable by others (copied by hand, restored from a backup) is narrowed to 0600:
    it holds the bridge's private key and the code that pairs a phone with the relays.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o); narrowed to 0600", path, mode)
        path.chmod(0o600)
    code = data.get("pincode")
    return code.encode("ascii") if isinstance(code, str) else None


def setup_uri(code: bytes, setup_id: str, category: int) -> str:
    """The ``X-HM://`` payload an iPhone's camera reads off the setup QR code.

    45 bits, base 36 in nine characters, then the setup id: version (3 bits, 0), reserved
    (4), the accessory category (8), flags (4; 2 is "pairs over IP") and the code as a
    number (27), as the HomeKit Accessory Protocol's setup payload lays them out.
    """
    number = int(code.replace(b"-", b""), 10)
    payload = ((((0 << 4 | 0) << 8 | category & 0xFF) << 4 | 2) << 27) | (number & 0x7FFFFFF)
    digits = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    text = ""
    while payload:
        payload, rest = divmod(payload, 36)
        text = digits[rest] + text
    return "X-HM://" + text.rjust(9, "0") + setup_id
