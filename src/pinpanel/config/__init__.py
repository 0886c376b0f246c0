"""TOML configuration -> one typed, frozen :class:`Config`, built once and passed down.

Every setting is declared once: a field of a section dataclass (:class:`ServerConfig`,
:class:`PinConfig`...) with its type, its default and, in ``metadata``, its help text, bounds
and command-line flag (see :mod:`pinpanel.settings`). The type says what TOML may hold (a
``Literal`` gives the choices, a ``tuple[str, ...]`` a list of strings). :data:`SETTINGS` and
:data:`PIN_SETTINGS` are read off those fields, and the loader, the CLI's flags,
``--help-settings`` and the README's reference table all come from them, so none of them can
drift from the dataclasses.

Validation runs in two passes, as mqtt-io does: the schema pass checks types, choices and
ranges of each value; the cross-field pass catches a pin claimed twice, duplicate ids and
interlocks naming pins that do not exist. The cross-field pass sees every pin the file
names, also those with problems of their own, so one run reports every problem, each once,
with its path (``pins[2].pin: expected an integer``), before any pin is touched.

With no file at all the defaults reproduce the tutorial: BCM 18, 23 and 24 as outputs.

One concept a module:

- :mod:`~pinpanel.config.types`: the ``Literal`` choices and the board's limits.
- :mod:`~pinpanel.config.paths`: the default data directory.
- :mod:`~pinpanel.config.sections`: the ``[section]`` dataclasses, each with its own checks.
- :mod:`~pinpanel.config.pins`: :class:`PinConfig` and which keys each mode takes.
- :mod:`~pinpanel.config.model`: :class:`Config` (its sections in order), groups and scenes.
- :mod:`~pinpanel.config.schema`: the schema pass; :mod:`~pinpanel.config.references`:
  the cross-field pass; :mod:`~pinpanel.config.loader`: :func:`parse`, :func:`load`,
  overrides and the README's table.

``[[sensors]]``, ``[[schedules]]`` and ``[[rules]]``/``[[notifiers]]`` have their own
grammars in :mod:`pinpanel.sensor_config`, :mod:`pinpanel.schedule_config` and
:mod:`pinpanel.rule_config`, leaves below this package.

Adding a ``[section]`` (as ``[homekit]`` was): a frozen dataclass subclassing
:class:`~pinpanel.config.sections.Section` in ``sections.py`` (or, if it is large, its own
module here), each setting a field with ``metadata=about(...)``, and its cross-value checks
in its ``check`` method; then one field of that type on :class:`Config` in ``model.py``,
and its name in ``__all__`` below. The loader, the flags, ``--help-settings`` and the README
table (``scripts/gen-docs``) pick it up from the field; nothing else needs editing.

Adding a per-pin key (as ``homekit_type`` was): a field of :class:`PinConfig` in ``pins.py``.
If only some modes take it, add it to the mode tables there (``_MODE_KEYS``, and
``_KEY_OWNERS`` for the error message) and check its value against the mode in
:func:`~pinpanel.config.pins.check_mode_keys`, as ``ha_type`` does.

Callers import from this package's face (``from pinpanel.config import Config``); its
modules import one another by full path, never through it.
"""

from __future__ import annotations

from pinpanel.config.loader import load, parse, settings_reference, with_overrides
from pinpanel.config.model import ALL_GROUP, SETTINGS, Config, GroupConfig, SceneConfig
from pinpanel.config.paths import default_data_dir
from pinpanel.config.pins import PIN_SETTINGS, PinConfig, pin_keys, tutorial_pins
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
from pinpanel.config.types import (
    AUTO_OFF_MAX_MS,
    BCM_PINS,
    FADE_MAX_MS,
    ID_PATTERN,
    MODE_NAMES,
    PULSE_MAX_MS,
    TUTORIAL_PINS,
    Backend,
    HaType,
    HomekitType,
    Initial,
    Mode,
    OnExit,
    Pull,
)

__all__ = [
    "ALL_GROUP",
    "AUTO_OFF_MAX_MS",
    "BCM_PINS",
    "FADE_MAX_MS",
    "ID_PATTERN",
    "MODE_NAMES",
    "PIN_SETTINGS",
    "PULSE_MAX_MS",
    "SETTINGS",
    "TUTORIAL_PINS",
    "AuthConfig",
    "Backend",
    "Config",
    "GpioConfig",
    "GroupConfig",
    "HaType",
    "HistoryConfig",
    "HomekitConfig",
    "HomekitType",
    "HubConfig",
    "Initial",
    "LocationConfig",
    "MdnsConfig",
    "Mode",
    "MqttConfig",
    "OnExit",
    "PinConfig",
    "Pull",
    "SceneConfig",
    "Section",
    "ServerConfig",
    "default_data_dir",
    "load",
    "parse",
    "pin_keys",
    "settings_reference",
    "tutorial_pins",
    "with_overrides",
]
