"""Which GPIO chip is the Pi's: ``[gpio] chip`` resolved to the ``/dev/gpiochipN`` lgpio opens.

A chip's number is an accident of probe order: the Pi 5's header GPIOs (the RP1 chip,
labelled ``pinctrl-rp1``) were ``gpiochip4`` on its first kernels and ``gpiochip0`` after the
renumbering, and a USB expander or a HAT's chip takes whatever number is free. Its *label*,
given by the driver, does not move. So the default ``auto`` looks for the one chip whose label
is a Raspberry Pi's own GPIO (:data:`PI_LABELS`), whatever its number, and refuses when there
are two: guessing could switch the wrong relay. A number, a ``/dev`` path or any label picks a
chip on purpose.

Labels come from the kernel's GPIO character device (the ``GPIO_GET_CHIPINFO_IOCTL`` that
libgpiod's ``gpiodetect`` uses); where a chip cannot be opened (no permission, or a test's fake
tree) from the legacy sysfs class (``/sys/class/gpio/gpiochipBASE/label``), found through the
chip's device in ``/sys/bus/gpio/devices``.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pinpanel.errors import BackendUnavailableError

#: The labels of a Raspberry Pi's own (header) GPIO chip: Pi 1-3 and Zero, Pi 4/400, Pi 5.
PI_LABELS = ("pinctrl-bcm2835", "pinctrl-bcm2711", "pinctrl-rp1")
#: ``struct gpiochip_info { char name[32]; char label[32]; __u32 lines; }`` (linux/gpio.h).
_CHIPINFO = struct.Struct("32s32sI")
#: ``_IOR(0xB4, 0x01, struct gpiochip_info)``.
GPIO_GET_CHIPINFO_IOCTL = (2 << 30) | (_CHIPINFO.size << 16) | (0xB4 << 8) | 0x01
_CHIP_NAME = re.compile(r"gpiochip(\d+)")


class ChipError(BackendUnavailableError):
    """``[gpio] chip`` names no chip, or ``auto`` cannot tell which chip is the Pi's."""

    def __init__(self, message: str, *, no_chips: bool = False) -> None:
        super().__init__(message)
        #: There is no GPIO character device at all (a backend other than lgpio may still
        #: work, through the SoC's registers).
        self.no_chips = no_chips


@dataclass(frozen=True)
class Chip:
    """One GPIO character device. ``label`` is None when it could not be read."""

    number: int
    label: str | None
    lines: int | None = None

    @property
    def name(self) -> str:
        return f"gpiochip{self.number}"

    @property
    def path(self) -> str:
        return f"/dev/gpiochip{self.number}"

    def describe(self) -> str:
        label = f'"{self.label}"' if self.label is not None else "(label unreadable)"
        lines = f" ({self.lines} lines)" if self.lines is not None else ""
        return f"{self.name} {label}{lines}"


@dataclass(frozen=True)
class ChipChoice:
    """The chip pinpanel uses, and how ``[gpio] chip`` led to it."""

    chip: Chip
    setting: str
    #: ``auto`` (a Pi's label, found among the chips), ``label``, ``number`` or ``path``.
    how: str

    def describe(self) -> str:
        why = {"auto": "the Raspberry Pi's GPIO, found by its label",
               "label": "by its label", "number": "by its number",
               "path": "by its path"}[self.how]
        return f"chip {self.chip.describe()}, {why} ([gpio] chip = \"{self.setting}\")"

    def as_json(self) -> dict[str, Any]:
        return {"name": self.chip.name, "path": self.chip.path, "label": self.chip.label,
                "lines": self.chip.lines, "chosen_by": self.how, "setting": self.setting}


def scan(root: Path = Path("/")) -> list[Chip]:
    """Every ``/dev/gpiochipN`` under ``root``, by number, with its label where readable."""
    numbers = sorted(int(m.group(1)) for p in (root / "dev").glob("gpiochip*")
                     if (m := _CHIP_NAME.fullmatch(p.name)))
    chips = []
    for number in numbers:
        info = _ioctl_info(root / "dev" / f"gpiochip{number}") or _sysfs_info(root, number)
        label, lines = info if info is not None else (None, None)
        chips.append(Chip(number, label, lines))
    return chips


def _ioctl_info(path: Path) -> tuple[str, int] | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        raw = fcntl.ioctl(fd, GPIO_GET_CHIPINFO_IOCTL, bytes(_CHIPINFO.size))
    except OSError:
        return None  # not a GPIO character device (ENOTTY), e.g. a fake tree
    finally:
        os.close(fd)
    _name, label, lines = _CHIPINFO.unpack(raw)
    return label.split(b"\0", 1)[0].decode(errors="replace"), int(lines)


def _sysfs_info(root: Path, number: int) -> tuple[str, int | None] | None:
    """The legacy sysfs label of chip ``number``, when it can be told apart.

    The legacy entry hangs off the chip's parent device (or the chip's own device when it has
    no parent) in a ``gpio/`` directory. A parent with several chips (one driver, many banks)
    gives no way to tell whose label is whose: unreadable then.
    """
    with contextlib.suppress(OSError):
        device = (root / "sys/bus/gpio/devices" / f"gpiochip{number}").resolve(strict=True)
        for owner in (device, device.parent):
            legacy = sorted((owner / "gpio").glob("gpiochip*"))
            siblings = [p for p in owner.iterdir() if _CHIP_NAME.fullmatch(p.name)]
            if len(legacy) == 1 and (owner == device or len(siblings) == 1):
                label = (legacy[0] / "label").read_text().strip()
                try:
                    lines: int | None = int((legacy[0] / "ngpio").read_text())
                except (OSError, ValueError):
                    lines = None
                return label, lines
    return None


def _listing(chips: list[Chip]) -> str:
    return "; ".join(c.describe() for c in chips) if chips else "none"


def choose(setting: str, chips: list[Chip], root: Path = Path("/")) -> ChipChoice:
    """The chip ``[gpio] chip = setting`` means among ``chips``; raises :class:`ChipError`."""
    here = f"GPIO chips here: {_listing(chips)}"
    key = f'[gpio] chip = "{setting}"'
    if not chips:
        raise ChipError(f"{key}: this machine has no GPIO character device (/dev/gpiochip*)",
                        no_chips=True)
    if setting == "auto":
        claims = [c for c in chips if c.label in PI_LABELS]
        if len(claims) == 1:
            return ChipChoice(claims[0], setting, "auto")
        if claims:
            raise ChipError(
                f"{key}: {len(claims)} chips claim to be the Raspberry Pi's GPIO: "
                f"{_listing(claims)}. pinpanel will not guess which one the pins are wired "
                "to: set [gpio] chip to its number, /dev path or label")
        unreadable = [c.name for c in chips if c.label is None]
        hint = (f" ({', '.join(unreadable)} could not be read: is this user in the gpio "
                "group?)" if unreadable else "")
        raise ChipError(
            f"{key}: no chip is a Raspberry Pi's GPIO (labelled {', '.join(PI_LABELS)}){hint}. "
            f"{here}. Set [gpio] chip to the one to use")
    if setting.isdigit():
        found = [c for c in chips if c.number == int(setting)]
        if not found:
            raise ChipError(f"{key}: there is no /dev/gpiochip{int(setting)}. {here}")
        return ChipChoice(found[0], setting, "number")
    if setting.startswith("/"):
        return ChipChoice(_by_path(setting, chips, root, key, here), setting, "path")
    found = [c for c in chips if c.label == setting]
    if len(found) == 1:
        return ChipChoice(found[0], setting, "label")
    if found:
        raise ChipError(f"{key}: {len(found)} chips have that label: {_listing(found)}. Set "
                        "[gpio] chip to the number or /dev path of the one to use")
    raise ChipError(f"{key}: no GPIO chip has that label. {here}")


def _by_path(setting: str, chips: list[Chip], root: Path, key: str, here: str) -> Chip:
    """A ``/dev`` path (a udev symlink too): the chip whose device node it is."""
    path = root / setting.lstrip("/")
    try:
        target = path.resolve(strict=True)
        rdev = path.stat().st_rdev
    except OSError as exc:
        raise ChipError(f"{key}: {exc.strerror or exc}. {here}") from None
    for chip in chips:
        node = root / "dev" / chip.name
        if target == node.resolve():
            return chip
        with contextlib.suppress(OSError):
            if rdev and node.stat().st_rdev == rdev:
                return chip
    raise ChipError(f"{key}: not a GPIO chip's device node. {here}")


def resolve(setting: str, root: Path = Path("/")) -> ChipChoice:
    """Scan the chips under ``root`` and choose one; raises :class:`ChipError`."""
    return choose(setting, scan(root), root)
