"""BME280 through bme280pi over a fake SMBus, against the Bosch datasheet's worked example.

The datasheet's example (calibration words and ADC values, BMP280 datasheet section 3.12,
the same temperature and pressure compensation the BME280 uses) gives 25.08 °C and
100653.27 Pa. Humidity has no worked example there; it is checked against the datasheet's
integer formula (``BME280_compensate_H_int32``), written out here independently.
"""

from __future__ import annotations

import struct
from typing import Any

import pytest

from pinpanel.errors import SensorReadError
from pinpanel.sensors.bme280 import BME280

DIG_T = (27504, 26435, -1000)
DIG_P = (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000)
DIG_H = (75, 362, 0, 313, 50, 30)  # H1..H6, typical of a real part
ADC_T, ADC_P, ADC_H = 519888, 415148, 30000


class FakeSMBus:
    """The registers of one BME280 at ``address``; records writes; can fail."""

    def __init__(self, address: int = 0x76, chip_id: int = 0x60) -> None:
        self.address = address
        self.regs = dict.fromkeys(range(256), 0)
        self.writes: list[tuple[int, int]] = []
        self.fail: OSError | None = None
        self.closed = False
        cal = struct.pack("<HhhHhhhhhhhh", *DIG_T, *DIG_P)
        for i, byte in enumerate(cal):
            self.regs[0x88 + i] = byte
        h1, h2, h3, h4, h5, h6 = DIG_H
        self.regs[0xA1] = h1
        self.regs[0xE1], self.regs[0xE2] = struct.pack("<h", h2)
        self.regs[0xE3] = h3
        self.regs[0xE4] = (h4 >> 4) & 0xFF
        self.regs[0xE5] = (h4 & 0x0F) | ((h5 & 0x0F) << 4)
        self.regs[0xE6] = (h5 >> 4) & 0xFF
        self.regs[0xE7] = h6 & 0xFF
        self.regs[0xD0] = chip_id
        for reg, adc in ((0xF7, ADC_P), (0xFA, ADC_T)):
            self.regs[reg], self.regs[reg + 1], self.regs[reg + 2] = (
                adc >> 12, (adc >> 4) & 0xFF, (adc & 0x0F) << 4)
        self.regs[0xFD], self.regs[0xFE] = ADC_H >> 8, ADC_H & 0xFF

    def _check(self, address: int) -> None:
        if self.fail is not None:
            raise self.fail
        if address != self.address:
            raise OSError(121, "Remote I/O error")

    def read_byte_data(self, address: int, register: int) -> int:
        self._check(address)
        return self.regs[register]

    def read_i2c_block_data(self, address: int, register: int, length: int) -> list[int]:
        self._check(address)
        return [self.regs[register + i] for i in range(length)]

    def write_byte_data(self, address: int, register: int, value: int) -> None:
        self._check(address)
        self.writes.append((register, value))

    def close(self) -> None:
        self.closed = True


def datasheet_humidity(adc_h: int, t_fine: int) -> float:
    """BME280 datasheet 4.2.3, ``BME280_compensate_H_int32``, in %RH."""
    h1, h2, h3, h4, h5, h6 = DIG_H
    v = t_fine - 76800
    v = (((((adc_h << 14) - (h4 << 20) - (h5 * v)) + 16384) >> 15)
         * (((((((v * h6) >> 10) * (((v * h3) >> 11) + 32768)) >> 10) + 2097152) * h2
             + 8192) >> 14))
    v = v - (((((v >> 15) * (v >> 15)) >> 7) * h1) >> 4)
    v = max(0, min(v, 419430400))
    return (v >> 12) / 1024


def sensor(bus: Any, address: int = 0x76) -> BME280:
    return BME280(1, address, open_bus=lambda number: bus)


def test_the_datasheet_example_gives_25_08_degrees_and_1006_53_hpa() -> None:
    bus = FakeSMBus()
    values = sensor(bus).read()
    assert values["temperature"] == 25.08
    assert values["pressure"] == 1006.53
    # t_fine of the datasheet example is 128422.
    assert values["humidity"] == pytest.approx(datasheet_humidity(ADC_H, 128422), abs=0.01)
    assert 0 < values["humidity"] < 100
    # forced mode: one measurement per read (ctrl_meas mode bits 01), humidity set first
    assert [reg for reg, _ in bus.writes] == [0xF2, 0xF4]
    assert bus.writes[1][1] & 0b11 == 0b01


def test_the_second_address_is_used_when_configured() -> None:
    assert sensor(FakeSMBus(address=0x77), 0x77).read()["temperature"] == 25.08


def test_a_bmp280_or_another_chip_is_an_error_reading() -> None:
    with pytest.raises(SensorReadError) as caught:
        sensor(FakeSMBus(chip_id=0x58)).read()
    assert caught.value.code == "wrong_chip"


def test_no_answer_is_an_io_error_and_the_bus_is_reopened_next_time() -> None:
    bus = FakeSMBus()
    opened: list[int] = []

    def open_bus(number: int) -> FakeSMBus:
        opened.append(number)
        return bus

    bme = BME280(1, 0x76, open_bus=open_bus)
    bus.fail = OSError(121, "Remote I/O error")
    with pytest.raises(SensorReadError) as caught:
        bme.read()
    assert caught.value.code == "io"
    assert bus.closed
    bus.fail = None
    assert bme.read()["temperature"] == 25.08
    assert opened == [1, 1]


def test_a_missing_i2c_device_file_says_to_enable_i2c() -> None:
    def open_bus(number: int) -> FakeSMBus:
        raise FileNotFoundError(2, "No such file or directory")

    with pytest.raises(SensorReadError) as caught:
        BME280(1, 0x76, open_bus=open_bus).read()
    assert caught.value.code == "no_bus"
    assert "dtparam=i2c_arm=on" in str(caught.value)
