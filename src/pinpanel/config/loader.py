"""TOML in, one validated :class:`~pinpanel.config.Config` out, every problem at once.

:func:`parse` runs the schema pass (:mod:`pinpanel.config.schema`), each section's own
:meth:`~pinpanel.config.sections.Section.check`, then the cross-field pass
(:mod:`pinpanel.config.references`), and raises one :class:`ConfigError` listing all they
found, before any pin is touched.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

from pinpanel.config.model import BY_SECTION, SECTIONS, SETTINGS, Config
from pinpanel.config.pins import PIN_SETTINGS, tutorial_pins
from pinpanel.config.references import (
    check_door_inputs,
    check_duplicates,
    load_groups,
    load_interlocks,
    load_rules,
    load_scenes,
    load_schedules_of,
)
from pinpanel.config.schema import PinDraft, load_pin, load_table
from pinpanel.errors import ConfigError
from pinpanel.rule_config import load_notifiers
from pinpanel.schedule_config import ScheduleConfig
from pinpanel.sensor_config import SENSOR_SETTINGS, load_sensors
from pinpanel.settings import about_of

#: The array-of-tables keys beside the sections.
_TABLE_ARRAYS = ("pins", "interlocks", "sensors", "groups", "scenes", "schedules", "rules",
                 "notifiers")


def parse(data: Mapping[str, Any], source: str = "config") -> Config:
    """Validate a parsed TOML document; raise :class:`ConfigError` listing every problem."""
    problems: list[str] = []
    allowed = {*SECTIONS, *_TABLE_ARRAYS}
    for key in data:
        if key not in allowed:
            expected = ", ".join(sorted(allowed))
            problems.append(f"{key}: unknown section (expected one of {expected})")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            problems.append(f"{name}: expected a table")
            table = {}
        sections[name] = cls(**load_table(table, BY_SECTION[name], name, problems))

    drafts: list[PinDraft]
    if "pins" in data:
        raw_pins = data["pins"]
        if not isinstance(raw_pins, list):
            problems.append("pins: expected an array of tables ([[pins]])")
            raw_pins = None
        elif not raw_pins:
            problems.append("pins: at least one pin is needed")
        loaded = [load_pin(t, f"pins[{i}]", problems) for i, t in enumerate(raw_pins or ())]
        drafts = [d for d in loaded if d is not None]
    else:
        drafts = [PinDraft(f"pins[{i}]", p.pin, p.id, False, p.mode, p)
                  for i, p in enumerate(tutorial_pins())]
    check_duplicates(drafts, problems)
    check_door_inputs(drafts, problems)
    for section in sections.values():
        section.check(problems)
    interlocks = (load_interlocks(data["interlocks"], drafts, problems)
                  if "interlocks" in data else ())
    sensors = (load_sensors(data["sensors"],
                            {d.bcm: d.path for d in drafts if d.bcm is not None},
                            {d.id for d in drafts if d.id is not None}, problems)
               if "sensors" in data else ())
    groups = load_groups(data["groups"], drafts, problems) if "groups" in data else ()
    scenes = (load_scenes(data["scenes"], drafts, interlocks, problems)
              if "scenes" in data else ())
    location = data.get("location")
    located = isinstance(location, dict) and {"latitude", "longitude"} <= set(location)
    schedules: tuple[ScheduleConfig, ...] = (
        load_schedules_of(data["schedules"], drafts, groups, scenes, located, problems)
        if "schedules" in data else ())
    notifiers = load_notifiers(data["notifiers"], problems) if "notifiers" in data else ()
    rules = load_rules(data["rules"], drafts, groups, scenes, sensors, schedules, notifiers,
                       problems) if "rules" in data else ()
    if problems:
        raise ConfigError(problems, source)
    pins = tuple(d.config for d in drafts if d.config is not None)
    return Config(pins=pins, interlocks=interlocks, sensors=sensors, groups=groups,
                  scenes=scenes, schedules=schedules, rules=rules, notifiers=notifiers,
                  located=located, source=source, **sections)


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
