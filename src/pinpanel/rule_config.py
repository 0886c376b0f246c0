"""``[[rules]]`` and ``[[notifiers]]``: small declarative records, checked once.

A rule::

    [[rules]]
    id = "porch-door"
    when = { pin = "door", to = "on" }      # or { sensor = "tank", above = 28.0, below = 27.0 }
                                            # or { schedule = "porch-on" }
    for = "5m"                              # the condition holds that long first (optional)
    between = ["sunset", "23:00"]           # only in this window (optional; may wrap midnight)
    unless_pin = "override"                 # not while this pin is on (optional)
    cooldown = "10m"                        # at most once per this (optional)
    then = [{ pins = ["porch"], action = "pulse", ms = 300000 },
            { notify = "phone", message = "The door opened" }]
    otherwise = [{ pins = ["fan"], action = "off" }]   # a sensor rule's falling edge

A sensor condition has hysteresis: it becomes true above ``above`` and false again only
below ``below``, so a reading wandering around one threshold does not chatter. A leaf
under :mod:`pinpanel.config`, like :mod:`pinpanel.schedule_config`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from pinpanel.schedule_config import SCHEDULE_ID, parse_moment

NotifierKind = Literal["webhook", "ntfy"]
DURATION = re.compile(r"^(?:(?P<h>\d+)h)?\s*(?:(?P<m>\d+)m)?\s*(?:(?P<s>\d+)s)?$")
DURATION_MAX_S = 7 * 86_400
RULE_KEYS = ("id", "name", "when", "for", "between", "unless_pin", "cooldown", "then",
             "otherwise", "enabled")
ACTION_KEYS = ("pins", "action", "ms", "level", "fade_ms", "group", "scene", "notify",
               "message", "title")


def parse_duration(text: object) -> float | None:
    """``30s``, ``5m``, ``1h30m`` (or a number of seconds) in seconds; None if not one."""
    if isinstance(text, int | float) and not isinstance(text, bool):
        return float(text) if 0 <= text <= DURATION_MAX_S else None
    if not isinstance(text, str) or not text.strip():
        return None
    match = DURATION.match(text.strip().lower())
    if match is None or not any(match.groupdict().values()):
        return None
    seconds = int(match["h"] or 0) * 3600 + int(match["m"] or 0) * 60 + int(match["s"] or 0)
    return float(seconds) if seconds <= DURATION_MAX_S else None


@dataclass(frozen=True, slots=True)
class RuleAction:
    """One thing a rule does: pins, a group, a scene, or a notification."""

    pins: tuple[int, ...] = ()
    action: str = "on"
    ms: int = 0
    group: str = ""
    scene: str = ""
    notify: str = ""
    message: str = ""
    title: str = ""
    level: float | None = None
    fade_ms: int = 0

    def as_json(self) -> dict[str, Any]:
        if self.notify:
            return {"notify": self.notify, "message": self.message, "title": self.title}
        if self.scene:
            return {"scene": self.scene}
        data: dict[str, Any] = {"group": self.group} if self.group else {"pins": list(self.pins)}
        data["action"] = self.action
        if self.ms:
            data["ms"] = self.ms
        if self.level is not None:
            data["level"] = self.level
            if self.fade_ms:
                data["fade_ms"] = self.fade_ms
        return data


@dataclass(frozen=True, slots=True)
class RuleConfig:
    id: str
    name: str = ""
    #: The trigger: a pin (``pin``, ``to``), a sensor (``sensor``, ``reading``, ``above``,
    #: ``below``) or a schedule firing (``schedule``).
    pin: int | None = None
    to: bool = True
    sensor: str = ""
    reading: str = ""
    above: float | None = None
    below: float | None = None
    schedule: str = ""
    hold_s: float = 0.0
    between: tuple[str, str] | None = None
    unless_pin: int | None = None
    cooldown_s: float = 0.0
    then: tuple[RuleAction, ...] = ()
    otherwise: tuple[RuleAction, ...] = ()
    enabled: bool = True

    @property
    def kind(self) -> str:
        return "pin" if self.pin is not None else "sensor" if self.sensor else "schedule"


@dataclass(frozen=True, slots=True)
class NotifierConfig:
    """``[[notifiers]]``: where a rule's ``notify`` goes."""

    id: str
    url: str
    kind: NotifierKind = "webhook"
    secret: str = field(default="", repr=False)


def _actions(raw: object, path: str, resolve: Callable[[object, str], int | None],
             groups: Collection[str], scenes: Collection[str], notifiers: Collection[str],
             problems: list[str]) -> tuple[RuleAction, ...]:
    if not isinstance(raw, list) or not raw:
        problems.append(f"{path}: expected a list of at least one action")
        return ()
    found: list[RuleAction] = []
    for i, item in enumerate(raw):
        where = f"{path}[{i}]"
        if not isinstance(item, Mapping):
            problems.append(f"{where}: expected a table")
            continue
        for key in item:
            if key not in ACTION_KEYS:
                problems.append(f"{where}.{key}: unknown key (expected one of "
                                f"{', '.join(ACTION_KEYS)})")
        targets = [k for k in ("pins", "group", "scene", "notify") if k in item]
        if len(targets) != 1:
            problems.append(f"{where}: give exactly one of pins, group, scene or notify")
            continue
        action = item.get("action", "on")
        ms = item.get("ms", 0)
        if action not in ("on", "off", "toggle", "pulse", "level"):
            problems.append(f"{where}.action: {action!r} must be on, off, toggle, pulse or "
                            "level")
        level, fade = item.get("level"), item.get("fade_ms", 0)
        if action == "level" and (not isinstance(level, int | float) or isinstance(level, bool)
                                  or not 0.0 <= level <= 1.0 or "pins" not in item):
            problems.append(f"{where}.level: action = \"level\" needs pins and a level 0.0 "
                            "to 1.0")
            level = None
        if not isinstance(fade, int) or isinstance(fade, bool) or fade < 0:
            problems.append(f"{where}.fade_ms: expected a whole number of milliseconds")
            fade = 0
        if not isinstance(ms, int) or isinstance(ms, bool) or ms < 0:
            problems.append(f"{where}.ms: expected a whole number of milliseconds")
            ms = 0
        kind = targets[0]
        if kind == "pins":
            refs = item["pins"]
            pins = [resolve(r, f"{where}.pins[{j}]") for j, r in enumerate(refs)] \
                if isinstance(refs, list) and refs else []
            if not pins:
                problems.append(f"{where}.pins: expected a list of at least one pin")
            found.append(RuleAction(
                pins=tuple(p for p in pins if p is not None), action=str(action), ms=ms,
                level=float(level) if action == "level" and level is not None else None,
                fade_ms=fade if action == "level" else 0))
        elif kind == "group":
            if item["group"] not in groups:
                problems.append(f"{where}.group: {item['group']!r} is not a configured group")
            found.append(RuleAction(group=str(item["group"]), action=str(action)))
        elif kind == "scene":
            if item["scene"] not in scenes:
                problems.append(f"{where}.scene: {item['scene']!r} is not a configured scene")
            found.append(RuleAction(scene=str(item["scene"])))
        else:
            if item["notify"] not in notifiers:
                problems.append(f"{where}.notify: {item['notify']!r} is not a configured "
                                "notifier ([[notifiers]])")
            message, title = item.get("message", ""), item.get("title", "")
            if not isinstance(message, str) or not message or not isinstance(title, str):
                problems.append(f"{where}.message: expected the text to send")
                message = ""
            found.append(RuleAction(notify=str(item["notify"]), message=message,
                                    title=title if isinstance(title, str) else ""))
    return tuple(found)


def load_rule(table: object, path: str, *, resolve: Callable[[object, str], int | None],
              resolve_any: Callable[[object, str], int | None], groups: Collection[str],
              scenes: Collection[str], sensors: Collection[str], schedules: Collection[str],
              notifiers: Collection[str], problems: list[str]) -> RuleConfig | None:
    """One rule from a TOML table or a JSON body; None (with problems) if invalid.

    ``resolve`` finds an output (actions), ``resolve_any`` any pin (triggers, unless_pin).
    """
    if not isinstance(table, Mapping):
        problems.append(f"{path}: expected a table")
        return None
    before = len(problems)
    for key in table:
        if key not in RULE_KEYS:
            problems.append(f"{path}.{key}: unknown key (expected one of {', '.join(RULE_KEYS)})")
    ident = table.get("id")
    if not isinstance(ident, str) or not SCHEDULE_ID.match(ident):
        problems.append(f"{path}.id: required: lowercase letters, digits, - or _, starting "
                        "with a letter (at most 32)")
        ident = ""
    when = table.get("when")
    values: dict[str, Any] = {}
    if not isinstance(when, Mapping):
        problems.append(f"{path}.when: required: {{ pin = ..., to = \"on\" }}, {{ sensor = ..., "
                        "above = ..., below = ... }} or { schedule = ... }")
    else:
        kinds = [k for k in ("pin", "sensor", "schedule") if k in when]
        if len(kinds) != 1:
            problems.append(f"{path}.when: give exactly one of pin, sensor or schedule")
        elif kinds[0] == "pin":
            extra = set(when) - {"pin", "to"}
            if extra:
                problems.append(f"{path}.when: unknown keys {sorted(extra)} for a pin")
            values["pin"] = resolve_any(when["pin"], f"{path}.when.pin")
            to = when.get("to", "on")
            if to not in ("on", "off", True, False):
                problems.append(f"{path}.when.to: expected \"on\" or \"off\"")
            values["to"] = to in ("on", True)
        elif kinds[0] == "sensor":
            extra = set(when) - {"sensor", "reading", "above", "below"}
            if extra:
                problems.append(f"{path}.when: unknown keys {sorted(extra)} for a sensor")
            if when["sensor"] not in sensors:
                problems.append(f"{path}.when.sensor: {when['sensor']!r} is not a configured "
                                "sensor")
            above, below = when.get("above"), when.get("below")
            numbers = [v for v in (above, below) if v is not None]
            if not numbers or any(not isinstance(v, int | float) or isinstance(v, bool)
                                  for v in numbers):
                problems.append(f"{path}.when: a sensor needs above (and below, for "
                                "hysteresis) as numbers")
            elif above is not None and below is not None and below > above:
                problems.append(f"{path}.when.below: {below} must not be above {above} (the "
                                "rule turns true above `above`, false again below `below`)")
            reading = when.get("reading", "")
            if not isinstance(reading, str):
                problems.append(f"{path}.when.reading: expected a string")
                reading = ""
            values.update(sensor=str(when["sensor"]), reading=reading,
                          above=None if above is None else float(above),
                          below=None if below is None else float(below))
        else:
            if when["schedule"] not in schedules:
                problems.append(f"{path}.when.schedule: {when['schedule']!r} is not a "
                                "schedule")
            values["schedule"] = str(when["schedule"])
    hold = parse_duration(table.get("for", 0))
    if hold is None:
        problems.append(f"{path}.for: expected a duration such as 30s, 5m or 1h30m")
    cooldown = parse_duration(table.get("cooldown", 0))
    if cooldown is None:
        problems.append(f"{path}.cooldown: expected a duration such as 30s, 5m or 1h30m")
    between = table.get("between")
    window: tuple[str, str] | None = None
    if between is not None:
        if not isinstance(between, list) or len(between) != 2 or not all(
                isinstance(b, str) and parse_moment(b) for b in between):
            problems.append(f"{path}.between: expected two times such as [\"sunset\", "
                            "\"23:00\"]")
        else:
            window = (between[0].strip().lower(), between[1].strip().lower())
    unless = table.get("unless_pin")
    unless_pin = resolve_any(unless, f"{path}.unless_pin") if unless is not None else None
    then = _actions(table.get("then"), f"{path}.then", resolve, groups, scenes, notifiers,
                    problems)
    otherwise = (_actions(table["otherwise"], f"{path}.otherwise", resolve, groups, scenes,
                          notifiers, problems) if "otherwise" in table else ())
    if otherwise and "sensor" not in values and "pin" not in values:
        problems.append(f"{path}.otherwise: only a pin or sensor rule has a falling edge")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{path}.enabled: expected true or false")
    name = table.get("name", "")
    if len(problems) > before:
        return None
    return RuleConfig(id=ident, name=str(name or ident), hold_s=hold or 0.0, between=window,
                      unless_pin=unless_pin, cooldown_s=cooldown or 0.0, then=then,
                      otherwise=otherwise, enabled=enabled, **values)


def load_notifiers(raw: object, problems: list[str]) -> tuple[NotifierConfig, ...]:
    if not isinstance(raw, list):
        problems.append("notifiers: expected an array of tables ([[notifiers]])")
        return ()
    found: list[NotifierConfig] = []
    for i, table in enumerate(raw):
        path = f"notifiers[{i}]"
        if not isinstance(table, Mapping):
            problems.append(f"{path}: expected a table")
            continue
        extra = set(table) - {"id", "url", "kind", "secret"}
        if extra:
            problems.append(f"{path}: unknown keys {sorted(extra)} (expected id, url, kind, "
                            "secret)")
        ident, url = table.get("id"), table.get("url")
        kind = table.get("kind", "webhook")
        secret = table.get("secret", "")
        if not isinstance(ident, str) or not SCHEDULE_ID.match(ident):
            problems.append(f"{path}.id: required: lowercase letters, digits, - or _")
            continue
        if any(n.id == ident for n in found):
            problems.append(f"{path}.id: {ident!r} is already used")
            continue
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            problems.append(f"{path}.url: expected an http(s):// URL")
            continue
        if kind not in ("webhook", "ntfy"):
            problems.append(f"{path}.kind: {kind!r} must be webhook or ntfy")
            continue
        if not isinstance(secret, str):
            problems.append(f"{path}.secret: expected a string")
            continue
        found.append(NotifierConfig(ident, url, kind, secret))
    return tuple(found)
