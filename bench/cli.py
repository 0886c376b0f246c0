"""``python -m bench``: run pinpanel, the tutorial baseline and the ceiling side by side.

The run has five phases, in this order so that each measures what it claims:

1. *probe*: start each server once and check every endpoint answers with the right status and
   body shape (``--quick`` stops the load figures at a token size after this); pinpanel's
   answers are captured and handed to the ceiling so both send the same bytes.
2. *load*: wrk against the long-running servers, interleaved (run 1 of every server and
   endpoint, then run 2, ...; the server order rotates per run) because the baseline's
   wsgiref server is bimodal under load and the machine itself drifts; medians of the runs.
3. *stream*: event delivery latency at 1 and 100 subscribers.
4. *process*: fresh processes for start-up time and idle memory, then one fresh process per
   server for memory after a fixed number of toggles.
5. *floor*: the raw SQLite durable-commit time on this disk.

Every loop is bounded in requests and in time; all traffic goes to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench import report, stream
from bench.load import busy_seconds, run_wrk
from bench.servers import (
    ENDPOINTS,
    ENDPOINTS_BY_KEY,
    EVENTS_PATH,
    HEALTH,
    Prepared,
    Running,
    ServerFailed,
    describe_working_tree,
    export_pinpanel,
    http_request,
    prepare_baseline,
    prepare_ceiling,
    prepare_pinpanel,
    start,
)
from bench.sqlite_floor import commit_floor

SERVER_NAMES = ("pinpanel", "baseline", "ceiling")
CONNECTIONS = (1, 32)
# Headers the ceiling must not replay: uvicorn writes its own, or they are per-connection.
_NOT_REPLAYED = {"date", "server", "content-length", "transfer-encoding", "connection"}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options; defaults keep a full run under about five minutes on 2 cores."""
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="correctness mode: every server and endpoint once, tiny load")
    parser.add_argument("--runs", type=int, default=3,
                        help="runs per figure (median, min and max are reported; default 3)")
    parser.add_argument("--duration", type=int, default=2,
                        help="seconds per wrk run at 32 connections, half that (at least 1) at 1 "
                     "connection (whole seconds, as wrk takes them; default 2)")
    parser.add_argument("--only", default=",".join(SERVER_NAMES),
                        help="comma-separated servers to run (pinpanel,baseline,ceiling)")
    parser.add_argument("--json", type=Path, default=None, help="write the raw results here")
    parser.add_argument("--rss-toggles", type=int, default=None,
                        help="toggles before the second RSS reading (default 100000; quick 500)")
    parser.add_argument("--subscribers", type=int, default=None,
                        help="the large event-stream fan-out (default 100; quick 5)")
    parser.add_argument("--pinpanel-ref", default=None, metavar="REF",
                        help="measure pinpanel as committed at this git ref (e.g. HEAD) "
                             "instead of the working tree the editable install runs")
    parser.add_argument("--wait-quiet", type=float, default=10.0, metavar="S",
                        help="before each load round, wait up to S seconds for other "
                             "processes to use under 25%% of a core (default 10; 0: never)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary data directory and server logs")
    args = parser.parse_args(argv)
    args.servers = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = sorted(set(args.servers) - set(SERVER_NAMES))
    if unknown:
        parser.error(f"--only: unknown server(s) {unknown}; choose from {list(SERVER_NAMES)}")
    if args.runs < 1 or args.duration < 1:
        parser.error("--runs and --duration must be at least 1")
    if args.quick:
        args.runs = 1
        args.duration = 1
    if args.rss_toggles is None:
        args.rss_toggles = 500 if args.quick else 100_000
    if args.subscribers is None:
        args.subscribers = 5 if args.quick else 100
    return args


def log(message: str) -> None:
    """Progress on stderr, so stdout carries only the table."""
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def background_cpu(sample_s: float = 0.5) -> float:
    """CPU (in cores) used machine-wide over a short sample; servers are idle meanwhile."""
    before = busy_seconds()
    time.sleep(sample_s)
    return (busy_seconds() - before) / sample_s


def wait_quiet(max_wait_s: float, results: dict[str, Any], label: str) -> None:
    """Wait (bounded) until the machine is quiet, and record what the background was.

    The bench shares 2 cores with whatever else runs here (another session's tests, a VM):
    starting a round while something else burns a core would halve the figures.
    """
    deadline = time.perf_counter() + max_wait_s
    load = background_cpu()
    while load > 0.25 and time.perf_counter() < deadline:
        time.sleep(1.0)
        load = background_cpu()
    results["meta"].setdefault("background_cpu", []).append({"at": label, "cores": load})
    if load > 0.25:
        log(f"{label}: still {load:.0%} of a core busy elsewhere; measuring anyway")


def probe(running: Running, results: dict[str, Any]) -> list[dict[str, Any]]:
    """Send each expected endpoint once; record status and shape; return replayable captures."""
    prepared = running.prepared
    checks: dict[str, Any] = results["checks"]
    captured: list[dict[str, Any]] = []
    for ep in (HEALTH, *ENDPOINTS):
        if ep.key != "healthz" and ep.key not in prepared.endpoints:
            continue
        if ep.key == "healthz" and prepared.health.path != HEALTH.request.path:
            continue
        try:
            resp = http_request(running.port, prepared.with_auth(ep.request))
        except OSError as exc:
            checks[ep.key] = {"ok": False, "status": None, "problem": repr(exc), "absent": False}
            continue
        problem = ep.check(resp.status, resp.content_type, resp.body)
        checks[ep.key] = {
            "ok": problem is None,
            "status": resp.status,
            "problem": problem,
            # 404/405 mean "not written yet" (n/a); anything else wrong is a real failure.
            "absent": resp.status in {404, 405, 501},
            "content_type": resp.content_type,
            "body_sample": resp.body[:300],
        }
        if problem is None:
            captured.append(
                {
                    "method": ep.request.method,
                    "path": ep.request.path,
                    "status": resp.status,
                    "headers": [
                        [k, v] for k, v in resp.headers if k.lower() not in _NOT_REPLAYED
                    ],
                    "body": resp.body,
                    "toggles": ep.toggles,
                }
            )
    return captured


def toggle_endpoint(results: dict[str, Any]) -> str | None:
    """The toggle endpoint to drive for stream and memory figures: v1 if it works, else compat."""
    for key in ("toggle_v1", "toggle_compat"):
        if results["checks"].get(key, {}).get("ok"):
            return key
    return None


def probe_stream(running: Running, results: dict[str, Any], quick: bool) -> None:
    """Check the event stream's contract once: snapshot, then a change with id == seq."""
    key = toggle_endpoint(results)
    if key is None:
        results["checks"]["events"] = {"ok": False, "status": None, "absent": True,
                                       "problem": "no working toggle endpoint to trigger it"}
        return
    try:
        res = stream.measure(
            running.base_url, ENDPOINTS_BY_KEY[key].request, running.prepared.headers,
            subscribers=1, toggles=2, events_path=EVENTS_PATH,
            check_seq=running.prepared.name != "ceiling",
        )
    except Exception as exc:  # noqa: BLE001 - any client failure is a failed check, reported
        results["checks"]["events"] = {"ok": False, "status": None, "absent": False,
                                       "problem": repr(exc)}
        return
    problem = stream.check_event_shape(res)
    absent = any("status 404" in e or "status 405" in e for e in res.errors)
    results["checks"]["events"] = {
        "ok": problem is None, "status": None, "absent": absent, "problem": problem,
        "sample_event": res.sample_event, "sample_snapshot": res.sample_snapshot,
    }


def load_phase(
    running: dict[str, Running], results: dict[str, Any], args: argparse.Namespace
) -> None:
    """Warm every (server, endpoint) up, then the interleaved measured runs."""
    names = list(running)
    for name in names:
        srv = running[name]
        for key in measurable(results["servers"][name]):
            req = srv.prepared.with_auth(ENDPOINTS_BY_KEY[key].request)
            run_wrk(srv.base_url, req, connections=8, duration_s=2,
                    max_responses=50 if args.quick else 1000)
    for run in range(args.runs):
        order = names[run % len(names):] + names[: run % len(names)]
        if not args.quick:
            wait_quiet(args.wait_quiet, results, f"load run {run + 1}")
        log(f"load run {run + 1}/{args.runs} (order {', '.join(order)})")
        for ep in ENDPOINTS:
            for conns in CONNECTIONS:
                for name in order:
                    sres = results["servers"][name]
                    if ep.key not in measurable(sres):
                        continue
                    srv = running[name]
                    # One connection in lock-step settles in a second; half the time
                    # there keeps a full run within its five-minute budget.
                    seconds = args.duration if conns > 1 else max(1, args.duration // 2)
                    res = run_wrk(
                        srv.base_url, srv.prepared.with_auth(ep.request),
                        connections=conns, duration_s=seconds,
                        max_responses=100 if args.quick else 0, server_pid=srv.pid,
                    )
                    sres["load"].setdefault(ep.key, {}).setdefault(str(conns), []).append(
                        res.to_json()
                    )


def measurable(sres: dict[str, Any]) -> list[str]:
    """Endpoints this server answered correctly in the probe (the others are n/a)."""
    return [k for k, c in sres["checks"].items() if c.get("ok") and k in ENDPOINTS_BY_KEY]


def stream_phase(
    running: dict[str, Running], results: dict[str, Any], args: argparse.Namespace
) -> None:
    """Delivery latency at 1 and N subscribers, per run, for servers with a working stream."""
    for run in range(args.runs):
        if not args.quick:
            wait_quiet(args.wait_quiet, results, f"stream run {run + 1}")
        for name, srv in running.items():
            sres = results["servers"][name]
            if not sres["checks"].get("events", {}).get("ok"):
                continue
            key = toggle_endpoint(sres)
            assert key is not None  # the stream check passed, so a toggle works
            for subs in (1, args.subscribers):
                toggles = 5 if args.quick else (200 if subs == 1 else 100)
                res = stream.measure(
                    srv.base_url, ENDPOINTS_BY_KEY[key].request, srv.prepared.headers,
                    subscribers=subs, toggles=toggles, events_path=EVENTS_PATH,
                    check_seq=name != "ceiling",
                )
                entry = res.to_json()
                entry["run"] = run
                sres["stream"].setdefault(str(subs), []).append(entry)
        log(f"stream run {run + 1}/{args.runs} done")


def _start_for_process(prep: Any, log_dir: Path, sres: dict[str, Any]) -> Any:
    """Start a server for a process figure; a failure is noted in its results, not raised."""
    try:
        return start(prep, log_dir)
    except ServerFailed as exc:
        sres["process"].setdefault("errors", []).append(str(exc)[:500])
        return None


def process_phase(
    prepared: dict[str, Prepared], results: dict[str, Any], args: argparse.Namespace,
    log_dir: Path,
) -> None:
    """Fresh starts for start-up time and idle RSS; then RSS after ``--rss-toggles`` toggles."""
    names = [n for n in prepared if results["servers"][n]["started"]]
    for run in range(args.runs):
        order = names[run % len(names):] + names[: run % len(names)] if names else []
        for name in order:
            sres = results["servers"][name]
            srv = _start_for_process(prepared[name], log_dir, sres)
            if srv is None:
                continue
            try:
                time.sleep(1.0)  # let start-up work (lifespan tasks, first GC) settle
                sres["process"].setdefault("first_200_s", []).append(srv.first_200_s)
                sres["process"].setdefault("idle_rss_mib", []).append(srv.rss_mib())
            finally:
                srv.stop()
    for name in names:
        if name == "ceiling":
            continue  # the ceiling keeps no state; growth per toggle says nothing about it
        sres = results["servers"][name]
        key = "toggle_compat" if sres["checks"].get("toggle_compat", {}).get("ok") else (
            toggle_endpoint(sres))
        if key is None:
            continue
        log(f"{name}: {args.rss_toggles} toggles for the memory figure")
        srv = _start_for_process(prepared[name], log_dir, sres)
        if srv is None:
            continue
        try:
            time.sleep(1.0)
            idle = srv.rss_mib()
            # Whatever gets the toggles done soonest (only the memory is measured here):
            # wsgiref serves one connection at a time and drops SYNs past its backlog of 5,
            # so 2 connections; pinpanel keeps connections alive and group-commits, so 32.
            conns = 2 if name == "baseline" else 32
            res = run_wrk(
                srv.base_url, srv.prepared.with_auth(ENDPOINTS_BY_KEY[key].request),
                connections=conns, duration_s=300, max_responses=args.rss_toggles,
                server_pid=srv.pid,
            )
            time.sleep(1.0)
            after = srv.rss_mib()
        finally:
            srv.stop()
        sres["toggles_rss"] = {
            "endpoint": key,
            "connections": conns,
            "requested": args.rss_toggles,
            "completed": res.requests - res.failed,
            "failed": res.failed,
            "idle_rss_mib": idle,
            "after_rss_mib": after,
            "growth_mib": after - idle,
            "rate_per_s": res.rps,
        }


def run(args: argparse.Namespace) -> dict[str, Any]:
    """All phases; returns the results dict that the report and ``--json`` use."""
    workdir = Path(tempfile.mkdtemp(prefix="pinpanel-bench-"))
    log_dir = workdir / "logs"
    results: dict[str, Any] = {
        "meta": {
            "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "command": "python -m bench " + " ".join(sys.argv[1:]),
            "python": platform.python_version(),
            "machine": f"{platform.machine()}, {_cpu_count()} cores",
            "quick": args.quick,
            "runs": args.runs,
            "duration_s": args.duration,
            "rss_toggles": args.rss_toggles,
            "subscribers": args.subscribers,
            "workdir": str(workdir),
        },
        "servers": {},
    }
    prepared: dict[str, Prepared] = {}
    running: dict[str, Running] = {}
    captured: list[dict[str, Any]] = []
    try:
        for name in args.servers if "pinpanel" not in args.servers else (
            ["pinpanel", *[s for s in args.servers if s != "pinpanel"]]
        ):
            if name == "pinpanel":
                if args.pinpanel_ref:
                    src, sha = export_pinpanel(args.pinpanel_ref, workdir / "pinpanel-src")
                    prep = prepare_pinpanel(workdir, src, f"commit {sha}")
                else:
                    prep = prepare_pinpanel(workdir, None, describe_working_tree())
            elif name == "baseline":
                prep = prepare_baseline(workdir)
            else:
                prep = prepare_ceiling(workdir, captured)
            prepared[name] = prep
            sres: dict[str, Any] = {
                "mode": prep.mode, "notes": list(prep.notes), "started": False, "error": None,
                "expected": list(prep.endpoints) + (["events"] if prep.has_events else []),
                "checks": {}, "load": {}, "stream": {}, "process": {},
            }
            results["servers"][name] = sres
            log(f"starting {name} ({prep.mode})")
            try:
                srv = start(prep, log_dir)
            except ServerFailed as exc:
                sres["error"] = str(exc)[:2000]
                log(f"{name} did not start: {str(exc).splitlines()[0]}")
                continue
            sres["started"] = True
            running[name] = srv
            got = probe(srv, sres)
            if prep.has_events:
                probe_stream(srv, sres, args.quick)
            if name == "pinpanel":
                captured = got
            bad = {k: c["problem"] for k, c in sres["checks"].items() if not c["ok"]}
            log(f"{name} up in {srv.first_200_s:.2f} s; failed checks: {bad or 'none'}")
        load_phase(running, results, args)
        stream_phase(running, results, args)
    finally:
        for srv in running.values():
            srv.stop()
    process_phase(prepared, results, args, log_dir)
    results["sqlite_floor"] = commit_floor(workdir, commits=50 if args.quick else 300)
    if args.keep:
        log(f"kept {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return results


def _cpu_count() -> int:
    return len(os.sched_getaffinity(0))


def quick_failures(results: dict[str, Any]) -> list[str]:
    """Every expected check that failed, and every server that did not start."""
    problems = []
    for name, sres in results["servers"].items():
        if not sres["started"]:
            problems.append(f"{name}: did not start")
            continue
        for key in [*sres["expected"], *(["healthz"] if "healthz" in sres["checks"] else [])]:
            check = sres["checks"].get(key)
            if check is None or not check["ok"]:
                problems.append(f"{name} {key}: {check['problem'] if check else 'not checked'}")
    return problems


def main(argv: list[str] | None = None) -> int:
    """Entry point: run, print the table on stdout, write --json, choose the exit code.

    A full run exits 0 even when pinpanel lacks endpoints (they show as n/a); ``--quick``
    is a correctness check and exits 1 if any server or expected endpoint failed.
    """
    args = parse_args(argv)
    started = time.perf_counter()
    results = run(args)
    results["meta"]["elapsed_s"] = round(time.perf_counter() - started, 1)
    results["targets"] = report.targets(results)
    table = report.render(results)
    results["table"] = table
    failures = quick_failures(results)
    results["quick_failures"] = failures
    print(table)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(results, indent=2, default=str), encoding="utf-8")
    if args.quick and failures:
        log("quick check failed:\n  " + "\n  ".join(failures))
        return 1
    return 0
