"""Nothing acknowledged is ever lost: real server processes, killed, restarted and compared.

The simulated pins live inside one process, so what survives a restart is observed through
the next process's API (which reads the pins) and through the database file itself.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from pinpanel.lock import LOCK_NAME
from tests.e2e.audit import (
    DB_NAME,
    all_history,
    assert_chained,
    assert_gapless,
    count_per_pin,
    last_per_pin,
    read_database,
)
from tests.support import ServerFactory, ServerProcess, free_port, run_cli

PINS = (18, 23, 24)


@dataclass(frozen=True)
class Ack:
    """A toggle the server answered 200: the change it committed."""

    client: int
    seq: int
    pin: int
    state: bool


@dataclass
class Stream:
    """Clients toggling random pins until told to stop or the server goes away."""

    server: ServerProcess
    clients: int
    toggles: int | None = None  # per client; None: until stopped
    seed: int = 0

    def __post_init__(self) -> None:
        self.acked: list[list[Ack]] = [[] for _ in range(self.clients)]
        self.lost: list[int] = [0] * self.clients  # requests cut off by the server dying
        self.refused: list[str] = []
        self.stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(self.clients)]

    def _run(self, client: int) -> None:
        rng = random.Random(self.seed * 1000 + client)
        done = 0
        with self.server.client() as http:
            while not self.stop.is_set() and (self.toggles is None or done < self.toggles):
                pin = rng.choice(PINS)
                try:
                    response = http.post(f"/api/v1/pins/{pin}/toggle")
                except httpx.TransportError:
                    self.lost[client] += 1
                    return
                except Exception as exc:  # noqa: BLE001 - reported by the test, not lost
                    self.refused.append(repr(exc))
                    return
                if response.status_code != 200:
                    self.refused.append(f"{response.status_code} {response.text}")
                    return
                body = response.json()
                self.acked[client].append(Ack(client, body["seq"], body["pin"], body["state"]))
                done += 1

    def start(self) -> Stream:
        for thread in self._threads:
            thread.start()
        return self

    def join(self) -> None:
        for thread in self._threads:
            thread.join(30)
            assert not thread.is_alive()

    @property
    def all_acked(self) -> list[Ack]:
        return [ack for acks in self.acked for ack in acks]


def check_nothing_acknowledged_was_lost(server: ServerProcess, acked: list[Ack]) -> int:
    """The invariants after a restart; returns the number of history rows."""
    with server.client() as http:
        pins = {p["pin"]: p for p in http.get("/api/v1/pins").json()["pins"]}
        rows = all_history(http)
    assert_gapless(rows)
    assert_chained(rows)
    by_seq = {row["seq"]: row for row in rows}
    for ack in acked:  # every acknowledged change is there, as it was acknowledged
        row = by_seq.get(ack.seq)
        assert row is not None, f"acknowledged seq {ack.seq} is missing from history"
        assert (row["pin"], row["new"]) == (ack.pin, ack.state), ack
    newest = last_per_pin(rows)
    for bcm in PINS:
        # The pin (read from the line by the API) is in the state of its last committed
        # change, which is the last acknowledged one or a later change that committed
        # but whose answer was cut off by the kill.
        assert pins[bcm]["state"] == newest[bcm]["new"], bcm
        assert pins[bcm]["seq"] == newest[bcm]["seq"], bcm
        mine = [ack for ack in acked if ack.pin == bcm]
        if mine:
            last = max(mine, key=lambda ack: ack.seq)
            assert newest[bcm]["seq"] >= last.seq
            if pins[bcm]["state"] != last.state:
                assert newest[bcm]["seq"] > last.seq
    return len(rows)


def test_kill_9_during_a_stream_of_toggles_loses_no_acknowledged_change(
        make_server: ServerFactory) -> None:
    seed = int.from_bytes(os.urandom(4), "big")
    rng = random.Random(seed)
    acked: list[Ack] = []
    lost = 0
    server = make_server()
    rounds = 20
    for number in range(rounds):
        check_nothing_acknowledged_was_lost(server, acked)
        stream = Stream(server, clients=4, seed=seed + number).start()
        time.sleep(rng.uniform(0.05, 0.5))
        server.kill()  # SIGKILL: no shutdown code runs at all
        stream.stop.set()
        stream.join()
        assert stream.refused == [], f"seed {seed}"
        for acks in stream.acked:  # one client's answers come in seq order
            assert [a.seq for a in acks] == sorted(a.seq for a in acks)
        acked += stream.all_acked
        lost += sum(stream.lost)
        server = make_server(token=server.token)
    rows = check_nothing_acknowledged_was_lost(server, acked)
    assert len(acked) >= rounds * 4, f"too few toggles to prove anything (seed {seed})"
    assert lost > 0, "no request was ever cut off by a kill"
    assert rows >= len(acked) + len(PINS)


def test_twenty_clients_fifty_toggles_each_agree_everywhere(make_server: ServerFactory) -> None:
    server = make_server()
    stream = Stream(server, clients=20, toggles=50, seed=7).start()
    stream.join()
    assert stream.refused == [] and sum(stream.lost) == 0
    acked = stream.all_acked
    assert len(acked) == 1000
    toggled = {bcm: sum(1 for a in acked if a.pin == bcm) for bcm in PINS}
    with server.client() as http:
        pins = {p["pin"]: p for p in http.get("/api/v1/pins").json()["pins"]}
        rows = all_history(http)
    assert_gapless(rows)
    assert_chained(rows)
    assert len(rows) == 1000 + len(PINS)  # one start-up row per pin, then every toggle
    assert dict(count_per_pin(rows, "api")) == {b: n for b, n in toggled.items() if n}
    assert {a.seq for a in acked} == {r["seq"] for r in rows if r["cause"] == "api"}
    newest = last_per_pin(rows)
    for bcm in PINS:
        # Every pin started off, and each toggle flipped it exactly once.
        expected = toggled[bcm] % 2 == 1
        assert pins[bcm]["state"] is expected  # the line, read by the API
        assert newest[bcm]["new"] is expected
        assert pins[bcm]["seq"] == newest[bcm]["seq"]
    assert server.stop() == 0
    states, stored_rows = read_database(server.data_dir)
    assert states == {bcm: (pins[bcm]["state"], pins[bcm]["seq"]) for bcm in PINS}
    assert [r[0] for r in stored_rows] == [r["seq"] for r in rows]
    assert [(r[1], bool(r[3])) for r in stored_rows] == [(r["pin"], r["new"]) for r in rows]


# -- power-on state and exit ---------------------------------------------------------------

INITIALS = """
[[pins]]
pin = 18
initial = "off"
[[pins]]
pin = 23
initial = "on"
[[pins]]
pin = 24
"""


def test_initial_off_on_and_restore(make_server: ServerFactory) -> None:
    server = make_server(INITIALS)
    with server.client() as http:
        states = {p["pin"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
        assert states == {18: False, 23: True, 24: False}  # restore with nothing stored: off
        for bcm, state in ((18, True), (23, False), (24, True)):
            assert http.put(f"/api/v1/pins/{bcm}", json={"state": state}).status_code == 200
        before = all_history(http)[-1]["seq"]
    assert server.stop() == 0
    again = make_server(INITIALS, token=server.token)
    with again.client() as http:
        states = {p["pin"]: p["state"] for p in http.get("/api/v1/pins").json()["pins"]}
        assert states == {18: False, 23: True, 24: True}
        startup = [r for r in all_history(http) if r["seq"] > before]
        page = http.get("/").text
    # What start-up changed against the stored state is on record, by the system.
    assert [(r["pin"], r["old"], r["new"], r["actor"], r["cause"]) for r in startup] == [
        (18, True, False, "system", "startup"), (23, False, True, "system", "startup")]
    assert "by <span class=\"actor\">system</span> (startup)" in page


@pytest.mark.parametrize(("on_exit", "after_restart"), [
    ("keep", True), ("off", False), ("release", True),
])
def test_on_exit(make_server: ServerFactory, on_exit: str, after_restart: bool) -> None:
    config = f'[gpio]\non_exit = "{on_exit}"\n'
    server = make_server(config)
    with server.client() as http:
        on = http.post("/api/v1/pins/18/on").json()
    assert server.stop() == 0
    states, rows = read_database(server.data_dir)
    last = rows[-1]
    if on_exit == "off":
        # switched off through the one path, so the history says who and why
        assert (last[1], bool(last[2]), bool(last[3]), last[4], last[5]) == (
            18, True, False, "shutdown", "system")
        assert last[0] == on["seq"] + 1
    else:
        assert last[0] == on["seq"]  # nothing recorded at exit: the line was left alone
    assert states[18][0] is after_restart
    again = make_server(config, token=server.token)  # initial defaults to restore
    with again.client() as http:
        assert http.get("/api/v1/pins/18").json()["state"] is after_restart


# -- integrity -----------------------------------------------------------------------------


def files_of(directory: Path) -> dict[str, bytes]:
    """The data directory's files, but the lock (each start writes its pid into it)."""
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.name != LOCK_NAME}


def serve_once(data_dir: Path) -> tuple[int, str]:
    result = run_cli("serve", "--host", "127.0.0.1", "--port", str(free_port()),
                     "--data-dir", str(data_dir), "--no-auth", timeout=30)
    return result.returncode, result.stderr


def test_a_garbage_database_stops_the_server_and_is_left_untouched(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o700)
    (data_dir / DB_NAME).write_bytes(os.urandom(64 * 1024))
    before = files_of(data_dir)
    code, stderr = serve_once(data_dir)
    assert code != 0
    assert str(data_dir / DB_NAME) in stderr
    assert "damaged" in stderr and "Move it aside" in stderr and "backup" in stderr
    assert files_of(data_dir) == before


def test_a_truncated_database_stops_the_server_and_is_left_untouched(
        make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        for _ in range(40):
            http.post("/api/v1/pins/18/toggle")
    assert server.stop() == 0
    path = server.data_dir / DB_NAME
    os.truncate(path, path.stat().st_size // 2)
    before = files_of(server.data_dir)
    code, stderr = serve_once(server.data_dir)
    assert code != 0 and str(path) in stderr and "damaged" in stderr
    assert files_of(server.data_dir) == before


def test_a_newer_schema_stops_the_server(make_server: ServerFactory) -> None:
    server = make_server()
    assert server.stop() == 0
    conn = sqlite3.connect(server.data_dir / DB_NAME)
    conn.execute("PRAGMA user_version = 999")
    conn.close()
    code, stderr = serve_once(server.data_dir)
    assert code != 0
    assert "schema version 999" in stderr and "newer" in stderr and "Upgrade" in stderr


def test_data_dir_and_database_are_private(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        http.post("/api/v1/pins/18/toggle")
    assert stat.S_IMODE(server.data_dir.stat().st_mode) == 0o700
    files = list(server.data_dir.iterdir())
    assert DB_NAME in [p.name for p in files]
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path.name


# -- retention -------------------------------------------------------------------------------


def test_retention_trims_by_rows_and_age_and_never_reuses_seq(
        make_server: ServerFactory) -> None:
    config = "[history]\nmax_rows = 100\nmax_age_days = 1\n"
    server = make_server(config)
    with server.client() as http:
        for _ in range(150):
            assert http.post("/api/v1/pins/23/toggle").status_code == 200
        rows = all_history(http)
    assert 100 <= len(rows) <= 110  # trimmed as it goes, at most 10% over max_rows
    assert rows[-1]["seq"] == 153  # three start-up rows, then 150 toggles
    assert_gapless(rows, first=rows[0]["seq"])  # the newest rows, none missing
    assert server.stop(signal.SIGTERM) == 0
    conn = sqlite3.connect(server.data_dir / DB_NAME)
    with conn:
        conn.execute("UPDATE history SET at = '2020-01-01T00:00:00.000Z' WHERE seq <= 140")
    conn.close()
    again = make_server(config, token=server.token)  # retention by age runs at start-up
    with again.client() as http:
        assert [r["seq"] for r in all_history(http)] == list(range(141, 154))
        toggled = http.post("/api/v1/pins/23/toggle").json()
    assert toggled["seq"] == 154  # continues after the trimmed rows, never reused
