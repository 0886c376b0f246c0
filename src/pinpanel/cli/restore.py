"""``pinpanel restore FILE``: put a backup back, with the server stopped.

Everything is checked before anything changes (see :mod:`pinpanel.backup`); a running
server on the data directory makes it stop with exit code 8, having changed nothing.
"""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path

from pinpanel.backup import CONFIG, read, restore
from pinpanel.cli.exits import EXIT_OK
from pinpanel.cli.options import data_dir_of
from pinpanel.config import load, parse
from pinpanel.errors import BackupError, ConfigError


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="the archive made by pinpanel backup")
    parser.add_argument("--config", "-c", metavar="FILE", type=Path,
                        help="the config file the server runs with (its data_dir is where "
                             "the database goes)")
    parser.add_argument("--restore-config", action="store_true",
                        help="also replace --config with the archive's config file (the old "
                             "one is kept beside it, renamed with a timestamp)")
    parser.add_argument("--data-dir", metavar="DIR", type=Path,
                        help="the server's data directory (default: from the config, else "
                             "the server's default)")


def run(args: argparse.Namespace) -> int:
    if args.restore_config and args.config is None:
        raise BackupError("--restore-config needs --config FILE: where to put it")
    if args.restore_config:
        # The config that will be in effect is the archive's: its data_dir decides.
        text = read(args.file).config
        if text is None:
            raise BackupError(f"{args.file} holds no config file (the server ran without one)")
        source = f"{args.file}:{CONFIG}"
        try:
            config = parse(tomllib.loads(text.decode()), source)
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError([f"not valid TOML: {exc}"], source) from None
    else:
        config = load(args.config)
    data_dir = data_dir_of(config, args.data_dir)
    done = restore(args.file, data_dir, config_to=args.config if args.restore_config else None)
    made = done.manifest.get("created_at", "?")
    print(f"Restored {args.file} (made {made} by pinpanel "
          f"{done.manifest.get('pinpanel_version', '?')}) into {done.data_dir}.")
    if done.aside is not None:
        print(f"The previous data directory is kept as {done.aside}.")
    if done.config is not None:
        kept = f" (the previous one is kept as {done.config_aside})" if done.config_aside else ""
        print(f"Wrote the archive's config file to {done.config}{kept}.")
    elif done.manifest.get("config_source"):
        print(f"The archive also holds the config file of {done.manifest['config_source']}: "
              f"add --config FILE --restore-config to restore it, or extract it with "
              f"tar -xzf {args.file} {CONFIG}")
    print("Start pinpanel again; pins with initial = \"restore\" come up as the backup knew "
          "them.")
    return EXIT_OK


COMMANDS = {"restore": (arguments, run)}
