"""``python -m bench.server_choice``: pinpanel's own app under uvicorn and under granian.

Why: #21 asks whether another ASGI server costs clearly less per request for pinpanel's
app, not for a hello-world. Both servers load the same app object, :data:`app` below (the
runtime opened in the ASGI lifespan, then ``create_app``: the tutorial's pins on the
simulated board, auth off so both see the same requests), and wrk drives the same routes.
The figure is requests per CPU-second of the server's whole process
tree (``/proc/PID/stat`` of the server and its children: granian serves from a worker
process), so other load on the machine barely moves it.

granian is not a dependency of pinpanel, only of the test extra (for this bench); without
it the bench says so and exits 2. ``--quick`` runs each route once for a second:
correctness only (tests/test_bench_targets.py).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

from bench.load import Request, proc_cpu_seconds, run_wrk
from pinpanel.local_broker import free_port

JSON = {"Content-Type": "application/json"}
ROUTES = (Request("GET", "/api/list", JSON), Request("GET", "/api/v1/pins"),
          Request("POST", "/api/toggle/18", JSON))


class _Lifespan:
    """The ASGI app both servers load: pinpanel's runtime opened at the lifespan's start."""

    def __init__(self) -> None:
        self._inner: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        await self._inner(scope, receive, send)

    async def _lifespan(self, receive: Any, send: Any) -> None:
        async with contextlib.AsyncExitStack() as stack:
            await receive()  # lifespan.startup
            await stack.enter_async_context(self._opened())
            await send({"type": "lifespan.startup.complete"})
            await receive()  # lifespan.shutdown
        await send({"type": "lifespan.shutdown.complete"})

    @contextlib.asynccontextmanager
    async def _opened(self) -> AsyncIterator[None]:
        from pinpanel import auth, runtime
        from pinpanel.config import load, with_overrides
        from pinpanel.web.app import create_app

        config = with_overrides(load(None), server__data_dir=os.environ["BENCH_DATA_DIR"],
                                auth__enabled=False)
        async with runtime.opened(config) as opened:
            self._inner = create_app(config, opened.board, opened.store,
                                     auth.Keyring(opened.store), opened.telemetry)
            async with self._inner.router.lifespan_context(self._inner):
                yield


app = _Lifespan()


def _command(server: str, port: int) -> list[str]:
    target = "bench.server_choice:app"
    if server == "uvicorn":
        return [sys.executable, "-m", "uvicorn", target, "--host", "127.0.0.1", "--port",
                str(port), "--loop", "uvloop", "--http", "httptools", "--ws", "none",
                "--no-access-log", "--log-level", "warning"]
    return [sys.executable, "-m", "granian", "--interface", "asgi", "--host", "127.0.0.1",
            "--port", str(port), "--loop", "uvloop", "--workers", "1", "--no-ws",
            "--log-level", "warning", target]


def _tree_cpu(pid: int) -> float:
    """CPU seconds of ``pid`` and every process under it (granian serves from a child)."""
    total = 0.0
    todo = [pid]
    while todo:
        current = todo.pop()
        total += proc_cpu_seconds(current) or 0.0
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(c) for c in task.read_text().split()]
    return total


def measure(server: str, duration: int, connections: int) -> dict[str, float]:
    """Start ``server`` with the app, run each route under wrk, return req per server CPU-s."""
    data = Path(tempfile.mkdtemp(prefix="pinpanel-server-choice-"))
    port = free_port()
    env = {**os.environ, "BENCH_DATA_DIR": str(data), "PYTHONPATH": str(Path.cwd())}
    proc = subprocess.Popen(_command(server, port), env=env)
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(500):
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(url + "/api/list", headers=JSON, timeout=1).status_code == 200:
                    break
            time.sleep(0.02)
        else:
            raise SystemExit(f"{server} did not answer on {url}")
        out = {}
        for route in ROUTES:
            before = _tree_cpu(proc.pid)
            result = run_wrk(url, route, connections=connections, duration_s=duration)
            used = _tree_cpu(proc.pid) - before
            if result.failed or used <= 0:
                raise SystemExit(f"{server} {route.path}: {result}")
            out[f"{route.method} {route.path}"] = result.requests / used
        return out
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        shutil.rmtree(data, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.server_choice")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--quick", action="store_true",
                        help="one run of 1 s per route: correctness only, not a measurement")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration = 1, 1
    if importlib.util.find_spec("granian") is None:
        print("bench.server_choice needs granian: .venv/bin/pip install granian",
              file=sys.stderr)
        return 2
    figures: dict[str, dict[str, list[float]]] = {"uvicorn": {}, "granian": {}}
    for _ in range(args.runs):
        for server in figures:  # alternate, so drifting load hits both alike
            for route, value in measure(server, args.duration, args.connections).items():
                figures[server].setdefault(route, []).append(value)
    print(f"| route ({args.connections} connections, req per server CPU-s, median of "
          f"{args.runs}) | uvicorn (httptools, uvloop) | granian | granian ÷ uvicorn |")
    print("|---|---|---|---|")
    for route in figures["uvicorn"]:
        u = statistics.median(figures["uvicorn"][route])
        g = statistics.median(figures["granian"][route])
        print(f"| `{route}` | {u:,.0f} | {g:,.0f} | {g / u:.2f}x |")
    if args.json:
        args.json.write_text(json.dumps(figures), encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
