"""The cost of one durable SQLite commit on this disk, measured by the harness itself.

Why: pinpanel acknowledges a toggle only after its state and audit row are committed with
``journal_mode=WAL`` and ``synchronous=FULL`` (an fsync per commit). Its toggle latency can
never be below that fsync, so the report puts the raw commit time next to pinpanel's durable
toggle time: the difference is what pinpanel adds (HTTP, auth, the thread hop, the event fan-out).
This is a reference figure about the machine, not about pinpanel; the report labels it so.
"""

from __future__ import annotations

import sqlite3
import statistics
import tempfile
import time
from pathlib import Path


def commit_floor(directory: Path, commits: int = 300) -> dict[str, float]:
    """Time ``commits`` single-row transactions (one UPDATE + one INSERT each), WAL + FULL."""
    with tempfile.TemporaryDirectory(dir=directory, prefix="sqlite-floor-") as tmp:
        conn = sqlite3.connect(Path(tmp) / "floor.db", isolation_level=None)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("CREATE TABLE state (pin INTEGER PRIMARY KEY, on_ INTEGER)")
            conn.execute("CREATE TABLE audit (seq INTEGER PRIMARY KEY, pin INTEGER, on_ INTEGER)")
            conn.execute("INSERT INTO state VALUES (18, 0)")
            times: list[float] = []
            for i in range(commits):
                t0 = time.perf_counter()
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("UPDATE state SET on_ = ? WHERE pin = 18", (i % 2,))
                conn.execute("INSERT INTO audit (pin, on_) VALUES (18, ?)", (i % 2,))
                conn.execute("COMMIT")
                times.append(time.perf_counter() - t0)
        finally:
            conn.close()
    times.sort()
    return {
        "commits": commits,
        "p50_ms": statistics.median(times) * 1000,
        "p99_ms": times[min(len(times) - 1, int(len(times) * 0.99))] * 1000,
        "commits_per_s": commits / sum(times),
    }
