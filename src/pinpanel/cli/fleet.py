"""``pinpanel fleet-sim``: N simulated devices (board, store, MQTT bridge each) on one broker.

The fleet itself is :mod:`pinpanel.fleet`; this module only turns flags into a call to it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

from pinpanel.fleet import DEFAULT_PINS, PIN_ORDER, parse_broker, run_fleet


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--devices", type=int, default=10, metavar="N",
                        help="how many simulated devices (1-1000)")
    parser.add_argument("--broker", default="127.0.0.1:1883", metavar="HOST:PORT",
                        help="the MQTT broker every device connects to")
    parser.add_argument("--pins", type=int, default=DEFAULT_PINS, metavar="K",
                        help="outputs per device (1-28)")
    parser.add_argument("--prefix", default="sim",
                        help="device ids are PREFIX-0001, PREFIX-0002, ...")
    parser.add_argument("--discovery", action="store_true",
                        help="also publish Home Assistant discovery for every device")
    parser.add_argument("--qos", type=int, choices=(0, 1, 2), default=1)
    parser.add_argument("--log-level", default="WARNING",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))


def run(args: argparse.Namespace) -> int:
    from pinpanel import logs
    from pinpanel.errors import ConfigError
    from pinpanel.mqtt.topics import sanitise_id

    problems = []
    if not 1 <= args.devices <= 1000:
        problems.append(f"--devices must be 1 to 1000, got {args.devices}")
    if not 1 <= args.pins <= len(PIN_ORDER):
        problems.append(f"--pins must be 1 to {len(PIN_ORDER)}, got {args.pins}")
    if sanitise_id(args.prefix) != args.prefix:
        problems.append(f"--prefix {args.prefix!r}: use lowercase letters, digits, - and _")
    try:
        parse_broker(args.broker)
    except ValueError as exc:
        problems.append(f"--broker: {exc}")
    if problems:
        raise ConfigError(problems, "fleet-sim")
    logs.setup(args.log_level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await run_fleet(args.broker, args.devices, stop, pins=args.pins, prefix=args.prefix,
                        discovery=args.discovery, qos=args.qos)

    asyncio.run(main())
    return 0


COMMANDS = {"fleet-sim": (arguments, run)}
