"""The whole configuration: :class:`Config`, its sections in order, and what they name.

:class:`Config` is the one object built once and passed down. Each of its fields typed with
a :class:`~pinpanel.config.sections.Section` is a ``[section]`` table; :data:`SETTINGS`
is read off those fields, so adding a field here is all a new section needs to be loaded,
offered as flags and listed in the README.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import get_type_hints

from pinpanel.config.pins import PinConfig
from pinpanel.config.sections import (
    AuthConfig,
    GpioConfig,
    HistoryConfig,
    HomekitConfig,
    HubConfig,
    LocationConfig,
    MdnsConfig,
    MqttConfig,
    Section,
    ServerConfig,
)
from pinpanel.rule_config import NotifierConfig, RuleConfig
from pinpanel.schedule_config import ScheduleConfig
from pinpanel.sensor_config import SensorConfig
from pinpanel.settings import Setting, about, settings_of


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
    homekit: HomekitConfig = field(default_factory=HomekitConfig)
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


def _sections() -> dict[str, type[Section]]:
    hints = get_type_hints(Config)
    return {f.name: hints[f.name] for f in fields(Config)
            if isinstance(hints[f.name], type) and issubclass(hints[f.name], Section)}


#: The ``[section]`` tables by name, in the order of :class:`Config`'s fields.
SECTIONS: dict[str, type[Section]] = _sections()

#: Every ``[section] key`` setting, in the order of the sections and their fields.
SETTINGS: tuple[Setting, ...] = tuple(
    setting for name, cls in SECTIONS.items() for setting in settings_of(name, cls))

#: Each section's settings by key (what the schema pass checks a table against).
BY_SECTION: dict[str, dict[str, Setting]] = {
    name: {s.name: s for s in SETTINGS if s.section == name} for name in SECTIONS}
