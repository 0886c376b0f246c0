"""TOML configuration -> one typed, frozen :class:`Config`, built once and passed down.

Every setting is declared once, in :data:`SETTINGS` and :data:`PIN_SETTINGS`, with its type,
default, bounds and help text. The loader, the CLI's ``--help-settings`` and the README's
reference table are all derived from those declarations, so they cannot drift apart.

Validation runs in two passes, as mqtt-io does: the schema pass checks types, choices and
ranges of each value; the cross-field pass catches a pin claimed twice, duplicate ids and
interlocks naming pins that do not exist. Every problem is collected with its path
(``pins[2].pin: expected an integer``) and reported together, before any pin is touched.

With no file at all the defaults reproduce the tutorial: BCM 18, 23 and 24 as outputs.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

from pinpanel.errors import ConfigError

Backend = Literal["auto", "lgpio", "rpigpio", "native", "pigpio", "simulated"]
OnExit = Literal["keep", "off", "release"]
Mode = Literal["output", "input"]
Initial = Literal["off", "on", "restore"]
Pull = Literal["up", "down", "none"]

#: BCM numbers on the 40-pin header of every Pi since the B+ (GPIO 0-27).
BCM_PINS = range(28)
#: A pulse longer than an hour is almost certainly a typo (ms vs s); refuse it.
PULSE_MAX_MS = 3_600_000
AUTO_OFF_MAX_MS = 86_400_000
ID_PATTERN = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
TUTORIAL_PINS = (18, 23, 24)


@dataclass(frozen=True)
class Setting:
    """One configuration value: where it lives, what it may hold, and why it exists."""

    key: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: int | None = None
    maximum: int | None = None
    flag: str | None = None
    secret: bool = False

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]


def default_data_dir() -> Path:
    """systemd's StateDirectory when run as a service, else the XDG state directory."""
    if state := os.environ.get("STATE_DIRECTORY"):
        return Path(state.split(":")[0])
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "pinpanel"


SETTINGS: tuple[Setting, ...] = (
    Setting("server.host", str, "0.0.0.0",
            "Address to listen on. 0.0.0.0 serves every network the Pi is on (phones on the "
            "LAN); 127.0.0.1 only this machine (behind a reverse proxy).", flag="--host"),
    Setting("server.port", int, 8080, "TCP port to listen on.", minimum=1, maximum=65535,
            flag="--port"),
    Setting("server.data_dir", str, "",
            "Directory for the state database (pin states, history, tokens). Empty means "
            "$STATE_DIRECTORY under systemd, else ~/.local/state/pinpanel.", flag="--data-dir"),
    Setting("server.certfile", str, "", "PEM certificate: serve HTTPS directly.",
            flag="--certfile"),
    Setting("server.keyfile", str, "", "PEM private key for certfile.", flag="--keyfile"),
    Setting("server.trusted_hosts", list, [],
            "Host names the server answers to (DNS-rebinding guard). Empty: any host name "
            "that is an IP address, localhost, or *.local / *.lan / *.home.arpa."),
    Setting("server.cors_origins", list, [],
            "Web origins (scheme://host:port) allowed to call the API from a browser. "
            "Empty: CORS off. Never '*'."),
    Setting("server.max_body_bytes", int, 4096,
            "Largest request body accepted; larger gets 413.", minimum=64, maximum=1_048_576),
    Setting("gpio.backend", str, "auto",
            "GPIO backend. auto: the real pins when this machine has them (lgpio first), "
            "else the simulated board; on a Pi a failing backend is an error, never a "
            "silent switch to simulated pins.",
            choices=("auto", "lgpio", "rpigpio", "native", "pigpio", "simulated")),
    Setting("gpio.on_exit", str, "keep",
            "What outputs do when pinpanel stops. keep: stay as they are (a restart does "
            "not flip relays); off: switched off; release: returned to inputs (floating).",
            choices=("keep", "off", "release")),
    Setting("auth.enabled", bool, True,
            "Require a token or a login session. false restores the tutorial's open "
            "server, for a trusted network only.", flag="--no-auth"),
    Setting("auth.session_hours", int, 720, "How long a browser login lasts.",
            minimum=1, maximum=24 * 365),
    Setting("auth.login_attempts_per_minute", int, 10,
            "Failed logins allowed per client address per minute.", minimum=1, maximum=1000),
    Setting("history.max_age_days", int, 90,
            "Audit rows older than this are trimmed (0 keeps them by count only).",
            minimum=0, maximum=36500),
    Setting("history.max_rows", int, 100_000,
            "At most this many audit rows are kept, so the SD card never fills.",
            minimum=100, maximum=100_000_000),
    Setting("mqtt.enabled", bool, False, "Run the MQTT bridge."),
    Setting("mqtt.host", str, "localhost", "Broker host name."),
    Setting("mqtt.port", int, 1883, "Broker port (8883 for TLS).", minimum=1, maximum=65535),
    Setting("mqtt.username", str, "", "Broker user name."),
    Setting("mqtt.password", str, "", "Broker password (never logged).", secret=True),
    Setting("mqtt.tls", bool, False, "Connect with TLS."),
    Setting("mqtt.ca_file", str, "", "CA bundle for the broker's certificate."),
    Setting("mqtt.certfile", str, "", "Client certificate (mutual TLS)."),
    Setting("mqtt.keyfile", str, "", "Client key (mutual TLS)."),
    Setting("mqtt.client_id", str, "", "MQTT client id; empty: pinpanel-<device_id>."),
    Setting("mqtt.device_id", str, "",
            "This Pi's id in topics and Home Assistant; empty: the host name."),
    Setting("mqtt.base_topic", str, "", "Topic prefix; empty: pinpanel/<device_id>."),
    Setting("mqtt.qos", int, 1, "QoS of state and command topics.", minimum=0, maximum=2),
    Setting("mqtt.keepalive", int, 15, "Keep-alive in seconds.", minimum=5, maximum=3600),
    Setting("mqtt.discovery", bool, True, "Publish Home Assistant discovery."),
    Setting("mqtt.discovery_prefix", str, "homeassistant", "Home Assistant discovery prefix."),
    Setting("mqtt.reconnect_max_s", int, 60, "Longest wait between reconnect attempts.",
            minimum=1, maximum=3600),
)

PIN_SETTINGS: tuple[Setting, ...] = (
    Setting("pins.pin", int, None, "BCM GPIO number (0-27). Required.", minimum=0, maximum=27),
    Setting("pins.id", str, "", "URL slug; default gpio<N>. Lowercase, starts with a letter."),
    Setting("pins.name", str, "", "Human name shown on the page; default GPIO <N>."),
    Setting("pins.mode", str, "output", "output or input.", choices=("output", "input")),
    Setting("pins.active_low", bool, False,
            "Logical on drives the line low (most relay boards)."),
    Setting("pins.initial", str, "restore",
            "Outputs at start: off, on, or restore (the last committed state, off if none). "
            "The line is claimed directly at that level, with no glitch.",
            choices=("off", "on", "restore")),
    Setting("pins.pull", str, "up", "Inputs: pull resistor up, down or none.",
            choices=("up", "down", "none")),
    Setting("pins.debounce_ms", int, 0, "Inputs: ignore edges closer than this.",
            minimum=0, maximum=10_000),
    Setting("pins.pulse_ms", int, 0, "Outputs: default pulse length (0: 500 ms).",
            minimum=0, maximum=PULSE_MAX_MS),
    Setting("pins.auto_off_ms", int, 0,
            "Outputs: whatever turns it on, turn it off after this long (0: never).",
            minimum=0, maximum=AUTO_OFF_MAX_MS),
)

_OUTPUT_ONLY = ("initial", "pulse_ms", "auto_off_ms")
_INPUT_ONLY = ("pull", "debounce_ms")


@dataclass(frozen=True)
class PinConfig:
    """One configured pin. ``pin`` (BCM) and ``id`` are its two canonical identities."""

    pin: int
    id: str
    name: str
    mode: Mode = "output"
    active_low: bool = False
    initial: Initial = "restore"
    pull: Pull = "up"
    debounce_ms: int = 0
    pulse_ms: int = 0
    auto_off_ms: int = 0

    @property
    def is_output(self) -> bool:
        return self.mode == "output"


@dataclass(frozen=True)
class ServerConfig:
    host: str = "0.0.0.0"
    port: int = 8080
    data_dir: str = ""
    certfile: str = ""
    keyfile: str = ""
    trusted_hosts: tuple[str, ...] = ()
    cors_origins: tuple[str, ...] = ()
    max_body_bytes: int = 4096

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).expanduser() if self.data_dir else default_data_dir()


@dataclass(frozen=True)
class GpioConfig:
    backend: Backend = "auto"
    on_exit: OnExit = "keep"


@dataclass(frozen=True)
class AuthConfig:
    enabled: bool = True
    session_hours: int = 720
    login_attempts_per_minute: int = 10


@dataclass(frozen=True)
class HistoryConfig:
    max_age_days: int = 90
    max_rows: int = 100_000


@dataclass(frozen=True)
class MqttConfig:
    enabled: bool = False
    host: str = "localhost"
    port: int = 1883
    username: str = ""
    password: str = field(default="", repr=False)
    tls: bool = False
    ca_file: str = ""
    certfile: str = ""
    keyfile: str = ""
    client_id: str = ""
    device_id: str = ""
    base_topic: str = ""
    qos: int = 1
    keepalive: int = 15
    discovery: bool = True
    discovery_prefix: str = "homeassistant"
    reconnect_max_s: int = 60


@dataclass(frozen=True)
class Config:
    """Everything pinpanel was told, validated. Built once, passed down, never mutated."""

    server: ServerConfig = field(default_factory=ServerConfig)
    gpio: GpioConfig = field(default_factory=GpioConfig)
    auth: AuthConfig = field(default_factory=AuthConfig)
    history: HistoryConfig = field(default_factory=HistoryConfig)
    mqtt: MqttConfig = field(default_factory=MqttConfig)
    pins: tuple[PinConfig, ...] = ()
    interlocks: tuple[tuple[int, ...], ...] = ()
    source: str = "defaults"

    def pin(self, bcm: int) -> PinConfig:
        return next(p for p in self.pins if p.pin == bcm)


_SECTIONS: dict[str, type] = {
    "server": ServerConfig,
    "gpio": GpioConfig,
    "auth": AuthConfig,
    "history": HistoryConfig,
    "mqtt": MqttConfig,
}


def tutorial_pins() -> tuple[PinConfig, ...]:
    """The tutorial's three outputs, BCM 18, 23 and 24."""
    return tuple(PinConfig(pin=n, id=f"gpio{n}", name=f"GPIO {n}") for n in TUTORIAL_PINS)


def _type_name(kind: type) -> str:
    return {int: "an integer", str: "a string", bool: "true or false", list: "a list"}[kind]


def _check_value(setting: Setting, value: object, path: str, problems: list[str]) -> object:
    """Schema pass for one value; returns it normalised, or None after recording a problem."""
    kind = setting.kind
    ok = isinstance(value, kind) and not (kind is int and isinstance(value, bool))
    if not ok:
        problems.append(f"{path}: expected {_type_name(kind)}, got {type(value).__name__}")
        return None
    if kind is list:
        items = list(value)  # type: ignore[call-overload]
        if not all(isinstance(item, str) for item in items):
            problems.append(f"{path}: expected a list of strings")
            return None
        return tuple(items)
    if setting.choices is not None and value not in setting.choices:
        problems.append(f"{path}: must be one of {', '.join(setting.choices)}, got {value!r}")
        return None
    if isinstance(value, int) and not isinstance(value, bool):
        low, high = setting.minimum, setting.maximum
        if (low is not None and value < low) or (high is not None and value > high):
            problems.append(f"{path}: must be between {low} and {high}, got {value}")
            return None
    return value


def _load_table(
    table: Mapping[str, Any], settings: tuple[Setting, ...], path: str, problems: list[str]
) -> dict[str, Any]:
    known = {s.name: s for s in settings}
    values: dict[str, Any] = {}
    for key, value in table.items():
        setting = known.get(key)
        if setting is None:
            problems.append(f"{path}.{key}: unknown key (expected one of {', '.join(known)})")
            continue
        checked = _check_value(setting, value, f"{path}.{key}", problems)
        if checked is not None:
            values[key] = checked
    return values


def _load_pin(table: object, path: str, problems: list[str]) -> PinConfig | None:
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table ([[pins]])")
        return None
    before = len(problems)
    values = _load_table(table, PIN_SETTINGS, path, problems)
    if "pin" not in table:
        problems.append(f"{path}.pin: required (the BCM GPIO number)")
    if len(problems) > before:
        return None
    bcm = values["pin"]
    values.setdefault("id", f"gpio{bcm}")
    values["id"] = values["id"] or f"gpio{bcm}"
    values["name"] = values.get("name") or f"GPIO {bcm}"
    if not ID_PATTERN.match(values["id"]):
        problems.append(f"{path}.id: {values['id']!r} must be lowercase letters, digits, - or _, "
                        "starting with a letter (at most 32)")
    mode = values.get("mode", "output")
    wrong = _INPUT_ONLY if mode == "output" else _OUTPUT_ONLY
    for key in wrong:
        if key in table:
            kind = "inputs" if mode == "output" else "outputs"
            problems.append(f"{path}.{key}: applies only to {kind}")
    if len(problems) > before:
        return None
    return PinConfig(**values)


def _load_interlocks(
    raw: object, pins: tuple[PinConfig, ...], problems: list[str]
) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list):
        problems.append("interlocks: expected an array of tables ([[interlocks]])")
        return ()
    by_ref: dict[object, PinConfig] = {p.pin: p for p in pins} | {p.id: p for p in pins}
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
        for j, ref in enumerate(refs):
            valid = isinstance(ref, int | str) and not isinstance(ref, bool)
            pin = by_ref.get(ref) if valid else None
            if pin is None:
                problems.append(f"{path}.pins[{j}]: {ref!r} is not a configured pin")
            elif not pin.is_output:
                problems.append(f"{path}.pins[{j}]: pin {pin.pin} is an input; "
                                "interlocks hold outputs")
            elif pin.pin in group:
                problems.append(f"{path}.pins[{j}]: pin {pin.pin} is listed twice")
            else:
                group.append(pin.pin)
        groups.append(tuple(group))
    return tuple(groups)


def parse(data: Mapping[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    allowed = {*_SECTIONS, "pins", "interlocks"}
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
        settings = tuple(s for s in SETTINGS if s.section == name)
        sections[name] = cls(**_load_table(table, settings, name, problems))

    pins: tuple[PinConfig, ...]
    if "pins" in data:
        raw_pins = data["pins"]
        if not isinstance(raw_pins, list):
            problems.append("pins: expected an array of tables ([[pins]])")
            raw_pins = []
        loaded = [_load_pin(t, f"pins[{i}]", problems) for i, t in enumerate(raw_pins)]
        pins = tuple(p for p in loaded if p is not None)
        if not raw_pins and "pins" in data:
            problems.append("pins: at least one pin is needed")
    else:
        pins = tutorial_pins()

    seen_pin: dict[int, int] = {}
    seen_id: dict[str, int] = {}
    for index, pin in enumerate(pins):
        if pin.pin in seen_pin:
            problems.append(f"pins[{index}].pin: BCM {pin.pin} is already used by "
                            f"pins[{seen_pin[pin.pin]}]")
        seen_pin.setdefault(pin.pin, index)
        if pin.id in seen_id:
            problems.append(f"pins[{index}].id: {pin.id!r} is already used by "
                            f"pins[{seen_id[pin.id]}]")
        seen_id.setdefault(pin.id, index)

    interlocks = (_load_interlocks(data["interlocks"], pins, problems)
                  if "interlocks" in data else ())
    if problems:
        raise ConfigError(problems, source)
    return Config(pins=pins, interlocks=interlocks, source=source, **sections)


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


def _show_default(default: object) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    return repr(default) if isinstance(default, str) else str(default)


def settings_reference() -> str:
    """A Markdown table of every setting, for ``--help-settings`` and the README."""
    lines = ["| setting | default | meaning |", "| --- | --- | --- |"]
    for setting in (*SETTINGS, *PIN_SETTINGS):
        key = setting.key.replace("pins.", "[[pins]] ")
        shown = _show_default(setting.default)
        extra = f" One of: {', '.join(setting.choices)}." if setting.choices else ""
        lines.append(f"| `{key}` | `{shown}` | {setting.help}{extra} |")
    lines.append("| `[[interlocks]] pins` | | Outputs (BCM numbers or ids) never on together: "
                 "turning one on turns the others off first. |")
    return "\n".join(lines)


def section_fields(section: str) -> list[str]:
    """Field names of one section's dataclass (used by the docs test)."""
    return [f.name for f in fields(_SECTIONS[section])]
