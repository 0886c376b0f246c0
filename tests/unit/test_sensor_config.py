"""``[[sensors]]``: declared as fields, every problem reported at once with its path."""

from __future__ import annotations

import tomllib

import pytest

from pinpanel.config import parse, settings_reference
from pinpanel.errors import ConfigError
from pinpanel.sensor_config import SENSOR_SETTINGS


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(tomllib.loads(text), "test")
    return list(caught.value.problems)


def test_each_kind_loads_with_its_defaults() -> None:
    config = parse(tomllib.loads("""
[[sensors]]
id = "tank"
kind = "ds18b20"

[[sensors]]
id = "air"
kind = "bme280"
address = 0x77

[[sensors]]
id = "level"
kind = "mcp3008"
channel = 3
scale = 3.3
unit = "V"

[[sensors]]
id = "soc"
kind = "cpu_temperature"
interval_s = 60

[[sensors]]
id = "water"
kind = "counter"
pin = 5
pulses_per_unit = 450
unit = "L"
"""), "test")
    tank, air, level, soc, water = config.sensors
    assert (tank.name, tank.interval_s, tank.min_change, tank.address) == ("tank", 30, 0.0, "")
    assert (air.i2c_address, air.bus) == (0x77, 1)
    assert (level.channel, level.scale, level.offset, level.unit) == (3, 3.3, 0.0, "V")
    assert soc.interval_s == 60
    assert (water.pin, water.pulses_per_unit, water.pull) == (5, 450.0, "up")
    assert config.pins  # the tutorial's pins are still there


def test_every_problem_is_reported_at_once_with_its_path() -> None:
    found = problems_of("""
[[pins]]
pin = 18

[[sensors]]
id = "Tank"
kind = "ds18b20"
address = "28-xyz"
channel = 2

[[sensors]]
kind = "bme280"
address = 0x78

[[sensors]]
id = "level"
kind = "mcp3008"
interval_s = 0

[[sensors]]
id = "level"
kind = "counter"
pin = 18
pulses_per_unit = 0
colour = "red"

[[sensors]]
id = "gpio18"
kind = "thermistor"
""")
    assert found == [
        "sensors[0].id: 'Tank' must be lowercase letters, digits, - or _, starting with a "
        "letter (at most 32)",
        "sensors[0].channel: applies only to mcp3008 sensors",
        "sensors[0].address: '28-xyz' is not a DS18B20 name (28- and 12 hex digits, as in "
        "/sys/bus/w1/devices)",
        "sensors[1].id: required",
        "sensors[1].address: a BME280 answers at 0x76 or 0x77, got '0x78'",
        "sensors[2].interval_s: must be between 1 and 86400, got 0",
        "sensors[2].channel: required for a mcp3008 sensor",
        "sensors[3].colour: unknown key (expected one of " + ", ".join(
            s.name for s in SENSOR_SETTINGS) + ")",
        "sensors[3].pulses_per_unit: must be more than 0",
        "sensors[4].kind: must be one of ds18b20, bme280, mcp3008, cpu_temperature, counter, "
        "got 'thermistor'",
        "sensors[3].id: 'level' is already used by sensors[2]",
        "sensors[3].pin: BCM 18 is already used by pins[0]",
        "sensors[4].id: 'gpio18' is already a pin's id (topics and URLs would collide)",
    ]


def test_pin_problems_and_sensor_problems_come_in_one_report() -> None:
    found = problems_of("""
[[pins]]
pin = 99

[[sensors]]
id = "a"
kind = "counter"
""")
    assert found == ["pins[0].pin: must be between 0 and 27, got 99",
                     "sensors[0].pin: required for a counter sensor"]


def test_two_counters_on_one_pin_are_refused() -> None:
    assert problems_of("""
[[sensors]]
id = "a"
kind = "counter"
pin = 5

[[sensors]]
id = "b"
kind = "counter"
pin = 5
""") == ["sensors[1].pin: BCM 5 is already used by sensors[0]"]


def test_sensors_must_be_an_array_of_tables() -> None:
    assert problems_of('sensors = "tank"') == [
        "sensors: expected an array of tables ([[sensors]])"]
    assert problems_of("sensors = [1]") == ["sensors[0]: expected a table ([[sensors]])"]


def test_a_number_setting_takes_an_integer_but_not_a_boolean() -> None:
    config = parse(tomllib.loads('[[sensors]]\nid = "t"\nkind = "ds18b20"\nmin_change = 1\n'),
                   "test")
    assert config.sensors[0].min_change == 1.0
    assert problems_of('[[sensors]]\nid = "t"\nkind = "ds18b20"\nmin_change = true\n') == [
        "sensors[0].min_change: expected a number, got bool"]


def test_every_sensor_key_is_in_the_settings_reference() -> None:
    reference = settings_reference()
    for setting in SENSOR_SETTINGS:
        assert f"`[[sensors]] {setting.name}`" in reference
