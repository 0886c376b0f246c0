"""/metrics in Prometheus format, and one structured log line per committed change."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.inprocess import InProcessApp
from tests.support import ServerFactory, ServerProcess

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: ServerProcess | InProcessApp, token: str | None = None) -> Samples:
    """Every sample of /metrics, parsed by prometheus_client's own parser."""
    with server.client(token) as http:
        response = http.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    samples: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: Samples, metric: str, **labels: str) -> float:
    return samples.get((metric, tuple(sorted(labels.items()))), 0.0)


def wait_for(condition: Callable[[], object], what: str, timeout: float = 15) -> object:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_metrics_need_read_credentials(make_app: Callable[..., InProcessApp]) -> None:
    server = make_app()
    with server.anonymous() as anonymous:
        assert anonymous.get("/metrics").status_code == 401
        wrong = anonymous.get("/metrics", headers={"Authorization": "Bearer pp_wrong"})
        assert wrong.status_code == 401
    reader = server.create_token("prometheus", "read")
    assert value(scrape(server, reader), "pinpanel_info", version="0.1.0", backend="simulated",
                 simulated="true") == 1


def test_counts_move_after_a_toggle(make_app: Callable[..., InProcessApp]) -> None:
    server = make_app()
    route = "/api/v1/pins/{pin}/{action}"
    before = scrape(server)
    assert value(before, "pinpanel_pin_state", pin="18", id="gpio18", name="GPIO 18",
                 mode="output") == 0
    assert value(before, "pinpanel_mqtt_connected") == 0
    with server.client() as http:
        toggled = http.post("/api/v1/pins/18/toggle")
        assert toggled.status_code == 200
        assert http.post("/api/v1/pins/4/toggle").status_code == 404
    after = scrape(server)
    changes = ("pinpanel_pin_changes_total", {"pin": "18", "id": "gpio18", "cause": "api"})
    assert value(after, changes[0], **changes[1]) == value(before, changes[0], **changes[1]) + 1
    assert value(after, "pinpanel_pin_state", pin="18", id="gpio18", name="GPIO 18",
                 mode="output") == 1
    ok = {"route": route, "method": "POST", "status": "200"}
    assert value(after, "pinpanel_http_requests_total", **ok) == \
        value(before, "pinpanel_http_requests_total", **ok) + 1
    assert value(after, "pinpanel_http_requests_total", route=route, method="POST",
                 status="404") == 1
    assert value(after, "pinpanel_last_seq") == toggled.json()["seq"]
    # At least the toggle's own commit went through the histogram, and its buckets add up.
    count = value(after, "pinpanel_commit_duration_seconds_count")
    assert count >= value(before, "pinpanel_commit_duration_seconds_count") + 1
    assert value(after, "pinpanel_commit_duration_seconds_bucket", le="+Inf") == count
    assert value(after, "pinpanel_commit_duration_seconds_sum") > 0
    assert value(after, "process_resident_memory_bytes") > 0


def test_refused_requests_are_counted_under_their_route(make_server: ServerFactory) -> None:
    server = make_server()
    with httpx.Client(base_url=server.url, timeout=10) as anonymous:
        assert anonymous.post("/api/v1/pins/18/on").status_code == 401
    samples = scrape(server)
    assert value(samples, "pinpanel_http_requests_total", route="/api/v1/pins/{pin}/{action}",
                 method="POST", status="401") == 1


def test_event_stream_clients_gauge(make_server: ServerFactory) -> None:
    server = make_server()
    assert value(scrape(server), "pinpanel_event_stream_clients") == 0
    with server.client() as http, http.stream("GET", "/api/v1/events") as stream:
        lines = stream.iter_lines()
        assert next(lines).startswith("retry:")  # connected and subscribed
        assert value(scrape(server), "pinpanel_event_stream_clients") == 1
    wait_for(lambda: value(scrape(server), "pinpanel_event_stream_clients") == 0,
             "the closed stream to unsubscribe")


def test_one_json_log_line_per_change(make_server: ServerFactory) -> None:
    server = make_server(None, "--log-format", "json")
    actor = "relay-script"
    with server.client(server.create_token(actor, "control")) as http:
        on = http.post("/api/v1/pins/18/on").json()
        off = http.post("/api/v1/pins/18/off").json()

    def change_lines() -> list[dict[str, object]]:
        found = []
        for line in server.log().splitlines():
            if line.startswith("{"):
                entry = json.loads(line)
                if entry.get("logger") == "pinpanel.changes" and entry["pin"] == 18 \
                        and entry["cause"] == "api":
                    found.append(entry)
        return found if len(found) >= 2 else []

    lines = wait_for(change_lines, "two change log lines")
    assert isinstance(lines, list)
    assert [(e["seq"], e["state"], e["old"], e["actor"], e["id"]) for e in lines] == [
        (on["seq"], True, False, actor, "gpio18"), (off["seq"], False, True, actor, "gpio18")]
    for entry in lines:
        assert entry["event"] == "change" and entry["level"] == "INFO"
        assert entry["time"] and str(entry["at"]).endswith("Z")
        assert entry["client"] == "127.0.0.1"


def test_one_text_log_line_per_change(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        seq = http.post("/api/v1/pins/23/toggle").json()["seq"]
    expected = f"pinpanel.changes: seq={seq} GPIO23 (gpio23) on cause=api actor="
    wait_for(lambda: expected in server.log(), "the change's log line")
    assert server.log().count(f"seq={seq} GPIO23") == 1
    assert server.token not in server.log()  # a secret never reaches a log line
