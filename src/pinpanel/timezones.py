"""Time zones by name, with UTC needing no time zone database.

:class:`zoneinfo.ZoneInfo` reads the system's tz database (Debian's ``tzdata`` package,
``/usr/share/zoneinfo``), and even ``ZoneInfo("UTC")`` fails without it. A minimal image
(a container, the emulated Pi's initrd before it carried tzdata) has none, and pinpanel's
start must not depend on it for the default: UTC is :data:`datetime.UTC` here. Any other
zone does need the database, and when it is missing the error says so and names the
package, instead of calling ``Europe/Berlin`` an unknown zone.
"""

from __future__ import annotations

import zoneinfo
from datetime import UTC, tzinfo

#: Names that mean UTC itself; they resolve without the tz database.
UTC_NAMES = frozenset({"UTC", "Etc/UTC"})


class ZoneError(ValueError):
    """A zone name that cannot be loaded; the message says why, for a config error."""


def zone(name: str) -> tzinfo:
    """The zone called ``name``: :data:`datetime.UTC` for UTC, else from the tz database."""
    if name in UTC_NAMES:
        return UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        pass
    if not database_present():
        raise ZoneError(
            f"{name!r} cannot be loaded: this system has no time zone database (looked in "
            f"{', '.join(zoneinfo.TZPATH) or 'no directory'}); install Debian's tzdata "
            "package (apt-get install tzdata), or use \"UTC\"") from None
    raise ZoneError(f"{name!r} is not a known time zone (an IANA name such as "
                    "Europe/Berlin or America/New_York)") from None


def database_present() -> bool:
    """Whether any zone can be loaded at all (the system's tz database or the ``tzdata``
    wheel); checked only after a lookup failed, since it walks the database."""
    return bool(zoneinfo.available_timezones())


def name_of(tz: tzinfo) -> str:
    """The name a zone was loaded by (``Europe/Berlin``), ``UTC`` for :data:`datetime.UTC`."""
    key = getattr(tz, "key", None)
    return key if isinstance(key, str) else str(tz)
