"""``python -m bench.fanout``: event-stream delivery to 100 and 1,000 subscribers.

Run: ``.venv/bin/python -m bench.fanout [--subscribers 100 1000] [--toggles 100]``
(``--quick``: 5 subscribers, 3 toggles, correctness only).

A real ``pinpanel serve`` process (the bench config, auth on with a read token for the
streams and a control token for the toggles) and N real HTTP connections to
``GET /api/v1/events`` held by this process. Each toggle goes out on a kept-alive raw socket
with pre-built bytes; the clock runs from just before that write (so it includes the
durable commit, the upper bound of "commit -> received") to the read that brings the
``change`` event on each stream. The next toggle waits until every stream has it.

Why asyncio protocols rather than :mod:`bench.stream`'s httpx subscribers: at 1,000 streams
the harness's own cost per event decides the last stream's stamp. A protocol's
``data_received`` only stamps and stores the bytes (about 2 µs on uvloop); the framing,
the SSE fields and the seq checks are parsed after the toggles. ``ulimit -n`` is raised to
its hard limit first (1,000 streams need 1,000 descriptors here and as many in the server).

Prints one Markdown table row per subscriber count; ``--json`` writes the raw figures.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import tempfile
import time
from contextlib import suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import busy_seconds, proc_cpu_seconds
from bench.servers import ENDPOINTS_BY_KEY, EVENTS_PATH, Running, prepare_pinpanel, start
from bench.stats import percentile
from bench.stream import EventParser, RawToggler, Tally

#: The #21 targets: p99 delivery (ms) per subscriber count.
TARGETS_MS = {100: 10.0, 1000: 50.0}
MARKER = b"event: change"


@dataclass
class StreamProtocol(asyncio.Protocol):
    """One subscriber's connection: stamps each read, counts change markers, parses later."""

    request: bytes
    tally: Tally
    ready: asyncio.Future[None]
    reads: list[tuple[float, bytes]] = field(default_factory=list)
    head: bytes = b""
    count: int = 0
    status: int = 0
    lost: bool = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport.write(self.request)  # type: ignore[attr-defined]

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.status:
            self.head += data
            if b"\r\n\r\n" not in self.head:
                return
            head, _, data = self.head.partition(b"\r\n\r\n")
            self.status = int(head.split(b" ", 2)[1])
            self.head = head
            if self.status != 200:
                self.ready.set_exception(RuntimeError(f"status {self.status}"))
                return
        self.reads.append((now, data))
        if not self.ready.done():
            if b"event: snapshot" in b"".join(d for _, d in self.reads):
                self.ready.set_result(None)
            return
        n = data.count(MARKER)
        if n:
            self.count += n
            self.tally.add(n)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"closed before the snapshot: {exc!r}"))

    def changes(self) -> list[tuple[float, int | None]]:
        """(stamp of the read completing it, seq) for each change event received."""
        chunked = b"transfer-encoding: chunked" in self.head.lower()
        parser = EventParser(chunked=chunked)
        out: list[tuple[float, int | None]] = []
        for stamp, data in self.reads:
            for event, ident, _text in parser.feed(data):
                if event == "change":
                    out.append((stamp, int(ident) if ident and ident.isdigit() else None))
        return out


def raise_nofile(need: int) -> int:
    """Raise the soft descriptor limit towards the hard one; return the soft limit now."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < need:
        soft = min(hard, max(need, soft))
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft


async def _measure(srv: Running, read_token: str | None, subscribers: int,
                   toggles: int, timeout_s: float, quiet_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    tally = Tally()
    auth = f"Authorization: Bearer {read_token}\r\n" if read_token else ""
    request = (f"GET {EVENTS_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{srv.port}\r\n"
               f"Accept: text/event-stream\r\n{auth}\r\n").encode()
    protos: list[StreamProtocol] = []
    transports: list[asyncio.BaseTransport] = []
    errors: list[str] = []
    opened = time.perf_counter()
    try:
        # Open in batches: 1,000 simultaneous connects overflow the listen backlog.
        for start_at in range(0, subscribers, 100):
            batch = [StreamProtocol(request, tally, loop.create_future())
                     for _ in range(min(100, subscribers - start_at))]
            for proto in batch:
                transport, _ = await loop.create_connection(
                    lambda p=proto: p, "127.0.0.1", srv.port)  # type: ignore[misc]
                transports.append(transport)
            protos.extend(batch)
            await asyncio.wait_for(asyncio.gather(*(p.ready for p in batch)), 30)
        open_s = time.perf_counter() - opened
        await asyncio.sleep(0.2)  # the server's last registrations and first GC settle
        toggle = srv.prepared.with_auth(ENDPOINTS_BY_KEY["toggle_v1"].request)
        toggler = RawToggler("127.0.0.1", srv.port, toggle, {})
        rounds: list[tuple[float, float, int | None]] = []
        quiet = wait_quiet(quiet_s)
        began, busy0 = time.perf_counter(), busy_seconds()
        server0, self0 = proc_cpu_seconds(srv.pid) or 0.0, time.process_time()
        gc.disable()  # a harness GC pause would be charged to the server
        try:
            for _ in range(toggles):
                tally.target = tally.seen + len(protos)
                tally.done.clear()
                t0, status, text = await toggler.send()
                replied = time.perf_counter()
                if status != 200:
                    errors.append(f"toggle status {status}: {text[:100]}")
                    break
                rounds.append((t0, replied, json.loads(text).get("seq")))
                if tally.seen < tally.target:
                    with suppress(TimeoutError):
                        await asyncio.wait_for(
                            tally.done.wait(), max(t0 + timeout_s - time.perf_counter(), 0.001))
                await asyncio.sleep(0.005)  # let the server finish the fan-out's tail work
        finally:
            gc.enable()
            toggler.close()
        wall = time.perf_counter() - began
        server = (proc_cpu_seconds(srv.pid) or 0.0) - server0
        harness = time.process_time() - self0
        cpu = {"background_before": quiet, "server": server / wall, "harness": harness / wall,
               "other": max(0.0, (busy_seconds() - busy0 - server - harness) / wall)}
    finally:
        for transport in transports:
            transport.close()
    return {**_collate(protos, rounds, errors, open_s), "cpu_cores": cpu}


def wait_quiet(max_wait_s: float) -> float:
    """Wait (bounded) for the rest of the machine to use under a quarter of a core.

    The machine is shared: a fan-out measured while another process holds a core shows
    that process. Returns the background load seen last, in cores (reported, not hidden).
    """
    deadline = time.perf_counter() + max_wait_s
    while True:
        before = busy_seconds()
        time.sleep(0.5)
        load = (busy_seconds() - before) / 0.5
        if load < 0.25 or time.perf_counter() > deadline:
            return load


def _collate(protos: list[StreamProtocol], rounds: list[tuple[float, float, int | None]],
             errors: list[str], open_s: float) -> dict[str, Any]:
    latencies: list[float] = []
    reply: list[float] = []
    missing = mismatches = 0
    parsed = [p.changes() for p in protos]
    last: list[float] = []  # per toggle: when the last stream had it
    spread: list[float] = []  # each delivery after the toggle's first one (commit known)
    for k, (t0, replied, seq) in enumerate(rounds):
        reply.append(replied - t0)
        first = len(latencies)
        for changes in parsed:
            if len(changes) <= k:
                missing += 1
                continue
            stamp, got = changes[k]
            latencies.append(stamp - t0)
            if got != seq:
                mismatches += 1
        if len(latencies) > first:
            mine = latencies[first:]
            last.append(max(mine))
            spread.extend(v - min(mine) for v in mine)
    def ms(q: float) -> float | None:
        return percentile(latencies, q) * 1000 if latencies else None
    return {
        "subscribers": len(protos), "toggles": len(rounds), "deliveries": len(latencies),
        "missing": missing, "seq_mismatches": mismatches, "errors": errors,
        "p50_ms": ms(0.5), "p99_ms": ms(0.99),
        "max_ms": max(latencies) * 1000 if latencies else None,
        "spread_p99_ms": percentile(spread, 0.99) * 1000 if spread else None,
        "reply_p50_ms": percentile(reply, 0.5) * 1000 if reply else None,
        "open_s": open_s,
        "last_ms": [round(v * 1000, 2) for v in last],
    }


def _read_token(srv: Running, data_dir: Path) -> str | None:
    """A read-scope token for the streams (a dashboard's), if auth is on."""
    import subprocess

    if "Authorization" not in srv.prepared.headers:
        return None
    out = subprocess.run(
        [sys.executable, "-m", "pinpanel", "token", "create", "fanout", "--scope", "read",
         "--data-dir", str(data_dir)], capture_output=True, text=True, check=True, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def run(counts: list[int], toggles: int, workdir: Path,
        profile: Path | None = None, quiet_s: float = 10.0,
        sensors: int = 0) -> list[dict[str, Any]]:
    """One server; each subscriber count measured in turn, fresh connections each.

    ``profile``: run the server under pyinstrument and write its text report there (the
    figures are then not the server's own; use it to find where the time goes).
    """
    raise_nofile(max(counts) + 100)
    prep = prepare_pinpanel(workdir)
    if sensors:  # every stream then carries their readings too (each stored one, 1 Hz each)
        from bench.footprint import sensors as sensor_toml

        config = workdir / "bench.toml"
        config.write_text(config.read_text(encoding="utf-8") + sensor_toml(sensors),
                          encoding="utf-8")
    if profile is not None:
        plain = prep.argv
        prep.argv = lambda port: [sys.executable, "-m", "pyinstrument", "-r", "text",
                                  "-o", str(profile), *plain(port)[1:]]
    srv = start(prep, workdir / "logs")
    results = []
    try:
        token = _read_token(srv, workdir / "pinpanel-data")
        for n in counts:
            coro = _measure(srv, token, n, toggles, timeout_s=5.0, quiet_s=quiet_s)
            try:
                import uvloop
            except ImportError:
                res = asyncio.run(coro)
            else:
                with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
                    res = runner.run(coro)
            res["mode"] = prep.mode
            results.append(res)
    finally:
        srv.stop()
    return results


def row(res: dict[str, Any]) -> str:
    """One Markdown row: subscribers, deliveries, latencies, load, target, verdict."""
    target = TARGETS_MS.get(res["subscribers"])
    p99 = res["p99_ms"]
    verdict = "n/a" if target is None or p99 is None else ("met" if p99 <= target else "not met")
    cpu = res.get("cpu_cores", {})

    def f(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.1f}"

    def pct(v: float | None) -> str:
        return "n/a" if v is None else f"{v:.0%}"

    return (f"| {res['subscribers']:,} | {res['deliveries']:,} of "
            f"{res['subscribers'] * res['toggles']:,} | {f(res['p50_ms'])} | {f(p99)} | "
            f"{f(res['max_ms'])} | {f(res['spread_p99_ms'])} | {f(res['reply_p50_ms'])} | "
            f"{pct(cpu.get('server'))} / {pct(cpu.get('harness'))} / {pct(cpu.get('other'))} | "
            f"{'n/a' if target is None else f'<= {target:g}'} | {verdict} |")


HEADER = ("| subscribers | deliveries | p50 ms | p99 ms | max ms | p99 ms after the first "
          "stream had it | toggle reply p50 ms | CPU: server / harness / other processes | "
          "target p99 ms | |\n|---|---|---|---|---|---|---|---|---|---|")


def problems(results: list[dict[str, Any]]) -> list[str]:
    """What makes a run wrong (not slow): errors, missing deliveries, seq mismatches."""
    out = []
    for res in results:
        n = res["subscribers"]
        out += [f"{n} subscribers: {e}" for e in res["errors"]]
        if res["missing"] or res["seq_mismatches"] or not res["deliveries"]:
            out.append(f"{n} subscribers: {res['missing']} missing, "
                       f"{res['seq_mismatches']} with the wrong seq, "
                       f"{res['deliveries']} delivered")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.fanout",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--toggles", type=int, default=100)
    parser.add_argument("--quick", action="store_true",
                        help="correctness only: 5 subscribers, 3 toggles")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--sensors", type=int, default=0, metavar="N",
                        help="N simulated sensors read every second: their readings ride "
                             "every stream beside the changes")
    parser.add_argument("--profile", type=Path, default=None, metavar="FILE",
                        help="run the server under pyinstrument, its report to FILE")
    args = parser.parse_args(argv)
    if args.quick:
        args.subscribers, args.toggles = [5], 3
    with tempfile.TemporaryDirectory(prefix="pinpanel-fanout-") as tmp:
        results = run(args.subscribers, args.toggles, Path(tmp), args.profile,
                      0.0 if args.quick else 10.0, args.sensors)
    print(HEADER)
    for res in results:
        print(row(res))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    bad = problems(results)
    for line in bad:
        print(f"problem: {line}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
