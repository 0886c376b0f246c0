"""``pinpanel check-config FILE``: validate a config file and print its pin table."""

from __future__ import annotations

import argparse

from pinpanel.cli.exits import EXIT_OK
from pinpanel.config import load


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the TOML file to validate")


def run(args: argparse.Namespace) -> int:
    config = load(args.file)
    print(f"{args.file}: OK, {len(config.pins)} pins")
    print(f"{'BCM':>4}  {'id':<16} {'mode':<7} {'active_low':<10} {'initial/pull':<12} name")
    for pin in config.pins:
        extra = pin.initial if pin.is_output else f"pull {pin.pull}"
        print(f"{pin.pin:>4}  {pin.id:<16} {pin.mode:<7} {str(pin.active_low).lower():<10} "
              f"{extra:<12} {pin.name}")
    for group in config.interlocks:
        print("interlock: " + ", ".join(f"BCM {b}" for b in group))
    return EXIT_OK


COMMANDS = {"check-config": (arguments, run)}
