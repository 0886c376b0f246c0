"""TOML configuration -> one typed, frozen :class:`Config`, built once and passed down.

Every setting is declared once: a field of a section dataclass (:class:`ServerConfig`,
:class:`PinConfig`...) with its type, its default and, in ``metadata``, its help text, bounds
and command-line flag (see :mod:`pinpanel.settings`). The type says what TOML may hold (a
``Literal`` gives the choices, a ``tuple[str, ...]`` a list of strings). :data:`SETTINGS` and
:data:`PIN_SETTINGS` are read off those fields, and the loader, the CLI's flags,
``--help-settings`` and the README's reference table all come from them, so none of them can
drift from the dataclasses.

Validation runs in two passes, as mqtt-io does: the schema pass checks types, choices and
ranges of each value; the cross-field pass catches a pin claimed twice, duplicate ids and
interlocks naming pins that do not exist. The cross-field pass sees every pin the file
names, also those with problems of their own, so one run reports every problem, each once,
with its path (``pins[2].pin: expected an integer``), before any pin is touched.

With no file at all the defaults reproduce the tutorial: BCM 18, 23 and 24 as outputs.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Literal, get_args, get_type_hints
from urllib.parse import urlsplit

from pinpanel.errors import ConfigError
from pinpanel.rule_config import NotifierConfig, RuleConfig, load_notifiers, load_rule
from pinpanel.schedule_config import ScheduleConfig, load_schedules
from pinpanel.sensor_config import SENSOR_SETTINGS, SensorConfig, load_sensors
from pinpanel.settings import Setting, about, about_of, settings_of
from pinpanel.timezones import ZoneError, zone

Backend = Literal["auto", "lgpio", "rpigpio", "native", "pigpio", "simulated"]
OnExit = Literal["keep", "off", "release"]
Mode = Literal["output", "input", "pwm", "servo"]
MODE_NAMES: tuple[str, ...] = get_args(Mode)
#: How Home Assistant shows a pwm pin (light, fan) or a servo (number, valve, cover); empty
#: is the kind's default (light, number). Plain outputs and inputs take none.
HaType = Literal["", "light", "fan", "number", "valve", "cover"]
Initial = Literal["off", "on", "restore", "schedule"]
Pull = Literal["up", "down", "none"]

#: BCM numbers on the 40-pin header of every Pi since the B+ (GPIO 0-27).
BCM_PINS = range(28)
#: A pulse longer than an hour is almost certainly a typo (ms vs s); refuse it.
PULSE_MAX_MS = 3_600_000
AUTO_OFF_MAX_MS = 86_400_000
FADE_MAX_MS = 600_000
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TUTORIAL_PINS = (18, 23, 24)

def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the XDG state directory."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pinpanel"


@dataclass(frozen=True)
class PinConfig:
    """One configured pin. ``pin`` (BCM) and ``id`` are its two canonical identities."""

    pin: int = field(metadata=about(
        "BCM GPIO number (0-27). Required.", minimum=BCM_PINS.start, maximum=BCM_PINS.stop - 1))
    id: str = field(default="", metadata=about(
        "URL slug; default gpio<N>. Lowercase, starts with a letter."))
    name: str = field(default="", metadata=about(
        "Human name shown on the page; default GPIO <N>."))
    mode: Mode = field(default="output", metadata=about(
        "output (on/off), input, pwm (a level 0.0-1.0: dimming, fan speed) or servo "
        "(an angle, or detached)."))
    active_low: bool = field(default=False, metadata=about(
        "Logical on drives the line low (most relay boards)."))
    initial: Initial = field(default="restore", metadata=about(
        "Outputs at start: off, on, restore (the last committed state, off if none), or "
        "schedule (what its schedules say now: the latest on/off of the last day, else "
        "restore). The line is claimed directly at that level, with no glitch."))
    pull: Pull = field(default="up", metadata=about("Inputs: pull resistor up, down or none."))
    debounce_ms: int = field(default=0, metadata=about(
        "Inputs: ignore edges closer than this.", minimum=0, maximum=10_000))
    pulse_ms: int = field(default=0, metadata=about(
        "Outputs: default pulse length (0: 500 ms).", minimum=0, maximum=PULSE_MAX_MS))
    auto_off_ms: int = field(default=0, metadata=about(
        "Outputs: whatever turns it on, turn it off after this long (0: never).",
        minimum=0, maximum=AUTO_OFF_MAX_MS))
    frequency_hz: int = field(default=100, metadata=about(
        "pwm: PWM frequency. 100 suits LEDs; a motor or fan may want a few thousand "
        "(lgpio times PWM in software, up to 10 kHz).", minimum=1, maximum=10_000))
    min_level: float = field(default=0.0, metadata=about(
        "pwm: the lowest level above off (a fan that stalls below 0.3): a level between 0 "
        "and this is raised to it.", minimum=0.0, maximum=1.0))
    fade_ms: int = field(default=0, metadata=about(
        "pwm: on, off and toggle fade over this long (0: instant).",
        minimum=0, maximum=FADE_MAX_MS))
    min_angle: float = field(default=-90.0, metadata=about(
        "servo: the angle at min_pulse_ms.", minimum=-360.0, maximum=360.0))
    max_angle: float = field(default=90.0, metadata=about(
        "servo: the angle at max_pulse_ms.", minimum=-360.0, maximum=360.0))
    min_pulse_ms: float = field(default=1.0, metadata=about(
        "servo: the pulse width at min_angle.", minimum=0.1, maximum=10.0))
    max_pulse_ms: float = field(default=2.0, metadata=about(
        "servo: the pulse width at max_angle.", minimum=0.1, maximum=10.0))
    frame_ms: float = field(default=20.0, metadata=about(
        "servo: the time from one pulse to the next.", minimum=2.0, maximum=100.0))
    ha_type: HaType = field(default="", metadata=about(
        "Home Assistant entity: pwm pins light (default) or fan; servos number (default), "
        "valve or cover."))

    def __post_init__(self) -> None:
        # An empty id or name means the default derived from the BCM number.
        if not self.id:
            object.__setattr__(self, "id", f"gpio{self.pin}")
        if not self.name:
            object.__setattr__(self, "name", f"GPIO {self.pin}")

    @property
    def is_output(self) -> bool:
        """Any pin pinpanel drives: plain, pwm and servo outputs alike."""
        return self.mode != "input"

    @property
    def has_level(self) -> bool:
        return self.mode == "pwm"

    @property
    def has_angle(self) -> bool:
        return self.mode == "servo"


@dataclass(frozen=True)
class ServerConfig:
    host: str = field(default="0.0.0.0", metadata=about(
        "Address to listen on. 0.0.0.0 serves every network the Pi is on (phones on the "
        "LAN); 127.0.0.1 only this machine (behind a reverse proxy).", flag="--host"))
    port: int = field(default=8080, metadata=about(
        "TCP port to listen on.", minimum=1, maximum=65535, flag="--port"))
    data_dir: str = field(default="", metadata=about(
        "Directory for the state database (pin states, history, tokens). Empty means "
        "$STATE_DIRECTORY under systemd, else ~/.local/state/pinpanel.", flag="--data-dir"))
    certfile: str = field(default="", metadata=about(
        "PEM certificate: serve HTTPS directly.", flag="--certfile"))
    keyfile: str = field(default="", metadata=about(
        "PEM private key for certfile.", flag="--keyfile"))
    trusted_hosts: tuple[str, ...] = field(default=(), metadata=about(
        "Host names the server answers to (DNS-rebinding guard). Empty: any host name "
        "that is an IP address, localhost, or *.local / *.lan / *.home.arpa."))
    cors_origins: tuple[str, ...] = field(default=(), metadata=about(
        "Web origins (scheme://host:port) allowed to call the API from a browser. "
        "Empty: CORS off. Never '*'."))
    max_body_bytes: int = field(default=4096, metadata=about(
        "Largest request body accepted; larger gets 413.", minimum=64, maximum=1_048_576))
    forwarded_allow_ips: tuple[str, ...] = field(default=("127.0.0.1", "::1"), metadata=about(
        "Reverse proxies (IP addresses or networks such as 10.0.0.0/8) whose X-Forwarded-For, "
        "-Proto, -Host and Forwarded headers are believed: the client's address, https and "
        "the public host name. From any other peer those headers are ignored. Never every "
        "address by default."))
    public_url: str = field(default="", metadata=about(
        "The address people open, e.g. https://pins.example.org behind a reverse proxy; the "
        "first-login link and QR code use it. Empty: this machine's address and port."))

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()


@dataclass(frozen=True)
class GpioConfig:
    backend: Backend = field(default="auto", metadata=about(
        "GPIO backend. auto: the real pins when this machine has them (lgpio first), "
        "else the simulated board; on a Pi a failing backend is an error, never a "
        "silent switch to simulated pins."))
    chip: str = field(default="auto", metadata=about(
        "The GPIO chip lgpio drives: a number (\"4\" for /dev/gpiochip4), a /dev path, or a "
        "chip's label (pinctrl-bcm2835, pinctrl-bcm2711, pinctrl-rp1, or any label "
        "`gpiodetect` shows). auto: the Raspberry Pi's own GPIO chip, found by its label "
        "whatever its number (the Pi 5's was gpiochip4, later gpiochip0); two such chips "
        "are an error, never a guess."))
    on_exit: OnExit = field(default="keep", metadata=about(
        "What outputs do when pinpanel stops. keep: stay as they are (a restart does "
        "not flip relays); off: switched off; release: returned to inputs (floating)."))


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool = field(default=True, metadata=about(
        "Require a token or a login session. false restores the tutorial's open "
        "server, for a trusted network only.", flag="--no-auth",
        flag_help="serve without tokens or logins, as the tutorial's open server did: "
                  "anyone who can reach the port can switch pins. For a trusted network "
                  "only."))
    session_hours: int = field(default=720, metadata=about(
        "How long a browser login lasts.", minimum=1, maximum=24 * 365))
    login_attempts_per_minute: int = field(default=10, metadata=about(
        "Failed logins allowed per client address per minute.", minimum=1, maximum=1000))


@dataclass(frozen=True)
class HistoryConfig:
    max_age_days: int = field(default=90, metadata=about(
        "Audit rows older than this are trimmed (0 keeps them by count only).",
        minimum=0, maximum=36500))
    max_rows: int = field(default=100_000, metadata=about(
        "At most this many audit rows are kept, so the SD card never fills.",
        minimum=100, maximum=100_000_000))


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = field(default=False, metadata=about("Run the MQTT bridge."))
    host: str = field(default="localhost", metadata=about("Broker host name."))
    port: int = field(default=1883, metadata=about(
        "Broker port (8883 for TLS).", minimum=1, maximum=65535))
    username: str = field(default="", metadata=about("Broker user name."))
    #: ``repr=False`` keeps it out of reprs and logs, and marks the setting secret.
    password: str = field(default="", repr=False, metadata=about(
        "Broker password (never logged)."))
    tls: bool = field(default=False, metadata=about("Connect with TLS."))
    ca_file: str = field(default="", metadata=about("CA bundle for the broker's certificate."))
    certfile: str = field(default="", metadata=about("Client certificate (mutual TLS)."))
    keyfile: str = field(default="", metadata=about("Client key (mutual TLS)."))
    client_id: str = field(default="", metadata=about(
        "MQTT client id; empty: pinpanel-<device_id>."))
    device_id: str = field(default="", metadata=about(
        "This Pi's id in topics and Home Assistant; empty: the host name."))
    base_topic: str = field(default="", metadata=about(
        "Topic prefix; empty: pinpanel/<device_id>."))
    qos: int = field(default=1, metadata=about(
        "QoS of state and command topics.", minimum=0, maximum=2))
    keepalive: int = field(default=15, metadata=about(
        "Keep-alive in seconds.", minimum=5, maximum=3600))
    discovery: bool = field(default=True, metadata=about("Publish Home Assistant discovery."))
    discovery_prefix: str = field(default="homeassistant", metadata=about(
        "Home Assistant discovery prefix."))
    reconnect_max_s: int = field(default=60, metadata=about(
        "Longest wait between reconnect attempts.", minimum=1, maximum=3600))


@dataclass(frozen=True)
class LocationConfig:
    latitude: float = field(default=0.0, metadata=about(
        "Degrees north (negative: south), for sunrise, sunset, dawn and dusk schedules.",
        minimum=-90, maximum=90))
    longitude: float = field(default=0.0, metadata=about(
        "Degrees east (negative: west).", minimum=-180, maximum=180))
    timezone: str = field(default="", metadata=about(
        "IANA time zone of schedules' clock times, e.g. Europe/Berlin. Empty: the system's "
        "(/etc/localtime)."))


@dataclass(frozen=True)
class MdnsConfig:
    """``[mdns]``: announce this pinpanel on the LAN (needs the ``pinpanel[mdns]`` extra)."""

    enabled: bool = field(default=True, metadata=about(
        "Announce _pinpanel._tcp and _http._tcp over mDNS/DNS-SD (http://<host>.local:8080/), "
        "and let a hub list pinpanels found that way; off when zeroconf is not installed."))
    interfaces: tuple[str, ...] = field(default=(), metadata=about(
        "IPv4 addresses of the interfaces to announce and browse on. Empty: the one the "
        "server listens on (loopback only for 127.0.0.1), every interface for 0.0.0.0."))


@dataclass(frozen=True)
class HubConfig:
    """``[hub]``: one page over every pinpanel on the broker (``pinpanel hub`` turns it on)."""

    enabled: bool = field(default=False, metadata=about(
        "Serve the hub: /hub and /api/v1/hub/* over every pinpanel heard on the [mqtt] broker "
        "(this Pi's own pins need not be on MQTT)."))
    bases: str = field(default="pinpanel/+", metadata=about(
        "MQTT filter matching the fleet's base topics (one + for the device id)."))
    command_timeout_ms: int = field(default=5000, metadata=about(
        "How long a command waits for each Pi's answer before it says no answer.",
        minimum=100, maximum=60_000))
    bridge_topics: str = field(default="pinpanel/fleet/bridge/+", metadata=about(
        "MQTT filter of bridged sites' notification topics: when one changes, the hub asks "
        "the fleet to refresh and shows Pis that do not answer as unreachable."))
    probe_ms: int = field(default=3000, metadata=about(
        "How long the hub waits for the fleet's answers to such a refresh.",
        minimum=100, maximum=60_000))


@dataclass(frozen=True)
class GroupConfig:
    """``[[groups]]``: outputs switched together (``all`` is built in: every output)."""

    id: str
    name: str
    pins: tuple[int, ...]


@dataclass(frozen=True)
class SceneConfig:
    """``[[scenes]]``: a state for several outputs at once, applied in one commit.

    ``set`` holds (BCM, state) pairs in the order the file wrote them; a state is on/off
    (bool) or a pwm pin's level (float, 0 is off).
    """

    id: str
    name: str
    set: tuple[tuple[int, bool | float], ...]


#: The group every configuration has: every output.
ALL_GROUP = "all"


@dataclass(frozen=True)
class Config:
    """Everything pinpanel was told, validated. Built once, passed down, never mutated.

    Each field typed with a dataclass is a TOML section (``[server]``...), in this order.
    """

    server: ServerConfig = field(default_factory=ServerConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    location: LocationConfig = field(default_factory=LocationConfig)
    hub: HubConfig = field(default_factory=HubConfig)
    mdns: MdnsConfig = field(default_factory=MdnsConfig)
    pins: tuple[PinConfig, ...] = ()
    sensors: tuple[SensorConfig, ...] = ()
    interlocks: tuple[tuple[int, ...], ...] = field(default=(), metadata=about(
        "Outputs (BCM numbers or ids) never on together: turning one on turns the others "
        "off first."))
    groups: tuple[GroupConfig, ...] = ()
    scenes: tuple[SceneConfig, ...] = ()
    schedules: tuple[ScheduleConfig, ...] = ()
    rules: tuple[RuleConfig, ...] = ()
    notifiers: tuple[NotifierConfig, ...] = ()
    #: Whether ``[location]`` gave a latitude and longitude (sun schedules need them).
    located: bool = False
    source: str = "defaults"

    def group(self, group_id: str) -> GroupConfig | None:
        """A configured group by id, or the built-in ``all`` (every output)."""
        if group_id == ALL_GROUP and not any(g.id == ALL_GROUP for g in self.groups):
            return GroupConfig(ALL_GROUP, "All", tuple(p.pin for p in self.pins
                                                       if p.is_output))
        return next((g for g in self.groups if g.id == group_id), None)

    def all_groups(self) -> tuple[GroupConfig, ...]:
        """The configured groups, with the built-in ``all`` first unless one replaces it."""
        builtin = () if any(g.id == ALL_GROUP for g in self.groups) else (
            self.group(ALL_GROUP),)
        return tuple(g for g in (*builtin, *self.groups) if g is not None)

    def scene(self, scene_id: str) -> SceneConfig | None:
        return next((s for s in self.scenes if s.id == scene_id), None)


# -- the settings, read off the fields ----------------------------------------------------


def _sections() -> dict[str, type]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config) if is_dataclass(hints[f.name])}


_SECTIONS: dict[str, type] = _sections()

#: Every ``[section] key`` setting, in the order of the sections and their fields.
SETTINGS: tuple[Setting, ...] = tuple(
    setting for name, cls in _SECTIONS.items() for setting in settings_of(name, cls))
#: The keys of one ``[[pins]]`` table.
PIN_SETTINGS: tuple[Setting, ...] = settings_of("pins", PinConfig)

_BY_SECTION: dict[str, dict[str, Setting]] = {
    name: {s.name: s for s in SETTINGS if s.section == name} for name in _SECTIONS}
_PIN_KEYS: dict[str, Setting] = {s.name: s for s in PIN_SETTINGS}
_OUTPUT_ONLY = ("initial", "pulse_ms", "auto_off_ms")
_INPUT_ONLY = ("pull", "debounce_ms")
_PWM_ONLY = ("frequency_hz", "min_level", "fade_ms")
_SERVO_ONLY = ("min_angle", "max_angle", "min_pulse_ms", "max_pulse_ms", "frame_ms")
#: The keys each mode takes beyond the common ones (pin, id, name, mode, active_low).
_MODE_KEYS: dict[str, tuple[str, ...]] = {
    "output": _OUTPUT_ONLY, "input": _INPUT_ONLY,
    "pwm": (*_OUTPUT_ONLY, *_PWM_ONLY, "ha_type"),
    "servo": (*_OUTPUT_ONLY, *_SERVO_ONLY, "ha_type"),
}
_KEY_OWNERS: dict[str, str] = {
    **dict.fromkeys(_OUTPUT_ONLY, "outputs"), **dict.fromkeys(_INPUT_ONLY, "inputs"),
    **dict.fromkeys(_PWM_ONLY, "pwm pins"), **dict.fromkeys(_SERVO_ONLY, "servo pins"),
    "ha_type": "pwm and servo pins"}
_HA_TYPES: dict[str, tuple[str, ...]] = {"pwm": ("light", "fan"),
                                         "servo": ("number", "valve", "cover")}


def pin_keys(mode: str) -> tuple[str, ...]:
    """The keys a ``[[pins]]`` table of ``mode`` takes, in field order (the settings page
    and API offer these, so a new kind's settings come along with its declaration)."""
    own = _MODE_KEYS.get(mode, ())
    return tuple(s.name for s in PIN_SETTINGS if s.name not in _KEY_OWNERS or s.name in own)


def tutorial_pins() -> tuple[PinConfig, ...]:
    """The tutorial's three outputs, BCM 18, 23 and 24."""
    return tuple(PinConfig(pin=n) for n in TUTORIAL_PINS)


# -- the schema pass -------------------------------------------------------------------------


def _load_table(
    table: Mapping[str, Any], known: Mapping[str, Setting], path: str, problems: list[str]
) -> dict[str, Any]:
    """The valid values of one table; every other key is recorded as a problem."""
    values: dict[str, Any] = {}
    for key, value in table.items():
        setting = known.get(key)
        if setting is None:
            problems.append(f"{path}.{key}: unknown key (expected one of {', '.join(known)})")
            continue
        checked = setting.check(value, f"{path}.{key}", problems)
        if checked is not None:
            values[key] = checked
    return values


@dataclass(frozen=True)
class _PinDraft:
    """One ``[[pins]]`` table as far as it could be read.

    The cross-field pass works on drafts, not on valid pins only, so that a pin with a problem
    of its own is still counted for duplicates and still found by an interlock that names it.
    ``None`` means "unknown because that key has a problem already reported".
    """

    path: str
    bcm: int | None
    id: str | None
    id_given: bool  # False: the default gpio<N>
    mode: Mode | None
    config: PinConfig | None  # None when the table has any problem


def _load_pin(table: object, path: str, problems: list[str]) -> _PinDraft | None:
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table ([[pins]])")
        return None
    before = len(problems)
    values = _load_table(table, _PIN_KEYS, path, problems)
    if "pin" not in table:
        problems.append(f"{path}.pin: required (the BCM GPIO number)")
    bcm: int | None = values.get("pin")
    pin_id: str | None = None
    if values.get("id"):
        pin_id = values["id"]
        if not ID_PATTERN.match(values["id"]):
            problems.append(f"{path}.id: {values['id']!r} must be lowercase letters, digits, "
                            "- or _, starting with a letter (at most 32)")
    elif bcm is not None and ("id" not in table or "id" in values):
        pin_id = f"gpio{bcm}"  # the default (an id of the wrong type stays unknown)
    mode: Mode | None = None  # unknown when the mode itself is wrong
    if "mode" in values or "mode" not in table:
        mode = values.get("mode", "output")
        _check_mode_keys(table, values, mode, path, problems)
    config = PinConfig(**values) if len(problems) == before else None
    return _PinDraft(path, bcm, pin_id, bool(values.get("id")), mode, config)


def _check_mode_keys(table: Mapping[str, Any], values: Mapping[str, Any], mode: Mode,
                     path: str, problems: list[str]) -> None:
    """Keys of another mode, and the servo's ranges that must run the right way."""
    allowed = _MODE_KEYS[mode]
    for key in table:
        if key in _KEY_OWNERS and key not in allowed:
            problems.append(f"{path}.{key}: applies only to {_KEY_OWNERS[key]}")
    ha_type = values.get("ha_type", "")
    if ha_type and mode in _HA_TYPES and ha_type not in _HA_TYPES[mode]:
        problems.append(f"{path}.ha_type: a {mode} pin is one of "
                        f"{', '.join(_HA_TYPES[mode])}, got {ha_type!r}")
    if mode == "servo":
        lo_a, hi_a = values.get("min_angle", -90.0), values.get("max_angle", 90.0)
        if lo_a == hi_a:
            problems.append(f"{path}.max_angle: must differ from min_angle ({lo_a})")
        lo_p, hi_p = values.get("min_pulse_ms", 1.0), values.get("max_pulse_ms", 2.0)
        frame = values.get("frame_ms", 20.0)
        if lo_p >= hi_p:
            problems.append(f"{path}.max_pulse_ms: must be above min_pulse_ms ({lo_p}), "
                            f"got {hi_p}")
        if hi_p >= frame:
            problems.append(f"{path}.frame_ms: must be longer than max_pulse_ms ({hi_p}), "
                            f"got {frame}")


# -- the cross-field pass --------------------------------------------------------------------


def _check_duplicates(drafts: list[_PinDraft], problems: list[str]) -> None:
    seen_pin: dict[int, str] = {}
    seen_id: dict[str, _PinDraft] = {}
    for draft in drafts:
        if draft.bcm is not None:
            if draft.bcm in seen_pin:
                problems.append(f"{draft.path}.pin: BCM {draft.bcm} is already used by "
                                f"{seen_pin[draft.bcm]}")
            seen_pin.setdefault(draft.bcm, draft.path)
        if draft.id is not None:
            first = seen_id.setdefault(draft.id, draft)
            # Two default ids collide only when their BCM numbers do, reported just above.
            if first is not draft and (draft.id_given or first.id_given):
                problems.append(f"{draft.path}.id: {draft.id!r} is already used by "
                                f"{first.path}")


def _load_interlocks(
    raw: object, drafts: list[_PinDraft], problems: list[str]
) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list):
        problems.append("interlocks: expected an array of tables ([[interlocks]])")
        return ()
    # By the values the file wrote, also for pins with problems: those are reported at the
    # pin, not again as "not a configured pin" here. The first pin with a number or id wins
    # (a second one is reported as a duplicate).
    by_ref: dict[object, _PinDraft] = {}
    for draft in drafts:
        if draft.bcm is not None:
            by_ref.setdefault(draft.bcm, draft)
        if draft.id is not None:
            by_ref.setdefault(draft.id, draft)
    groups: list[tuple[int, ...]] = []
    for i, entry in enumerate(raw):
        path = f"interlocks[{i}]"
        if not isinstance(entry, dict) or set(entry) != {"pins"}:
            problems.append(f"{path}: expected a table with exactly one key, pins")
            continue
        refs = entry["pins"]
        if not isinstance(refs, list) or len(refs) < 2:
            problems.append(f"{path}.pins: expected a list of at least two pins")
            continue
        group: list[int] = []
        listed: list[_PinDraft] = []
        for j, ref in enumerate(refs):
            valid = isinstance(ref, int | str) and not isinstance(ref, bool)
            target = by_ref.get(ref) if valid else None
            name = target.bcm if target is not None and target.bcm is not None else ref
            if target is None:
                problems.append(f"{path}.pins[{j}]: {ref!r} is not a configured pin")
            elif any(target is seen for seen in listed):
                problems.append(f"{path}.pins[{j}]: pin {name} is listed twice")
            elif target.mode == "input":
                problems.append(f"{path}.pins[{j}]: pin {name} is an input; "
                                "interlocks hold outputs")
            elif target.config is not None:
                group.append(target.config.pin)
            if target is not None:
                listed.append(target)
        groups.append(tuple(group))
    return tuple(groups)


def _pin_index(drafts: list[_PinDraft]) -> dict[object, _PinDraft]:
    """Pins by the BCM numbers and ids the file wrote (the first one wins)."""
    by_ref: dict[object, _PinDraft] = {}
    for draft in drafts:
        if draft.bcm is not None:
            by_ref.setdefault(draft.bcm, draft)
        if draft.id is not None:
            by_ref.setdefault(draft.id, draft)
    return by_ref


def _output_ref(ref: object, by_ref: dict[object, _PinDraft], path: str,
                problems: list[str]) -> int | None:
    """The BCM number of an output named by ``ref``; a problem recorded otherwise."""
    valid = isinstance(ref, int | str) and not isinstance(ref, bool)
    target = by_ref.get(ref) if valid else None
    if target is None:
        problems.append(f"{path}: {ref!r} is not a configured pin")
        return None
    if target.mode == "input":
        problems.append(f"{path}: pin {target.bcm} is an input; only outputs can be switched")
        return None
    return target.config.pin if target.config is not None else None


def _named_table(entry: object, path: str, keys: set[str], required: set[str],
                 seen: set[str], problems: list[str]) -> dict[str, Any] | None:
    """A ``[[groups]]`` / ``[[scenes]]`` table with a valid, unique ``id``."""
    if not isinstance(entry, dict):
        problems.append(f"{path}: expected a table")
        return None
    for key in entry:
        if key not in keys:
            problems.append(f"{path}.{key}: unknown key (expected one of "
                            f"{', '.join(sorted(keys))})")
    for key in sorted(required - set(entry)):
        problems.append(f"{path}.{key}: required")
    ident = entry.get("id")
    if "id" in entry and (not isinstance(ident, str) or not ID_PATTERN.match(ident)):
        problems.append(f"{path}.id: {ident!r} must be lowercase letters, digits, - or _, "
                        "starting with a letter (at most 32)")
        return None
    if isinstance(ident, str):
        if ident in seen:
            problems.append(f"{path}.id: {ident!r} is already used")
            return None
        seen.add(ident)
    name = entry.get("name", ident)
    if not isinstance(name, str):
        problems.append(f"{path}.name: expected a string")
        return None
    return entry if required <= set(entry) else None


def _load_groups(raw: object, drafts: list[_PinDraft],
                 problems: list[str]) -> tuple[GroupConfig, ...]:
    if not isinstance(raw, list):
        problems.append("groups: expected an array of tables ([[groups]])")
        return ()
    by_ref, seen, groups = _pin_index(drafts), set[str](), []
    for i, entry in enumerate(raw):
        path = f"groups[{i}]"
        table = _named_table(entry, path, {"id", "name", "pins"}, {"id", "pins"}, seen,
                             problems)
        if table is None:
            continue
        refs = table["pins"]
        if not isinstance(refs, list) or not refs:
            problems.append(f"{path}.pins: expected a list of at least one pin")
            continue
        pins = [_output_ref(ref, by_ref, f"{path}.pins[{j}]", problems)
                for j, ref in enumerate(refs)]
        found = tuple(dict.fromkeys(p for p in pins if p is not None))
        groups.append(GroupConfig(table["id"], table.get("name") or table["id"], found))
    return tuple(groups)


def _load_scenes(raw: object, drafts: list[_PinDraft], interlocks: tuple[tuple[int, ...], ...],
                 problems: list[str]) -> tuple[SceneConfig, ...]:
    if not isinstance(raw, list):
        problems.append("scenes: expected an array of tables ([[scenes]])")
        return ()
    by_ref, seen, scenes = _pin_index(drafts), set[str](), []
    for i, entry in enumerate(raw):
        path = f"scenes[{i}]"
        table = _named_table(entry, path, {"id", "name", "set"}, {"id", "set"}, seen, problems)
        if table is None:
            continue
        wanted = table["set"]
        if not isinstance(wanted, dict) or not wanted:
            problems.append(f"{path}.set: expected a table of pin = state, e.g. "
                            "{ porch = \"on\", hall = false }")
            continue
        pairs: dict[int, bool | float] = {}
        for ref, value in wanted.items():
            key = int(ref) if ref.isdecimal() else ref
            bcm = _output_ref(key, by_ref, f"{path}.set.{ref}", problems)
            state: bool | float | None = (
                value if isinstance(value, bool) else
                {"on": True, "off": False}.get(value) if isinstance(value, str) else
                float(value) if isinstance(value, int | float) else None)
            target = by_ref.get(key)
            if isinstance(state, float) and target is not None and target.config is not None \
                    and (not target.config.has_level or not 0.0 <= state <= 1.0):
                problems.append(f"{path}.set.{ref}: a level (0.0 to 1.0) needs a pwm pin; "
                                f"got {value!r}")
                state = None
            elif state is None:
                problems.append(f"{path}.set.{ref}: expected \"on\", \"off\", true, false or "
                                f"a pwm level 0.0-1.0, got {value!r}")
            if state is not None and bcm is not None:
                if bcm in pairs:
                    problems.append(f"{path}.set.{ref}: pin {bcm} is set twice")
                pairs[bcm] = state
        for group in interlocks:
            on = [bcm for bcm in group if pairs.get(bcm)]
            if len(on) > 1:
                problems.append(f"{path}.set: pins {', '.join(map(str, on))} are interlocked; "
                                "a scene can turn on only one of them")
        scenes.append(SceneConfig(table["id"], table.get("name") or table["id"],
                                  tuple(pairs.items())))
    return tuple(scenes)


def _check_server(server: ServerConfig, problems: list[str]) -> None:
    """Values whose form a type cannot say: proxy addresses and the public URL."""
    for i, entry in enumerate(server.forwarded_allow_ips):
        try:
            ipaddress.ip_network(entry.strip(), strict=False)
        except ValueError:
            problems.append(f"server.forwarded_allow_ips[{i}]: {entry!r} is not an IP address "
                            "or network (e.g. 10.0.0.0/8); to trust every peer, which lets "
                            "anyone set their own address, write 0.0.0.0/0 and ::/0")
    if server.public_url:
        url = urlsplit(server.public_url)
        if url.scheme not in ("http", "https") or not url.hostname or url.query or \
                url.fragment or url.path not in ("", "/"):
            problems.append(f"server.public_url: {server.public_url!r} must be http(s)://host"
                            "[:port], e.g. https://pins.example.org")


def _check_gpio(gpio: GpioConfig, problems: list[str]) -> None:
    """A chip is chosen for lgpio only; the register-based backends cannot use one."""
    if not gpio.chip.strip():
        problems.append('gpio.chip: must not be empty (auto, a number, a /dev path or a label)')
    elif gpio.chip != "auto" and gpio.backend in ("rpigpio", "pigpio", "native"):
        problems.append(f"gpio.chip: {gpio.chip!r} applies to the lgpio backend (and auto); "
                        f"{gpio.backend} drives the Pi's own GPIO registers, whatever the chip")


def parse(data: Mapping[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    allowed = {*_SECTIONS, "pins", "interlocks", "sensors", "groups", "scenes", "schedules",
               "rules", "notifiers"}
    for key in data:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            problems.append(f"{key}: unknown section (expected one of {expected})")
    sections: dict[str, Any] = {}
    for name, cls in _SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table")
            table = {}
        sections[name] = cls(**_load_table(table, _BY_SECTION[name], name, problems))

    drafts: list[_PinDraft]
    if "pins" in data:
        raw_pins = data["pins"]
        if not isinstance(raw_pins, list):
            problems.append("pins: expected an array of tables ([[pins]])")
            raw_pins = None
        elif not raw_pins:
            problems.append("pins: at least one pin is needed")
        loaded = [_load_pin(t, f"pins[{i}]", problems) for i, t in enumerate(raw_pins or ())]
        drafts = [d for d in loaded if d is not None]
    else:
        drafts = [_PinDraft(f"pins[{i}]", p.pin, p.id, False, p.mode, p)
                  for i, p in enumerate(tutorial_pins())]
    _check_duplicates(drafts, problems)
    _check_server(sections["server"], problems)
    _check_gpio(sections["gpio"], problems)
    interlocks = (_load_interlocks(data["interlocks"], drafts, problems)
                  if "interlocks" in data else ())
    sensors = (load_sensors(data["sensors"],
                            {d.bcm: d.path for d in drafts if d.bcm is not None},
                            {d.id for d in drafts if d.id is not None}, problems)
               if "sensors" in data else ())
    groups = _load_groups(data["groups"], drafts, problems) if "groups" in data else ()
    scenes = (_load_scenes(data["scenes"], drafts, interlocks, problems)
              if "scenes" in data else ())
    location = data.get("location")
    located = isinstance(location, dict) and {"latitude", "longitude"} <= set(location)
    _check_timezone(sections["location"], problems)
    schedules: tuple[ScheduleConfig, ...] = ()
    if "schedules" in data:
        by_ref = _pin_index(drafts)
        schedules = load_schedules(
            data["schedules"], resolve=lambda ref, path: _output_ref(ref, by_ref, path, problems),
            groups={g.id for g in groups} | {ALL_GROUP}, scenes={s.id for s in scenes},
            problems=problems)
        modes = {d.config.pin: d.config for d in drafts if d.config is not None}
        for i, schedule in enumerate(schedules):
            for bcm in schedule.pins if schedule.action == "level" else ():
                if bcm in modes and not modes[bcm].has_level:
                    problems.append(f"schedules[{i}].pins: pin {bcm} is not a pwm pin; a "
                                    "level needs one")
            moment = schedule.moment
            if moment is not None and moment.event is not None and not located:
                problems.append(f"schedules[{i}].at: {schedule.at!r} needs [location] latitude "
                                "and longitude")
    notifiers = load_notifiers(data["notifiers"], problems) if "notifiers" in data else ()
    rules = _load_rules(data["rules"], drafts, groups, scenes, sensors, schedules, notifiers,
                        problems) if "rules" in data else ()
    if problems:
        raise ConfigError(problems, source)
    pins = tuple(d.config for d in drafts if d.config is not None)
    return Config(pins=pins, interlocks=interlocks, sensors=sensors, groups=groups,
                  scenes=scenes, schedules=schedules, rules=rules, notifiers=notifiers,
                  located=located, source=source, **sections)


def _load_rules(raw: object, drafts: list[_PinDraft], groups: tuple[GroupConfig, ...],
                scenes: tuple[SceneConfig, ...], sensors: tuple[SensorConfig, ...],
                schedules: tuple[ScheduleConfig, ...], notifiers: tuple[NotifierConfig, ...],
                problems: list[str]) -> tuple[RuleConfig, ...]:
    if not isinstance(raw, list):
        problems.append("rules: expected an array of tables ([[rules]])")
        return ()
    by_ref = _pin_index(drafts)

    def any_pin(ref: object, path: str) -> int | None:
        valid = isinstance(ref, int | str) and not isinstance(ref, bool)
        target = by_ref.get(ref) if valid else None
        if target is None:
            problems.append(f"{path}: {ref!r} is not a configured pin")
            return None
        return target.bcm

    found: list[RuleConfig] = []
    for i, table in enumerate(raw):
        rule = load_rule(
            table, f"rules[{i}]", resolve=lambda ref, path: _output_ref(ref, by_ref, path,
                                                                        problems),
            resolve_any=any_pin, groups={g.id for g in groups} | {ALL_GROUP},
            scenes={s.id for s in scenes}, sensors={s.id for s in sensors},
            schedules={s.id for s in schedules}, notifiers={n.id for n in notifiers},
            problems=problems)
        if rule is None:
            continue
        if any(r.id == rule.id for r in found):
            problems.append(f"rules[{i}].id: {rule.id!r} is already used")
            continue
        found.append(rule)
    return tuple(found)


def _check_timezone(location: LocationConfig, problems: list[str]) -> None:
    if not location.timezone:
        return
    try:
        zone(location.timezone)
    except ZoneError as exc:
        problems.append(f"location.timezone: {exc}")


def load(path: str | os.PathLike[str] | None) -> Config:
    """Read and validate a TOML file; ``None`` gives the tutorial's defaults."""
    if path is None:
        return parse({}, "defaults")
    source = str(path)
    try:
        with Path(path).open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(["file not found"], source) from None
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], source) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"not valid TOML: {exc}"], source) from None
    return parse(data, source)


def with_overrides(config: Config, **overrides: Any) -> Config:
    """Apply CLI overrides such as ``server.port=9000``; ``None`` means "not given"."""
    sections: dict[str, dict[str, Any]] = {}
    for key, value in overrides.items():
        if value is None:
            continue
        section, name = key.split("__", 1)
        sections.setdefault(section, {})[name] = value
    changes = {name: replace(getattr(config, name), **values) for name, values in sections.items()}
    return replace(config, **changes)


def settings_reference() -> str:
    """A Markdown table of every setting, for ``--help-settings`` and the README."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for setting in (*SETTINGS, *PIN_SETTINGS, *SENSOR_SETTINGS):
        lines.append(setting.reference_row(setting.key.replace("pins.", "[[pins]] ")
                                           .replace("sensors.", "[[sensors]] ")))
    interlocks = next(f for f in fields(Config) if f.name == "interlocks")
    lines.append(f"| `[[interlocks]] pins` | | {about_of(interlocks).help} |")
    return "\n".join(lines)
