"""``python -m bench.mqtt_latency``: command-to-state latency through a broker, N = 1, 10, 100.

A fresh local mosquitto (Debian's, 127.0.0.1 only) per run; for each fleet size
:func:`pinpanel.fleet.measure_latency` starts ``pinpanel fleet-sim`` as a child process and
times ``<base>/<pin>/set`` -> committed ``<base>/<pin>/state`` from a separate client, one
command at a time. Prints one JSON object per fleet size, then a Markdown table.
"""

from __future__ import annotations

import argparse
import json

from pinpanel.fleet import LatencyReport, measure_latency, temporary_broker


def run(sizes: list[int], commands: int, broker: str | None = None) -> list[LatencyReport]:
    """Measure each fleet size, on ``broker`` or on a temporary local mosquitto."""
    if broker is not None:
        return [measure_latency(broker, n, commands) for n in sizes]
    with temporary_broker() as local:
        return [measure_latency(local.address, n, commands) for n in sizes]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.mqtt_latency", description=__doc__)
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--commands", type=int, default=500)
    parser.add_argument("--broker", help="HOST:PORT of an existing broker (default: a fresh "
                                         "local mosquitto)")
    args = parser.parse_args(argv)
    reports = run(args.devices, args.commands, args.broker)
    for report in reports:
        print(json.dumps(report.as_json()))
    print("\n| devices | commands | p50 ms | p99 ms | max ms | lost |")
    print("| ---: | ---: | ---: | ---: | ---: | ---: |")
    for r in reports:
        print(f"| {r.devices} | {r.commands} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | "
              f"{r.max_ms:.2f} | {r.lost} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
