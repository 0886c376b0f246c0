"""``python -m bench.footprint``: what each feature costs an idle server, and start-up.

Run: ``.venv/bin/python -m bench.footprint [--runs 3] [--seconds 60]`` (``--quick``: one
run, a 2 s window, correctness only).

``pinpanel serve`` on the bench config (the tutorial's pins on the simulated board, auth on)
with nothing else ("defaults"), with every optional feature configured off ("all off"),
and with one feature on at a time:

* ``sensors``: 10 simulated DS18B20s read every second (the readings path);
* ``schedules + rules``: 50 daily schedules and 50 pin rules (the automation's timers);
* ``mqtt``: the bridge connected to a local mosquitto;
* ``hub``: the fleet hub in the server (``[hub]``) on the same broker;
* ``mdns``: the LAN announcer (``[mdns]``, on loopback);
* ``homekit`` (when the tree has ``pinpanel.homekit`` and HAP-python): the HomeKit bridge,
  with the announcer it needs.

Two phases, so each figure measures what it says:

1. *start*: fresh processes one after another, ``--runs`` times per configuration in a
   rotating order; the time from just before ``Popen`` to the first 200 on
   ``GET /api/list`` (polled every 2 ms), and ``VmRSS`` 1 s later.
2. *idle*: one process per configuration, all running at once, left alone for 3 s, then
   each one's user+system CPU time (``/proc/PID/stat``) over the same ``--seconds``
   window, and its RSS at the end. Nobody sends a request; what is left is the timers.

Prints two Markdown tables (``--json`` writes the raw figures). Targets (#21): idle RSS
<= 45 MB (10^6 bytes) with every feature off, first 200 <= 0.6 s; 10 sensors at 1 Hz <= 1 %
of a core over the defaults; 50 schedules + 50 rules ~0 % (timers, not polling).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.load import Request, proc_cpu_seconds
from bench.servers import JSON_HEADERS, Running, ServerFailed, prepare_pinpanel, start
from pinpanel.local_broker import LocalBroker, free_port

MB = 1e6
RSS_TARGET_MB = 45.0
FIRST_200_TARGET_S = 0.6
SENSORS_TARGET = 0.01  # of a core, over the defaults
#: A pin for the automation to drive and one for its rules to watch (the bench's three stay).
AUTOMATION_PINS = '\n[[pins]]\npin = 25\nid = "lamp"\n\n[[pins]]\npin = 5\nid = "door"\n' \
    'mode = "input"\n'


def sensors(n: int = 10) -> str:
    return "".join(f'\n[[sensors]]\nid = "t{i}"\nkind = "ds18b20"\ninterval_s = 1\n'
                   for i in range(n))


def automation(schedules: int = 50, rules: int = 50) -> str:
    """Daily schedules spread over the day, rules on an input that never changes."""
    out = [AUTOMATION_PINS]
    for i in range(schedules):
        minute = i * 1440 // schedules
        out.append(f'\n[[schedules]]\nid = "s{i}"\nat = "{minute // 60:02d}:{minute % 60:02d}"\n'
                   f'action = "{"on" if i % 2 else "off"}"\npins = ["lamp"]\n')
    for i in range(rules):
        out.append(f'\n[[rules]]\nid = "r{i}"\nwhen = {{ pin = "door", to = "on" }}\n'
                   'then = [{ pins = ["lamp"], action = "on" }]\n')
    return "".join(out)


def mqtt(port: int) -> str:
    return f'\n[mqtt]\nenabled = true\nhost = "127.0.0.1"\nport = {port}\n'


def hub(port: int) -> str:
    return f'\n[mqtt]\nhost = "127.0.0.1"\nport = {port}\n\n[hub]\nenabled = true\n'


MDNS_OFF = "\n[mdns]\nenabled = false\n"
MDNS_ON = '\n[mdns]\nenabled = true\ninterfaces = ["127.0.0.1"]\n'


def homekit(port: int) -> str:
    """The HomeKit bridge (#19) on a free port, announced on loopback only."""
    return f'\n[homekit]\nenabled = true\nport = {free_port()}\n' + MDNS_ON


def has_homekit() -> bool:
    """Whether this tree has the HomeKit adapter and its extra (HAP-python) installed."""
    return all(importlib.util.find_spec(name) is not None
               for name in ("pinpanel.homekit", "pyhap"))


@dataclass(frozen=True)
class Feature:
    """One configuration: its name and the TOML it adds to the bench config."""

    name: str
    toml: Callable[[int], str]  # given the broker's port
    mdns_default: bool = False  # leave [mdns] as the defaults have it


FEATURES = (
    Feature("defaults", lambda port: "", mdns_default=True),
    Feature("all off", lambda port: ""),
    Feature("sensors (10 at 1 Hz)", lambda port: sensors()),
    Feature("schedules + rules (50 + 50)", lambda port: automation()),
    Feature("mqtt bridge", mqtt),
    Feature("hub", hub),
    Feature("mdns / lan", lambda port: MDNS_ON),
)
#: Measured when the tree has it (it needs the mdns announcer too, so compare with that row).
HOMEKIT = Feature("homekit (with mdns)", homekit)


def prepare(feature: Feature, root: Path, port: int) -> Any:
    """The bench's pinpanel with this feature's TOML appended; readiness on /api/list."""
    workdir = root / feature.name.split()[0]
    workdir.mkdir(parents=True, exist_ok=True)
    prep = prepare_pinpanel(workdir)
    extra = feature.toml(port)
    if not feature.mdns_default and "[mdns]" not in extra:
        extra += MDNS_OFF
    config = workdir / "bench.toml"
    config.write_text(config.read_text(encoding="utf-8") + extra, encoding="utf-8")
    prep.health = Request("GET", "/api/list", JSON_HEADERS)
    return prep


def rss_mb(srv: Running) -> float:
    return srv.rss_mib() * 2**20 / MB


def start_phase(preps: dict[str, Any], runs: int, logs: Path) -> dict[str, dict[str, list[float]]]:
    """Fresh starts one at a time, in a rotating order: first 200 and RSS 1 s later."""
    out: dict[str, dict[str, list[float]]] = {n: {"first_200_s": [], "rss_mb": []}
                                              for n in preps}
    names = list(preps)
    for run in range(runs):
        for name in names[run % len(names):] + names[:run % len(names)]:
            srv = start(preps[name], logs)
            try:
                time.sleep(1.0)  # start-up's tail (lifespan tasks, first GC) settles
                out[name]["first_200_s"].append(srv.first_200_s)
                out[name]["rss_mb"].append(rss_mb(srv))
            finally:
                srv.stop()
    return out


def idle_phase(preps: dict[str, Any], seconds: float, logs: Path) -> dict[str, dict[str, float]]:
    """Every configuration at once, left alone; CPU over one shared window, RSS after it."""
    out: dict[str, dict[str, float]] = {}
    running: dict[str, Running] = {}
    try:
        for name, prep in preps.items():
            running[name] = start(prep, logs)
        time.sleep(3.0)  # imports done, first reads and announcements out
        before = {n: proc_cpu_seconds(s.pid) or 0.0 for n, s in running.items()}
        began = time.monotonic()
        time.sleep(seconds)
        wall = time.monotonic() - began
        for name, srv in running.items():
            cpu = (proc_cpu_seconds(srv.pid) or 0.0) - before[name]
            out[name] = {"cpu_share": cpu / wall, "rss_mb": rss_mb(srv), "window_s": wall}
    finally:
        for srv in running.values():
            srv.stop()
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def spread(values: list[float], fmt: str) -> str:
    med = format(median(values), fmt)
    if len(values) == 1:
        return med
    return f"{med} ({format(min(values), fmt)}-{format(max(values), fmt)})"


def tables(results: dict[str, Any]) -> str:
    """The start table and the idle table, with the targets judged."""
    starts, idle = results["start"], results["idle"]
    first_name = next(iter(starts))
    base_rss = median(starts.get("all off", starts[first_name])["rss_mb"])
    base_cpu = idle.get("defaults", idle[first_name])["cpu_share"]
    lines = ["| configuration | first 200 on `GET /api/list`, s | idle RSS, MB | "
             "RSS over all off, MB |", "|---|---|---|---|"]
    for name, fig in starts.items():
        lines.append(f"| {name} | {spread(fig['first_200_s'], '.2f')} | "
                     f"{spread(fig['rss_mb'], '.1f')} | "
                     f"{median(fig['rss_mb']) - base_rss:+.1f} |")
    lines += ["", f"| configuration | CPU over {idle[first_name]['window_s']:.0f} s idle, "
              "% of a core | over the defaults | RSS after, MB |", "|---|---|---|---|"]
    for name, fig in idle.items():
        lines.append(f"| {name} | {fig['cpu_share']:.2%} | {fig['cpu_share'] - base_cpu:+.2%} "
                     f"| {fig['rss_mb']:.1f} |")
    lines += ["", "| target | measured | |", "|---|---|---|"]
    for target in results["targets"]:
        lines.append(f"| {target['name']} | {target['shown']} | "
                     f"{'met' if target['met'] else 'not met'} |")
    return "\n".join(lines)


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    starts, idle = results["start"], results["idle"]
    rss = median(starts["all off"]["rss_mb"])
    first = median(starts["defaults"]["first_200_s"])
    base = idle["defaults"]["cpu_share"]
    readings = idle["sensors (10 at 1 Hz)"]["cpu_share"] - base
    automation_cpu = idle["schedules + rules (50 + 50)"]["cpu_share"] - base
    return [
        {"name": f"idle RSS, every feature off <= {RSS_TARGET_MB:g} MB",
         "met": rss <= RSS_TARGET_MB, "shown": f"{rss:.1f} MB"},
        {"name": f"first 200 <= {FIRST_200_TARGET_S} s (defaults)",
         "met": first <= FIRST_200_TARGET_S, "shown": f"{first:.2f} s"},
        {"name": "10 sensors at 1 Hz <= 1 % of a core", "met": readings <= SENSORS_TARGET,
         "shown": f"{readings:+.2%}"},
        # ~0: within what one jiffy per 10 s of window (0.1 %) can resolve
        {"name": "50 schedules + 50 rules idle ~0 % of a core", "met": automation_cpu <= 0.001,
         "shown": f"{automation_cpu:+.2%}"},
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.footprint",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true",
                        help="correctness only: one run, a 2 s idle window")
    parser.add_argument("--json", type=Path, default=None)
    parser.add_argument("--only", default=None, metavar="NAMES",
                        help="comma list of configurations (default: all; the targets need "
                             "defaults, all off, sensors and schedules)")
    args = parser.parse_args(argv)
    features = FEATURES + ((HOMEKIT,) if has_homekit() else ())
    if args.only:
        wanted = {n.strip() for n in args.only.split(",")}
        features = tuple(f for f in features if f.name in wanted or f.name.split()[0] in wanted)
    if args.quick:
        args.runs, args.seconds = 1, 2.0
    with tempfile.TemporaryDirectory(prefix="pinpanel-footprint-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        broker = stack.enter_context(LocalBroker(root / "broker"))
        preps = {f.name: prepare(f, root, broker.port) for f in features}
        try:
            results: dict[str, Any] = {
                "start": start_phase(preps, args.runs, root / "logs"),
                "idle": idle_phase(preps, args.seconds, root / "logs"),
                "runs": args.runs, "seconds": args.seconds,
            }
        except ServerFailed as exc:
            print(f"problem: {exc}", file=sys.stderr)
            return 1
    results["targets"] = targets(results) if set(FEATURES) <= set(features) else []
    print(tables(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
