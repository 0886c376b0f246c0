"""kill -9 in the middle of a stream of readings: only the newest batch may be lost.

A real child process writes readings as fast as it can (one a millisecond of its own time line) and
reports each batch the readings store says is durable. It is killed with SIGKILL while it
writes. Afterwards the file must pass SQLite's integrity check, hold every reading of every
batch reported durable, and hold a gapless prefix of what was written: nothing older than
the lost batch is missing.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from pinpanel.store.readings import DB_NAME

CHILD = r"""
import sys, threading, time
from pathlib import Path
from pinpanel.store.readings import ReadingStore

store = ReadingStore.open(Path(sys.argv[1]), flush_n=50)
committed = 0
lock = threading.Lock()

def told(rows):
    global committed
    with lock:
        committed += rows
        print(f"committed {committed}", flush=True)

store.on_batch = told
i = 0
base = time.time() - 3600  # recent: retention keeps 48 h of raw readings
while True:
    store.add("tank", "temperature", base + i / 1000, i * 0.25)
    i += 1
"""


def test_kill_9_while_writing_readings_loses_at_most_the_newest_batch(tmp_path: Path) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(tmp_path)],
                             stdout=subprocess.PIPE, text=True)
    reported = 0
    try:
        assert child.stdout is not None
        for line in child.stdout:
            reported = int(line.split()[1])
            if reported >= 3000:
                break
    finally:
        os.kill(child.pid, signal.SIGKILL)
        child.wait()
        if child.stdout is not None:
            child.stdout.close()
    assert reported >= 3000
    conn = sqlite3.connect(tmp_path / DB_NAME)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        values = [v for (v,) in conn.execute("SELECT value FROM raw ORDER BY t")]
    finally:
        conn.close()
    # every batch reported durable is there (more may have landed after the last report)
    assert len(values) >= reported
    # and it is the whole beginning of the stream, in order: nothing older was lost
    assert values == [i * 0.25 for i in range(len(values))]
