"""When a schedule runs: concrete instants from clock times, sun events and cron, per zone.

Everything here is a pure function of a schedule, a :class:`Place` and an instant, so a
year of sunsets, DST days and polar nights is computed in milliseconds by tests, and the
scheduler, the start-up after a power cut and the page's "next:" all agree.

Sun times come from ``astral`` (NOAA's equations), cron from ``cronsim``; clock times are
read in the place's zone with :mod:`zoneinfo`. Daylight saving time, for both kinds of
fixed time of day (``at = "02:30"`` and ``cron = "30 2 * * *"``), as Debian's cron does:

* **spring forward** (02:30 does not exist that night): it runs once, at the first minute
  after the gap (03:00 in Europe/Berlin and America/New_York);
* **fall back** (02:30 happens twice): it runs once, at the first 02:30 (summer time).

A cron schedule with a step in its minute or hour field (``*/15 * * * *``) keeps running
every 15 real minutes through both changes, as cron does.

A sun event that does not happen on a day (no sunset at 69°N in June; no dusk in a white
night) means no run that day: :func:`next_run` looks ahead up to :data:`LOOK_AHEAD_DAYS`
and :func:`missing_on` says why a day has none, for the page.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING

from cronsim import CronSim

from pinpanel.config import LocationConfig
from pinpanel.schedule_config import DAYS, Moment, ScheduleConfig
from pinpanel.timezones import ZoneError, name_of, zone

if TYPE_CHECKING:
    from astral import Observer

log = logging.getLogger(__name__)

#: How far ahead a schedule's next run is looked for (a polar night lasts weeks, not a year).
LOOK_AHEAD_DAYS = 370


def _sun_event(event: str) -> Callable[..., datetime]:
    """astral's function for a sun event; astral is imported by the first sun schedule,
    not at start-up (a Pi with no sun schedule never needs it: #21, idle RSS)."""
    from astral import sun

    found: Callable[..., datetime] = getattr(sun, event)
    return found


def system_zone(etc: Path = Path("/etc")) -> tzinfo:
    """The system's zone (/etc/timezone, else /etc/localtime's link), else UTC.

    UTC is :data:`datetime.UTC`, which needs no tz database: a system without Debian's
    tzdata still starts (its clock times are then UTC, and the log says why).
    """
    names: list[str] = []
    with contextlib.suppress(OSError):
        names.append((etc / "timezone").read_text().strip())
    with contextlib.suppress(OSError):
        target = str((etc / "localtime").resolve())
        if "zoneinfo/" in target:
            names.append(target.split("zoneinfo/", 1)[1])
    failed: ZoneError | None = None
    for name in filter(None, names):
        try:
            return zone(name)
        except ZoneError as exc:
            failed = failed or exc
    if failed is not None:
        log.warning("system time zone %s; schedules use UTC", failed)
    return UTC


@dataclass(frozen=True)
class Place:
    """Where and in which zone schedules run."""

    latitude: float
    longitude: float
    zone: tzinfo

    @classmethod
    def of(cls, location: LocationConfig) -> Place:
        """The place of ``[location]``; its timezone was checked by the config loader, so
        a :class:`ZoneError` here means the tz database went away since."""
        here = zone(location.timezone) if location.timezone else system_zone()
        return cls(location.latitude, location.longitude, here)

    @property
    def timezone(self) -> str:
        """The zone's name for the API and the page (``Europe/Berlin``, ``UTC``)."""
        return name_of(self.zone)

    @property
    def observer(self) -> Observer:
        from astral import Observer

        return Observer(latitude=self.latitude, longitude=self.longitude)


def wall_time(place: Place, day: date, minutes: int) -> datetime:
    """``day`` at ``minutes`` after midnight on the place's clocks, as a UTC instant.

    A time in a spring-forward gap is the first minute after the gap; a time that happens
    twice (fall back) is its first occurrence.
    """
    naive = datetime.combine(day, time(minutes // 60, minutes % 60))
    first = naive.replace(tzinfo=place.zone, fold=0)
    instant = first.astimezone(UTC)
    if instant.astimezone(place.zone).replace(tzinfo=None) == naive:
        return instant
    # In a gap: fold=1 reads it with the offset after the change, landing before the gap.
    probe = naive.replace(tzinfo=place.zone, fold=1).astimezone(UTC)
    while probe.astimezone(place.zone).replace(tzinfo=None) < naive:
        probe += timedelta(minutes=1)
    return probe.replace(second=0, microsecond=0)


def moment_on(place: Place, moment: Moment, day: date) -> datetime | None:
    """The UTC instant of ``moment`` on the local date ``day``; None if the sun skips it."""
    if moment.event is None:
        return wall_time(place, day, moment.minutes)
    try:
        at = _sun_event(moment.event)(place.observer, date=day, tzinfo=place.zone)
    except ValueError:  # the sun never reaches that elevation that day
        return None
    return (at + timedelta(minutes=moment.minutes)).astimezone(UTC).replace(microsecond=0)


def missing_on(place: Place, moment: Moment, day: date) -> str | None:
    """Why ``moment`` has no time on ``day`` (polar day or night), or None if it has one."""
    if moment.event is None or moment_on(place, moment, day) is not None:
        return None
    from astral import sun

    noon = sun.elevation(place.observer, datetime.combine(day, time(12), place.zone))
    where = f"{abs(place.latitude):.1f}°{'N' if place.latitude >= 0 else 'S'}"
    kind = "polar day: the sun stays up" if noon > 0 else "polar night: the sun stays down"
    return f"no {moment.event} at {where} on {day.isoformat()} ({kind})"


def _local_day(place: Place, instant: datetime) -> date:
    return instant.astimezone(place.zone).date()


def _day_allowed(schedule: ScheduleConfig, day: date) -> bool:
    return not schedule.days or DAYS[day.weekday()] in schedule.days


def next_run(schedule: ScheduleConfig, place: Place, after: datetime) -> datetime | None:
    """The schedule's first run strictly after ``after`` (UTC), or None within a year."""
    if schedule.cron:
        runs = CronSim(schedule.cron, after.astimezone(place.zone))
        try:
            return next(runs).astimezone(UTC)
        except StopIteration:  # e.g. 30 February: never
            return None
    moment = schedule.moment
    assert moment is not None
    first = _local_day(place, after) - timedelta(days=1)
    for offset in range(LOOK_AHEAD_DAYS):
        day = first + timedelta(days=offset)
        if not _day_allowed(schedule, day):
            continue
        at = moment_on(place, moment, day)
        if at is not None and at > after:
            return at
    return None


def runs_between(schedule: ScheduleConfig, place: Place, start: datetime,
                 end: datetime) -> list[datetime]:
    """Every run in ``(start, end]`` (UTC), in order."""
    found: list[datetime] = []
    at = next_run(schedule, place, start)
    while at is not None and at <= end:
        found.append(at)
        at = next_run(schedule, place, at)
    return found


def label(schedule: ScheduleConfig) -> str:
    """What the page says after the time: ``sunset``, ``sunset-15m``, ``cron */15 ...``."""
    if schedule.cron:
        return f"cron {schedule.cron}"
    moment = schedule.moment
    return moment.text if moment is not None and moment.event else "clock"


def describe_next(schedule: ScheduleConfig, place: Place, now: datetime,
                  at: datetime | None) -> str:
    """"today 19:42 (sunset)", "tomorrow 07:30", "Mon 8 Dec 07:30"; or why there is none."""
    if at is None:
        moment = schedule.moment
        reason = missing_on(place, moment, _local_day(place, now)) if moment else None
        return f"none within a year ({reason})" if reason else "none within a year"
    local = at.astimezone(place.zone)
    today = _local_day(place, now)
    if local.date() == today:
        day = "today"
    elif local.date() == today + timedelta(days=1):
        day = "tomorrow"
    else:
        day = f"{local:%a} {local.day} {local:%b}"
    what = label(schedule)
    suffix = f" ({what})" if what != "clock" else ""
    return f"{day} {local:%H:%M}{suffix}"
