"""``python -m bench.routes``: the newer routes under wrk, in requests per server CPU-second.

Run: ``.venv/bin/python -m bench.routes [--runs 3] [--duration 2]`` (``--quick``: each route
checked once, a tiny bounded load, correctness only).

``python -m bench`` measures the tutorial's routes against the baseline and the ceiling;
the routes that came after have no counterpart there, so they are measured here, on one
``pinpanel serve`` (auth on, a control token) configured to give each something real to do:

* **level** ``PUT /api/v1/pins/12`` ``{"level": 0.25}`` / ``{"level": 0.75}`` alternating per
  connection (``bench/lua/alternate.lua``): a pwm pin set, each one a durable commit and an
  event, as a dragged slider sends them;
* **readings** ``GET /api/v1/sensors/t0/readings``: the last 24 h raw of one of 10 simulated
  DS18B20s, the store filled beforehand with a reading every 30 s (2,880 points): a client
  fetching a day's history;
* **hub** ``GET /api/v1/hub/devices``: the fleet table of the in-server hub over 10 Pis
  (``pinpanel fleet-sim`` on a local mosquitto);
* **schedules** ``GET /api/v1/schedules``: 50 daily schedules with their next runs;
* and ``GET /api/v1/pins`` in the same run, as the yardstick the main table has.

wrk at 32 connections (one thread), runs interleaved route by route, medians (min-max);
"req per server CPU-s" is requests per second over the server process's CPU share, the
figure that holds still on a shared machine. Prints one Markdown table.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.footprint import automation, sensors
from bench.load import LUA_SCRIPT, Request, run_wrk
from bench.servers import JSON_HEADERS, Running, prepare_pinpanel, start
from pinpanel.local_broker import LocalBroker
from pinpanel.store.readings import ReadingStore

ALTERNATE = LUA_SCRIPT.with_name("alternate.lua")
PWM_PIN = '\n[[pins]]\npin = 12\nid = "dimmer"\nmode = "pwm"\nfade_ms = 0\n'
HISTORY_S, EVERY_S = 86_400, 30.0
FLEET = 10


@dataclass(frozen=True)
class Route:
    """One measured route: its request, an alternate body, and what a right answer holds."""

    key: str
    label: str
    request: Request
    alt_body: str | None = None
    expect: str = ""  # a JSON key or value the answer must contain


ROUTES = (
    Route("pins", "list `GET /api/v1/pins` (yardstick)", Request("GET", "/api/v1/pins"),
          expect='"pin"'),
    Route("level", "level `PUT /api/v1/pins/12` (pwm, durable)",
          Request("PUT", "/api/v1/pins/12", JSON_HEADERS, '{"level": 0.25}'),
          alt_body='{"level": 0.75}', expect='"level"'),
    Route("readings", "readings `GET /api/v1/sensors/t0/readings` (24 h raw, 2,880 points)",
          Request("GET", "/api/v1/sensors/t0/readings"), expect='"temperature"'),
    Route("hub", f"hub `GET /api/v1/hub/devices` ({FLEET} Pis)",
          Request("GET", "/api/v1/hub/devices"), expect='"online"'),
    Route("schedules", "schedules `GET /api/v1/schedules` (50)",
          Request("GET", "/api/v1/schedules"), expect='"next'),
)


def fill_history(data_dir: Path) -> int:
    """24 h of t0's temperature every 30 s, ending now, written as the sampler would."""
    store = ReadingStore.open(data_dir)
    now = time.time()
    n = int(HISTORY_S / EVERY_S)
    for i in range(n):
        at = now - HISTORY_S + (i + 1) * EVERY_S
        store.add("t0", "temperature", at, round(21 + (i % 40) / 10, 2))
    store.flush()
    store.close()
    return n


def _seq(srv: Running) -> int:
    """The store's last committed seq, as the stream's snapshot would say (pin 12's view)."""
    headers = srv.prepared.headers
    resp = httpx.get(srv.base_url + "/api/v1/pins/12", headers=headers, timeout=10)
    return int(resp.json().get("seq", 0))


def check(srv: Running, route: Route) -> str | None:
    """One request: 200 and the expected content, else what was wrong."""
    req = srv.prepared.with_auth(route.request)
    resp = httpx.request(req.method, srv.base_url + req.path, headers=req.headers,
                         content=req.body, timeout=10)
    if resp.status_code != 200:
        return f"status {resp.status_code}: {resp.text[:200]}"
    if route.expect not in resp.text:
        return f"answer lacks {route.expect}: {resp.text[:200]}"
    return None


def wait_for_fleet(srv: Running, headers: dict[str, str], timeout_s: float = 30) -> int:
    """Until the hub has heard every simulated Pi (or the timeout); how many it has."""
    deadline, seen = time.monotonic() + timeout_s, 0
    while time.monotonic() < deadline:
        resp = httpx.get(srv.base_url + "/api/v1/hub/devices", headers=headers, timeout=5)
        if resp.status_code == 200:
            body = resp.json()
            devices = body.get("devices", body) if isinstance(body, dict) else body
            seen = sum(1 for d in devices if isinstance(d, dict) and d.get("status", d.get(
                "state")) == "online") if isinstance(devices, list) else 0
            if seen >= FLEET:
                return seen
        time.sleep(0.5)
    return seen


def run(args: argparse.Namespace, root: Path) -> dict[str, Any]:
    results: dict[str, Any] = {"checks": {}, "load": {}, "meta": {
        "runs": args.runs, "duration_s": args.duration, "quick": args.quick}}
    with ExitStack() as stack:
        broker = stack.enter_context(LocalBroker(root / "broker"))
        prep = prepare_pinpanel(root)
        config = root / "bench.toml"
        config.write_text(
            config.read_text(encoding="utf-8") + PWM_PIN + sensors() + automation(rules=0)
            + f'\n[mqtt]\nhost = "127.0.0.1"\nport = {broker.port}\n\n[hub]\nenabled = true\n'
            '\n[mdns]\nenabled = false\n', encoding="utf-8")
        results["meta"]["history_points"] = fill_history(root / "pinpanel-data")
        log = (root / "fleet.log").open("wb")
        stack.callback(log.close)
        fleet = subprocess.Popen(
            [sys.executable, "-m", "pinpanel", "fleet-sim", "--devices", str(FLEET),
             "--broker", broker.address, "--pins", "1"], stdout=log, stderr=subprocess.STDOUT)
        stack.callback(lambda: (fleet.terminate(), fleet.wait(20)))
        srv = start(prep, root / "logs")
        stack.callback(srv.stop)
        results["meta"]["fleet_online"] = wait_for_fleet(srv, prep.headers)
        for route in ROUTES:
            results["checks"][route.key] = check(srv, route)
        for run_no in range(args.runs):
            for route in ROUTES:
                if results["checks"][route.key] is not None:
                    continue
                req = srv.prepared.with_auth(route.request)
                script = LUA_SCRIPT
                if route.alt_body is not None:
                    req, script = AltRequest(req.method, req.path, req.headers, req.body,
                                             route.alt_body), ALTERNATE
                seq0 = _seq(srv)
                res = run_wrk(srv.base_url, req, connections=32, duration_s=args.duration,
                              max_responses=100 if args.quick else 0, server_pid=srv.pid,
                              script=script)
                results["load"].setdefault(route.key, []).append({
                    "run": run_no, "rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                    "per_cpu_s": res.rps_per_server_cpu, "failed": res.failed,
                    "requests": res.requests, "other_cpu": res.other_cpu,
                    "commits": _seq(srv) - seq0})
    return results


@dataclass(frozen=True)
class AltRequest(Request):
    """A request whose wrk arguments end with ``alt=<body>``, for ``alternate.lua``."""

    alt: str = ""

    def wrk_args(self) -> list[str]:
        return [*super().wrk_args(), f"alt={self.alt}"]


def table(results: dict[str, Any]) -> str:
    lines = ["| route | req/s | p50 ms | p99 ms | req per server CPU-s | failed |",
             "|---|---|---|---|---|---|"]
    for route in ROUTES:
        problem = results["checks"].get(route.key)
        runs = results["load"].get(route.key, [])
        if problem is not None or not runs:
            lines.append(f"| {route.label} | n/a ({problem}) | | | | |")
            continue

        def cell(metric: str, fmt: str, runs: list[dict[str, Any]] = runs) -> str:
            values = [r[metric] for r in runs if r[metric] is not None]
            if not values:
                return "n/a"
            med = format(statistics.median(values), fmt)
            if len(values) == 1:
                return med
            return f"{med} ({format(min(values), fmt)}-{format(max(values), fmt)})"

        lines.append(f"| {route.label} | {cell('rps', ',.0f')} | {cell('p50_ms', '.2f')} | "
                     f"{cell('p99_ms', '.1f')} | {cell('per_cpu_s', ',.0f')} | "
                     f"{sum(r['failed'] for r in runs)} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.routes",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run")
    parser.add_argument("--quick", action="store_true",
                        help="correctness only: one run, 100 requests per route")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.quick:
        args.runs, args.duration = 1, 1
    with tempfile.TemporaryDirectory(prefix="pinpanel-routes-") as tmp:
        results = run(args, Path(tmp))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    bad = [f"{k}: {v}" for k, v in results["checks"].items() if v is not None]
    bad += [f"{k}: {sum(r['failed'] for r in runs)} failed" for k, runs in
            results["load"].items() if any(r["failed"] for r in runs)]
    if results["meta"]["fleet_online"] < FLEET:
        bad.append(f"hub: {results['meta']['fleet_online']} of {FLEET} Pis online")
    for line in bad:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
