"""How a config setting is declared, read back, checked and described.

A setting is a field of one of :mod:`pinpanel.config`'s dataclasses. Its type and default
are the field's; what a type cannot say (help text, bounds, the command-line flag) sits in the
field's ``metadata``, written with :func:`about`. :func:`settings_of` reads the fields back as
:class:`Setting` records, which the loader checks values against, the CLI makes flags from
and the README's reference table lists. So each setting is declared exactly once.

A leaf module: it knows dataclasses and typing, nothing of pinpanel.
"""

from __future__ import annotations

import math
from dataclasses import MISSING, Field, dataclass, fields
from typing import Any, Literal, get_args, get_origin, get_type_hints

#: The key under which a field's :class:`About` sits in its ``metadata``.
ABOUT = "pinpanel"


@dataclass(frozen=True)
class About:
    """What a config field means to a person: the part of a setting its type cannot say."""

    help: str
    minimum: float | None = None
    maximum: float | None = None
    flag: str | None = None
    #: What a boolean flag does, when that is not what ``help`` (the setting's meaning) says:
    #: ``--no-auth`` turns auth off, while ``auth.enabled``'s help describes it on.
    flag_help: str | None = None


def about(help: str, *, minimum: float | None = None, maximum: float | None = None,
          flag: str | None = None, flag_help: str | None = None) -> dict[str, About]:
    """``metadata`` for a config field: ``field(default=..., metadata=about(...))``."""
    return {ABOUT: About(help, minimum, maximum, flag, flag_help)}


def about_of(f: Field[Any]) -> About:
    """The :class:`About` of a field (a ``KeyError`` at import if a field has none)."""
    info: About = f.metadata[ABOUT]
    return info


@dataclass(frozen=True)
class Setting:
    """One configuration value, as read off its field: where it lives and what it may hold.

    ``kind`` is the TOML type (``list`` for a ``tuple[str, ...]`` field, whose ``default`` is
    then a list), ``choices`` come from a ``Literal`` type, ``secret`` from ``repr=False``.
    """

    key: str
    kind: type
    default: Any
    help: str
    choices: tuple[str, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    flag: str | None = None
    secret: bool = False
    #: The help of the setting's flag; for a boolean flag it describes the flag's value.
    flag_help: str = ""

    @property
    def section(self) -> str:
        return self.key.split(".", 1)[0]

    @property
    def name(self) -> str:
        return self.key.split(".", 1)[1]

    def check(self, value: object, path: str, problems: list[str]) -> object:
        """The schema pass for one value: it normalised, or None after recording a problem."""
        kind = self.kind
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # TOML writes 2 for 2.0; a number is a number
        ok = isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool))
        if not ok:
            problems.append(f"{path}: expected {_type_name(kind)}, got {type(value).__name__}")
            return None
        if kind is float and not math.isfinite(value):  # type: ignore[arg-type]
            problems.append(f"{path}: expected a finite number, got {value}")
            return None
        if kind is list:
            items = list(value)  # type: ignore[call-overload]
            if not all(isinstance(item, str) for item in items):
                problems.append(f"{path}: expected a list of strings")
                return None
            return tuple(items)
        if self.choices is not None and value not in self.choices:
            problems.append(f"{path}: must be one of {', '.join(self.choices)}, got {value!r}")
            return None
        if isinstance(value, int | float) and not isinstance(value, bool):
            low, high = self.minimum, self.maximum
            if (low is not None and value < low) or (high is not None and value > high):
                problems.append(f"{path}: must be between {low} and {high}, got {value}")
                return None
        return value

    def reference_row(self, shown_key: str) -> str:
        """This setting's row in the Markdown reference (``--help-settings``, the README)."""
        extra = f" One of: {', '.join(self.choices)}." if self.choices else ""
        return f"| `{shown_key}` | `{_show_default(self.default)}` | {self.help}{extra} |"


def _type_name(kind: type) -> str:
    return {int: "an integer", float: "a number", str: "a string", bool: "true or false",
            list: "a list"}[kind]


def _show_default(default: object) -> str:
    if default is None:
        return ""
    if isinstance(default, bool):
        return str(default).lower()
    return repr(default) if isinstance(default, str) else str(default)


def _kind(hint: Any) -> tuple[type, tuple[str, ...] | None]:
    """The TOML type a field's annotation asks for, and its choices if it is a Literal."""
    origin = get_origin(hint)
    if origin is Literal:
        return str, tuple(get_args(hint))
    if origin is tuple:
        return list, None
    return hint, None


def settings_of(section: str, cls: type) -> tuple[Setting, ...]:
    """The settings of dataclass ``cls``, keyed ``section.field``, in field order."""
    hints = get_type_hints(cls)
    found: list[Setting] = []
    for f in fields(cls):
        info = about_of(f)
        kind, choices = _kind(hints[f.name])
        default: Any = None if f.default is MISSING else f.default
        if kind is list:
            default = list(default)
        found.append(Setting(f"{section}.{f.name}", kind, default, info.help, choices,
                             info.minimum, info.maximum, info.flag, secret=not f.repr,
                             flag_help=info.flag_help or info.help))
    return tuple(found)
