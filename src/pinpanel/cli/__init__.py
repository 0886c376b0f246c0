"""The command line: ``pinpanel [serve]``, ``check-config``, ``token`` and the others.

This package is the only place that knows argparse, stdout and exit codes. It lists every
command once (:data:`COMMANDS`: name, help, module) and imports only the module of the
command being run: ``serve`` must not carry the HTTP client or the fleet tools in a
long-lived server's memory. A command module defines its own ``COMMANDS`` (name ->
arguments, run) and never imports this package's dispatcher back; nothing outside
``pinpanel.cli`` imports it at all. Domain errors become one clean line and the exit code of
:mod:`pinpanel.cli.exits`.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pinpanel import __version__
from pinpanel.cli.exits import (
    EXIT_AUTH,
    EXIT_CONFIG,
    EXIT_CONFLICT,
    EXIT_DATA_DIR_IN_USE,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_PORT_IN_USE,
    EXIT_USAGE,
)
from pinpanel.errors import ConfigError, DataDirInUseError, PinpanelError, PortInUseError

#: Every command, in ``--help`` order: name -> (help, the module that implements it).
COMMANDS: dict[str, tuple[str, str]] = {
    "serve": ("run the web server (the default command)", "pinpanel.cli.serve"),
    "check-config": ("validate a config file and print its pin table",
                     "pinpanel.cli.check_config"),
    "token": ("create, list and revoke API tokens", "pinpanel.cli.token"),
    "pins": ("list pins of a running server (client)", "pinpanel.cli.remote"),
    "on": ("switch a pin on (client of a running server)", "pinpanel.cli.remote"),
    "off": ("switch a pin off (client of a running server)", "pinpanel.cli.remote"),
    "toggle": ("toggle a pin (client of a running server)", "pinpanel.cli.remote"),
    "pulse": ("switch a pin on, then off after --ms (client)", "pinpanel.cli.remote"),
    "watch": ("print the server's pin changes as they happen (client)", "pinpanel.cli.remote"),
    "hub": ("run the server with the hub: one page over every pinpanel on the broker",
            "pinpanel.cli.hub"),
    "fleet-sim": ("run N simulated devices (board, store, MQTT bridge each) against one broker",
                  "pinpanel.cli.fleet"),
    "install-service": ("write a systemd unit that runs pinpanel at boot as a dedicated "
                        "non-root user", "pinpanel.cli.install_service"),
    "backup": ("write one archive of the state database and the config file (safe while "
               "the server runs)", "pinpanel.cli.backup"),
    "restore": ("put a backup back, the old data kept aside (with the server stopped)",
                "pinpanel.cli.restore"),
    "reload": ("make the running server read its config file again (as SIGHUP does): "
               "changed pins only", "pinpanel.cli.reload"),
    "boot-config": ("print the config.txt gpio= lines that hold each pin at its safe level "
                    "from power-on (--check compares a config.txt)", "pinpanel.cli.boot_config"),
}
_TOP_LEVEL = {"-h", "--help", "--version", "--help-settings"}

Run = Callable[[argparse.Namespace], int]


def _implementation(name: str) -> tuple[Callable[[argparse.ArgumentParser], None], Run]:
    module = importlib.import_module(COMMANDS[name][1])
    found: tuple[Callable[[argparse.ArgumentParser], None], Run] = module.COMMANDS[name]
    return found


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser, with the arguments of the ``chosen`` command only.

    Every command is listed (its help comes from :data:`COMMANDS`), but only the chosen
    one's module is imported to declare its arguments.
    """
    parser = argparse.ArgumentParser(
        prog="pinpanel",
        description="A Raspberry Pi's GPIO pins on the network: a page, a JSON API, live "
                    "updates, durable state. With no command, runs 'serve'.")
    parser.add_argument("--version", action="version", version=f"pinpanel {__version__}")
    parser.add_argument("--help-settings", action="store_true",
                        help="print every config setting with its default and meaning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, _module) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if name == chosen:
            add_arguments, run = _implementation(name)
            add_arguments(command)
            command.set_defaults(run=run)
    return parser


def _client_exit_code(exc: BaseException) -> int | None:
    """The exit code of an HTTP client error; None if ``exc`` is none.

    :mod:`pinpanel.client` is looked up, never imported: if it is not loaded, no exception
    can be one of its errors, and ``serve`` never loads it.
    """
    client: Any = sys.modules.get("pinpanel.client")
    if client is None or not isinstance(exc, client.ClientError):
        return None
    for kind, code in ((client.AuthRefusedError, EXIT_AUTH),
                       (client.NotFoundError, EXIT_NOT_FOUND),
                       (client.ConflictError, EXIT_CONFLICT), (client.RejectedError, EXIT_USAGE),
                       (client.ClientConfigError, EXIT_CONFIG)):
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; returns its exit code (the console script exits with it)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in _TOP_LEVEL):
        args_list.insert(0, "serve")  # bare `pinpanel` (or `pinpanel --port 9000`) serves
    parser = build_parser(args_list[0] if args_list[0] in COMMANDS else None)
    args = parser.parse_args(args_list)
    if args.help_settings:
        from pinpanel.config import settings_reference

        print(settings_reference())
        return EXIT_OK
    run: Run | None = getattr(args, "run", None)
    if run is None:
        parser.print_usage(sys.stderr)
        return EXIT_USAGE
    try:
        return run(args)
    except ConfigError as exc:
        print(f"pinpanel: invalid configuration in {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except PinpanelError as exc:
        print(f"pinpanel: error: {exc}", file=sys.stderr)
        if isinstance(exc, PortInUseError):
            return EXIT_PORT_IN_USE
        return EXIT_DATA_DIR_IN_USE if isinstance(exc, DataDirInUseError) else EXIT_ERROR
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        if (code := _client_exit_code(exc)) is not None:
            print(f"pinpanel: {exc}", file=sys.stderr)
            return code
        raise
