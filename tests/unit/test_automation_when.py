"""When schedules run: a year of sunsets, DST in two zones, polar day and night, cron edges.

Pure functions of a schedule, a place and an instant: no clock, no board.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from pinpanel.automation.when import Place, describe_next, missing_on, next_run, runs_between
from pinpanel.config import LocationConfig
from pinpanel.schedule_config import ScheduleConfig, parse_moment

BERLIN = Place.of(LocationConfig(52.52, 13.405, "Europe/Berlin"))
NEW_YORK = Place.of(LocationConfig(40.71, -74.01, "America/New_York"))
TROMSO = Place.of(LocationConfig(69.65, 18.96, "Europe/Oslo"))


def at(text: str, **kwargs: object) -> ScheduleConfig:
    return ScheduleConfig("s", at=text, **kwargs)  # type: ignore[arg-type]


def local(place: Place, moment: datetime | None) -> datetime:
    assert moment is not None
    return moment.astimezone(place.zone)


@pytest.mark.parametrize(("text", "shown"), [
    ("07:30", "07:30"), ("7:05", "07:05"), ("sunset", "sunset"), ("Sunset-15m", "sunset-15m"),
    ("sunrise + 1h30m", "sunrise+1h30m"), ("dusk", "dusk"), ("dawn-2h", "dawn-2h")])
def test_moments_parse(text: str, shown: str) -> None:
    moment = parse_moment(text)
    assert moment is not None and moment.text == shown


@pytest.mark.parametrize("text", ["25:00", "7:5", "sunset-", "sunset+13h", "noonish", ""])
def test_bad_moments_do_not_parse(text: str) -> None:
    assert parse_moment(text) is None


def test_sunset_every_day_of_a_year_once_in_order_at_a_plausible_hour() -> None:
    schedule = at("sunset-15m")
    start = datetime(2026, 1, 1, tzinfo=UTC)
    runs = runs_between(schedule, BERLIN, start, start + timedelta(days=365))
    days = [local(BERLIN, r).date() for r in runs]
    assert len(runs) == 365 and len(set(days)) == 365  # once a day, through both DST changes
    hours = [local(BERLIN, r).hour + local(BERLIN, r).minute / 60 for r in runs]
    assert 15.5 < min(hours) < 16.0 and 21.0 < max(hours) < 21.6  # December ... June
    solstice = local(BERLIN, next_run(schedule, BERLIN, datetime(2026, 6, 21, tzinfo=UTC)))
    # Berlin's solstice sunset is 21:33 local; 15 minutes before it:
    assert (solstice.hour, solstice.minute) in ((21, 17), (21, 18), (21, 19))


@pytest.mark.parametrize(("place", "spring", "autumn", "twice"), [
    (BERLIN, date(2026, 3, 29), date(2026, 10, 25), 2),  # 03:00 -> 02:00
    (NEW_YORK, date(2026, 3, 8), date(2026, 11, 1), 1),  # 02:00 -> 01:00
])
def test_a_schedule_in_the_dst_changes_runs_once(place: Place, spring: date, autumn: date,
                                                 twice: int) -> None:
    for cron in (False, True):
        s = ScheduleConfig("s", cron="30 2 * * *") if cron else at("02:30")
        day_before = datetime.combine(spring - timedelta(days=1), datetime.min.time(),
                                      place.zone).astimezone(UTC)
        runs = [local(place, r) for r in runs_between(s, place, day_before,
                                                      day_before + timedelta(days=3))]
        # Spring forward: 02:30 does not exist; it runs once, at 03:00 (the end of the gap).
        assert [(r.day, r.hour, r.minute) for r in runs] == [
            ((spring - timedelta(days=1)).day, 2, 30), (spring.day, 3, 0),
            ((spring + timedelta(days=1)).day, 2, 30)], (cron, runs)
        s = ScheduleConfig("s", cron=f"30 {twice} * * *") if cron else at(f"0{twice}:30")
        day_before = datetime.combine(autumn - timedelta(days=1), datetime.min.time(),
                                      place.zone).astimezone(UTC)
        runs = [local(place, r) for r in runs_between(s, place, day_before,
                                                      day_before + timedelta(days=3))]
        # Fall back: the time happens twice that night; it runs once, at the first (summer).
        assert [(r.day, r.hour, r.minute) for r in runs] == [
            ((autumn - timedelta(days=1)).day, twice, 30), (autumn.day, twice, 30),
            ((autumn + timedelta(days=1)).day, twice, 30)], (cron, runs)
        autumn_run = runs[1]
        assert autumn_run.fold == 0 and autumn_run.utcoffset() == runs[0].utcoffset()


def test_an_interval_cron_keeps_real_intervals_through_fall_back() -> None:
    schedule = ScheduleConfig("s", cron="*/30 * * * *")
    start = datetime(2026, 10, 24, 23, 0, tzinfo=UTC)  # 01:00 CEST on the 25th
    runs = runs_between(schedule, BERLIN, start, start + timedelta(hours=3))
    assert [(r - start).total_seconds() / 60 for r in runs] == [30, 60, 90, 120, 150, 180]


def test_polar_day_and_night_are_shown_never_a_crash() -> None:
    june = datetime(2026, 6, 21, 12, tzinfo=UTC)
    sunset = at("sunset")
    assert missing_on(TROMSO, sunset.moment, date(2026, 6, 21)) == (  # type: ignore[arg-type]
        "no sunset at 69.7°N on 2026-06-21 (polar day: the sun stays up)")
    after = local(TROMSO, next_run(sunset, TROMSO, june))
    assert after.month == 7 and after.hour >= 23  # the first sunset after the midnight sun
    december = datetime(2026, 12, 21, 12, tzinfo=UTC)
    sunrise = at("sunrise")
    assert "polar night: the sun stays down" in str(
        missing_on(TROMSO, sunrise.moment, date(2026, 12, 21)))  # type: ignore[arg-type]
    assert local(TROMSO, next_run(sunrise, TROMSO, december)).month == 1
    # Dusk exists in the polar night (the sun gets within 6 degrees) but not in June.
    assert next_run(at("dusk"), TROMSO, december) is not None
    assert "sunset" in describe_next(sunset, TROMSO, june, next_run(sunset, TROMSO, june))
    # A schedule whose event never comes within the look-ahead says why, too.
    north_pole = Place.of(LocationConfig(89.9, 0, "UTC"))
    never = next_run(at("dawn", days=("mon",)), north_pole, june)
    assert never is None or never > june
    text = describe_next(at("sunset"), north_pole, june, None)
    assert text.startswith("none within a year (no sunset at 89.9°N")


@pytest.mark.parametrize(("cron", "after", "expected"), [
    ("0 0 29 2 *", datetime(2026, 3, 1, tzinfo=UTC), datetime(2028, 2, 29, tzinfo=UTC)),
    ("*/15 6-22 * * *", datetime(2026, 12, 2, 22, 50, tzinfo=UTC),
     datetime(2026, 12, 3, 6, 0, tzinfo=UTC)),
    ("0 7 * * mon-fri", datetime(2026, 12, 4, 8, tzinfo=UTC),  # a Friday
     datetime(2026, 12, 7, 7, tzinfo=UTC)),
    ("0 20 * * *", datetime(2026, 12, 2, 20, 0, tzinfo=UTC),  # exactly at a run: the next
     datetime(2026, 12, 3, 20, 0, tzinfo=UTC)),
    ("59 23 31 12 *", datetime(2026, 12, 31, 23, 58, 59, tzinfo=UTC),
     datetime(2026, 12, 31, 23, 59, tzinfo=UTC)),
])
def test_cron_edges(cron: str, after: datetime, expected: datetime) -> None:
    utc = Place.of(LocationConfig(0, 0, "UTC"))
    assert next_run(ScheduleConfig("s", cron=cron), utc, after) == expected


def test_days_limit_a_clock_schedule() -> None:
    schedule = at("07:30", days=("sat", "sun"))
    start = datetime(2026, 12, 1, tzinfo=UTC)  # a Tuesday
    runs = [local(BERLIN, r) for r in runs_between(schedule, BERLIN, start,
                                                  start + timedelta(days=7))]
    assert [r.strftime("%a %H:%M") for r in runs] == ["Sat 07:30", "Sun 07:30"]


def test_next_is_said_in_words() -> None:
    now = datetime(2026, 12, 2, 12, tzinfo=UTC)
    sunset = at("sunset")
    text = describe_next(sunset, BERLIN, now, next_run(sunset, BERLIN, now))
    assert text.startswith("today 15:") and text.endswith(" (sunset)")
    morning = at("07:30")
    assert describe_next(morning, BERLIN, now, next_run(morning, BERLIN, now)) == \
        "tomorrow 07:30"
