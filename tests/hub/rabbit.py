"""Debian's RabbitMQ 3.10 with its MQTT plugin: two clustered nodes on one machine.

Each node has its own name (``pp-a@localhost``, ``pp-b@localhost``), its own AMQP,
distribution and MQTT ports, data and log directories under the test's directory, and both
share one Erlang cookie (``$HOME/.erlang.cookie``, HOME being that directory) and one epmd
on a port of their own. Node b joins node a's cluster. Every process is stopped by its PID
(epmd by ``epmd -kill`` on its own port), never by name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from pinpanel.local_broker import free_port

SERVER = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")
CTL = Path("/usr/lib/rabbitmq/bin/rabbitmqctl")
BOOT_TIMEOUT_S = 300


@dataclass
class RabbitNode:
    """One node; ``port`` is its MQTT listener (what a Pi or the hub connects to)."""

    name: str
    root: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)
    amqp_port: int = field(default_factory=free_port)
    dist_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def node(self) -> str:
        return f"{self.name}@localhost"

    @property
    def directory(self) -> Path:
        return self.root / self.name

    def environment(self) -> dict[str, str]:
        d = self.directory
        return {**self.env, "RABBITMQ_NODENAME": self.node, "RABBITMQ_NODE_PORT":
                str(self.amqp_port), "RABBITMQ_DIST_PORT": str(self.dist_port),
                "RABBITMQ_MNESIA_BASE": str(d / "mnesia"), "RABBITMQ_LOG_BASE": str(d / "log"),
                "RABBITMQ_CONFIG_FILE": str(d / "rabbitmq.conf"),
                "RABBITMQ_ENABLED_PLUGINS_FILE": str(d / "enabled_plugins"),
                "RABBITMQ_PID_FILE": str(d / "pid"), "RABBITMQ_ADVANCED_CONFIG_FILE":
                str(d / "advanced.config"), "RABBITMQ_CONF_ENV_FILE": str(d / "env.conf")}

    def start(self) -> RabbitNode:
        d = self.directory
        (d / "log").mkdir(parents=True, exist_ok=True)
        (d / "rabbitmq.conf").write_text(
            f"listeners.tcp.default = 127.0.0.1:{self.amqp_port}\n"
            f"mqtt.listeners.tcp.default = 127.0.0.1:{self.port}\n"
            "mqtt.allow_anonymous = true\nloopback_users = none\n"
            "log.console = false\nlog.file.level = info\n")
        (d / "enabled_plugins").write_text("[rabbitmq_mqtt].\n")
        (d / "advanced.config").write_text("[].\n")
        (d / "env.conf").write_text("")
        with (d / "console.log").open("ab") as out:
            self.proc = subprocess.Popen([str(SERVER)], env=self.environment(), stdout=out,
                                         stderr=subprocess.STDOUT, cwd=d)
        return self

    def ctl(self, *args: str, timeout: float = 120) -> str:
        done = subprocess.run([str(CTL), "-n", self.node, *args], env=self.environment(),
                              capture_output=True, text=True, timeout=timeout, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"rabbitmqctl {' '.join(args)}: {done.stdout}{done.stderr}")
        return done.stdout

    def await_startup(self) -> None:
        deadline = time.monotonic() + BOOT_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"{self.node} exited: "
                                   f"{(self.directory / 'console.log').read_text()[-2000:]}")
            try:
                self.ctl("await_startup", "--timeout", "60", timeout=90)
                return
            except (RuntimeError, subprocess.TimeoutExpired):
                time.sleep(1)
        raise RuntimeError(f"{self.node} did not start")

    def stop(self) -> None:
        """SIGKILL the node's Erlang VM (its pid file's PID: the start script forks it)."""
        pid_file = self.directory / "pid"
        with contextlib.suppress(OSError, ValueError):
            os.kill(int(pid_file.read_text().strip()), signal.SIGKILL)
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
        if self.proc is not None:
            self.proc.wait()


@dataclass
class RabbitCluster:
    root: Path
    epmd_port: int = field(default_factory=free_port)
    nodes: list[RabbitNode] = field(default_factory=list)

    def start(self) -> RabbitCluster:
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        cookie = home / ".erlang.cookie"
        cookie.write_text(secrets.token_hex(16).upper())
        cookie.chmod(0o400)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
               "ERL_EPMD_PORT": str(self.epmd_port), "LANG": "C.UTF-8", "LC_ALL": "C.UTF-8"}
        self.nodes = [RabbitNode("pp-a", self.root, env), RabbitNode("pp-b", self.root, env)]
        try:
            for node in self.nodes:
                node.start()
            for node in self.nodes:
                node.await_startup()
            a, b = self.nodes
            b.ctl("stop_app")
            b.ctl("join_cluster", a.node)
            b.ctl("start_app")
            b.await_startup()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()
        # The nodes' epmd (started by the first node, on this cluster's own port).
        for _ in range(50):
            done = subprocess.run(["epmd", "-kill"], capture_output=True, check=False, env={
                "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
                "ERL_EPMD_PORT": str(self.epmd_port)})
            if done.returncode == 0 or b"Killed" in done.stdout:
                return
            time.sleep(0.1)
