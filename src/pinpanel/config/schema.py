"""The schema pass: each value checked against its setting (type, choices, range).

Every problem is recorded with its path and the pass goes on, so one run reports them all.
A ``[[pins]]`` table becomes a :class:`PinDraft` even when it has problems, for the
cross-field pass (:mod:`pinpanel.config.references`) to count and find.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pinpanel.config.pins import PIN_KEYS, PinConfig, check_mode_keys
from pinpanel.config.types import ID_PATTERN, Mode
from pinpanel.settings import Setting


def load_table(
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
class PinDraft:
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


def load_pin(table: object, path: str, problems: list[str]) -> PinDraft | None:
    if not isinstance(table, dict):
        problems.append(f"{path}: expected a table ([[pins]])")
        return None
    before = len(problems)
    values = load_table(table, PIN_KEYS, path, problems)
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
        check_mode_keys(table, values, mode, path, problems)
    config = PinConfig(**values) if len(problems) == before else None
    return PinDraft(path, bcm, pin_id, bool(values.get("id")), mode, config)
