"""The DS18B20 reader against real ``w1_slave`` / ``temperature`` contents in a fake sysfs tree."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpanel.errors import SensorReadError
from pinpanel.sensors import w1

GOOD = "72 01 4b 46 7f ff 0e 10 57 : crc=57 YES\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
BAD_CRC = "72 01 4b 46 7f ff 0e 10 57 : crc=12 NO\n72 01 4b 46 7f ff 0e 10 57 t=23125\n"
POWER_ON = "50 05 4b 46 7f ff 0c 10 1c : crc=1c YES\n50 05 4b 46 7f ff 0c 10 1c t=85000\n"
NEGATIVE = "5e ff 4b 46 7f ff 02 10 c4 : crc=c4 YES\n5e ff 4b 46 7f ff 02 10 c4 t=-10125\n"
FROZEN = "90 fc 4b 46 7f ff 10 10 7c : crc=7c YES\n90 fc 4b 46 7f ff 10 10 7c t=-55000\n"


def device(root: Path, name: str, *, w1_slave: str | None = None,
           temperature: str | None = None) -> Path:
    path = root / name
    path.mkdir(parents=True)
    if w1_slave is not None:
        (path / "w1_slave").write_text(w1_slave)
    if temperature is not None:
        (path / "temperature").write_text(temperature)
    (root / "w1_bus_master1").mkdir(exist_ok=True)  # as on a Pi: not a thermometer
    return path


def error_of(sensor: w1.DS18B20) -> str:
    with pytest.raises(SensorReadError) as caught:
        sensor.read()
    return caught.value.code


def test_a_good_read_is_degrees_from_millidegrees(tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", w1_slave=GOOD)
    assert w1.DS18B20("28-0316a2792bff", tmp_path).read() == {"temperature": 23.125}


def test_the_only_thermometer_is_found_without_an_address(tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", w1_slave=NEGATIVE)
    assert w1.DS18B20("", tmp_path).read() == {"temperature": -10.125}


def test_the_lowest_rated_temperature_is_a_value(tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", w1_slave=FROZEN)
    assert w1.DS18B20("", tmp_path).read() == {"temperature": -55.0}


def test_a_bad_crc_is_an_error_reading_never_a_value(tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", w1_slave=BAD_CRC)
    assert error_of(w1.DS18B20("28-0316a2792bff", tmp_path)) == "crc"


def test_the_power_on_85_degrees_is_an_error_reading(tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", w1_slave=POWER_ON)
    assert error_of(w1.DS18B20("28-0316a2792bff", tmp_path)) == "power_on"


def test_the_temperature_file_of_newer_kernels_is_read_when_w1_slave_is_absent(
        tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", temperature="-1250\n")
    assert w1.DS18B20("", tmp_path).read() == {"temperature": -1.25}
    (tmp_path / "28-0316a2792bff" / "temperature").write_text("85000\n")
    assert error_of(w1.DS18B20("", tmp_path)) == "power_on"


def test_a_missing_device_is_an_error_reading(tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff", w1_slave=GOOD)
    assert error_of(w1.DS18B20("28-00000aaaaaaa", tmp_path)) == "missing"


def test_a_device_that_went_away_between_listing_and_reading_is_missing(
        tmp_path: Path) -> None:
    device(tmp_path, "28-0316a2792bff")  # the directory stays a moment, its files are gone
    assert error_of(w1.DS18B20("28-0316a2792bff", tmp_path)) == "missing"


def test_no_thermometer_or_several_without_an_address_are_errors(tmp_path: Path) -> None:
    (tmp_path / "w1_bus_master1").mkdir()
    assert error_of(w1.DS18B20("", tmp_path)) == "no_device"
    device(tmp_path, "28-0316a2792bff", w1_slave=GOOD)
    device(tmp_path, "28-0416a2792bff", w1_slave=GOOD)
    assert error_of(w1.DS18B20("", tmp_path)) == "ambiguous"
    assert w1.DS18B20("28-0416a2792bff", tmp_path).read() == {"temperature": 23.125}


@pytest.mark.parametrize("text", ["", "72 01 4b : crc=57 YES\n", "garbage\nmore garbage\n",
                                  "72 01 : crc=57 YES\n72 01 t=\n"])
def test_a_truncated_or_garbled_file_is_an_io_error(text: str) -> None:
    with pytest.raises(SensorReadError) as caught:
        w1.parse_w1_slave(text)
    assert caught.value.code == "io"
