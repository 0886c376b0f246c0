"""``pinpanel boot-config``: the ``gpio=`` lines that hold each pin at its safe level from
power-on, or with ``--check`` what an existing ``config.txt`` does differently."""

from __future__ import annotations

import argparse
from pathlib import Path

from pinpanel.boot_config import differences, render
from pinpanel.cli.exits import EXIT_ERROR, EXIT_OK
from pinpanel.config import load
from pinpanel.errors import ConfigError


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="pinpanel's TOML config file (default: the tutorial's pins)")
    parser.add_argument("--check", metavar="CONFIG_TXT", type=Path,
                        help="compare with this config.txt (e.g. /boot/firmware/config.txt) "
                             "instead of printing; exit 1 when it differs")


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    if args.check is None:
        print(render(config), end="")
        return EXIT_OK
    try:
        text = args.check.read_text(errors="replace")
    except OSError as exc:
        raise ConfigError([f"cannot read: {exc.strerror}"], str(args.check)) from None
    found = list(differences(config, text))
    for line in found:
        print(f"{args.check}: {line}")
    if found:
        print("Run `pinpanel boot-config` for the lines to append (under [all]).")
        return EXIT_ERROR
    print(f"{args.check}: OK, the gpio= lines hold all {len(config.pins)} pins at their "
          "start level from power-on")
    return EXIT_OK


COMMANDS = {"boot-config": (arguments, run)}
