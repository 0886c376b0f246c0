"""``[gpio] chip``: which /dev/gpiochipN is the Pi's, over fake /dev + sysfs trees laid out as
the kernels of a Pi 3, a Pi 4 and a Pi 5 (before and after its chips were renumbered) lay
them out. The real character device's ioctl is covered by tests/hil (gpio-sim chips)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pinpanel import chips
from pinpanel.chips import Chip, ChipError, choose, resolve, scan
from pinpanel.config import parse
from pinpanel.errors import BackendUnavailableError, ConfigError
from pinpanel.hardware import Hardware

#: (number, device directory under /sys/devices, label, lines, legacy base)
Layout = list[tuple[int, str, str, int, int]]

EXP = "platform/soc/soc:firmware/soc:firmware:gpio"
PI3: Layout = [(0, "platform/soc/3f200000.gpio", "pinctrl-bcm2835", 54, 512),
               (1, EXP, "raspberrypi-exp-gpio", 8, 566)]
PI4: Layout = [(0, "platform/soc/fe200000.gpio", "pinctrl-bcm2711", 58, 512),
               (1, EXP, "raspberrypi-exp-gpio", 8, 570)]
RP1 = "platform/axi/1000120000.pcie/1f000d0000.gpio"
BRCMSTB_A, BRCMSTB_B = "platform/soc/107d508500.gpio", "platform/soc/107d517c00.gpio"
#: A Pi 5 on its first kernels: two brcmstb controllers of two banks each come first.
PI5_EARLY: Layout = [(0, BRCMSTB_A, "gpio-brcmstb@107d508500", 32, 512),
                     (1, BRCMSTB_A, "gpio-brcmstb@107d508520", 4, 544),
                     (2, BRCMSTB_B, "gpio-brcmstb@107d517c00", 17, 548),
                     (3, BRCMSTB_B, "gpio-brcmstb@107d517c20", 6, 565),
                     (4, RP1, "pinctrl-rp1", 54, 571)]
#: After the renumbering: RP1 is gpiochip0, the brcmstb banks moved up.
PI5: Layout = [(0, RP1, "pinctrl-rp1", 54, 571),
               (10, BRCMSTB_A, "gpio-brcmstb@107d508500", 32, 512),
               (11, BRCMSTB_A, "gpio-brcmstb@107d508520", 4, 544),
               (12, BRCMSTB_B, "gpio-brcmstb@107d517c00", 17, 548),
               (13, BRCMSTB_B, "gpio-brcmstb@107d517c20", 6, 565)]


def fake_tree(root: Path, layout: Layout) -> Path:
    """/dev/gpiochipN (plain files: their ioctl fails, as a chip pinpanel may not open) and
    the sysfs of each chip: /sys/bus/gpio/devices/gpiochipN -> the chip's device under its
    parent, the legacy /sys/devices/<parent>/gpio/gpiochip<base>/{label,ngpio} and its
    /sys/class/gpio link."""
    (root / "dev").mkdir(parents=True, exist_ok=True)
    bus, cls = root / "sys/bus/gpio/devices", root / "sys/class/gpio"
    bus.mkdir(parents=True, exist_ok=True)
    cls.mkdir(parents=True, exist_ok=True)
    for number, parent, label, lines, base in layout:
        (root / "dev" / f"gpiochip{number}").touch()
        device = root / "sys/devices" / parent / f"gpiochip{number}"
        device.mkdir(parents=True)
        (bus / device.name).symlink_to(os.path.relpath(device, bus))
        legacy = root / "sys/devices" / parent / "gpio" / f"gpiochip{base}"
        legacy.mkdir(parents=True)
        (legacy / "label").write_text(label + "\n")
        (legacy / "ngpio").write_text(f"{lines}\n")
        (legacy / "base").write_text(f"{base}\n")
        (cls / legacy.name).symlink_to(os.path.relpath(legacy, cls))
    return root


@pytest.mark.parametrize(("layout", "number", "label"), [
    (PI3, 0, "pinctrl-bcm2835"), (PI4, 0, "pinctrl-bcm2711"), (PI5_EARLY, 4, "pinctrl-rp1"),
    (PI5, 0, "pinctrl-rp1")], ids=["pi3", "pi4", "pi5-gpiochip4", "pi5-renumbered"])
def test_auto_finds_the_pis_chip_by_its_label_whatever_its_number(
    tmp_path: Path, layout: Layout, number: int, label: str
) -> None:
    choice = resolve("auto", fake_tree(tmp_path, layout))
    assert (choice.chip.number, choice.chip.label, choice.how) == (number, label, "auto")
    assert choice.describe() == (
        f'chip gpiochip{number} "{label}" ({layout[[n for n, *_ in layout].index(number)][3]} '
        'lines), the Raspberry Pi\'s GPIO, found by its label ([gpio] chip = "auto")')
    assert choice.as_json() == {"name": f"gpiochip{number}", "path": f"/dev/gpiochip{number}",
                                "label": label, "lines": choice.chip.lines,
                                "chosen_by": "auto", "setting": "auto"}


def test_banks_of_one_controller_have_no_readable_sysfs_label(tmp_path: Path) -> None:
    # The brcmstb banks share a parent device, so sysfs cannot say whose label is whose;
    # only the character device's ioctl could, and these fake nodes have none.
    found = scan(fake_tree(tmp_path, PI5_EARLY))
    assert [(c.number, c.label) for c in found] == [
        (0, None), (1, None), (2, None), (3, None), (4, "pinctrl-rp1")]
    assert found[4].lines == 54


def test_two_chips_claiming_to_be_the_pis_gpio_are_refused(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, [*PI3, (4, "platform/soc/usb/expander", "pinctrl-rp1", 54, 600)])
    with pytest.raises(ChipError) as caught:
        resolve("auto", root)
    message = str(caught.value)
    assert message.startswith('[gpio] chip = "auto": 2 chips claim to be the Raspberry Pi\'s '
                              'GPIO: gpiochip0 "pinctrl-bcm2835" (54 lines); gpiochip4 '
                              '"pinctrl-rp1" (54 lines)')
    assert "will not guess" in message and "number, /dev path or label" in message
    assert isinstance(caught.value, BackendUnavailableError) and not caught.value.no_chips
    # Named on purpose, either is fine.
    assert resolve("pinctrl-rp1", root).chip.number == 4
    assert resolve("0", root).chip.label == "pinctrl-bcm2835"


def test_an_unknown_label_lists_the_chips_there_are(tmp_path: Path) -> None:
    with pytest.raises(ChipError) as caught:
        resolve("pinctrl-bcm2712", fake_tree(tmp_path, PI4))
    assert str(caught.value) == (
        '[gpio] chip = "pinctrl-bcm2712": no GPIO chip has that label. GPIO chips here: '
        'gpiochip0 "pinctrl-bcm2711" (58 lines); gpiochip1 "raspberrypi-exp-gpio" (8 lines)')


def test_any_label_number_or_path_picks_a_chip_on_purpose(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, PI5_EARLY)
    assert resolve("pinctrl-rp1", root).how == "label"
    by_number = resolve("4", root)
    assert (by_number.chip.label, by_number.how) == ("pinctrl-rp1", "number")
    assert resolve("2", root).chip.label is None  # a chip need not be readable to be named
    by_path = resolve("/dev/gpiochip4", root)
    assert (by_path.chip.number, by_path.how) == (4, "path")
    (root / "dev" / "gpio-header").symlink_to("gpiochip4")  # as a udev rule would make
    assert resolve("/dev/gpio-header", root).chip.number == 4
    with pytest.raises(ChipError, match=r"there is no /dev/gpiochip7\. GPIO chips here: "):
        resolve("7", root)
    with pytest.raises(ChipError, match=r'chip = "/dev/gpiochip9": No such file'):
        resolve("/dev/gpiochip9", root)
    (root / "dev" / "null").touch()
    with pytest.raises(ChipError, match="not a GPIO chip's device node"):
        resolve("/dev/null", root)


def test_two_chips_with_the_label_asked_for_are_refused(tmp_path: Path) -> None:
    root = fake_tree(tmp_path, [(0, "platform/a", "gpio-sim", 8, 512),
                                (1, "platform/b", "gpio-sim", 8, 520)])
    with pytest.raises(ChipError, match=r"2 chips have that label: gpiochip0 .*; gpiochip1 "):
        resolve("gpio-sim", root)


def test_no_chip_at_all_and_no_pi_chip(tmp_path: Path) -> None:
    with pytest.raises(ChipError) as none:
        resolve("auto", fake_tree(tmp_path / "empty", []))
    assert none.value.no_chips and "no GPIO character device" in str(none.value)
    laptop = fake_tree(tmp_path / "laptop", [(0, "platform/INT34C5:00", "INT34C5:00", 360, 512)])
    with pytest.raises(ChipError) as other:
        resolve("auto", laptop)
    assert str(other.value) == (
        '[gpio] chip = "auto": no chip is a Raspberry Pi\'s GPIO (labelled pinctrl-bcm2835, '
        'pinctrl-bcm2711, pinctrl-rp1). GPIO chips here: gpiochip0 "INT34C5:00" (360 lines). '
        "Set [gpio] chip to the one to use")
    unreadable = [Chip(0, None), Chip(1, "raspberrypi-exp-gpio", 8)]
    with pytest.raises(ChipError, match=r"\(gpiochip0 could not be read: is this user in the "
                                        r"gpio group\?\)"):
        choose("auto", unreadable)


def test_the_character_devices_label_is_read_with_its_ioctl(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the chip can be opened, GPIO_GET_CHIPINFO_IOCTL (as gpiodetect) says its label;
    sysfs is not needed. The ioctl is faked here: this machine has no GPIO chip."""
    (tmp_path / "dev").mkdir()
    for n in (0, 1):
        (tmp_path / "dev" / f"gpiochip{n}").touch()
    assert chips.GPIO_GET_CHIPINFO_IOCTL == 0x8044B401
    calls: list[int] = []

    def ioctl(fd: int, request: int, arg: bytes) -> bytes:
        calls.append(request)
        number = int(str(Path(f"/proc/self/fd/{fd}").readlink())[-1])
        label = [b"pinctrl-bcm2835", b"pinpanel-sim"][number]
        return chips._CHIPINFO.pack(f"gpiochip{number}".encode(), label, [54, 28][number])

    monkeypatch.setattr(chips.fcntl, "ioctl", ioctl)
    assert scan(tmp_path) == [Chip(0, "pinctrl-bcm2835", 54), Chip(1, "pinpanel-sim", 28)]
    assert calls == [0x8044B401, 0x8044B401]
    assert resolve("pinpanel-sim", tmp_path).chip.number == 1


def test_an_explicit_chip_never_means_the_simulated_board(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    # No GPIO hardware here: auto + chip auto is the simulated board, but a chip named on
    # purpose asks for real pins, through lgpio only (missing here: that is the error).
    (tmp_path / "dev").mkdir()
    assert Hardware.open("auto", tmp_path).info.simulated
    monkeypatch.setitem(__import__("sys").modules, "lgpio", None)
    with pytest.raises(BackendUnavailableError) as caught:
        Hardware.open("auto", tmp_path, chip="pinctrl-rp1")
    message = str(caught.value)
    assert "lgpio" in message and "rpigpio" not in message and "pigpio" not in message


def test_the_chip_setting_is_checked_with_the_backend() -> None:
    assert parse({}).gpio.chip == "auto"
    assert parse({"gpio": {"chip": "pinctrl-rp1"}}).gpio.chip == "pinctrl-rp1"
    assert parse({"gpio": {"backend": "lgpio", "chip": "4"}}).gpio.chip == "4"
    with pytest.raises(ConfigError) as wrong:
        parse({"gpio": {"backend": "rpigpio", "chip": "4"}, "server": {"port": 8080}})
    assert wrong.value.problems == [
        "gpio.chip: '4' applies to the lgpio backend (and auto); rpigpio drives the Pi's own "
        "GPIO registers, whatever the chip"]
    with pytest.raises(ConfigError) as empty:
        parse({"gpio": {"chip": " "}})
    assert empty.value.problems == [
        "gpio.chip: must not be empty (auto, a number, a /dev path or a label)"]
    with pytest.raises(ConfigError) as number:
        parse({"gpio": {"chip": 4}})
    assert number.value.problems == ["gpio.chip: expected a string, got int"]
