"""DS18B20 thermometers on the 1-wire bus, read through the kernel's sysfs files.

The kernel's ``w1-gpio`` overlay (``dtoverlay=w1-gpio``, GPIO 4 by default) and ``w1_therm``
driver expose each DS18B20 as ``/sys/bus/w1/devices/28-<serial>/``. Its ``w1_slave`` file
holds the nine scratchpad bytes twice: the first line ends in the kernel's CRC verdict
(``crc=57 YES``), the second in the temperature in millidegrees (``t=23125``); newer kernels
add a ``temperature`` file with the millidegrees alone (their driver has checked the CRC and
fails the read when it is bad).

Why a parser of our own rather than ``w1thermsensor``: the whole format is the two lines
above; w1thermsensor reads a fixed base directory (tests would patch a class attribute),
tries to load kernel modules with ``modprobe`` when it finds no devices (root, and a side
effect of reading a temperature), and has its own exceptions that would be mapped to our
codes anyway. Here the root is a parameter, so tests build a fake sysfs tree.

Every failure is an error reading, never a number: ``missing`` (the device disappeared),
``crc`` (the kernel says NO: a noisy or long cable), ``power_on`` (85.0 °C, the value the
chip holds before its first conversion, typically after a brown-out of its supply), ``io``
(the read itself failed), ``no_device`` / ``ambiguous`` (no address given and not exactly one
thermometer found).
"""

from __future__ import annotations

import re
from pathlib import Path

from pinpanel.errors import SensorReadError

DEVICES = Path("/sys/bus/w1/devices")
#: The DS18B20's power-on reset value, in millidegrees: never a measurement here.
POWER_ON_MILLI = 85_000
_CRC = re.compile(r"crc=([0-9a-f]{2}) (YES|NO)\s*$")
_TEMP = re.compile(r"t=(-?\d+)\s*$")


def parse_w1_slave(text: str) -> float:
    """Degrees Celsius from a ``w1_slave`` file; :class:`SensorReadError` when not a value."""
    lines = [line for line in text.splitlines() if line.strip()]
    if len(lines) < 2:
        raise SensorReadError("io", f"short read from w1_slave: {text!r}")
    crc = _CRC.search(lines[0])
    if crc is None:
        raise SensorReadError("io", f"no CRC verdict in w1_slave: {lines[0]!r}")
    if crc.group(2) != "YES":
        raise SensorReadError("crc", "CRC check failed (noise on the 1-wire line: check the "
                                     "4.7 kΩ pull-up and the cable)")
    temp = _TEMP.search(lines[1])
    if temp is None:
        raise SensorReadError("io", f"no temperature in w1_slave: {lines[1]!r}")
    return _celsius(int(temp.group(1)))


def parse_temperature(text: str) -> float:
    """Degrees Celsius from the newer kernels' ``temperature`` file (millidegrees)."""
    try:
        milli = int(text.strip())
    except ValueError:
        raise SensorReadError("io", f"not a temperature: {text!r}") from None
    return _celsius(milli)


def _celsius(milli: int) -> float:
    if milli == POWER_ON_MILLI:
        raise SensorReadError("power_on", "85.0 °C is the power-on value (the chip has not "
                                          "converted yet: check its supply)")
    if not -55_000 <= milli <= 125_000:
        raise SensorReadError("io", f"{milli / 1000} °C is outside the DS18B20's range")
    return milli / 1000


def find(devices: Path, address: str) -> Path:
    """The device directory: ``address``'s, or the only ``28-*`` one when none is given."""
    if address:
        path = devices / address
        if not path.is_dir():
            raise SensorReadError("missing", f"1-wire device {address} not found in {devices}")
        return path
    found = sorted(devices.glob("28-*"))
    if not found:
        raise SensorReadError("no_device", f"no DS18B20 in {devices} (is dtoverlay=w1-gpio in "
                                           "config.txt and the sensor wired?)")
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        raise SensorReadError("ambiguous", f"several DS18B20 found ({names}): set address")
    return found[0]


class DS18B20:
    """One thermometer; re-finds its directory on every read (it may come and go)."""

    def __init__(self, address: str = "", devices: Path = DEVICES) -> None:
        self.address = address
        self.devices = devices

    def read(self) -> dict[str, float]:
        path = find(self.devices, self.address)
        try:
            slave = path / "w1_slave"
            if slave.exists():
                return {"temperature": parse_w1_slave(slave.read_text())}
            return {"temperature": parse_temperature((path / "temperature").read_text())}
        except SensorReadError:
            raise
        except FileNotFoundError:
            raise SensorReadError("missing", f"1-wire device {path.name} went away") from None
        except OSError as exc:
            raise SensorReadError("io", f"reading {path.name} failed: {exc.strerror}") from exc

    def close(self) -> None:
        pass
