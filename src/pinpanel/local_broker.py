"""Debian's ``mosquitto`` on a free port of 127.0.0.1, for tests and benchmarks.

Not part of a running pinpanel: the MQTT tests, the fleet tests and the latency benchmark
each need a real broker they own, started and stopped by its PID.
"""

from __future__ import annotations

import contextlib
import getpass
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

MOSQUITTO = "/usr/sbin/mosquitto"


def free_port() -> int:
    """A port nobody listens on right now (the kernel's pick for an ephemeral bind).

    The one copy: tests/support.py, tests/hil/vm.py and bench/ import it from here, since
    this module is already the test-and-bench tooling that src ships and both can import.
    """
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LocalBroker:
    """``mosquitto`` on 127.0.0.1 only, with a throw-away config in ``directory``.

    ``users`` (name -> password) turns anonymous access off and writes a password file with
    ``mosquitto_passwd``; ``tls`` = (certfile, keyfile) makes the listener TLS-only. The
    process is stopped by its own PID, never by name.
    """

    directory: Path
    port: int = field(default_factory=free_port)
    users: dict[str, str] = field(default_factory=dict)
    tls: tuple[Path, Path] | None = None
    #: More configuration lines, as written (a bridge ``connection``, an ``acl_file``...).
    extra: list[str] = field(default_factory=list)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "mosquitto.log"

    def _write_config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        # set_tcp_nodelay: mosquitto leaves Nagle on by default, adding ~40 ms per message
        # that follows another small one (README: "MQTT and Home Assistant").
        # user: run as root (CI containers), mosquitto would switch to the "mosquitto" user,
        # which cannot read a private temporary directory; as anyone else it is ignored.
        lines = [f"listener {self.port} 127.0.0.1", "persistence false", "set_tcp_nodelay true",
                 f"allow_anonymous {'false' if self.users else 'true'}",
                 f"user {getpass.getuser()}"]
        if self.users:
            password_file = self.directory / "passwords"
            password_file.write_text("")
            for name, password in self.users.items():
                subprocess.run(["mosquitto_passwd", "-b", str(password_file), name, password],
                               check=True, capture_output=True)
            lines.append(f"password_file {password_file}")
        if self.tls:
            lines += [f"certfile {self.tls[0]}", f"keyfile {self.tls[1]}"]
        path = self.directory / "mosquitto.conf"
        path.write_text("\n".join([*lines, *self.extra]) + "\n")
        return path

    def start(self, timeout: float = 10) -> LocalBroker:
        """Start (or restart, on the same port) and wait until it accepts connections."""
        config = self._write_config()
        with self.log_path.open("ab") as out:
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(config)], stdout=out,
                                         stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')}")
            with contextlib.suppress(OSError), socket.create_connection(
                    ("127.0.0.1", self.port), timeout=1):
                return self
            time.sleep(0.02)
        self.kill()
        raise RuntimeError(f"mosquitto did not listen on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def kill(self) -> None:
        """SIGKILL: the broker vanishes without a word, as a crash or power cut would."""
        self.stop(signal.SIGKILL)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def temporary_broker() -> Iterator[LocalBroker]:
    """A fresh local mosquitto in a temporary directory, stopped on exit."""
    with tempfile.TemporaryDirectory(prefix="pinpanel-broker-") as tmp, \
            LocalBroker(Path(tmp)) as broker:
        yield broker
