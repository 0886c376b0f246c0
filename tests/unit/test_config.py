"""Config validation: defaults, every field, and every error collected with its path."""

from __future__ import annotations

from pathlib import Path

import pytest

from pinpanel.config import SETTINGS, load, settings_reference, with_overrides
from pinpanel.errors import ConfigError
from tests.unit.conftest import config_of


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_of(text)
    return caught.value.problems


def test_no_file_reproduces_the_tutorial() -> None:
    config = load(None)
    assert [p.pin for p in config.pins] == [18, 23, 24]
    assert all(p.mode == "output" and not p.active_low for p in config.pins)
    assert [p.id for p in config.pins] == ["gpio18", "gpio23", "gpio24"]
    assert config.server.host == "0.0.0.0" and config.server.port == 8080


def test_full_pin_table_is_read() -> None:
    config = config_of("""
        [[pins]]
        pin = 17
        id = "door"
        name = "Garage door"
        active_low = true
        initial = "off"
        pulse_ms = 700
        [[pins]]
        pin = 27
        mode = "input"
        pull = "down"
        debounce_ms = 30
    """)
    door, button = config.pins
    assert (door.pin, door.id, door.name, door.active_low, door.initial, door.pulse_ms) == (
        17, "door", "Garage door", True, "off", 700)
    assert (button.id, button.mode, button.pull, button.debounce_ms) == (
        "gpio27", "input", "down", 30)


def test_outputs_default_to_restore() -> None:
    assert config_of("[[pins]]\npin = 5").pins[0].initial == "restore"


@pytest.mark.parametrize(("text", "expected"), [
    ("[[pins]]\npin = 28", "pins[0].pin: must be between 0 and 27, got 28"),
    ("[[pins]]\npin = -1", "pins[0].pin: must be between 0 and 27, got -1"),
    ('[[pins]]\npin = "18"', "pins[0].pin: expected an integer, got str"),
    ("[[pins]]\npin = true", "pins[0].pin: expected an integer, got bool"),
    ("[[pins]]\nname = 'x'", "pins[0].pin: required (the BCM GPIO number)"),
    ("[[pins]]\npin = 4\ncolour = 'red'", "pins[0].colour: unknown key"),
    ("[[pins]]\npin = 4\nmode = 'dimmer'",
     "pins[0].mode: must be one of output, input, pwm, servo"),
    ("[[pins]]\npin = 4\nid = 'Bad Id'", "pins[0].id: 'Bad Id' must be lowercase"),
    ("[[pins]]\npin = 4\nid = '4'", "pins[0].id: '4' must be lowercase"),
    ("[[pins]]\npin = 4\npull = 'up'", "pins[0].pull: applies only to inputs"),
    ("[[pins]]\npin = 4\nmode = 'input'\ninitial = 'on'",
     "pins[0].initial: applies only to outputs"),
    ("[[pins]]\npin = 4\npulse_ms = 4000000", "pins[0].pulse_ms: must be between 0 and 3600000"),
    ("[server]\nport = 70000", "server.port: must be between 1 and 65535, got 70000"),
    ("[gpio]\nbackend = 'sysfs'", "gpio.backend: must be one of auto, lgpio"),
    ("[gpio]\non_exit = 'explode'", "gpio.on_exit: must be one of keep, off, release"),
    ("[auth]\nenabled = 'no'", "auth.enabled: expected true or false, got str"),
    ("[servr]\nport = 1", "servr: unknown section"),
    ("pins = 3", "pins: expected an array of tables"),
    ("pins = []", "pins: at least one pin is needed"),
    ("pins = [3]", "pins[0]: expected a table ([[pins]])"),
    ("interlocks = 3", "interlocks: expected an array of tables"),
])
def test_errors_name_the_key_and_the_problem(text: str, expected: str) -> None:
    assert any(p.startswith(expected) for p in problems_of(text)), problems_of(text)


def test_a_pins_value_of_the_wrong_type_is_one_problem() -> None:
    assert problems_of("pins = 3") == ["pins: expected an array of tables ([[pins]])"]


def test_duplicates_are_caught_across_pins() -> None:
    found = problems_of("""
        [[pins]]
        pin = 18
        [[pins]]
        pin = 18
        id = "other"
        [[pins]]
        pin = 19
        id = "other"
    """)
    assert "pins[1].pin: BCM 18 is already used by pins[0]" in found
    assert "pins[2].id: 'other' is already used by pins[1]" in found


def test_a_bcm_number_used_twice_is_one_problem_not_two() -> None:
    # Both pins would default to the id gpio18: that is the same mistake, said once.
    assert problems_of("[[pins]]\npin = 18\n[[pins]]\npin = 18") == [
        "pins[1].pin: BCM 18 is already used by pins[0]"]
    assert problems_of("[[pins]]\npin = 18\nid = 'gpio23'\n[[pins]]\npin = 23") == [
        "pins[1].id: 'gpio23' is already used by pins[0]"]


def test_every_problem_is_reported_together() -> None:
    found = problems_of("""
        [server]
        port = 0
        [[pins]]
        pin = 99
        [[pins]]
        pin = 3
        mode = "relay"
    """)
    assert len(found) == 3


def test_interlocks_accept_numbers_and_ids_and_refuse_bad_refs() -> None:
    base = "[[pins]]\npin = 20\nid = 'up'\n[[pins]]\npin = 21\n[[pins]]\npin = 22\nmode = 'input'\n"
    assert config_of(base + "[[interlocks]]\npins = ['up', 21]").interlocks == ((20, 21),)
    found = problems_of(base + "[[interlocks]]\npins = [20, 5, 22, 20]")
    assert "interlocks[0].pins[1]: 5 is not a configured pin" in found
    assert "interlocks[0].pins[2]: pin 22 is an input; interlocks hold outputs" in found
    assert "interlocks[0].pins[3]: pin 20 is listed twice" in found
    assert "interlocks[0].pins: expected a list of at least two pins" in problems_of(
        base + "[[interlocks]]\npins = [20]")


def test_file_errors_are_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[[pins]\npin = ")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load(bad)


def test_overrides_replace_only_what_was_given() -> None:
    config = with_overrides(load(None), server__port=9000, server__host=None,
                            auth__enabled=False)
    assert (config.server.port, config.server.host, config.auth.enabled) == (9000, "0.0.0.0", False)


def test_reference_lists_every_setting() -> None:
    table = settings_reference()
    for setting in SETTINGS:
        assert f"`{setting.key}`" in table


ONE_OF_EACH_MISTAKE = """
colour = "red"
history = 5

[server]
port = 0
hostname = "pi"
trusted_hosts = ["pi.local", 1]

[gpio]
backend = "sysfs"

[auth]
enabled = "no"

[[pins]]
pin = 18
id = "lamp"

[[pins]]
pin = 18
id = "Pump"

[[pins]]
pin = 19
id = "lamp"
pull = "up"

[[pins]]
name = "mystery"

[[pins]]
pin = 20
mode = "input"
initial = "on"

[[pins]]
pin = 21
colour = "red"
pulse_ms = 4000000

[[pins]]
pin = 22
mode = "relay"

[[pins]]
pin = "23"
active_low = "yes"

[[interlocks]]
pins = ["Pump", 21]

[[interlocks]]
pins = [18, 5, 20, "lamp"]

[[interlocks]]
pins = [19]

[[interlocks]]
pins = [22, 21]
extra = 1
"""


def test_one_run_reports_every_problem_once_with_its_path(tmp_path: Path) -> None:
    # A pin with a problem of its own still counts for duplicates (pins[1]'s BCM 18, pins[2]'s
    # id) and is still a configured pin to an interlock (interlocks[0] names the upper-case id
    # and a pin with a bad key): nothing is left for a second run, and nothing is said twice.
    path = tmp_path / "pinpanel.toml"
    path.write_text(ONE_OF_EACH_MISTAKE)
    with pytest.raises(ConfigError) as caught:
        load(path)
    assert caught.value.problems == [
        "colour: unknown section (expected one of auth, gpio, groups, history, homekit, hub, "
        "interlocks, location, mdns, mqtt, notifiers, pins, rules, scenes, schedules, sensors, "
        "server)",
        "server.port: must be between 1 and 65535, got 0",
        "server.hostname: unknown key (expected one of host, port, data_dir, certfile, keyfile, "
        "trusted_hosts, cors_origins, max_body_bytes, "
        "forwarded_allow_ips, public_url)",
        "server.trusted_hosts: expected a list of strings",
        "gpio.backend: must be one of auto, lgpio, rpigpio, native, pigpio, simulated, "
        "got 'sysfs'",
        "auth.enabled: expected true or false, got str",
        "history: expected a table",
        "pins[1].id: 'Pump' must be lowercase letters, digits, - or _, starting with a letter "
        "(at most 32)",
        "pins[2].pull: applies only to inputs",
        "pins[3].pin: required (the BCM GPIO number)",
        "pins[4].initial: applies only to outputs",
        "pins[5].colour: unknown key (expected one of pin, id, name, mode, active_low, initial, "
        "pull, debounce_ms, pulse_ms, auto_off_ms, frequency_hz, min_level, fade_ms, "
        "min_angle, max_angle, min_pulse_ms, max_pulse_ms, frame_ms, ha_type, homekit_type, "
        "homekit_door)",
        "pins[5].pulse_ms: must be between 0 and 3600000, got 4000000",
        "pins[6].mode: must be one of output, input, pwm, servo, got 'relay'",
        "pins[7].pin: expected an integer, got str",
        "pins[7].active_low: expected true or false, got str",
        "pins[1].pin: BCM 18 is already used by pins[0]",
        "pins[2].id: 'lamp' is already used by pins[0]",
        "interlocks[1].pins[1]: 5 is not a configured pin",
        "interlocks[1].pins[2]: pin 20 is an input; interlocks hold outputs",
        "interlocks[1].pins[3]: pin 18 is listed twice",
        "interlocks[2].pins: expected a list of at least two pins",
        "interlocks[3]: expected a table with exactly one key, pins",
    ]
    assert str(caught.value).startswith(f"{path}: colour: unknown section")


def test_a_boolean_flag_says_what_it_does() -> None:
    import argparse

    from pinpanel.cli.options import add_config_arguments

    parser = argparse.ArgumentParser()
    add_config_arguments(parser)
    no_auth = next(a for a in parser._actions if "--no-auth" in a.option_strings)
    assert no_auth.const is False and no_auth.help is not None
    assert no_auth.help.startswith("auth.enabled = false: serve without tokens or logins")
    assert "Require" not in no_auth.help


def test_reverse_proxies_are_loopback_by_default_and_listed_as_addresses_or_networks() -> None:
    assert config_of("").server.forwarded_allow_ips == ("127.0.0.1", "::1")
    assert config_of("").server.public_url == ""
    config = config_of('[server]\nforwarded_allow_ips = ["10.0.0.0/8", "fd00::1"]\n'
                       'public_url = "https://pins.example.org"')
    assert config.server.forwarded_allow_ips == ("10.0.0.0/8", "fd00::1")
    assert config.server.public_url == "https://pins.example.org"
    with pytest.raises(ConfigError) as caught:
        config_of('[server]\nforwarded_allow_ips = ["*", "10.0.0.1"]\n'
                  'public_url = "pins.example.org"')
    assert caught.value.problems == [
        "server.forwarded_allow_ips[0]: '*' is not an IP address or network (e.g. 10.0.0.0/8); "
        "to trust every peer, which lets anyone set their own address, write 0.0.0.0/0 and ::/0",
        "server.public_url: 'pins.example.org' must be http(s)://host[:port], e.g. "
        "https://pins.example.org"]
