"""The ``[section]`` tables: one frozen dataclass each, a field per setting.

A section's own checks, those its values' types cannot say (an address's form, two keys
that must agree), are its :meth:`Section.check`; the loader runs every section's after the
schema pass, so a new section brings its checks along with its fields.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from pinpanel.config.paths import default_data_dir
from pinpanel.config.types import Backend, OnExit
from pinpanel.settings import about
from pinpanel.timezones import ZoneError, zone


class Section:
    """The base of every section dataclass (a field of :class:`~pinpanel.config.Config`)."""

    def check(self, problems: list[str]) -> None:
        """Record what is wrong beyond each value's type and range (nothing, by default)."""


@dataclass(frozen=True)
class ServerConfig(Section):
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

    def check(self, problems: list[str]) -> None:
        """Values whose form a type cannot say: proxy addresses and the public URL."""
        for i, entry in enumerate(self.forwarded_allow_ips):
            try:
                ipaddress.ip_network(entry.strip(), strict=False)
            except ValueError:
                problems.append(f"server.forwarded_allow_ips[{i}]: {entry!r} is not an IP address "
                                "or network (e.g. 10.0.0.0/8); to trust every peer, which lets "
                                "anyone set their own address, write 0.0.0.0/0 and ::/0")
        if self.public_url:
            url = urlsplit(self.public_url)
            if url.scheme not in ("http", "https") or not url.hostname or url.query or \
                    url.fragment or url.path not in ("", "/"):
                problems.append(f"server.public_url: {self.public_url!r} must be http(s)://host"
                                "[:port], e.g. https://pins.example.org")


@dataclass(frozen=True)
class GpioConfig(Section):
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

    def check(self, problems: list[str]) -> None:
        """A chip is chosen for lgpio only; the register-based backends cannot use one."""
        if not self.chip.strip():
            problems.append("gpio.chip: must not be empty (auto, a number, a /dev path or a "
                            "label)")
        elif self.chip != "auto" and self.backend in ("rpigpio", "pigpio", "native"):
            problems.append(f"gpio.chip: {self.chip!r} applies to the lgpio backend (and "
                            f"auto); {self.backend} drives the Pi's own GPIO registers, "
                            "whatever the chip")


@dataclass(frozen=True)
class AuthConfig(Section):
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
class HistoryConfig(Section):
    max_age_days: int = field(default=90, metadata=about(
        "Audit rows older than this are trimmed (0 keeps them by count only).",
        minimum=0, maximum=36500))
    max_rows: int = field(default=100_000, metadata=about(
        "At most this many audit rows are kept, so the SD card never fills.",
        minimum=100, maximum=100_000_000))


@dataclass(frozen=True)
class MqttConfig(Section):
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
class LocationConfig(Section):
    latitude: float = field(default=0.0, metadata=about(
        "Degrees north (negative: south), for sunrise, sunset, dawn and dusk schedules.",
        minimum=-90, maximum=90))
    longitude: float = field(default=0.0, metadata=about(
        "Degrees east (negative: west).", minimum=-180, maximum=180))
    timezone: str = field(default="", metadata=about(
        "IANA time zone of schedules' clock times, e.g. Europe/Berlin. Empty: the system's "
        "(/etc/localtime)."))

    def check(self, problems: list[str]) -> None:
        """A zone the tz database (or the UTC fallback) knows."""
        if not self.timezone:
            return
        try:
            zone(self.timezone)
        except ZoneError as exc:
            problems.append(f"location.timezone: {exc}")


@dataclass(frozen=True)
class MdnsConfig(Section):
    """``[mdns]``: announce this pinpanel on the LAN (needs the ``pinpanel[mdns]`` extra)."""

    enabled: bool = field(default=True, metadata=about(
        "Announce _pinpanel._tcp and _http._tcp over mDNS/DNS-SD (http://<host>.local:8080/), "
        "and let a hub list pinpanels found that way; off when zeroconf is not installed."))
    interfaces: tuple[str, ...] = field(default=(), metadata=about(
        "IPv4 addresses of the interfaces to announce and browse on. Empty: the one the "
        "server listens on (loopback only for 127.0.0.1), every interface for 0.0.0.0."))


@dataclass(frozen=True)
class HubConfig(Section):
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
class HomekitConfig(Section):
    """``[homekit]``: a HomeKit bridge for Apple's Home app (needs ``pinpanel[homekit]``)."""

    enabled: bool = field(default=False, metadata=about(
        "Serve the pins to Apple's Home app as a HomeKit bridge (HAP over the LAN, announced "
        "over mDNS). The setup code is made on first start and shown to admins on /homekit."))
    port: int = field(default=51826, metadata=about(
        "TCP port of the HomeKit Accessory Protocol server.", minimum=1, maximum=65535))
    name: str = field(default="pinpanel", metadata=about(
        "The bridge's name in the Home app (letters, digits, spaces and dashes)."))
    pair_attempts_per_minute: int = field(default=5, metadata=about(
        "Wrong setup codes allowed per minute; beyond that every pairing attempt, even with "
        "the right code, fails until the minute is over (the code has 8 digits: guessing "
        "then takes decades).", minimum=1, maximum=100))

    def check(self, problems: list[str]) -> None:
        """A name HomeKit and mDNS accept: 1-64 characters, not only punctuation."""
        if not 1 <= len(self.name.strip()) <= 64 or not any(c.isalnum() for c in self.name):
            problems.append(f"homekit.name: {self.name!r} must have 1-64 characters with at "
                            "least one letter or digit")
