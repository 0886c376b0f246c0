"""The command line: ``pinpanel [serve]``, ``check-config`` and the other commands.

Only this module chooses exit codes and prints domain errors as one clean line. Flags for
settings are derived from :data:`pinpanel.config.SETTINGS`, so each setting is declared once.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable, Sequence
from typing import Any

from pinpanel import __version__
from pinpanel.config import SETTINGS, Config, load, settings_reference, with_overrides
from pinpanel.errors import ConfigError, PinpanelError

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_CONFIG = 0, 1, 2, 3
#: The client commands (pins, on, off, toggle, pulse, watch) add these; see EXIT_CODES.
EXIT_AUTH, EXIT_NOT_FOUND, EXIT_CONFLICT = 4, 5, 6
#: What a script can rely on. 1 also covers a server that cannot be reached.
EXIT_CODES = {
    EXIT_OK: "success",
    EXIT_ERROR: "error: server unreachable, server error (5xx), or a failure here",
    EXIT_USAGE: "usage: bad arguments, or the server refused the values (400/413/415/422)",
    EXIT_CONFIG: "configuration: invalid config file or server URL",
    EXIT_AUTH: "authentication: the token is missing, wrong, revoked or lacks the scope",
    EXIT_NOT_FOUND: "not found: no such pin",
    EXIT_CONFLICT: "conflict: the pin's mode does not allow it (switching an input)",
    130: "interrupted (Ctrl+C)",
}

#: Other modules add subcommands here: name -> (help, add_arguments, run(args) -> exit code).
Command = tuple[str, Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int]]
COMMANDS: dict[str, Command] = {}


def _port(text: str) -> int:
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
                                     f"{setting.help}")
        elif setting.kind is int:
            parser.add_argument(setting.flag, dest=dest, type=_port if "port" in setting.key
                                else int, default=None, metavar="N", help=setting.help)
        else:
            parser.add_argument(setting.flag, dest=dest, default=None,
                                metavar=setting.name.upper(), help=setting.help)
    parser.add_argument("--simulate", dest="gpio__backend", action="store_const",
                        const="simulated", default=None,
                        help="use the simulated board even on a Pi (same as [gpio] backend = "
                             "\"simulated\")")


def config_from(args: argparse.Namespace) -> Config:
    config = load(args.config)
    overrides = {key: value for key, value in vars(args).items() if "__" in key}
    return with_overrides(config, **overrides)


def _serve(args: argparse.Namespace) -> int:
    from pinpanel import logs, runtime

    logs.setup(args.log_level, args.log_format)
    config = config_from(args)
    if args.get:
        status, body = asyncio.run(runtime.get_once(config, args.get))
        sys.stdout.write(body.decode(errors="replace") + "\n")
        return EXIT_OK if status == 200 else EXIT_ERROR
    return runtime.run(runtime.serve(config))


def _serve_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser)
    parser.add_argument("--log-format", choices=("text", "json"), default="text",
                        help="text for a terminal, json (one object a line) for log tools")
    parser.add_argument("--log-level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    parser.add_argument("--get", metavar="PATH",
                        help="send one GET through the app without opening a socket, print "
                             "the body, exit 0 on 200 (a smoke test on a fresh Pi)")


def _check_config(args: argparse.Namespace) -> int:
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


def _check_config_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the TOML file to validate")


COMMANDS["serve"] = ("run the web server (the default command)", _serve_arguments, _serve)
COMMANDS["check-config"] = ("validate a config file and print its pin table",
                            _check_config_arguments, _check_config)


def build_parser(*, all_commands: bool = True) -> argparse.ArgumentParser:
    """The parser; ``all_commands=False`` leaves out the other modules' subcommands.

    ``serve`` parses with only its own: importing every command module (the HTTP client,
    the fleet tools) would add start-up time and resident memory to a long-lived server
    that never runs them.
    """
    if all_commands:
        from pinpanel import commands  # noqa: F401 - importing these registers them

    parser = argparse.ArgumentParser(
        prog="pinpanel",
        description="A Raspberry Pi's GPIO pins on the network: a page, a JSON API, live "
                    "updates, durable state. With no command, runs 'serve'.")
    parser.add_argument("--version", action="version", version=f"pinpanel {__version__}")
    parser.add_argument("--help-settings", action="store_true",
                        help="print every config setting with its default and meaning")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (help_text, add_arguments, run) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        add_arguments(command)
        command.set_defaults(run=run)
    return parser


def _client_exit_code(exc: PinpanelError) -> int | None:
    """The exit code of a client command's error; None if ``exc`` is no client error.

    Imported here, not at the top: ``serve`` never needs the HTTP client (urllib.request)
    in its memory, and an exception from the client means it is imported already.
    """
    from pinpanel.client import (
        AuthRefusedError,
        ClientConfigError,
        ClientError,
        ConflictError,
        NotFoundError,
        RejectedError,
    )

    if not isinstance(exc, ClientError):
        return None
    for kind, code in ((AuthRefusedError, EXIT_AUTH), (NotFoundError, EXIT_NOT_FOUND),
                       (ConflictError, EXIT_CONFLICT), (RejectedError, EXIT_USAGE),
                       (ClientConfigError, EXIT_CONFIG)):
        if isinstance(exc, kind):
            return code
    return EXIT_ERROR


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    top_level = {"-h", "--help", "--version", "--help-settings"}
    if not args_list or (args_list[0].startswith("-") and args_list[0] not in top_level):
        args_list.insert(0, "serve")  # bare `pinpanel` (or `pinpanel --port 9000`) serves
    parser = build_parser(all_commands=args_list[0] != "serve")
    args = parser.parse_args(args_list)
    if args.help_settings:
        print(settings_reference())
        return EXIT_OK
    run: Callable[[Any], int] = args.run
    try:
        return run(args)
    except ConfigError as exc:
        print(f"pinpanel: invalid configuration in {exc.source}:", file=sys.stderr)
        for problem in exc.problems:
            print(f"  - {problem}", file=sys.stderr)
        return EXIT_CONFIG
    except PinpanelError as exc:
        if (code := _client_exit_code(exc)) is not None:
            print(f"pinpanel: {exc}", file=sys.stderr)
            return code
        print(f"pinpanel: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        return 130
