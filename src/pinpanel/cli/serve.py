"""``pinpanel serve`` (the default command): run the server, or send one ``--get``.

Imports only what a server needs: the HTTP client and the fleet tools never load here, so a
long-lived server does not carry them in its memory.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path

from pinpanel.cli.exits import EXIT_ERROR, EXIT_OK
from pinpanel.cli.options import add_config_arguments, config_from


def arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for a terminal, json (one object a line) for log tools")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--get", metavar="PATH",
                        help="send one GET through the app without opening a socket, print "
                             "the body, exit 0 on 200 (a smoke test on a fresh Pi)")


def run(args: argparse.Namespace) -> int:
    from pinpanel import config_file, logs, runtime

    logs.setup(args.log_level, args.log_format)
    config = config_from(args)
    path = Path(args.config) if args.config else None
    saved = config_file.default_path(config.server.data_path)
    if path is None and saved.is_file():
        # Written by an earlier server's first save from the settings page.
        args.config = str(saved)
        config, path = config_from(args), saved
        logging.getLogger("pinpanel").info("config file: %s (written by the settings page)",
                                           saved)
    if args.get:
        status, body = asyncio.run(runtime.get_once(config, args.get))
        sys.stdout.write(body.decode(errors="replace") + "\n")
        return EXIT_OK if status == 200 else EXIT_ERROR
    overrides = {key: value for key, value in vars(args).items()
                 if "__" in key and value is not None}
    return runtime.run(runtime.serve(config, path, overrides))


COMMANDS = {"serve": (arguments, run)}
