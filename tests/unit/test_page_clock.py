"""The page's render time, its seconds formatted once per second: the same text as
``format_time`` of the same instant, at the rounding edges too."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pinpanel.changes import format_time
from pinpanel.web.pages import PageCache

BASE = 1_764_700_000.0


@pytest.mark.parametrize("offset", [
    0.0, 0.0004995, 0.0005, 0.001, 0.0019995, 0.123456, 0.5, 0.9994999, 0.9995,
    0.9999994, 0.9999995, 0.99999999, 1.0, 59.9999996, 3599.0000004,
])
def test_the_clock_text_is_format_time_of_the_same_instant(offset: float) -> None:
    cache = PageCache()
    for now in (BASE + offset, BASE + offset + 1, BASE + offset):  # a new second, then back
        assert cache._clock_text(now).decode() == format_time(
            datetime.fromtimestamp(now, UTC))
