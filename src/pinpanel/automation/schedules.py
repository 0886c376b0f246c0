"""The schedule book: the config file's schedules and those made over the API, as one list.

A schedule from ``[[schedules]]`` is the file's: the API can enable or disable it (the
switch is stored in the database and survives a restart) but not change or delete it, so
the file stays the truth for what it says. A schedule created over the API lives in the
database (:meth:`Store.put_automation_item`), checked by the same
:func:`~pinpanel.schedule_config.load_schedule` as the file's. Every edit writes an audit
row in the same transaction (who, what, the new spec) and re-sets the timers.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from pinpanel.automation.scheduler import Scheduler, initial_states
from pinpanel.automation.when import Place, describe_next, label, next_run
from pinpanel.board import Board
from pinpanel.changes import Actor, format_time
from pinpanel.config import ALL_GROUP, Config, PinConfig
from pinpanel.errors import (
    AutomationConflictError,
    AutomationError,
    PinpanelError,
    UnknownNameError,
)
from pinpanel.schedule_config import ScheduleConfig, load_schedule
from pinpanel.store import Store

log = logging.getLogger(__name__)

KIND = "schedule"
Source = Literal["config", "api"]


@dataclass(frozen=True)
class Entry:
    schedule: ScheduleConfig
    source: Source


def check(config: Config, body: object, path: str = "body") -> ScheduleConfig:
    """A schedule from a JSON body, checked as the config loader checks one."""
    problems: list[str] = []
    by_ref: dict[object, PinConfig] = {}
    for pin in config.pins:
        by_ref.update({pin.pin: pin, pin.id: pin, str(pin.pin): pin})

    def resolve(ref: object, where: str) -> int | None:
        valid = isinstance(ref, int | str) and not isinstance(ref, bool)
        pin = by_ref.get(ref) if valid else None
        if pin is None:
            problems.append(f"{where}: {ref!r} is not a configured pin")
            return None
        if not pin.is_output:
            problems.append(f"{where}: pin {pin.pin} is an input; only outputs can be switched")
            return None
        return pin.pin

    schedule = load_schedule(body, path, resolve=resolve,
                             groups={g.id for g in config.groups} | {ALL_GROUP},
                             scenes={s.id for s in config.scenes}, problems=problems)
    if schedule is not None and schedule.action == "level":
        for bcm in schedule.pins:
            if not by_ref[bcm].has_level:
                problems.append(f"{path}.pins: pin {bcm} is not a pwm pin; a level needs one")
    if schedule is not None and schedule.moment is not None and \
            schedule.moment.event is not None and not config.located:
        problems.append(f"{path}.at: {schedule.at!r} needs [location] latitude and longitude "
                        "in the config file")
    if problems or schedule is None:
        raise AutomationError(problems)
    return schedule


class ScheduleBook:
    """Every schedule, where it comes from, and the edits over the API."""

    def __init__(self, config: Config, store: Store, place: Place) -> None:
        self.config = config
        self.store = store
        self.place = place
        self.scheduler: Scheduler | None = None
        self._entries: dict[str, Entry] = {}
        self.reload()

    def reload(self) -> None:
        """Read the config's schedules, the stored switches and API schedules; re-arm."""
        entries = {s.id: Entry(s, "config") for s in self.config.schedules}
        for item, spec, enabled, _ in self.store.automation_items(KIND):
            if spec is None:  # the switch of a config schedule
                if item in entries:
                    entries[item] = Entry(replace(entries[item].schedule, enabled=enabled),
                                          "config")
                continue
            if item in entries:
                log.warning("schedule %s from the API is shadowed by the config file's", item)
                continue
            try:
                schedule = check(self.config, {**json.loads(spec), "enabled": enabled})
            except (AutomationError, ValueError) as exc:
                log.warning("stored schedule %s no longer fits the config and is not run: %s",
                            item, exc)
                continue
            entries[item] = Entry(schedule, "api")
        self._entries = entries
        if self.scheduler is not None:
            self.scheduler.replace(self.schedules())

    def schedules(self) -> list[ScheduleConfig]:
        return [e.schedule for e in self._entries.values()]

    def entry(self, schedule_id: str) -> Entry:
        found = self._entries.get(schedule_id)
        if found is None:
            raise UnknownNameError("schedule", schedule_id)
        return found

    def initial_states(self, now: datetime) -> dict[int, tuple[bool | float, Actor]]:
        return initial_states(self.config, self.schedules(), self.place, now)

    # -- edits -------------------------------------------------------------------------------

    async def create(self, body: object, actor: str) -> Entry:
        schedule = check(self.config, body)
        if schedule.id in self._entries:
            raise AutomationConflictError(f"a schedule {schedule.id!r} exists already")
        await self._store(schedule, actor, "create")
        return self.entry(schedule.id)

    async def update(self, schedule_id: str, body: object, actor: str) -> Entry:
        """Change fields of a schedule (those not given stay); the file's: ``enabled`` only."""
        entry = self.entry(schedule_id)
        if not isinstance(body, dict):
            raise AutomationError(["body: expected a JSON object"])
        if body.get("id", schedule_id) != schedule_id:
            raise AutomationError(["body.id: the id of a schedule cannot change"])
        if entry.source == "config":
            if set(body) - {"enabled", "id"} or not isinstance(body.get("enabled"), bool):
                raise AutomationConflictError(
                    f"schedule {schedule_id!r} is defined in the config file: only enabled "
                    "can be changed here; edit the file for the rest")
            enabled = bool(body["enabled"])
            await self.store.put_automation_item(KIND, schedule_id, None, enabled, actor,
                                                 "enable" if enabled else "disable")
            self.reload()
            return self.entry(schedule_id)
        spec = {**_spec(entry.schedule), **body}
        spec["id"] = schedule_id
        if {"pins", "group", "scene"} & set(body):  # the target replaces the old one
            for key in {"pins", "group", "scene"} - set(body):
                spec.pop(key, None)
        if {"at", "cron"} & set(body):  # so is the time (days belong to an at)
            for key in {"at", "cron", "days"} - set(body):
                spec.pop(key, None)
        schedule = check(self.config, spec)
        only_switch = set(body) <= {"enabled", "id"}
        await self._store(schedule, actor, ("enable" if schedule.enabled else "disable")
                          if only_switch else "update")
        return self.entry(schedule_id)

    async def delete(self, schedule_id: str, actor: str) -> None:
        entry = self.entry(schedule_id)
        if entry.source == "config":
            raise AutomationConflictError(f"schedule {schedule_id!r} is defined in the config "
                                          "file; remove it there (or disable it here)")
        await self.store.delete_automation_item(KIND, schedule_id, actor)
        self.reload()

    async def _store(self, schedule: ScheduleConfig, actor: str, action: str) -> None:
        spec = json.dumps(_spec(schedule), sort_keys=True)
        await self.store.put_automation_item(KIND, schedule.id, spec, schedule.enabled, actor,
                                             action)
        self.reload()

    # -- what the API and the page show --------------------------------------------------------

    def as_json(self, board: Board, entry: Entry, now: datetime) -> dict[str, Any]:
        schedule = entry.schedule
        due = (self.scheduler.next_run(schedule.id) if self.scheduler is not None
               else next_run(schedule, self.place, now)) if schedule.enabled else None
        data = _spec(schedule)
        data.update({
            "enabled": schedule.enabled, "source": entry.source,
            "pins": [board.resolve(bcm).id for bcm in schedule.pins],
            "next_run": format_time(due) if due else None,
            "next": describe_next(schedule, self.place, now, due) if schedule.enabled
            else "disabled",
            "when": label(schedule) if schedule.cron or (schedule.moment and
                                                          schedule.moment.event) else schedule.at,
            "does": does(board, schedule),
        })
        last = self.scheduler.last_run.get(schedule.id) if self.scheduler else None
        data["last_run"] = format_time(last) if last else None
        return data


def does(board: Board, schedule: ScheduleConfig) -> str:
    """What a run does, in words: "porch on", "group lights off", "scene evening"."""
    if schedule.scene:
        return f"scene {schedule.scene}"
    if schedule.group:
        return f"group {schedule.group} {schedule.action}"
    try:
        names = ", ".join(board.resolve(bcm).id for bcm in schedule.pins)
    except PinpanelError:
        names = ", ".join(map(str, schedule.pins))
    extra = f" {schedule.ms} ms" if schedule.action == "pulse" and schedule.ms else ""
    if schedule.action == "level" and schedule.level is not None:
        extra = f" {schedule.level:.0%}" + (f" over {schedule.fade_ms} ms"
                                           if schedule.fade_ms else "")
    return f"{names} {schedule.action}{extra}"


def _spec(schedule: ScheduleConfig) -> dict[str, Any]:
    """The schedule as its JSON spec: only what it says (no defaults spelled out)."""
    data = schedule.as_json()
    spec: dict[str, Any] = {"id": data["id"], "name": data["name"]}
    for key in ("at", "cron", "group", "scene"):
        if data[key]:
            spec[key] = data[key]
    if data["days"]:
        spec["days"] = data["days"]
    if data["pins"]:
        spec["pins"] = data["pins"]
    if not schedule.scene:
        spec["action"] = schedule.action
    if schedule.ms:
        spec["ms"] = schedule.ms
    if schedule.level is not None:
        spec["level"] = schedule.level
        if schedule.fade_ms:
            spec["fade_ms"] = schedule.fade_ms
    spec["enabled"] = schedule.enabled
    return spec
