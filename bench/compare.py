"""``python -m bench.compare``: two commits of pinpanel and the ceiling, route by route.

The full ``python -m bench`` takes six minutes and measures everything; a change to the
HTTP path needs only the five load figures, before and after, in one run. This starts
pinpanel as committed at ``--ref`` and at ``--before`` (each a ``git archive`` copy, the
same config and a control token as the main bench), and the ceiling fed the bytes ``--ref``
answers; then runs ``wrk -t1 -c32`` on each route against each server, interleaved, and
prints the median (min-max) requests per server CPU-second and the ratios to the ceiling.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from bench.cli import probe
from bench.load import run_wrk
from bench.servers import (
    ENDPOINTS_BY_KEY,
    Running,
    export_pinpanel,
    prepare_ceiling,
    prepare_pinpanel,
    start,
)

ROUTES = "list_compat,list_v1,toggle_compat,toggle_v1,page"


def _pinpanel(ref: str, workdir: Path) -> Running:
    workdir.mkdir(parents=True)
    src, sha = export_pinpanel(ref, workdir / "src")
    return start(prepare_pinpanel(workdir, src, f"commit {sha}"), workdir / "logs")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ref", default="HEAD", help="the commit measured (default HEAD)")
    parser.add_argument("--before", default=None, help="a commit to compare it with")
    parser.add_argument("--only", default=ROUTES, help=f"comma list of {ROUTES}")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=2, help="seconds per wrk run")
    args = parser.parse_args(argv)
    keys = args.only.split(",")
    workdir = Path(tempfile.mkdtemp(prefix="bench-compare-"))
    servers: dict[str, Running] = {}
    try:
        servers[args.ref] = _pinpanel(args.ref, workdir / "ref")
        checks: dict[str, object] = {"checks": {}}
        captured = probe(servers[args.ref], checks)
        if args.before:
            servers[args.before] = _pinpanel(args.before, workdir / "before")
        servers["ceiling"] = start(prepare_ceiling(workdir, captured), workdir / "logs")
        per_cpu: dict[tuple[str, str], list[float]] = {}
        for srv in servers.values():  # one warm-up burst per server and route
            for key in keys:
                run_wrk(srv.base_url, srv.prepared.with_auth(ENDPOINTS_BY_KEY[key].request),
                        connections=32, duration_s=1, server_pid=srv.pid)
        for _ in range(args.runs):
            for key in keys:
                for name, srv in servers.items():
                    result = run_wrk(
                        srv.base_url, srv.prepared.with_auth(ENDPOINTS_BY_KEY[key].request),
                        connections=32, duration_s=args.duration, server_pid=srv.pid)
                    if result.failed:
                        print(f"{name} {key}: {result.failed} failed", file=sys.stderr)
                    per_cpu.setdefault((key, name), []).append(result.rps_per_server_cpu or 0)
    finally:
        for srv in servers.values():
            srv.stop()
    names = list(servers)
    print("| route (32 connections, req per server CPU-s) | "
          + " | ".join(names) + " | " + " | ".join(f"{n} ÷ ceiling" for n in names[:-1]) + " |")
    print("|---" * (2 * len(names)) + "|")
    for key in keys:
        medians = {n: statistics.median(per_cpu[(key, n)]) for n in names}
        cells = [f"{medians[n]:,.0f} ({min(per_cpu[(key, n)]):,.0f}-"
                 f"{max(per_cpu[(key, n)]):,.0f})" for n in names]
        ratios = [f"{medians[n] / medians['ceiling']:.2f}x" for n in names[:-1]]
        print(f"| {ENDPOINTS_BY_KEY[key].label} | " + " | ".join(cells + ratios) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
