"""The cross-field pass: what one value cannot say alone.

A pin claimed twice, two pins with one id, and interlocks, groups, scenes, schedules and
rules naming pins (by BCM number or id), groups, scenes or sensors that do not exist. It
works on the schema pass's drafts, also those with problems of their own, so each problem
is reported once, where it is.
"""

from __future__ import annotations

from typing import Any

from pinpanel.config.model import ALL_GROUP, GroupConfig, SceneConfig
from pinpanel.config.schema import PinDraft
from pinpanel.config.types import ID_PATTERN
from pinpanel.rule_config import NotifierConfig, RuleConfig, load_rule
from pinpanel.schedule_config import ScheduleConfig, load_schedules
from pinpanel.sensor_config import SensorConfig


def check_duplicates(drafts: list[PinDraft], problems: list[str]) -> None:
    seen_pin: dict[int, str] = {}
    seen_id: dict[str, PinDraft] = {}
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


def check_door_inputs(drafts: list[PinDraft], problems: list[str]) -> None:
    """A garage door's ``homekit_door`` names a configured input (by its id)."""
    by_ref = pin_index(drafts)
    for draft in drafts:
        ref = draft.config.homekit_door if draft.config is not None else ""
        if not ref:
            continue
        target = by_ref.get(ref)
        if target is None:
            problems.append(f"{draft.path}.homekit_door: {ref!r} is not a configured pin's id")
        elif target.mode != "input":
            problems.append(f"{draft.path}.homekit_door: pin {target.bcm} is an "
                            f"{target.mode}; the door's position is read from an input")


def load_interlocks(
    raw: object, drafts: list[PinDraft], problems: list[str]
) -> tuple[tuple[int, ...], ...]:
    if not isinstance(raw, list):
        problems.append("interlocks: expected an array of tables ([[interlocks]])")
        return ()
    # By the values the file wrote, also for pins with problems: those are reported at the
    # pin, not again as "not a configured pin" here. The first pin with a number or id wins
    # (a second one is reported as a duplicate).
    by_ref = pin_index(drafts)
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
        listed: list[PinDraft] = []
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


def pin_index(drafts: list[PinDraft]) -> dict[object, PinDraft]:
    """Pins by the BCM numbers and ids the file wrote (the first one wins)."""
    by_ref: dict[object, PinDraft] = {}
    for draft in drafts:
        if draft.bcm is not None:
            by_ref.setdefault(draft.bcm, draft)
        if draft.id is not None:
            by_ref.setdefault(draft.id, draft)
    return by_ref


def _output_ref(ref: object, by_ref: dict[object, PinDraft], path: str,
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


def load_groups(raw: object, drafts: list[PinDraft],
                 problems: list[str]) -> tuple[GroupConfig, ...]:
    if not isinstance(raw, list):
        problems.append("groups: expected an array of tables ([[groups]])")
        return ()
    by_ref, seen, groups = pin_index(drafts), set[str](), []
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


def load_scenes(raw: object, drafts: list[PinDraft], interlocks: tuple[tuple[int, ...], ...],
                 problems: list[str]) -> tuple[SceneConfig, ...]:
    if not isinstance(raw, list):
        problems.append("scenes: expected an array of tables ([[scenes]])")
        return ()
    by_ref, seen, scenes = pin_index(drafts), set[str](), []
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


def load_schedules_of(raw: object, drafts: list[PinDraft], groups: tuple[GroupConfig, ...],
                      scenes: tuple[SceneConfig, ...], located: bool,
                      problems: list[str]) -> tuple[ScheduleConfig, ...]:
    """``[[schedules]]`` naming configured outputs, groups and scenes; a level needs a pwm
    pin, a sun event a ``[location]``."""
    by_ref = pin_index(drafts)
    schedules = load_schedules(
        raw, resolve=lambda ref, path: _output_ref(ref, by_ref, path, problems),
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
    return schedules


def load_rules(raw: object, drafts: list[PinDraft], groups: tuple[GroupConfig, ...],
                scenes: tuple[SceneConfig, ...], sensors: tuple[SensorConfig, ...],
                schedules: tuple[ScheduleConfig, ...], notifiers: tuple[NotifierConfig, ...],
                problems: list[str]) -> tuple[RuleConfig, ...]:
    if not isinstance(raw, list):
        problems.append("rules: expected an array of tables ([[rules]])")
        return ()
    by_ref = pin_index(drafts)

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
