"""``[[schedules]]`` (and the same records over the API): when, and what, checked once.

A schedule says *when*, as exactly one of

* ``at = "07:30"`` (local clock time), or ``at = "sunset-15m"`` / ``"sunrise+10m"`` /
  ``"dusk"`` / ``"dawn"`` (a sun event with an optional offset such as ``+1h30m``), with
  optional ``days = ["mon", ...]``;
* ``cron = "*/15 6-22 * * *"`` (five fields, local time);

and *what*, as exactly one of ``pins`` (with ``action`` on, off, toggle, pulse (with
``ms``) or level (pwm pins: ``level`` 0.0-1.0, optional ``fade_ms``)), ``group`` (with
``action`` on, off or toggle) or ``scene``.

The config loader and the API's bodies go through :func:`load_schedule`, so a schedule
written in TOML and one posted as JSON are checked by the same code and read the same way.
A leaf under :mod:`pinpanel.config`: it knows the grammar, not the sun or the board (the
times are resolved in :mod:`pinpanel.automation.when`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Mapping
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from cronsim import CronSim, CronSimError

ScheduleAction = Literal["on", "off", "toggle", "pulse", "level"]
SCHEDULE_ACTIONS: tuple[ScheduleAction, ...] = ("on", "off", "toggle", "pulse", "level")
#: The board's limit for a fade (config.FADE_MAX_MS; this leaf cannot import config).
FADE_MAX_MS = 600_000
SunEvent = Literal["sunrise", "sunset", "dawn", "dusk"]
SUN_EVENTS: tuple[SunEvent, ...] = ("sunrise", "sunset", "dawn", "dusk")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHEDULE_ID = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
PULSE_MAX_MS = 3_600_000
#: ``07:30``, or a sun event with an optional offset (``sunset-15m``, ``sunrise + 1h30m``).
CLOCK = re.compile(r"^(?P<h>[01]?\d|2[0-3]):(?P<m>[0-5]\d)$")
SUN = re.compile(r"^(?P<event>sunrise|sunset|dawn|dusk)\s*(?:(?P<sign>[+-])\s*"
                 r"(?:(?P<oh>\d{1,2})h)?(?:(?P<om>\d{1,3})m)?)?$")
#: An offset of more than half a day from a sun event is surely a mistake.
OFFSET_MAX_MIN = 12 * 60
#: Where a cron expression is tried when it is checked.
_EPOCH = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ("id", "name", "at", "days", "cron", "action", "ms", "level", "fade_ms", "pins",
        "group", "scene", "enabled")


@dataclass(frozen=True, slots=True)
class Moment:
    """A time of day: a clock time (``event`` None) or a sun event plus an offset."""

    event: SunEvent | None
    minutes: int  # clock: minutes after midnight; sun: the offset in minutes (signed)

    @property
    def text(self) -> str:
        if self.event is None:
            return f"{self.minutes // 60:02d}:{self.minutes % 60:02d}"
        if not self.minutes:
            return self.event
        sign = "+" if self.minutes > 0 else "-"
        hours, minutes = divmod(abs(self.minutes), 60)
        return f"{self.event}{sign}{f'{hours}h' if hours else ''}{f'{minutes}m' if minutes else ''}"


def parse_moment(text: str) -> Moment | None:
    """``07:30``, ``sunset``, ``sunset-15m``, ``sunrise+1h30m``...; None if it is none of them."""
    cleaned = text.strip().lower()
    if match := CLOCK.match(cleaned):
        return Moment(None, int(match["h"]) * 60 + int(match["m"]))
    match = SUN.match(cleaned)
    if match is None or (match["sign"] and not (match["oh"] or match["om"])):
        return None
    offset = int(match["oh"] or 0) * 60 + int(match["om"] or 0)
    if offset > OFFSET_MAX_MIN:
        return None
    event: SunEvent = match["event"]  # type: ignore[assignment]
    return Moment(event, -offset if match["sign"] == "-" else offset)


@dataclass(frozen=True, slots=True)
class ScheduleConfig:
    """One schedule. ``at`` or ``cron``; ``pins``, ``group`` or ``scene``."""

    id: str
    name: str = ""
    at: str = ""
    days: tuple[str, ...] = ()
    cron: str = ""
    action: ScheduleAction = "on"
    ms: int = 0
    pins: tuple[int, ...] = ()
    group: str = ""
    scene: str = ""
    enabled: bool = True
    level: float | None = None
    fade_ms: int = 0

    @property
    def moment(self) -> Moment | None:
        return parse_moment(self.at) if self.at else None

    @property
    def sets_state(self) -> bool:
        """Whether a run leaves a state that holds (what start-up after a power cut restores).

        A pulse or a toggle does not: a missed pulse is not replayed, and a toggle's effect
        depends on what was before it. A level does: a pwm pin comes up at it.
        """
        return bool(self.scene) or self.action in ("on", "off", "level")

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["days"] = list(self.days)
        data["pins"] = list(self.pins)
        return data


def load_schedule(table: object, path: str, *, resolve: Callable[[object, str], int | None],
                  groups: Collection[str], scenes: Collection[str],
                  problems: list[str]) -> ScheduleConfig | None:
    """One schedule from a TOML table or a JSON object; None (with problems) if invalid.

    ``resolve`` turns a pin reference into an output's BCM number, or records a problem and
    returns None; ``groups`` and ``scenes`` are the configured ids.
    """
    if not isinstance(table, Mapping):
        problems.append(f"{path}: expected a table")
        return None
    before = len(problems)

    def text(key: str) -> str:
        value = table.get(key, "")
        if not isinstance(value, str):
            problems.append(f"{path}.{key}: expected a string")
            return ""
        return value.strip()

    for key in table:
        if key not in KEYS:
            problems.append(f"{path}.{key}: unknown key (expected one of {', '.join(KEYS)})")
    ident = text("id")
    if not ident:
        if "id" not in table:
            problems.append(f"{path}.id: required")
    elif not SCHEDULE_ID.match(ident):
        problems.append(f"{path}.id: {ident!r} must be lowercase letters, digits, - or _, "
                        "starting with a letter (at most 32)")
    at, cron = text("at"), text("cron")
    if bool(at) == bool(cron):
        problems.append(f"{path}: give exactly one of at (\"07:30\", \"sunset-15m\", "
                        "\"dawn\"...) or cron (\"*/15 6-22 * * *\")")
    if at and parse_moment(at) is None:
        problems.append(f"{path}.at: {at!r} is not a time: expected HH:MM, or sunrise, sunset, "
                        "dawn or dusk with an optional offset such as -15m or +1h30m")
    if cron:
        if len(cron.split()) != 5:
            problems.append(f"{path}.cron: {cron!r} must have five fields (minute hour day "
                            "month weekday)")
        else:
            try:
                CronSim(cron, _EPOCH)
            except CronSimError as exc:
                problems.append(f"{path}.cron: {cron!r} is not a cron expression ({exc})")
    days: list[str] = []
    raw_days = table.get("days", [])
    if not isinstance(raw_days, list) or not all(isinstance(d, str) for d in raw_days):
        problems.append(f"{path}.days: expected a list such as [\"mon\", \"fri\"]")
    else:
        for day in raw_days:
            short = day.strip().lower()[:3]
            if short not in DAYS:
                problems.append(f"{path}.days: {day!r} is not a day (mon ... sun)")
            elif short not in days:
                days.append(short)
        if days and cron:
            problems.append(f"{path}.days: with cron, say the days in its fifth field")
    action = table.get("action", "on")
    if action not in SCHEDULE_ACTIONS:
        problems.append(f"{path}.action: {action!r} must be one of on, off, toggle, pulse")
    ms = table.get("ms", 0)
    if not isinstance(ms, int) or isinstance(ms, bool) or not 0 <= ms <= PULSE_MAX_MS:
        problems.append(f"{path}.ms: must be an integer 0 to {PULSE_MAX_MS} (0: the pin's "
                        "pulse_ms)")
    elif ms and action != "pulse":
        problems.append(f"{path}.ms: applies only to action = \"pulse\"")
    level, fade = table.get("level"), table.get("fade_ms", 0)
    if action == "level":
        if not isinstance(level, int | float) or isinstance(level, bool) or \
                not 0.0 <= level <= 1.0:
            problems.append(f"{path}.level: action = \"level\" needs a level 0.0 to 1.0")
        if not isinstance(fade, int) or isinstance(fade, bool) or not 0 <= fade <= FADE_MAX_MS:
            problems.append(f"{path}.fade_ms: must be an integer 0 to {FADE_MAX_MS}")
        if "pins" not in table:
            problems.append(f"{path}.action: a level is set on pins (pwm outputs)")
    elif "level" in table or "fade_ms" in table:
        problems.append(f"{path}.level: level and fade_ms apply only to action = \"level\"")
    targets = [key for key in ("pins", "group", "scene") if key in table]
    if len(targets) != 1:
        problems.append(f"{path}: give exactly one of pins, group or scene")
    pins: list[int] = []
    if "pins" in table:
        refs = table["pins"]
        if not isinstance(refs, list) or not refs:
            problems.append(f"{path}.pins: expected a list of at least one pin")
        else:
            for j, ref in enumerate(refs):
                bcm = resolve(ref, f"{path}.pins[{j}]")
                if bcm is not None and bcm not in pins:
                    pins.append(bcm)
    group, scene = text("group"), text("scene")
    if group and group not in groups:
        problems.append(f"{path}.group: {group!r} is not a configured group")
    if group and action == "pulse":
        problems.append(f"{path}.action: a group is switched on, off or toggled")
    if scene and scene not in scenes:
        problems.append(f"{path}.scene: {scene!r} is not a configured scene")
    if scene and "action" in table:
        problems.append(f"{path}.action: a scene is applied; it takes no action")
    enabled = table.get("enabled", True)
    if not isinstance(enabled, bool):
        problems.append(f"{path}.enabled: expected true or false")
    name = text("name")
    if len(problems) > before:
        return None
    return ScheduleConfig(
        id=ident, name=name or ident, at=at.lower(), days=tuple(days), cron=cron,
        action="on" if scene else action, ms=ms, pins=tuple(pins), group=group, scene=scene,
        enabled=enabled,
        level=float(level) if action == "level" and isinstance(level, int | float) else None,
        fade_ms=fade if action == "level" else 0)


def load_schedules(raw: object, *, resolve: Callable[[object, str], int | None],
                   groups: Collection[str], scenes: Collection[str],
                   problems: list[str]) -> tuple[ScheduleConfig, ...]:
    """``[[schedules]]``: each table, and ids unique across them."""
    if not isinstance(raw, list):
        problems.append("schedules: expected an array of tables ([[schedules]])")
        return ()
    found: list[ScheduleConfig] = []
    seen: set[str] = set()
    for i, table in enumerate(raw):
        schedule = load_schedule(table, f"schedules[{i}]", resolve=resolve, groups=groups,
                                 scenes=scenes, problems=problems)
        if schedule is None:
            continue
        if schedule.id in seen:
            problems.append(f"schedules[{i}].id: {schedule.id!r} is already used")
            continue
        seen.add(schedule.id)
        found.append(schedule)
    return tuple(found)

