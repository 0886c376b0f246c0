"""``pinpanel pins``, ``on``, ``off``, ``toggle``, ``pulse`` and ``watch``: a running server
driven from a shell or a script, through :mod:`pinpanel.client`.

The server is ``--url`` (or ``$PINPANEL_URL``, else http://localhost:8080) and the token
``--token`` (or ``$PINPANEL_TOKEN``; a token on the command line shows in ``ps``, so the
variable is the better habit). Output is one line per pin or event, or JSON with
``--json``; errors are one line on stderr, and the exit code says which kind
(see :data:`pinpanel.cli.exits.EXIT_CODES`).
"""

from __future__ import annotations

import argparse
import json
import os
from dataclasses import asdict
from typing import Any

from pinpanel.cli.exits import EXIT_CODES
from pinpanel.client import DEFAULT_URL, Client, Event, Pin, ServerUnreachableError
from pinpanel.config import PULSE_MAX_MS

URL_ENV = "PINPANEL_URL"
TOKEN_ENV = "PINPANEL_TOKEN"  # noqa: S105 - the variable's name, not a secret


def _connection_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = "exit codes:\n" + "\n".join(
        f"  {code:>3}  {meaning}" for code, meaning in EXIT_CODES.items())
    parser.add_argument("--url", default=None, metavar="URL",
                        help=f"the pinpanel server (default: ${URL_ENV}, else {DEFAULT_URL})")
    parser.add_argument("--token", default=None, metavar="TOKEN",
                        help=f"API token (default: ${TOKEN_ENV}; prefer the variable, a "
                             "command line is visible to other users in ps)")
    parser.add_argument("--json", action="store_true",
                        help="print JSON (one object a line for watch) instead of text")


def client_of(args: argparse.Namespace) -> Client:
    url = args.url or os.environ.get(URL_ENV) or DEFAULT_URL
    token = args.token or os.environ.get(TOKEN_ENV) or None
    return Client(url, token)


def describe(pin: Pin) -> str:
    """One line for a pin: what a person wants to read in a terminal."""
    state = "on" if pin.state else "off"
    extra = f", pulse until {pin.pulse_until}" if pin.pulse_until else ""
    return f"{pin.id}\t{state}\t(BCM {pin.pin}, {pin.mode}, {pin.name}, seq {pin.seq}{extra})"


def _print_pin(pin: Pin, as_json: bool) -> None:
    print(json.dumps(asdict(pin)) if as_json else describe(pin))


# -- pins ---------------------------------------------------------------------------------------


def _pins_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pin", nargs="*", help="only these pins (BCM number or id)")
    _connection_arguments(parser)


def _pins(args: argparse.Namespace) -> int:
    client = client_of(args)
    pins = [client.pin(ref) for ref in args.pin] if args.pin else client.pins()
    if args.json:
        print(json.dumps([asdict(p) for p in pins]))
        return 0
    width = max([len(p.id) for p in pins] + [2])
    print(f"{'BCM':>4}  {'id':<{width}}  {'mode':<6}  {'state':<5}  name")
    for p in pins:
        state = ("on" if p.state else "off") + ("*" if p.pulse_until else "")
        print(f"{p.pin:>4}  {p.id:<{width}}  {p.mode:<6}  {state:<5}  {p.name}")
    return 0


# -- on, off, toggle, pulse --------------------------------------------------------------------


def _switch_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("pin", help="BCM number (18) or id (garage)")
    _connection_arguments(parser)


def _switcher(action: str) -> Any:
    def run(args: argparse.Namespace) -> int:
        client = client_of(args)
        pin = getattr(client, action)(args.pin)
        _print_pin(pin, args.json)
        return 0

    return run


def _ms(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of ms") from None
    if not 1 <= value <= PULSE_MAX_MS:
        raise argparse.ArgumentTypeError(f"must be 1 to {PULSE_MAX_MS} ms, got {value}")
    return value


def _pulse_arguments(parser: argparse.ArgumentParser) -> None:
    _switch_arguments(parser)
    parser.add_argument("--ms", type=_ms, default=None, metavar="N",
                        help="how long to stay on (default: the pin's pulse_ms, else 500)")


def _pulse(args: argparse.Namespace) -> int:
    _print_pin(client_of(args).pulse(args.pin, args.ms), args.json)
    return 0


# -- watch ----------------------------------------------------------------------------------------


def _watch_arguments(parser: argparse.ArgumentParser) -> None:
    _connection_arguments(parser)
    parser.add_argument("--count", type=_positive, default=None, metavar="N",
                        help="exit 0 after N change events (default: run until stopped)")
    parser.add_argument("--since", type=int, default=None, metavar="SEQ",
                        help="start with the changes after this sequence number (if the "
                             "server still holds them; else a snapshot)")


def _positive(text: str) -> int:
    if not text.isdecimal() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number above 0, got {text!r}")
    return int(text)


def format_event(event: Event) -> str:
    if event.kind == "snapshot":
        states = " ".join(f"{p.id}={'on' if p.state else 'off'}" for p in event.pins)
        return f"snapshot seq={event.seq} {states}"
    pin = event.pin
    if pin is not None:
        data = event.data
        return (f"{data.get('at', '')} seq={event.seq} {pin.id} {'on' if pin.state else 'off'}"
                f" cause={data.get('cause', '')} actor={data.get('actor', '')}")
    return f"{event.kind} {json.dumps(event.data)}"


def _watch(args: argparse.Namespace) -> int:
    changes = 0
    for event in client_of(args).events(args.since):
        if args.json:
            print(json.dumps({"event": event.kind, "id": event.id, "data": event.data}),
                  flush=True)
        else:
            print(format_event(event), flush=True)
        if event.kind == "change":
            changes += 1
            if args.count is not None and changes >= args.count:
                return 0
    raise ServerUnreachableError("the server closed the event stream (stopping, or this "
                                 "client fell behind); run watch again to resync")


COMMANDS = {
    "pins": (_pins_arguments, _pins),
    **{action: (_switch_arguments, _switcher(action)) for action in ("on", "off", "toggle")},
    "pulse": (_pulse_arguments, _pulse),
    "watch": (_watch_arguments, _watch),
}
