"""Driving a server with ``wrk`` and reading back what it measured.

Why wrk and not a Python load generator: a Python client tops out at a few thousand requests
per second on one core, below the ceiling app, so it would measure itself. wrk (C, epoll) is
given one thread, i.e. at most one of the machine's two cores, leaving the other to the server
under test; the harness records wrk's own CPU time per run (``wait4`` rusage) so the report can
show that wrk was not the bottleneck.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

LUA_SCRIPT = Path(__file__).with_name("lua") / "request.lua"
WRK = "/usr/bin/wrk"
_CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class Request:
    """One request shape: what wrk sends over and over (and what the probe sends once)."""

    method: str
    path: str
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None

    def wrk_args(self) -> list[str]:
        """Arguments for ``request.lua`` after wrk's ``--``."""
        args = [self.method]
        headers = dict(self.headers)
        if self.body is not None:
            args.append(f"body={self.body}")
        elif self.method in {"POST", "PUT", "PATCH", "DELETE"}:
            # wrk sends no Content-Length without a body; say 0 explicitly, as a browser
            # form or httpx would, so no server has to guess.
            headers.setdefault("Content-Length", "0")
        args.extend(f"{name}: {value}" for name, value in headers.items())
        return args


@dataclass
class WrkResult:
    """What one wrk run measured, in the units the report uses."""

    connections: int
    requests: int
    duration_s: float
    rps: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]
    wrk_cpu: float  # wrk's user+sys CPU seconds / wall seconds (1.0 = one full core)
    server_cpu: float | None  # the same for the server process, from /proc/PID/stat
    other_cpu: float | None  # every other process on the machine (noise), same unit
    reached: bool  # True if a max-responses stop was requested and reached

    @property
    def failed(self) -> int:
        """Requests that did not come back as a 2xx/3xx (wrk counts >= 400 as status errors)."""
        return sum(self.errors.values())

    @property
    def rps_per_server_cpu(self) -> float | None:
        """Requests per CPU-second of the server: what a request costs, whatever else ran.

        Throughput falls when another process takes the server's core; the CPU cost of a
        request barely moves, so this is the figure to trust on a shared machine.
        """
        if not self.server_cpu:
            return None
        return self.rps / self.server_cpu

    def to_json(self) -> dict[str, Any]:
        """Plain dict for ``--json``."""
        return {**asdict(self), "rps_per_server_cpu": self.rps_per_server_cpu}


def proc_cpu_seconds(pid: int) -> float | None:
    """User+system CPU seconds of a process so far, or None if it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    # After the ")" of comm, utime and stime are fields 12 and 13 (0-based).
    return (int(fields[11]) + int(fields[12])) / _CLK_TCK


def busy_seconds() -> float:
    """Machine-wide user+nice+system CPU seconds so far (interrupt time excluded)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    return (int(fields[1]) + int(fields[2]) + int(fields[3])) / _CLK_TCK


def run_wrk(
    base_url: str,
    request: Request,
    *,
    connections: int,
    duration_s: int,
    max_responses: int = 0,
    server_pid: int | None = None,
    timeout_s: int = 10,
    script: Path = LUA_SCRIPT,
) -> WrkResult:
    """Run one bounded wrk load (time-bounded by ``duration_s``, optionally count-bounded).

    With ``max_responses`` the Lua script prints a marker after that many responses and the
    harness interrupts wrk right away (wrk would otherwise sleep out its whole ``-d``), so
    ``duration_s`` is then only the upper bound.
    """
    argv = [
        WRK,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, int(duration_s))}s",
        f"--timeout={timeout_s}s",
        "-s",
        str(script),
        base_url + request.path,
        "--",
        *request.wrk_args(),
    ]
    if max_responses:
        argv.append(f"max={max_responses}")
    cpu_before = proc_cpu_seconds(server_pid) if server_pid else None
    busy_before = busy_seconds()
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None  # for mypy: pipes were asked
    out_fd = proc.stdout.fileno()
    output = b""
    deadline = started + duration_s + timeout_s + 15
    reached = False
    while True:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            os.kill(proc.pid, signal.SIGKILL)
            break
        # Once the count is reached, re-send SIGINT every 50 ms until wrk exits, in case the
        # first one arrived before wrk installed its handler. os.kill, not
        # Popen.send_signal: the latter polls and could reap wrk before our wait4. Raw
        # os.read, not readline: a buffered reader would hide the marker from select.
        ready, _, _ = select.select([out_fd], [], [], 0.05 if reached else remaining)
        if not ready:
            if reached:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGINT)
            continue
        chunk = os.read(out_fd, 65536)
        if not chunk:
            break
        output += chunk
        if not reached and b"BENCH_REACHED" in output:
            reached = True
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGINT)
    stderr = proc.stderr.read().decode(errors="replace")
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.perf_counter() - started
    cpu_after = proc_cpu_seconds(server_pid) if server_pid else None
    busy = busy_seconds() - busy_before
    proc.stdout.close()
    proc.stderr.close()
    text = output.decode(errors="replace")
    payload = next((ln for ln in text.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if payload is None:
        raise RuntimeError(f"wrk gave no result (rc={proc.returncode}): {text}{stderr}")
    raw = json.loads(payload.removeprefix("BENCH_JSON "))
    duration = raw["duration_us"] / 1e6
    server_cpu = other_cpu = None
    wrk_seconds = usage.ru_utime + usage.ru_stime
    if cpu_before is not None and cpu_after is not None:
        server_cpu = (cpu_after - cpu_before) / wall
        # Whatever else ran on the machine meanwhile (other sessions, a VM, cron): noise
        # that the report flags, since the server and wrk already fill both cores.
        other_cpu = max(0.0, busy - wrk_seconds - (cpu_after - cpu_before)) / wall
    return WrkResult(
        connections=connections,
        requests=raw["requests"],
        duration_s=duration,
        rps=raw["requests"] / duration if duration else 0.0,
        p50_ms=raw["p50_us"] / 1000,
        p90_ms=raw["p90_us"] / 1000,
        p99_ms=raw["p99_us"] / 1000,
        mean_ms=raw["mean_us"] / 1000,
        max_ms=raw["max_us"] / 1000,
        errors={
            "connect": raw["connect_errors"],
            "read": raw["read_errors"],
            "write": raw["write_errors"],
            "status": raw["status_errors"],
            "timeout": raw["timeouts"],
        },
        wrk_cpu=wrk_seconds / wall,
        server_cpu=server_cpu,
        other_cpu=other_cpu,
        reached=reached,
    )
