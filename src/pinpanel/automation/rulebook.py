"""The rule book: the config file's rules and those made over the API, as one list.

As with schedules (:mod:`pinpanel.automation.schedules`): a ``[[rules]]`` rule is the
file's, which the API can enable or disable (stored, kept across restarts; enabling a rule
stopped by the loop protection restarts it), and a rule posted to the API is stored as its
JSON body, checked by the same :func:`~pinpanel.rule_config.load_rule` as the file's. Every
edit writes an audit row in the same transaction.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, replace
from typing import Any, Literal

from pinpanel.automation.rules import KIND, RuleEngine
from pinpanel.board import Board
from pinpanel.config import ALL_GROUP, Config, PinConfig
from pinpanel.errors import AutomationConflictError, AutomationError, UnknownNameError
from pinpanel.rule_config import RuleConfig, load_rule
from pinpanel.store import Store

log = logging.getLogger(__name__)

Source = Literal["config", "api"]


@dataclass(frozen=True)
class RuleEntry:
    rule: RuleConfig
    source: Source
    body: dict[str, Any] | None = None  # an API rule's body as stored


def check(config: Config, body: object, schedules: set[str], path: str = "body") -> RuleConfig:
    """A rule from a JSON body, checked as the config loader checks one."""
    problems: list[str] = []
    by_ref: dict[object, PinConfig] = {}
    for pin in config.pins:
        by_ref.update({pin.pin: pin, pin.id: pin, str(pin.pin): pin})

    def find(ref: object, where: str, output: bool) -> int | None:
        valid = isinstance(ref, int | str) and not isinstance(ref, bool)
        pin = by_ref.get(ref) if valid else None
        if pin is None:
            problems.append(f"{where}: {ref!r} is not a configured pin")
            return None
        if output and not pin.is_output:
            problems.append(f"{where}: pin {pin.pin} is an input; only outputs can be switched")
            return None
        return pin.pin

    rule = load_rule(body, path, resolve=lambda r, w: find(r, w, True),
                     resolve_any=lambda r, w: find(r, w, False),
                     groups={g.id for g in config.groups} | {ALL_GROUP},
                     scenes={s.id for s in config.scenes},
                     sensors={s.id for s in config.sensors}, schedules=schedules,
                     notifiers={n.id for n in config.notifiers}, problems=problems)
    if problems or rule is None:
        raise AutomationError(problems)
    return rule


class RuleBook:
    def __init__(self, config: Config, store: Store, engine: RuleEngine,
                 schedules: set[str]) -> None:
        self.config = config
        self.store = store
        self.engine = engine
        self.schedule_ids = schedules
        self._entries: dict[str, RuleEntry] = {}
        self.reload()

    def reload(self) -> None:
        entries = {r.id: RuleEntry(r, "config") for r in self.config.rules}
        for item, spec, enabled, _ in self.store.automation_items(KIND):
            if spec is None:
                if item in entries:
                    entries[item] = RuleEntry(replace(entries[item].rule, enabled=enabled),
                                              "config")
                continue
            if item in entries:
                continue
            try:
                body = {**json.loads(spec), "enabled": enabled}
                entries[item] = RuleEntry(check(self.config, body, self.schedule_ids), "api",
                                          body)
            except (AutomationError, ValueError) as exc:
                log.warning("stored rule %s no longer fits the config and is not run: %s",
                            item, exc)
        self._entries = entries
        self.engine.replace(e.rule for e in entries.values())

    def entries(self) -> list[RuleEntry]:
        return list(self._entries.values())

    def entry(self, rule_id: str) -> RuleEntry:
        found = self._entries.get(rule_id)
        if found is None:
            raise UnknownNameError("rule", rule_id)
        return found

    async def create(self, body: object, actor: str) -> RuleEntry:
        rule = check(self.config, body, self.schedule_ids)
        if rule.id in self._entries:
            raise AutomationConflictError(f"a rule {rule.id!r} exists already")
        assert isinstance(body, dict)
        await self.store.put_automation_item(KIND, rule.id, json.dumps(body, sort_keys=True),
                                             rule.enabled, actor, "create")
        self.reload()
        return self.entry(rule.id)

    async def update(self, rule_id: str, body: object, actor: str) -> RuleEntry:
        entry = self.entry(rule_id)
        if not isinstance(body, dict):
            raise AutomationError(["body: expected a JSON object"])
        if body.get("id", rule_id) != rule_id:
            raise AutomationError(["body.id: the id of a rule cannot change"])
        only_switch = set(body) <= {"enabled", "id"} and isinstance(body.get("enabled"), bool)
        if entry.source == "config":
            if not only_switch:
                raise AutomationConflictError(
                    f"rule {rule_id!r} is defined in the config file: only enabled can be "
                    "changed here; edit the file for the rest")
            spec = None
        else:
            merged = {**(entry.body or {}), **body, "id": rule_id}
            check(self.config, merged, self.schedule_ids)
            spec = json.dumps(merged, sort_keys=True)
        enabled = bool(body.get("enabled", entry.rule.enabled))
        action = ("enable" if enabled else "disable") if only_switch else "update"
        if enabled:
            self.engine.resume(rule_id)  # enabling again restarts a rule the loop guard stopped
        await self.store.put_automation_item(KIND, rule_id, spec, enabled, actor, action)
        self.reload()
        return self.entry(rule_id)

    async def delete(self, rule_id: str, actor: str) -> None:
        entry = self.entry(rule_id)
        if entry.source == "config":
            raise AutomationConflictError(f"rule {rule_id!r} is defined in the config file; "
                                          "remove it there (or disable it here)")
        await self.store.delete_automation_item(KIND, rule_id, actor)
        self.reload()

    def as_json(self, board: Board, entry: RuleEntry) -> dict[str, Any]:
        rule = entry.rule

        def pin_id(bcm: int | None) -> str | None:
            return None if bcm is None else board.resolve(bcm).id

        when: dict[str, Any]
        if rule.pin is not None:
            when = {"pin": pin_id(rule.pin), "to": "on" if rule.to else "off"}
        elif rule.sensor:
            when = {"sensor": rule.sensor, "reading": rule.reading or None,
                    "above": rule.above, "below": rule.below}
        else:
            when = {"schedule": rule.schedule}

        def acts(items: tuple[Any, ...]) -> list[dict[str, Any]]:
            out = []
            for action in items:
                data = action.as_json()
                if "pins" in data:
                    data["pins"] = [pin_id(p) for p in data["pins"]]
                out.append(data)
            return out

        return {"id": rule.id, "name": rule.name, "when": when, "for_s": rule.hold_s,
                "between": list(rule.between) if rule.between else None,
                "unless_pin": pin_id(rule.unless_pin), "cooldown_s": rule.cooldown_s,
                "then": acts(rule.then), "otherwise": acts(rule.otherwise),
                "enabled": rule.enabled, "source": entry.source,
                **self.engine.as_json(rule.id)}
