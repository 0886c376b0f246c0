"""Time zones without a tz database: UTC still works, a named zone is a clear config error.

The missing database is real, not mocked: zoneinfo's search path points at an empty
directory (what ``PYTHONTZPATH`` does at start-up) and the ``tzdata`` wheel cannot be
imported, so :class:`zoneinfo.ZoneInfo` fails for every name, ``UTC`` included, as on an
image without Debian's tzdata package.
"""

from __future__ import annotations

import logging
import sys
import zoneinfo
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from pinpanel.automation.when import Place, next_run, system_zone
from pinpanel.config import LocationConfig
from pinpanel.errors import ConfigError
from pinpanel.schedule_config import ScheduleConfig
from pinpanel.timezones import ZoneError, zone
from tests.unit.conftest import config_of


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        config_of(text)
    return caught.value.problems


@pytest.fixture
def no_tz_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    empty = tmp_path / "zoneinfo"
    empty.mkdir()
    monkeypatch.setitem(sys.modules, "tzdata", None)  # the wheel's fallback: not installed
    zoneinfo.reset_tzpath(to=[str(empty)])
    zoneinfo.ZoneInfo.clear_cache()  # zones loaded earlier would still be found
    try:
        with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
            zoneinfo.ZoneInfo("UTC")  # what crashed pinpanel's start
        yield empty
    finally:
        zoneinfo.reset_tzpath()
        zoneinfo.ZoneInfo.clear_cache()


def test_utc_needs_no_tz_database(no_tz_database: Path) -> None:
    assert zone("UTC") is UTC
    assert zone("Etc/UTC") is UTC
    place = Place.of(LocationConfig(52.52, 13.405, "UTC"))
    assert place.zone is UTC and place.timezone == "UTC"
    daily = ScheduleConfig("s", at="07:30")
    assert next_run(daily, place, datetime(2026, 12, 2, 8, tzinfo=UTC)) == datetime(
        2026, 12, 3, 7, 30, tzinfo=UTC)
    for name in ("UTC", "Etc/UTC"):  # the loader accepts them
        assert config_of(f'[location]\ntimezone = "{name}"\n').location.timezone == name


def test_the_default_zone_is_utc_without_a_tz_database(
        no_tz_database: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    # Nothing configured, no /etc/timezone: UTC, silently.
    assert system_zone(etc) is UTC
    assert Place.of(LocationConfig()).zone is UTC  # this host's own /etc, whatever it says
    # The system says Europe/Berlin but there is no database to read it from: UTC, and
    # the log says why and what to install.
    (etc / "timezone").write_text("Europe/Berlin\n")
    with caplog.at_level(logging.WARNING, "pinpanel.automation.when"):
        assert system_zone(etc) is UTC
    (record,) = caplog.records
    assert "'Europe/Berlin' cannot be loaded" in record.getMessage()
    assert "tzdata" in record.getMessage() and "schedules use UTC" in record.getMessage()


def test_a_configured_zone_without_a_tz_database_is_a_config_error(
        no_tz_database: Path) -> None:
    (problem,) = problems_of('[location]\ntimezone = "Europe/Berlin"\n')
    assert problem.startswith("location.timezone: 'Europe/Berlin' cannot be loaded: this "
                              "system has no time zone database"), problem
    assert str(no_tz_database) in problem
    assert "install Debian's tzdata package (apt-get install tzdata)" in problem
    with pytest.raises(ZoneError, match="tzdata"):
        zone("America/New_York")


def test_with_the_database_an_unknown_zone_is_named_unknown() -> None:
    assert zone("Europe/Berlin").utcoffset(datetime(2026, 7, 1)) is not None
    (problem,) = problems_of('[location]\ntimezone = "Mars/Olympus_Mons"\n')
    assert problem == ("location.timezone: 'Mars/Olympus_Mons' is not a known time zone (an "
                       "IANA name such as Europe/Berlin or America/New_York)")
