"""Options several commands share: ``--config`` and one flag per setting.

The flags are derived from :data:`pinpanel.config.SETTINGS`, so each setting is declared once.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pinpanel.config import SETTINGS, Config, load, with_overrides


def port(text: str) -> int:
    """argparse type of a TCP port: a whole number 1-65535."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"port must be 1-65535, got {value}")
    return value


def add_config_arguments(parser: argparse.ArgumentParser) -> None:
    """``--config`` plus one flag per setting that declares one."""
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="TOML config file (default: the tutorial's pins 18, 23, 24)")
    for setting in SETTINGS:
        if not setting.flag:
            continue
        dest = setting.key.replace(".", "__")
        if setting.kind is bool:
            parser.add_argument(setting.flag, dest=dest, action="store_const",
                                const=not setting.default, default=None,
                                help=f"{setting.key} = {str(not setting.default).lower()}: "
                                     f"{setting.flag_help}")
        elif setting.kind is int:
            parser.add_argument(setting.flag, dest=dest, type=port if "port" in setting.key
                                else int, default=None, metavar="N", help=setting.help)
        else:
            parser.add_argument(setting.flag, dest=dest, default=None,
                                metavar=setting.name.upper(), help=setting.help)
    parser.add_argument("--simulate", dest="gpio__backend", action="store_const",
                        const="simulated", default=None,
                        help="use the simulated board even on a Pi (same as [gpio] backend = "
                             "\"simulated\")")


def config_from(args: argparse.Namespace) -> Config:
    """The config file named by ``--config`` (or the default) with the flags applied."""
    config = load(args.config)
    overrides = {key: value for key, value in vars(args).items() if "__" in key}
    return with_overrides(config, **overrides)


def data_dir_of(config: Config, given: Path | None) -> Path:
    """``--data-dir`` if given, else the config's data directory (or the default)."""
    return given.expanduser() if given is not None else config.server.data_path
