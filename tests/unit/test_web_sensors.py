"""web/sensors.py: the fast time text of stored readings is the one format_time writes."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from pinpanel.changes import format_time
from pinpanel.web.sensors import point_time


def test_point_time_writes_what_format_time_writes_for_every_stored_millisecond() -> None:
    rng = random.Random(21)
    edges = [0, 999, 1000, 86_399_999, 86_400_000, 951_782_400_000,  # 2000-02-29
             1_767_225_599_999, 1_767_225_600_000, 4_102_444_799_999]  # ...2099-12-31
    for ms in edges + [rng.randrange(0, 4_102_444_800_000) for _ in range(20_000)]:
        at = ms / 1000  # as the store hands them out: whole milliseconds over 1000
        assert point_time(at) == format_time(datetime.fromtimestamp(at, UTC)), ms
