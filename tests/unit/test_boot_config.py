"""``pinpanel boot-config``: config.txt ``gpio=`` lines that hold each pin safe from power-on.

The lines are checked against the firmware's documented syntax by a parser written here from
the documentation (not the module's own), so a mistake in the module cannot agree with itself:
https://www.raspberrypi.com/documentation/computers/config_txt.html#gpio-control
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from pinpanel import boot_config
from pinpanel.cli import main
from pinpanel.cli.exits import EXIT_CONFIG, EXIT_ERROR, EXIT_OK
from pinpanel.config import load, parse

#: ``gpio=PINS=ATTRS``: PINS one pin, a range, or a comma list of either; ATTRS from the list.
DOC_ATTRIBUTES = {"ip", "op", "a0", "a1", "a2", "a3", "a4", "a5", "dh", "dl", "pu", "pd",
                  "pn", "np"}
DOC_LINE = re.compile(r"^gpio=(?P<pins>\d+(?:-\d+)?(?:,\d+(?:-\d+)?)*)=(?P<attrs>[a-z0-9,]+)$")


def documented(line: str) -> tuple[list[int], set[str]]:
    """The pins and attributes of a line, asserting it is valid as the firmware documents."""
    match = DOC_LINE.match(line)
    assert match, f"{line!r} is not gpio=PINS=ATTRS"
    pins: list[int] = []
    for part in match["pins"].split(","):
        low, _, high = part.partition("-")
        pins += range(int(low), int(high or low) + 1)
    attrs = match["attrs"].split(",")
    assert set(attrs) <= DOC_ATTRIBUTES, line
    assert len(attrs) == len(set(attrs)), line
    return pins, set(attrs)


def _config(**pin: object) -> str:
    values = "\n".join(f"{k} = {v!r}".replace("'", '"').replace("True", "true")
                       .replace("False", "false") for k, v in pin.items())
    return f"[[pins]]\n{values}\n"


@pytest.mark.parametrize(("active_low", "initial"),
                         list(itertools.product((False, True), ("off", "on", "restore"))))
def test_an_output_starts_at_the_level_of_its_initial_state(active_low: bool,
                                                            initial: str) -> None:
    config = parse({"pins": [{"pin": 17, "active_low": active_low, "initial": initial}]})
    text = boot_config.render(config)
    lines = [line for line in text.splitlines() if line.startswith("gpio=")]
    assert len(lines) == 1
    pins, attrs = documented(lines[0])
    assert pins == [17]
    # The physical level: on is low for active_low; restore is the safe (off) level.
    logical_on = initial == "on"
    high = logical_on != active_low
    assert attrs == {"op", "dh" if high else "dl"}
    # The block applies on every board, whatever section of config.txt precedes it.
    assert text.splitlines().index("[all]") < text.splitlines().index(lines[0])
    if initial == "restore":
        assert "until pinpanel restores it" in text and "cannot know the last state" in text


def test_the_relay_example_of_the_issue() -> None:
    config = parse({"pins": [{"pin": 17, "active_low": True, "initial": "off"}]})
    assert "gpio=17=op,dh" in boot_config.render(config).splitlines()


@pytest.mark.parametrize(("active_low", "pull", "expected"),
                         [(a, p, e) for a in (False, True)
                          for p, e in (("up", "pu"), ("down", "pd"), ("none", "pn"))])
def test_an_input_is_an_input_with_its_pull(active_low: bool, pull: str, expected: str) -> None:
    config = parse({"pins": [{"pin": 5, "mode": "input", "active_low": active_low,
                              "pull": pull}]})
    (line,) = [x for x in boot_config.render(config).splitlines() if x.startswith("gpio=")]
    assert documented(line) == ([5], {"ip", expected})


def test_every_pin_has_one_line_in_bcm_order() -> None:
    config = parse({"pins": [{"pin": 24}, {"pin": 4, "mode": "input"}, {"pin": 18}]})
    lines = [x for x in boot_config.render(config).splitlines() if x.startswith("gpio=")]
    assert [documented(x)[0] for x in lines] == [[4], [18], [24]]


def test_the_command_prints_the_lines_of_the_config_file(tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]
                                                          ) -> None:
    toml = tmp_path / "pinpanel.toml"
    toml.write_text(_config(pin=17, id="garage", active_low=True, initial="off"))
    assert main(["boot-config", "--config", str(toml)]) == EXIT_OK
    out = capsys.readouterr().out
    assert "gpio=17=op,dh" in out.splitlines()
    assert "garage" in out


SAMPLE_CONFIG_TXT = """\
# For more options and information see
# http://rptl.io/configtxt
dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
arm_64bit=1

[cm4]
otg_mode=1
gpio=23=op,dh

[all]
gpio=22-24,27=op,dl
gpio=22=dh
gpio=4=ip,pu

[pi4]
gpio=22=dl
"""
SAMPLE_PINS = """\
[[pins]]
pin = 22
id = "relay"
active_low = true
initial = "off"
[[pins]]
pin = 23
id = "lamp"
[[pins]]
pin = 24
id = "pump"
active_low = true
initial = "off"
[[pins]]
pin = 4
id = "button"
mode = "input"
pull = "down"
[[pins]]
pin = 25
id = "fan"
"""


def test_check_names_every_difference_and_exits_non_zero(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml, txt = tmp_path / "pinpanel.toml", tmp_path / "config.txt"
    toml.write_text(SAMPLE_PINS)
    txt.write_text(SAMPLE_CONFIG_TXT)
    assert main(["boot-config", "-c", str(toml), "--check", str(txt)]) == EXIT_ERROR
    out = capsys.readouterr().out
    # 22: active-low off wants dh; the later gpio=22=dh overrides the range's dl, but a
    # Pi 4 then drives it low again.
    assert ("BCM 22 (relay): on some boards (line 20 under [pi4]) config.txt leaves it "
            "op,dl, pinpanel wants op,dh") in out
    # 23: the [all] range gives op,dl (right) after the [cm4] line: overridden everywhere.
    assert "lamp" not in out
    # 24: active-low off wants dh, the range drives it low.
    assert "BCM 24 (pump): config.txt leaves it op,dl, pinpanel wants op,dh" in out
    # 4: pulled up there, pinpanel pulls down.
    assert "BCM 4 (button): config.txt leaves it ip,pu, pinpanel wants ip,pd" in out
    # 25: not mentioned at all.
    assert "BCM 25 (fan): no gpio= line; add gpio=25=op,dl" in out
    # 27 is not pinpanel's: whatever config.txt does with it is not a difference.
    assert "BCM 27" not in out and "gpio=27" not in out


def test_check_passes_once_the_printed_lines_are_appended(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    toml, txt = tmp_path / "pinpanel.toml", tmp_path / "config.txt"
    toml.write_text(SAMPLE_PINS)
    # Appended after a section that is still open ([pi4] here): [all] closes it, and the
    # lines override the filtered one before them.
    txt.write_text(SAMPLE_CONFIG_TXT + boot_config.render(load(str(toml))))
    assert main(["boot-config", "-c", str(toml), "--check", str(txt)]) == EXIT_OK
    assert "OK" in capsys.readouterr().out


def test_check_reports_a_malformed_line(tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    txt = tmp_path / "config.txt"
    txt.write_text("gpio=18=op,dl\ngpio=23-x=op\ngpio=24=op,dx\ngpio=18=op,dl\n"
                   "gpio=23=op,dl\n")
    assert main(["boot-config", "--check", str(txt)]) == EXIT_ERROR
    out = capsys.readouterr().out
    assert "line 2" in out and "line 3" in out and "unknown attribute dx" in out


def test_the_module_parser_reads_lists_ranges_and_overrides() -> None:
    lines, notes = boot_config.gpio_lines("gpio=3-4,6,8=op,dh\n[pi5]\ngpio=6=dl\n[all]\n"
                                          "gpio=4=np,dl\n")
    assert notes == []
    assert [line.pins for line in lines] == [(3, 4, 6, 8), (6,), (4,)]
    settings = boot_config.effective(lines)
    assert settings[6] == boot_config.PinSetting("op", "dh")  # [pi5] not counted
    assert settings[4] == boot_config.PinSetting("op", "dl", "pn")
    with pytest.raises(ValueError):
        boot_config.parse_pins("5-3")


def test_check_of_a_missing_file_is_a_clear_error(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["boot-config", "--check", str(tmp_path / "nope.txt")]) == EXIT_CONFIG
    assert "nope.txt" in capsys.readouterr().err
