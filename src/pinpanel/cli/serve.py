"""``pinpanel serve`` (the default command): run the server, or send one ``--get``.

Imports only what a server needs: the HTTP client and the fleet tools never load here, so a
long-lived server does not carry them in its memory.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

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
    from pinpanel import logs, runtime

    logs.setup(args.log_level, args.log_format)
    config = config_from(args)
    if args.get:
        status, body = asyncio.run(runtime.get_once(config, args.get))
        sys.stdout.write(body.decode(errors="replace") + "\n")
        return EXIT_OK if status == 200 else EXIT_ERROR
    return runtime.run(runtime.serve(config))


COMMANDS = {"serve": (arguments, run)}
