"""What sampling costs a running server: CPU of ``pinpanel serve`` with N sensors at 1 Hz.

Run: ``.venv/bin/python -m bench.sensors_idle [--sensors 10] [--seconds 60]``.

Starts a real server on the simulated board (``--no-auth``, a free port, a temporary data
directory) with ``--sensors`` simulated DS18B20s read every second, waits until it answers,
then reads the process's user+system CPU time from ``/proc/<pid>/stat`` over ``--seconds``
and prints it as a share of one core, next to the same server with no sensors. Nobody
requests anything meanwhile: this is the idle cost of the readings path (timers, the thread
hop per read, the deadband, the batched writes).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from pinpanel.local_broker import free_port


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def measure(sensors: int, seconds: float, directory: Path) -> float:
    """Share of one core the server used over ``seconds`` (0.01 = 1 %)."""
    config = directory / f"s{sensors}.toml"
    config.write_text("".join(
        f'[[sensors]]\nid = "t{i}"\nkind = "ds18b20"\ninterval_s = 1\n\n'
        for i in range(sensors)))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pinpanel", "serve", "--no-auth", "--host", "127.0.0.1",
         "--port", str(port), "--data-dir", str(directory / f"d{sensors}"), "--config",
         str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        time.sleep(3)  # start-up's own work (imports, first reads) is not idle cost
        before, began = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(seconds)
        return (_cpu_seconds(proc.pid) - before) / (time.monotonic() - began)
    finally:
        proc.terminate()
        proc.wait(20)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sensors", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        base = measure(0, args.seconds, Path(tmp))
        loaded = measure(args.sensors, args.seconds, Path(tmp))
    print(f"no sensors: {base:.2%} of a core")
    print(f"{args.sensors} sensors at 1 Hz: {loaded:.2%} of a core "
          f"(readings path: {loaded - base:+.2%})")


if __name__ == "__main__":
    main()
