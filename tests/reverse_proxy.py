"""Real reverse proxies terminating TLS in front of a pinpanel process, as the README sets
them up: Debian's nginx and Caddy.

Each proxy's configuration is the README's own example (the ``nginx`` and the ``caddyfile``
block), read from README.md, with only its addresses replaced (a free loopback port instead
of 443, the test's throwaway certificate, the test server's port instead of 8080); every
replacement must find its text, so the README cannot drift from what is tested. Each runs
as a child process with its config, logs and state in the test's tmp dir: never the system
service.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, free_port, make_certificate

NGINX = Path("/usr/sbin/nginx")
CADDY = Path("/usr/bin/caddy")


def spki_hash(cert: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's SPKI allowlist wants."""
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"],
                         input=der, capture_output=True, check=True, timeout=30).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          capture_output=True, check=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def readme_block(lang: str, replacements: list[tuple[str, str]]) -> str:
    """The README's one ``lang`` example with this test's addresses in it."""
    blocks = re.findall(rf"```{lang}\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    assert len(blocks) == 1, f"the README has one {lang} example, and the test runs it"
    text = str(blocks[0])
    for old, new in replacements:
        assert text.count(old) == 1, f"the README's {lang} example no longer has {old!r}"
        text = text.replace(old, new)
    return text


def readme_server_block(port: int, upstream: int, cert: Path, key: Path) -> str:
    """The README's nginx ``server { }``."""
    return readme_block("nginx", [
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;\n    listen [::1]:{port} ssl;"),
        ("/etc/ssl/pins.example.org.crt", str(cert)),
        ("/etc/ssl/pins.example.org.key", str(key)),
        ("http://127.0.0.1:8080", f"http://127.0.0.1:{upstream}"),
    ])


def readme_caddyfile(port: int, upstream: int, cert: Path, key: Path) -> str:
    """The README's Caddyfile site, with the test's certificate instead of a real one."""
    site = readme_block("caddyfile", [
        ("pins.example.org {", f"https://127.0.0.1:{port}, https://[::1]:{port} {{\n"
                               f"    tls {cert} {key}"),
        ("127.0.0.1:8080", f"127.0.0.1:{upstream}"),
    ])
    # No admin endpoint, no port-80 redirect listener, no ACME: this is a test on loopback.
    return "{\n    admin off\n    auto_https off\n}\n" + site


@dataclass
class ReverseProxy:
    """A proxy in the foreground with a config of its own, on a free loopback port."""

    directory: Path
    site: str
    port: int
    cert: Path
    proc: subprocess.Popen[bytes] | None = None
    name = "proxy"

    @classmethod
    def in_front_of(cls, upstream: int, directory: Path) -> ReverseProxy:
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = make_certificate(directory)
        port = free_port()
        return cls(directory, cls.readme_site(port, upstream, cert, key), port, cert)

    @staticmethod
    def readme_site(port: int, upstream: int, cert: Path, key: Path) -> str:
        raise NotImplementedError

    def command(self) -> tuple[list[str], dict[str, str]]:
        """Write the config; the command line that runs it, and its environment."""
        raise NotImplementedError

    def check_args(self) -> list[str]:
        """The arguments that only validate the config written by :meth:`command`."""
        raise NotImplementedError

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def url6(self) -> str:
        return f"https://[::1]:{self.port}"

    def start(self, timeout: float = 20) -> ReverseProxy:
        args, env = self.command()
        checked = subprocess.run([*args[:1], *self.check_args()], capture_output=True,
                                 text=True, timeout=30, check=False, env=env)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        with (self.directory / "output.log").open("ab") as output:
            self.proc = subprocess.Popen(args, stdout=output, stderr=output, env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n"
                                   f"{self.log()}")
            try:
                httpx.get(f"{self.url}/healthz", verify=self.trust(), timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start:\n{self.log()}")

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts this proxy's certificate (and checks it)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def log(self) -> str:
        return "".join(path.read_text(errors="replace")
                       for path in sorted(self.directory.glob("*.log")))

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Nginx(ReverseProxy):
    """Debian's nginx with its own prefix, pid file, logs and temp directories."""

    name = "nginx"
    readme_site = staticmethod(readme_server_block)

    def config(self) -> str:
        d = self.directory
        # As root the workers would run as nobody, who cannot enter the test's tmp dir.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.geteuid() == 0 else ""
        temps = "\n".join(f"    {kind}_temp_path {d / kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (f"{user}daemon off;\nworker_processes 1;\npid {d / 'nginx.pid'};\n"
                f"error_log {d / 'error.log'} info;\nevents {{ worker_connections 64; }}\n"
                f"http {{\n    access_log {d / 'access.log'};\n{temps}\n"
                f"{self.site}}}\n")

    def command(self) -> tuple[list[str], dict[str, str]]:
        if not NGINX.exists():
            pytest.fail("nginx is needed (scripts/test installs Debian's nginx)")
        conf = self.directory / "nginx.conf"
        conf.write_text(self.config())
        return [str(NGINX), "-p", str(self.directory), "-c", str(conf),
                "-e", str(self.directory / "error.log")], dict(os.environ)

    def check_args(self) -> list[str]:
        return ["-p", str(self.directory), "-c", str(self.directory / "nginx.conf"),
                "-e", str(self.directory / "error.log"), "-t"]


class Caddy(ReverseProxy):
    """Debian's Caddy, its data and config dirs (certificates, autosave) in the tmp dir."""

    name = "caddy"
    readme_site = staticmethod(readme_caddyfile)

    def command(self) -> tuple[list[str], dict[str, str]]:
        if not CADDY.exists():
            pytest.fail("caddy is needed (scripts/test installs Debian's caddy)")
        conf = self.directory / "Caddyfile"
        conf.write_text(self.site)
        env = {**os.environ, "HOME": str(self.directory),
               "XDG_DATA_HOME": str(self.directory / "data"),
               "XDG_CONFIG_HOME": str(self.directory / "config")}
        return [str(CADDY), "run", "--config", str(conf), "--adapter", "caddyfile"], env

    def check_args(self) -> list[str]:
        return ["validate", "--config", str(self.directory / "Caddyfile"),
                "--adapter", "caddyfile"]
