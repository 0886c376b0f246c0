"""The fleet's vocabulary on the broker: what a pinpanel says about itself and how it answers.

A leaf shared by the two sides of one conversation that must never import each other: the
Pi's MQTT bridge (:mod:`pinpanel.mqtt`), which publishes, and the hub (:mod:`pinpanel.hub`),
which listens and commands. Keeping the words here, and only here, means the two cannot
drift apart.

Per device (``<base>`` as in :mod:`pinpanel.mqtt.topics`):

==========================  ========  =====================================================
topic                       retained  payload
==========================  ========  =====================================================
``<base>/device``           yes       JSON: who this Pi is (name, device id, version, page
                                      URL, pins, sensors, groups); see :data:`DEVICE_KEYS`
``<base>/refresh``          no        anything: the Pi publishes everything again
``<base>/result``           no        JSON: the answer to a command that carried an ``id``
``pinpanel/fleet/refresh``  no        anything: every Pi publishes everything again
==========================  ========  =====================================================

A hub never depends on retained messages alone: a clustered broker may not replicate them
between its nodes, and a hub started later asks the whole fleet for a refresh instead.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from typing import Final, Literal

DEVICE: Final = "device"
REFRESH: Final = "refresh"
RESULT: Final = "result"
STATUS: Final = "status"
ATTRIBUTES: Final = "attributes"
STATE: Final = "state"
SET: Final = "set"
GROUP: Final = "group"
ONLINE: Final = "online"
OFFLINE: Final = "offline"
#: One topic every pinpanel listens on: a refresh request to the whole fleet at once.
FLEET_REFRESH: Final = "pinpanel/fleet/refresh"
#: Where the hub looks for devices by default: every ``pinpanel/<device id>`` base.
DEFAULT_BASES: Final = "pinpanel/+"
#: Version of the ``<base>/device`` message's shape; a hub shows newer ones as best it can.
DEVICE_SCHEMA: Final = 1
#: What ``<base>/device`` holds.
DEVICE_KEYS: Final = ("schema", "device_id", "name", "version", "url", "base", "pins",
                      "sensors", "groups")
#: The longest command id a Pi echoes back (an id is a correlation token, not data).
MAX_ID: Final = 64

#: Why a command was refused, as the Pi says it on ``<base>/result``.
Refusal = Literal["unknown_pin", "unknown_group", "interlock", "input", "invalid",
                  "not_allowed", "busy", "store", "error"]
REFUSALS: Final[dict[str, str]] = {
    "unknown_pin": "no such pin on this Pi",
    "unknown_group": "no such group on this Pi",
    "interlock": "an interlock forbids it",
    "input": "the pin is an input",
    "invalid": "the command is not valid for this pin",
    "not_allowed": "this command is not allowed",
    "busy": "too many commands in progress",
    "store": "the Pi could not record the change",
    "error": "the Pi failed to apply it",
}


def device_topic(base: str) -> str:
    return f"{base}/{DEVICE}"


def refresh_topic(base: str) -> str:
    return f"{base}/{REFRESH}"


def result_topic(base: str) -> str:
    return f"{base}/{RESULT}"


def command_topic(base: str, pin_id: str) -> str:
    return f"{base}/{pin_id}/{SET}"


def group_command_topic(base: str, group_id: str) -> str:
    return f"{base}/{GROUP}/{group_id}/{SET}"


#: DNS-SD service types every pinpanel announces on the LAN (mDNS), and the TXT keys it sets.
PINPANEL_SERVICE: Final = "_pinpanel._tcp.local."
HTTP_SERVICE: Final = "_http._tcp.local."
TXT_KEYS: Final = ("device_id", "version", "path", "base")


def mdns_interfaces(configured: Sequence[str], listen_host: str) -> list[str] | None:
    """The IPv4 interfaces mDNS speaks on, for the announcer and the hub's browser alike.

    Those ``[mdns] interfaces`` names; else the one the web server listens on, so a server
    on 127.0.0.1 (a laptop, a test) is announced on loopback only, where it can be reached,
    and never multicasts onto a network that could not reach it; else (``0.0.0.0``, a host
    name) every interface, which None means.
    """
    if configured:
        return list(configured)
    try:
        address = ipaddress.ip_address(listen_host)
    except ValueError:
        return None
    if address.is_unspecified:
        return None
    if address.version == 6:
        return ["127.0.0.1"] if address.is_loopback else None
    return [str(address)]
