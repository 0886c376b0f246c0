"""What readings cost on an SD card: a year of 10 sensors at 30 s, on disk and in writes.

Run: ``.venv/bin/python -m bench.readings_cost [--days 365] [--sensors 10] [--dir DIR]``.

Two parts, both through :class:`pinpanel.store.readings.ReadingStore` with a fake clock:

1. **Disk**: ``--days`` of readings (every 30 s per sensor, values that wander like a
   temperature) written in a batch per hour of clock, with retention run as the store runs it (every
   10 minutes of clock), so at the end the file holds what a Pi would after that long: 48 h
   raw, 30 days of 1-minute and the rest as 1-hour rollups. Then the file size after a
   checkpoint, and after ``VACUUM`` (what the pages hold).
2. **Writes**: one more hour in the production shape, a batch every 10 s of clock (the
   flush interval; with 30 s sensors that is one batch per round), each one a real
   ``synchronous=FULL`` commit, counting the bytes this
   process wrote (``/proc/self/io`` ``wchar``: WAL frames and checkpoints) and the commits
   (each is one fsync of the WAL; a checkpoint adds an fsync of the database).

The first part turns fsyncs off (``synchronous=OFF``) to run in minutes; it changes no
page of the result, only how long the run takes.
"""

from __future__ import annotations

import argparse
import math
import sqlite3
import tempfile
import time
from pathlib import Path

from pinpanel.store.readings import ReadingStore

START = 1_767_225_600.0  # 2026-01-01T00:00:00Z
EVERY_S = 30.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def _wchar() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("wchar:"):
            return int(line.split()[1])
    return 0


def _value(sensor: int, at: float) -> float:
    return round(20 + 5 * math.sin(at / 7200 + sensor) + 0.1 * math.sin(at / 37), 2)


def run(days: float, sensors: int, directory: Path) -> dict[str, float]:
    clock = Clock(START)
    store = ReadingStore.open(directory, clock=clock, flush_n=20_000, flush_s=3600)
    store._conn.execute("PRAGMA synchronous = OFF")  # part 1 only: pages are the same
    names = [f"s{i}" for i in range(sensors)]
    steps = int(days * 86_400 / EVERY_S)
    began = time.monotonic()
    for n in range(steps):
        at = START + n * EVERY_S
        clock.now = at
        for i, name in enumerate(names):
            value = _value(i, at)
            store.add(name, "temperature", at, value)
            store.observe(name, "temperature", at, value)
        if n % 120 == 119:  # a batch an hour here (10 s on a Pi): retention keeps pace
            store.flush()
    store.flush()
    store.prune()
    fill_s = time.monotonic() - began
    store._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    counts = store.counts()
    disk = store.file_bytes()

    # part 2: one hour as a Pi runs it, a durable batch every 10 s
    store._conn.execute("PRAGMA synchronous = FULL")
    before_bytes, before_batches = _wchar(), store.batches
    base = clock.now
    for n in range(int(3600 / EVERY_S)):
        at = base + (n + 1) * EVERY_S
        clock.now = at
        for i, name in enumerate(names):
            value = _value(i, at)
            store.add(name, "temperature", at, value)
            store.observe(name, "temperature", at, value)
        # The sensors of one round read within half a second (staggered 50 ms), and the 10 s
        # flush timer starts at the round's first reading: one batch per 30 s round.
        store.flush()
    written = _wchar() - before_bytes
    commits = store.batches - before_batches
    store.close()
    conn = sqlite3.connect(directory / "readings.sqlite3")
    free = conn.execute("PRAGMA freelist_count").fetchone()[0]
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute("VACUUM")
    conn.close()
    vacuumed = (directory / "readings.sqlite3").stat().st_size
    return {"days": days, "sensors": sensors, "raw_rows": counts["raw"],
            "rollup_rows": counts["rollup"], "file_bytes": disk, "vacuumed_bytes": vacuumed,
            "pages": pages, "free_pages": free, "bytes_per_hour": written,
            "commits_per_hour": commits, "fill_seconds": fill_s}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--days", type=float, default=365)
    parser.add_argument("--sensors", type=int, default=10)
    parser.add_argument("--dir", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        result = run(args.days, args.sensors, args.dir or Path(tmp))
    for key, value in result.items():
        print(f"{key}: {value:.0f}" if isinstance(value, float) else f"{key}: {value}")


if __name__ == "__main__":
    main()
