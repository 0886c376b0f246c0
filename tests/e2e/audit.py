"""Reading the audit log back, for the durability and history tests.

Through the API (paged, as a client would) and straight from the SQLite file opened
read-only after the server stopped: the two must tell the same story.
"""

from __future__ import annotations

import sqlite3
from collections import defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx

DB_NAME = "pinpanel.sqlite3"


def all_history(http: httpx.Client, **params: Any) -> list[dict[str, Any]]:
    """Every history row the API holds (matching ``params``), oldest first."""
    rows: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        query = {**params, "limit": 1000, **({"cursor": cursor} if cursor else {})}
        response = http.get("/api/v1/history", params=query)
        assert response.status_code == 200, response.text
        page = response.json()
        rows.extend(page["items"])
        cursor = page["next"]
        if cursor is None:
            return rows[::-1]


def assert_gapless(rows: list[dict[str, Any]], first: int = 1) -> None:
    """Sequence numbers run first, first+1, ... with nothing missing or repeated."""
    seqs = [row["seq"] for row in rows]
    assert seqs == list(range(first, first + len(seqs))), "history has a gap or is out of order"


def assert_chained(rows: Iterable[dict[str, Any]]) -> None:
    """Per pin, each change starts where the previous one ended: no change went missing."""
    last: dict[int, bool] = {}
    for row in rows:
        if row["pin"] in last:
            assert row["old"] == last[row["pin"]], f"broken chain at seq {row['seq']}"
        last[row["pin"]] = row["new"]


def last_per_pin(rows: Iterable[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    newest: dict[int, dict[str, Any]] = {}
    for row in rows:
        newest[row["pin"]] = row
    return newest


def count_per_pin(rows: Iterable[dict[str, Any]], cause: str) -> dict[int, int]:
    counts: dict[int, int] = defaultdict(int)
    for row in rows:
        if row["cause"] == cause:
            counts[row["pin"]] += 1
    return counts


def read_database(data_dir: Path) -> tuple[dict[int, tuple[bool, int]], list[tuple[Any, ...]]]:
    """(pin -> (state, seq), history rows oldest first) from the file, opened read-only."""
    conn = sqlite3.connect(f"file:{data_dir / DB_NAME}?mode=ro", uri=True)
    try:
        states = {pin: (bool(state), seq) for pin, state, seq in
                  conn.execute("SELECT pin, state, seq FROM pin_state")}
        rows = conn.execute("SELECT seq, pin, old, new, cause, actor FROM history "
                            "ORDER BY seq").fetchall()
    finally:
        conn.close()
    return states, rows
