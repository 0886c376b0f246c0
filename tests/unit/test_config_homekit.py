"""``[homekit]`` and the per-pin ``homekit_type`` / ``homekit_door`` keys."""

from __future__ import annotations

from pinpanel.config import HomekitConfig
from tests.unit.conftest import config_of
from tests.unit.test_config import problems_of


def test_homekit_is_off_by_default_with_hap_s_usual_port() -> None:
    config = config_of("")
    assert config.homekit == HomekitConfig()
    assert (config.homekit.enabled, config.homekit.port) == (False, 51826)


def test_each_mode_has_its_home_app_default() -> None:
    config = config_of("""
[[pins]]
pin = 18
[[pins]]
pin = 12
mode = "pwm"
[[pins]]
pin = 13
mode = "servo"
[[pins]]
pin = 17
mode = "input"
""")
    assert [p.homekit_kind for p in config.pins] == [
        "switch", "lightbulb", "window_covering", "contact"]


def test_a_garage_door_names_its_closed_input_by_id() -> None:
    config = config_of("""
[homekit]
enabled = true
name = "Garage Pi"
[[pins]]
pin = 18
homekit_type = "garage_door"
homekit_door = "closed"
[[pins]]
pin = 17
id = "closed"
mode = "input"
""")
    door = config.pins[0]
    assert (door.homekit_kind, door.homekit_door) == ("garage_door", "closed")
    assert config.homekit.name == "Garage Pi"


def test_every_homekit_mistake_is_one_problem_at_its_path() -> None:
    problems = problems_of("""
[homekit]
name = "--"
pair_attempts_per_minute = 0
[[pins]]
pin = 12
mode = "pwm"
homekit_type = "lock"
[[pins]]
pin = 17
mode = "input"
homekit_type = "switch"
[[pins]]
pin = 18
homekit_door = "gpio17"
[[pins]]
pin = 19
homekit_type = "garage_door"
homekit_door = "gpio20"
[[pins]]
pin = 20
homekit_type = "garage_door"
homekit_door = "gpio19"
[[pins]]
pin = 21
mode = "input"
homekit_door = "gpio17"
""")
    assert problems == [
        "homekit.pair_attempts_per_minute: must be between 1 and 100, got 0",
        "pins[0].homekit_type: a pwm pin is one of lightbulb, fan, none, got 'lock'",
        "pins[1].homekit_type: an input pin is one of contact, motion, leak, doorbell, none, "
        "got 'switch'",
        'pins[2].homekit_door: applies only with homekit_type = "garage_door"',
        "pins[5].homekit_door: applies only to outputs",
        "pins[3].homekit_door: pin 20 is an output; the door's position is read from an input",
        "pins[4].homekit_door: pin 19 is an output; the door's position is read from an input",
        "homekit.name: '--' must have 1-64 characters with at least one letter or digit",
    ]
