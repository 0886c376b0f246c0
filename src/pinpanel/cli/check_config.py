"""``pinpanel check-config FILE``: validate a config file and print its pins and sensors."""

from __future__ import annotations

import argparse

from pinpanel.cli.exits import EXIT_OK
from pinpanel.config import load
from pinpanel.sensor_config import SensorConfig


def arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", help="the TOML file to validate")


def run(args: argparse.Namespace) -> int:
    config = load(args.file)
    sensors = config.sensors
    counted = f", {len(sensors)} sensor{'s' if len(sensors) != 1 else ''}" if sensors else ""
    print(f"{args.file}: OK, {len(config.pins)} pins{counted}")
    print(f"{'BCM':>4}  {'id':<16} {'mode':<7} {'active_low':<10} {'initial/pull':<12} name")
    for pin in config.pins:
        extra = pin.initial if pin.is_output else f"pull {pin.pull}"
        print(f"{pin.pin:>4}  {pin.id:<16} {pin.mode:<7} {str(pin.active_low).lower():<10} "
              f"{extra:<12} {pin.name}")
    for group in config.interlocks:
        print("interlock: " + ", ".join(f"BCM {b}" for b in group))
    if sensors:
        print(f"{'sensor':<17} {'kind':<15} {'every':>6}  {'source':<24} name")
        for sensor in sensors:
            print(f"{sensor.id:<17} {sensor.kind:<15} {sensor.interval_s:>5}s  "
                  f"{source_of(sensor):<24} {sensor.name}")
    return EXIT_OK


def source_of(sensor: SensorConfig) -> str:
    """Where a sensor's readings come from, so a wrong wire or address shows before a read
    (a counter's input is its own pin, never one of the pin table's)."""
    if sensor.kind == "counter":
        return f"BCM {sensor.pin}, pull {sensor.pull}"
    if sensor.kind == "ds18b20":
        return f"1-wire {sensor.address}" if sensor.address else "1-wire (the only one)"
    if sensor.kind == "bme280":
        return f"I2C bus {sensor.bus}, {sensor.i2c_address:#04x}"
    if sensor.kind == "mcp3008":
        return f"SPI CE{sensor.device}, channel {sensor.channel}"
    return "this machine"


COMMANDS = {"check-config": (arguments, run)}
