"""What pinpanel's app costs per request without HTTP: ``python -m bench.app_cost``.

The load figures in the table are whole-server costs (uvicorn, httptools, the event loop, the
kernel's sockets, then pinpanel). This drives the same app, built as ``pinpanel serve``
builds it (auth on, a control token, the durable store), by calling it as an ASGI callable
in-process, so the CPU per request it prints is pinpanel's own share; the difference to the
table's figure is the HTTP stack's. Toggles are sent 32 at a time, as wrk's 32 connections
do, so the store's group commit batches them the same way.

It prints the lowest of ``--reps`` repetitions (other processes only ever add CPU time),
for the whole process (loop thread plus the store's writer thread) and for the loop thread
alone. ``--profile cumulative`` (or ``tottime``) prints a cProfile table per endpoint: a
deterministic profiler inflates small calls, so read it for where, not for how much.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import pstats
import tempfile
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from bench.servers import PINPANEL_CONFIG

ENDPOINTS = {
    "list": ("GET", "/api/list"),
    "list_v1": ("GET", "/api/v1/pins"),
    "toggle": ("POST", "/api/toggle/18"),
    "toggle_v1": ("POST", "/api/v1/pins/18/toggle"),
    "page": ("GET", "/"),
}
CONCURRENCY = 32


async def measure(names: list[str], requests: int, reps: int, profile: str | None) -> None:
    from pinpanel import auth, runtime
    from pinpanel.config import load, with_overrides
    from pinpanel.web.app import create_app

    with tempfile.TemporaryDirectory(prefix="app-cost-") as tmp:
        data = Path(tmp) / "data"
        data.mkdir(mode=0o700)
        config_file = Path(tmp) / "bench.toml"
        config_file.write_text(PINPANEL_CONFIG, encoding="utf-8")
        config = with_overrides(load(str(config_file)), server__data_dir=str(data))
        async with runtime.opened(config) as opened:
            token = auth.create_token(opened.store, "bench", "control")
            app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                             opened.telemetry)
            statuses: list[int] = []

            async def receive() -> dict[str, Any]:
                return {"type": "http.request", "body": b"", "more_body": False}

            async def send(message: MutableMapping[str, Any]) -> None:
                if message["type"] == "http.response.start":
                    statuses.append(message["status"])

            async def one(method: str, path: str) -> None:
                scope = {
                    "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1",
                    "method": method, "scheme": "http", "path": path,
                    "raw_path": path.encode(), "query_string": b"", "root_path": "",
                    "headers": [(b"host", b"127.0.0.1:8000"),
                                (b"content-type", b"application/json"),
                                (b"authorization", f"Bearer {token}".encode())],
                    "client": ("127.0.0.1", 40000), "server": ("127.0.0.1", 8000),
                    "state": {},
                }
                await app(scope, receive, send)

            for name in names:
                method, path = ENDPOINTS[name]
                rounds = max(1, requests // CONCURRENCY)
                for _ in range(CONCURRENCY * 4):  # warm caches (the page, the keyring)
                    await one(method, path)
                best: tuple[float, float] | None = None
                for _ in range(reps):
                    statuses.clear()
                    profiler = cProfile.Profile() if profile else None
                    if profiler:
                        profiler.enable()
                    cpu, loop_cpu = time.process_time(), time.thread_time()
                    for _ in range(rounds):
                        await asyncio.gather(*(one(method, path)
                                               for _ in range(CONCURRENCY)))
                    cpu, loop_cpu = time.process_time() - cpu, time.thread_time() - loop_cpu
                    if profiler:
                        profiler.disable()
                        pstats.Stats(profiler).sort_stats(profile).print_stats(30)
                    done = rounds * CONCURRENCY
                    if any(status != 200 for status in statuses):
                        raise SystemExit(f"{name}: unexpected statuses {set(statuses)}")
                    figure = (cpu / done * 1e6, loop_cpu / done * 1e6)
                    best = figure if best is None or figure[0] < best[0] else best
                assert best is not None
                print(f"{name:10} {best[0]:7.1f} us CPU per request "
                      f"(loop thread {best[1]:6.1f} us), {rounds * CONCURRENCY} requests, "
                      f"lowest of {reps}")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.app_cost", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--only", default=",".join(ENDPOINTS),
                        help=f"comma list of {', '.join(ENDPOINTS)}")
    parser.add_argument("--requests", type=int, default=3200)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--profile", choices=("cumulative", "tottime"))
    args = parser.parse_args()
    names = [n for n in args.only.split(",") if n]
    unknown = set(names) - set(ENDPOINTS)
    if unknown:
        parser.error(f"unknown endpoint(s): {', '.join(sorted(unknown))}")
    from pinpanel import runtime

    async def run() -> int:
        await measure(names, args.requests, args.reps, args.profile)
        return 0

    runtime.run(run())  # on the loop pinpanel serve uses


if __name__ == "__main__":
    main()
