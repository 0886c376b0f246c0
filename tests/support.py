"""Test helpers shared by every suite: a real pinpanel process, free ports, a fake clock."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from pinpanel.local_broker import free_port

REPO = Path(__file__).resolve().parent.parent
JSON = {"Content-Type": "application/json"}


def pinpanel_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "pinpanel", *args]


def run_cli(*args: str, env: dict[str, str] | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(pinpanel_cmd(*args), capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})}, check=False)


@dataclass
class ServerProcess:
    """``pinpanel serve`` as a child process on a free port of 127.0.0.1."""

    data_dir: Path
    config_text: str | None = None
    extra_args: tuple[str, ...] = ()
    auth: bool = True
    token: str | None = None
    #: With auth on and no ``token`` given, ``start`` makes one of this scope with
    #: ``pinpanel token create`` (None: make none, e.g. to test the first-start token).
    token_scope: str | None = "admin"
    port: int = field(default_factory=free_port)
    scheme: str = "http"
    proc: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None
    #: Extra environment of the process (e.g. the test-only PINPANEL_TEST_NOW).
    env: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def config_path(self) -> Path:
        return self.data_dir.parent / f"{self.data_dir.name}.toml"

    def args(self) -> list[str]:
        args = ["serve", "--host", "127.0.0.1", "--port", str(self.port),
                "--data-dir", str(self.data_dir)]
        if self.config_text is not None:
            self.config_path.write_text(self.config_text)
            args += ["--config", str(self.config_path)]
        if not self.auth:
            args.append("--no-auth")
        return args + list(self.extra_args)

    def create_token(self, name: str, scope: str = "control") -> str:
        """``pinpanel token create`` against this server's data dir (running or not)."""
        made = run_cli("token", "create", name, "--scope", scope,
                       "--data-dir", str(self.data_dir))
        if made.returncode != 0:
            raise RuntimeError(f"pinpanel token create failed: {made.stderr}")
        return made.stdout.strip()

    def start(self, wait: bool = True, timeout: float = 20) -> ServerProcess:
        if self.auth and self.token is None and self.token_scope:
            self.token = self.create_token(f"tests-{self.port}", self.token_scope)
        self.log_path = self.data_dir.parent / f"{self.data_dir.name}-{self.port}.log"
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(pinpanel_cmd(*self.args()), stdout=log, stderr=log,
                                         cwd=self.data_dir.parent,
                                         env={**os.environ, **self.env})
        if wait:
            self.wait_ready(timeout)
        return self

    def wait_ready(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"pinpanel exited with {self.proc.returncode}:\n{self.log()}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1, verify=False).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"pinpanel did not become ready:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path else ""

    def client(self, token: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = dict(kwargs.pop("headers", {}))
        bearer = token or self.token
        if bearer:
            headers["Authorization"] = f"Bearer {bearer}"
        return httpx.Client(base_url=self.url, headers=headers, timeout=10, verify=False,
                            **kwargs)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def kill(self) -> None:
        """SIGKILL: no cleanup at all, as a power cut or the OOM killer would do."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


ServerFactory = Callable[..., ServerProcess]

#: A network namespace's loopback made fit for mDNS: up, multicast on, a route for 224/4.
_MULTICAST_LOOPBACK = ("ip link set lo up && ip link set lo multicast on && "
                       "ip route add 224.0.0.0/4 dev lo && exec \"$0\" -m \"$1\" \"$2\"")


def run_in_namespace(module: str, directory: Path, timeout: float = 240) -> Any:
    """``python -m module directory`` in a network namespace of its own; its last line's JSON.

    The default namespace's loopback has no MULTICAST flag, so mDNS between processes on
    127.0.0.1 needs a namespace whose loopback has it (root and ``unshare``, which CI has).
    """
    done = subprocess.run(["unshare", "--net", "sh", "-c", _MULTICAST_LOOPBACK, sys.executable,
                           module, str(directory)], cwd=REPO, capture_output=True, text=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and ::1, valid for a day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise RuntimeError("openssl is needed (Debian: apt install openssl)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,IP:::1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


class FakeClock:
    """A clock the test moves by hand: timers fire only when :meth:`advance` passes them."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self._timers: list[tuple[float, int, Callable[[], None], list[bool]]] = []
        self._count = 0

    def time(self) -> float:
        return self.now

    def call_later(self, delay: float, callback: Callable[[], None]) -> Any:
        cancelled = [False]
        self._count += 1
        self._timers.append((self.now + delay, self._count, callback, cancelled))

        class Handle:
            def cancel(self_inner) -> None:
                cancelled[0] = True

        return Handle()

    @property
    def pending(self) -> int:
        return sum(1 for *_, c in self._timers if not c[0])

    def advance(self, seconds: float) -> None:
        self.now += seconds
        due = sorted(t for t in self._timers if t[0] <= self.now)
        self._timers = [t for t in self._timers if t[0] > self.now]
        for _, _, callback, cancelled in due:
            if not cancelled[0]:
                callback()


def log_in(page: Any, server: ServerProcess, token: str | None = None) -> None:
    """Log a Playwright page in through the real flow: the login link, then Sign in."""
    page.goto(f"{server.url}/login?token={token or server.token}")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.url}/")
