"""``pinpanel hub``: ``serve`` with ``[hub] enabled = true``, whatever the config says.

The hub is part of the server (same auth, same port), so this is the server's command with
one setting forced; ``--broker HOST:PORT`` points the hub at a broker without editing the
``[mqtt]`` section (which this Pi's own bridge may or may not use).
"""

from __future__ import annotations

import argparse

from pinpanel.cli.options import config_from
from pinpanel.cli.serve import arguments as serve_arguments


def arguments(parser: argparse.ArgumentParser) -> None:
    serve_arguments(parser)
    parser.add_argument("--broker", metavar="HOST:PORT",
                        help="the broker the fleet is on (default: [mqtt] host and port)")
    parser.add_argument("--bases", metavar="FILTER",
                        help="MQTT filter of the fleet's base topics (default pinpanel/+)")


def run(args: argparse.Namespace) -> int:
    from pinpanel import logs, runtime
    from pinpanel.config import with_overrides
    from pinpanel.errors import ConfigError
    from pinpanel.fleet import parse_broker

    logs.setup(args.log_level, args.log_format)
    host = port = None
    if args.broker:
        try:
            host, port = parse_broker(args.broker)
        except ValueError as exc:
            raise ConfigError([f"--broker: {exc}"], "hub") from None
    config = with_overrides(config_from(args), hub__enabled=True, hub__bases=args.bases,
                            mqtt__host=host, mqtt__port=port)
    return runtime.run(runtime.serve(config))


COMMANDS = {"hub": (arguments, run)}
