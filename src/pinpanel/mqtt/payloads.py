"""What a message on ``<base>/<pin>/set`` may say, parsed strictly.

Plain words (any case, surrounding white space ignored): ``ON``, ``OFF``, ``TOGGLE`` and
``PULSE`` (on, then off after the pin's ``pulse_ms``, 500 ms when unset). JSON objects, for
code that builds payloads: ``{"state": "ON"}`` (``ON``/``OFF``/``TOGGLE``, or ``true``/
``false``) and ``{"pulse_ms": 500}``. Anything else raises :class:`MqttPayloadError`; the
bridge logs it and ignores the message. Home Assistant's switch sends ``ON``/``OFF``.

A JSON command may also carry ``"id"`` (a string of up to 64 printable characters, e.g.
``{"id": "c42", "state": "OFF"}``): the Pi then answers on ``<base>/result`` with that id
(:mod:`pinpanel.fleetwire`), which is how a hub confirms each command per Pi. A plain word
never gets an answer, so existing scripts see nothing new.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pinpanel.board import Action
from pinpanel.config import PULSE_MAX_MS
from pinpanel.errors import MqttPayloadError
from pinpanel.fleetwire import MAX_ID

#: A command payload longer than this is not a command (and is not worth parsing).
MAX_PAYLOAD = 256
_WORDS: dict[str, Action] = {"ON": "on", "OFF": "off", "TOGGLE": "toggle"}


@dataclass(frozen=True, slots=True)
class Command:
    """One parsed command: switch (``action``) or pulse (``pulse`` with optional ``ms``)."""

    action: Action = "on"
    pulse: bool = False
    pulse_ms: int | None = None
    #: The sender's correlation id: answer on ``<base>/result`` (None: answer nothing).
    id: str | None = None


def _shown(payload: bytes) -> str:
    text = repr(payload[:40])
    return text + ("..." if len(payload) > 40 else "")


def parse_command(payload: bytes) -> Command:
    """Parse a command payload; :class:`MqttPayloadError` names what is wrong."""
    if len(payload) > MAX_PAYLOAD:
        raise MqttPayloadError(f"payload of {len(payload)} bytes is too long for a command")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise MqttPayloadError(f"payload {_shown(payload)} is not UTF-8 text") from None
    word = text.upper()
    if word in _WORDS:
        return Command(action=_WORDS[word])
    if word == "PULSE":
        return Command(pulse=True)
    if not text.startswith("{"):
        raise MqttPayloadError(f"unknown command {_shown(payload)}; expected ON, OFF, TOGGLE, "
                               "PULSE or a JSON object")
    try:
        body = json.loads(text)
    except ValueError:
        raise MqttPayloadError(f"payload {_shown(payload)} is not valid JSON") from None
    return _from_json(body, payload)


def command_id(payload: bytes) -> str | None:
    """The ``id`` of a JSON command, even one that is otherwise wrong (to answer it)."""
    if len(payload) > MAX_PAYLOAD or not payload.lstrip().startswith(b"{"):
        return None
    try:
        body = json.loads(payload)
    except ValueError:
        return None
    value = body.get("id") if isinstance(body, dict) else None
    return value if _valid_id(value) else None


def _valid_id(value: object) -> bool:
    return (isinstance(value, str) and 0 < len(value) <= MAX_ID and value.isprintable())


def _from_json(body: object, payload: bytes) -> Command:
    ident: str | None = None
    if isinstance(body, dict) and "id" in body:
        body = dict(body)
        raw = body.pop("id")
        if not _valid_id(raw):
            raise MqttPayloadError(f"id must be a string of 1 to {MAX_ID} printable "
                                   f"characters, got {raw!r}")
        ident = raw
    command = _one_key(body, payload)
    return command if ident is None else Command(command.action, command.pulse,
                                                 command.pulse_ms, ident)


def _one_key(body: object, payload: bytes) -> Command:
    if not isinstance(body, dict) or len(body) != 1:
        raise MqttPayloadError(f"JSON command {_shown(payload)} must be an object with exactly "
                               "one key, state or pulse_ms (besides an optional id)")
    (key, value), = body.items()
    if key == "state":
        if isinstance(value, bool):
            return Command(action="on" if value else "off")
        if isinstance(value, str) and value.strip().upper() in _WORDS:
            return Command(action=_WORDS[value.strip().upper()])
        raise MqttPayloadError(f"state must be ON, OFF, TOGGLE, true or false, got {value!r}")
    if key == "pulse_ms":
        if not isinstance(value, int) or isinstance(value, bool):
            raise MqttPayloadError(f"pulse_ms must be an integer, got {value!r}")
        if not 1 <= value <= PULSE_MAX_MS:
            raise MqttPayloadError(f"pulse_ms must be 1 to {PULSE_MAX_MS}, got {value}")
        return Command(pulse=True, pulse_ms=value)
    raise MqttPayloadError(f"unknown key {key!r} in JSON command; expected state or pulse_ms")


def parse_value(payload: bytes, kind: str) -> float | None:
    """The number on ``<base>/<pin>/level/set`` or ``/angle/set``.

    A level or angle as text (``0.4``, ``30``); on ``angle/set`` also ``null``, ``None`` or
    an empty payload: detach the servo. The range is the board's check, as for HTTP.
    """
    if len(payload) > MAX_PAYLOAD:
        raise MqttPayloadError(f"payload of {len(payload)} bytes is too long for a {kind}")
    try:
        text = payload.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise MqttPayloadError(f"payload {_shown(payload)} is not UTF-8 text") from None
    if kind == "angle" and text.lower() in ("", "null", "none"):
        return None
    try:
        number = float(text)
    except ValueError:
        raise MqttPayloadError(f"{kind} must be a number, got {_shown(payload)}") from None
    if number != number or number in (float("inf"), float("-inf")):
        raise MqttPayloadError(f"{kind} must be a finite number, got {_shown(payload)}")
    return number
