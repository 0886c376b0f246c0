"""The three servers under test: how each is prepared, started, probed and stopped.

Why separate processes: the figures must be what a user gets from ``python -m pinpanel serve``
(interpreter start-up, imports, its own event loop and threads), and resident memory and CPU
can only be read cleanly per process. Every server gets a free port on 127.0.0.1, its output
goes to a log file (a pipe nobody reads would eventually block it), and it is stopped by its
own process group id with SIGTERM, then SIGKILL after a grace period.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.load import Request
from pinpanel.local_broker import free_port

REPO_ROOT = Path(__file__).resolve().parent.parent
HOST = "127.0.0.1"
TUTORIAL_PINS = (18, 23, 24)
JSON_HEADERS = {"Content-Type": "application/json"}

# pinpanel's configuration for the bench: the tutorial's pins on the simulated board
# (there is no GPIO on the bench machine); everything else is the default a user gets.
PINPANEL_CONFIG = """\
# Written by bench/: the tutorial's three pins on the simulated board.
[gpio]
backend = "simulated"

[[pins]]
pin = 18

[[pins]]
pin = 23

[[pins]]
pin = 24
"""

Check = Callable[[int, str, str], str | None]


def _json(body: str) -> Any:
    """Parse JSON or return a sentinel string the checks report as the problem."""
    try:
        return json.loads(body)
    except ValueError:
        return _NOT_JSON


_NOT_JSON = object()


def pin_numbers(obj: Any) -> set[int]:
    """Every BCM number a JSON document names, as ``"18": ...`` keys or ``"pin": 18`` values.

    Lenient on purpose: the v1 API's exact shape is pinpanel's to choose; the bench only needs
    to know the answer is about the configured pins.
    """
    found: set[int] = set()
    if isinstance(obj, dict):
        for key, value in obj.items():
            if isinstance(key, str) and key.isdigit():
                found.add(int(key))
            if key in {"pin", "bcm", "gpio", "number"} and isinstance(value, int):
                found.add(value)
            found |= pin_numbers(value)
    elif isinstance(obj, list):
        for item in obj:
            found |= pin_numbers(item)
    return found


def check_list_compat(status: int, ctype: str, body: str) -> str | None:
    """The tutorial contract: 200, ``{"18": bool, "23": bool, "24": bool}``."""
    if status != 200:
        return f"status {status}"
    data = _json(body)
    if not isinstance(data, dict) or sorted(data) != ["18", "23", "24"]:
        return f"body is not the pin dict: {body[:80]!r}"
    if not all(isinstance(v, bool) for v in data.values()):
        return f"values are not booleans: {body[:80]!r}"
    return None


def check_toggle_compat(status: int, ctype: str, body: str) -> str | None:
    """200 and ``{"Success": true}`` (or the tutorial's single-quoted imitation of it)."""
    if status != 200:
        return f"status {status}"
    if body.strip() == "{'Success': true}":  # the baseline: the tutorial's invalid JSON
        return None
    if _json(body) != {"Success": True}:
        return f"body is not {{'Success': true}}: {body[:80]!r}"
    return None


def check_pins_json(status: int, ctype: str, body: str) -> str | None:
    """200 and a JSON document naming the pins (v1 list) or pin 18 (v1 toggle)."""
    if status != 200:
        return f"status {status}"
    data = _json(body)
    if data is _NOT_JSON:
        return f"body is not JSON: {body[:80]!r}"
    if 18 not in pin_numbers(data):
        return f"body does not name pin 18: {body[:80]!r}"
    return None


def check_list_v1(status: int, ctype: str, body: str) -> str | None:
    """200 and JSON naming all three configured pins."""
    problem = check_pins_json(status, ctype, body)
    if problem is None and not set(TUTORIAL_PINS) <= pin_numbers(_json(body)):
        return f"body does not name pins 18, 23, 24: {body[:80]!r}"
    return problem


def check_page(status: int, ctype: str, body: str) -> str | None:
    """200, HTML, the three pins and a Toggle control."""
    if status != 200:
        return f"status {status}"
    if "html" not in ctype and "<table" not in body and "<html" not in body.lower():
        return f"not HTML (content-type {ctype!r})"
    missing = [str(p) for p in TUTORIAL_PINS if str(p) not in body]
    if missing or "toggle" not in body.lower():
        return f"page lacks pins {missing} or a Toggle control"
    return None


def check_ok(status: int, ctype: str, body: str) -> str | None:
    """Any 200 (health checks)."""
    return None if status == 200 else f"status {status}"


@dataclass(frozen=True)
class Endpoint:
    """One measured endpoint: its request, what a correct answer looks like, its operation.

    ``op`` groups endpoints doing the same job (list, toggle, page): ratios to the baseline are
    taken against the baseline's endpoint with the same ``op``, since the baseline has no v1.
    """

    key: str
    label: str
    op: str
    request: Request
    check: Check
    toggles: bool = False


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "list_compat",
        "list `GET /api/list`",
        "list",
        Request("GET", "/api/list", JSON_HEADERS),
        check_list_compat,
    ),
    Endpoint(
        "list_v1", "list `GET /api/v1/pins`", "list", Request("GET", "/api/v1/pins"), check_list_v1
    ),
    Endpoint(
        "toggle_compat",
        "toggle `POST /api/toggle/18`",
        "toggle",
        Request("POST", "/api/toggle/18", JSON_HEADERS),
        check_toggle_compat,
        toggles=True,
    ),
    Endpoint(
        "toggle_v1",
        "toggle `POST /api/v1/pins/18/toggle`",
        "toggle",
        Request("POST", "/api/v1/pins/18/toggle"),
        check_pins_json,
        toggles=True,
    ),
    Endpoint("page", "page `GET /`", "page", Request("GET", "/"), check_page),
)
ENDPOINTS_BY_KEY = {ep.key: ep for ep in ENDPOINTS}
BASELINE_FOR_OP = {"list": "list_compat", "toggle": "toggle_compat", "page": "page"}
HEALTH = Endpoint(
    "healthz", "health `GET /healthz`", "health", Request("GET", "/healthz"), check_ok
)
EVENTS_PATH = "/api/v1/events"


@dataclass
class Prepared:
    """A server ready to start: its command line for a port, and how to talk to it."""

    name: str
    argv: Callable[[int], list[str]]
    health: Request
    headers: dict[str, str] = field(default_factory=dict)  # sent with every request (auth)
    endpoints: tuple[str, ...] = ()  # endpoint keys this server is expected to serve
    has_events: bool = False
    env: dict[str, str] = field(default_factory=dict)  # extra environment for the process
    mode: str = ""  # e.g. "auth: Bearer control token" (pinpanel) - shown in the report
    notes: list[str] = field(default_factory=list)
    workdir: Path | None = None

    def with_auth(self, request: Request) -> Request:
        """The request with this server's extra headers (the bearer token) added."""
        return Request(request.method, request.path, {**request.headers, **self.headers},
                       request.body)


def _python(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def export_pinpanel(ref: str, dest: Path) -> tuple[Path, str]:
    """Extract ``src/`` of a git ref into ``dest`` (read-only on the repo); return (src, sha).

    Why: the lead engineer edits ``src/`` while the harness runs, and the editable install
    imports whatever is on disk at that moment, half-written files included. Measuring a
    commit gives a figure that belongs to a known version.
    """
    sha = subprocess.run(
        ["git", "rev-parse", "--short", ref], cwd=REPO_ROOT, capture_output=True, text=True,
        check=True,
    ).stdout.strip()
    dest.mkdir(parents=True, exist_ok=True)
    archive = subprocess.run(
        ["git", "archive", "--format=tar", ref, "src"], cwd=REPO_ROOT, capture_output=True,
        check=True,
    )
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest / "src", sha


def describe_working_tree() -> str:
    """Which pinpanel the editable install runs: HEAD, plus a warning if src/ is modified."""
    head = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--", "src"], cwd=REPO_ROOT, capture_output=True,
        text=True, check=False,
    ).stdout.strip()
    return f"working tree at {head}" + (" with uncommitted changes in src/" if dirty else "")


def prepare_pinpanel(workdir: Path, src: Path | None = None, version: str = "") -> Prepared:
    """Write the bench config, decide auth on or off, and mint a control token if possible.

    pinpanel is being written while this harness exists: if ``pinpanel token`` is not there
    yet the server is run with ``--no-auth`` (when ``serve`` knows that flag), and the report
    says which mode was measured, since the targets ask for the authenticated one. ``src``
    (a directory holding the ``pinpanel`` package) runs that copy instead of the installed one.
    """
    env = {"PYTHONPATH": str(src)} if src is not None else {}
    data_dir = workdir / "pinpanel-data"
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)  # pinpanel warns if others can read
    config = workdir / "bench.toml"
    config.write_text(PINPANEL_CONFIG, encoding="utf-8")
    notes: list[str] = []
    headers: dict[str, str] = {}
    extra: list[str] = []
    token_help = _python("-m", "pinpanel", "token", "--help", cwd=workdir, env=env)
    if token_help.returncode == 0:
        created = _python(
            "-m", "pinpanel", "token", "create", "bench", "--scope", "control",
            "--data-dir", str(data_dir), cwd=workdir, env=env,
        )
        lines = [ln.strip() for ln in created.stdout.splitlines() if ln.strip()]
        if created.returncode == 0 and lines:
            headers["Authorization"] = f"Bearer {lines[-1]}"
            mode = "auth on (Bearer control token)"
        else:
            notes.append(
                "`pinpanel token create` failed (rc "
                f"{created.returncode}: {(created.stderr or created.stdout).strip()[-200:]})"
            )
            mode = "auth: token creation failed"
    else:
        mode = "no `pinpanel token` command yet"
    if "Authorization" not in headers:
        serve_help = _python("-m", "pinpanel", "serve", "--help", cwd=workdir, env=env)
        if "--no-auth" in serve_help.stdout:
            extra.append("--no-auth")
            mode += "; measured with --no-auth"
        else:
            mode += "; measured without auth (serve has no --no-auth flag)"

    def argv(port: int) -> list[str]:
        return [
            sys.executable, "-m", "pinpanel", "serve",
            "--host", HOST, "--port", str(port),
            "--data-dir", str(data_dir), "--config", str(config), *extra,
        ]

    return Prepared(
        name="pinpanel",
        argv=argv,
        health=HEALTH.request,
        headers=headers,
        endpoints=tuple(ep.key for ep in ENDPOINTS),
        has_events=True,
        env=env,
        mode=f"{version}; {mode}" if version else mode,
        notes=notes,
        workdir=workdir,
    )


def prepare_baseline(workdir: Path) -> Prepared:
    """The tutorial's Bottle server: no health route, so readiness is its page at ``/``."""

    def argv(port: int) -> list[str]:
        return [sys.executable, str(REPO_ROOT / "bench" / "baseline_bottle.py"),
                "--host", HOST, "--port", str(port)]

    return Prepared(
        name="baseline",
        argv=argv,
        health=Request("GET", "/"),
        endpoints=("list_compat", "toggle_compat", "page"),
        mode="Bottle 0.13 default server (wsgiref), tutorial Parts 2+3",
        workdir=workdir,
    )


def prepare_ceiling(workdir: Path, captured: list[dict[str, Any]]) -> Prepared:
    """The raw ASGI app, fed the bytes captured from pinpanel (or its built-in defaults)."""
    routes_file = workdir / "ceiling-routes.json"
    routes_file.write_text(json.dumps(captured), encoding="utf-8")
    served = {(c["method"], c["path"]) for c in captured} | {
        ("GET", "/api/list"), ("POST", "/api/toggle/18"), ("GET", "/"), ("GET", "/healthz"),
    }
    endpoints = tuple(
        ep.key for ep in ENDPOINTS if (ep.request.method, ep.request.path) in served
    )

    def argv(port: int) -> list[str]:
        return [sys.executable, "-m", "bench.ceiling_app", "--host", HOST, "--port", str(port),
                "--routes", str(routes_file)]

    source = "bytes captured from pinpanel" if captured else "tutorial contract bytes"
    return Prepared(
        name="ceiling",
        argv=argv,
        health=HEALTH.request,
        endpoints=endpoints,
        has_events=True,
        env={"PYTHONPATH": str(REPO_ROOT)},  # bench is run from the repo, not installed
        mode=f"raw ASGI on uvicorn, 1 worker, {source}",
        workdir=workdir,
    )


@dataclass
class Response:
    """One probe answer."""

    status: int
    headers: list[tuple[str, str]]
    body: str

    @property
    def content_type(self) -> str:
        return next((v for k, v in self.headers if k.lower() == "content-type"), "")


def http_request(port: int, request: Request, timeout: float = 5.0) -> Response:
    """One blocking request over a fresh connection (stdlib: no client start-up cost)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        body = request.body.encode() if request.body is not None else None
        headers = dict(request.headers)
        if body is None and request.method == "POST":
            headers.setdefault("Content-Length", "0")
        conn.request(request.method, request.path, body=body, headers=headers)
        resp = conn.getresponse()
        return Response(resp.status, resp.getheaders(), resp.read().decode("utf-8", "replace"))
    finally:
        conn.close()


class ServerFailed(RuntimeError):
    """The server process exited or never answered its readiness request."""


@dataclass
class Running:
    """A started server process and what was measured while it started."""

    prepared: Prepared
    proc: subprocess.Popen[bytes]
    port: int
    first_200_s: float
    log_path: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def rss_mib(self) -> float:
        """Resident set size now, from /proc/PID/status VmRSS (kB), in MiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise ServerFailed(f"{self.prepared.name}: no VmRSS (process gone?)")

    def log_tail(self, lines: int = 15) -> str:
        """The end of the server's output, for error messages."""
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])

    def stop(self, grace_s: float = 5.0) -> int | None:
        """SIGTERM the server's own process group, SIGKILL it after ``grace_s``."""
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(grace_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(grace_s)
        return self.proc.returncode


def start(prepared: Prepared, log_dir: Path, *, ready_timeout_s: float = 20.0) -> Running:
    """Start the server and time process start -> first 200 on its readiness request.

    The clock starts just before ``Popen`` (so it includes interpreter start-up and imports,
    as a user or systemd sees it) and stops at the first 200; connection-refused retries poll
    every 2 ms so the polling adds at most that much.
    """
    port = free_port()
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"{prepared.name}-{port}.log"
    health = prepared.with_auth(prepared.health)
    with log_path.open("wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            prepared.argv(port),
            cwd=prepared.workdir or REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1", **prepared.env},
        )
    running = Running(prepared, proc, port, 0.0, log_path)
    deadline = t0 + ready_timeout_s
    last = ""
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise ServerFailed(
                f"{prepared.name} exited with {proc.returncode} before answering:\n"
                + running.log_tail()
            )
        try:
            resp = http_request(port, health, timeout=2.0)
        except OSError as exc:
            last = repr(exc)
            time.sleep(0.002)
            continue
        if resp.status == 200:
            running.first_200_s = time.perf_counter() - t0
            return running
        last = f"status {resp.status}: {resp.body[:120]}"
        time.sleep(0.01)
    running.stop()
    raise ServerFailed(
        f"{prepared.name} gave no 200 on {health.path} within {ready_timeout_s} s ({last}):\n"
        + running.log_tail()
    )
