"""``pinpanel backup FILE``: one archive of the state database and the config file.

Safe while the server runs: the database is read through SQLite's online backup (see
:mod:`pinpanel.backup`), and no lock is taken, so the server never waits for it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from pinpanel.backup import archive, config_file, write_private
from pinpanel.cli.exits import EXIT_OK
from pinpanel.cli.options import data_dir_of
from pinpanel.config import load
from pinpanel.errors import BackupError
from pinpanel.store import DB_NAME


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", type=Path, help="where to write the archive (.tar.gz)")
    parser.add_argument("--config", "-c", metavar="FILE",
                        help="the config file the server runs with: put in the archive, and "
                             "its [server] data_dir is the database's directory")
    parser.add_argument("--data-dir", metavar="DIR", type=Path,
                        help="the server's data directory (default: from the config, else "
                             "the server's default)")


def run(args: argparse.Namespace) -> int:
    config = load(args.config)
    data_dir = data_dir_of(config, args.data_dir)
    db = data_dir / DB_NAME
    if not db.is_file():
        raise BackupError(f"no state database in {data_dir} (is --data-dir right?)")
    data = archive(db, config_file(config))
    write_private(data, args.file)
    included = f" and {config.source}" if config_file(config) else ""
    print(f"Wrote {args.file} ({len(data)} bytes): the database of {data_dir}{included}.")
    return EXIT_OK


COMMANDS = {"backup": (arguments, run)}
