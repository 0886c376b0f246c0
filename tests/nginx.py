"""A real nginx terminating TLS in front of a pinpanel process, as the README sets it up.

The ``server { }`` block is the README's own ``nginx`` example, read from README.md, with
only its addresses replaced (a free loopback port instead of 443, the test's throwaway
certificate, the test server's port instead of 8080); every replacement must find its
text, so the README cannot drift from what is tested. nginx runs as a child process with
its own prefix, pid file, logs and temp directories in the test's tmp dir: never the
system service.
"""

from __future__ import annotations

import base64
import hashlib
import os
import pwd
import re
import shutil
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.support import REPO, free_port

NGINX = Path("/usr/sbin/nginx")
README_BLOCK = re.compile(r"```nginx\n(.*?)```", re.S)


def make_certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed P-256 certificate for 127.0.0.1 and ::1, valid for a day."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl is needed (Debian: apt install openssl)")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1,IP:::1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=30)
    return cert, key


def spki_hash(cert: Path) -> str:
    """base64(SHA-256(SubjectPublicKeyInfo)): what Chromium's SPKI allowlist wants."""
    der = ssl.PEM_cert_to_DER_cert(cert.read_text())
    pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"],
                         input=der, capture_output=True, check=True, timeout=30).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          capture_output=True, check=True, timeout=30).stdout
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def readme_server_block(port: int, upstream: int, cert: Path, key: Path) -> str:
    """The README's nginx ``server { }`` with this test's addresses in it."""
    blocks = README_BLOCK.findall((REPO / "README.md").read_text())
    assert len(blocks) == 1, "the README has one nginx example, and the test runs it"
    text = blocks[0]
    for old, new in (
        ("listen 443 ssl;", f"listen 127.0.0.1:{port} ssl;\n    listen [::1]:{port} ssl;"),
        ("/etc/ssl/pins.example.org.crt", str(cert)),
        ("/etc/ssl/pins.example.org.key", str(key)),
        ("http://127.0.0.1:8080", f"http://127.0.0.1:{upstream}"),
    ):
        assert text.count(old) == 1, f"the README's nginx example no longer has {old!r}"
        text = text.replace(old, new)
    return text


@dataclass
class Nginx:
    """``nginx`` in the foreground with a config of its own, on a free loopback port."""

    directory: Path
    server_block: str
    port: int
    cert: Path
    proc: subprocess.Popen[bytes] | None = None

    @classmethod
    def in_front_of(cls, upstream: int, directory: Path) -> Nginx:
        if not NGINX.exists():
            pytest.fail("nginx is needed (scripts/test installs Debian's nginx)")
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = make_certificate(directory)
        port = free_port()
        return cls(directory, readme_server_block(port, upstream, cert, key), port, cert)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def url6(self) -> str:
        return f"https://[::1]:{self.port}"

    def config(self) -> str:
        d = self.directory
        # As root the workers would run as nobody, who cannot enter the test's tmp dir.
        user = f"user {pwd.getpwuid(os.getuid()).pw_name};\n" if os.geteuid() == 0 else ""
        temps = "\n".join(f"    {kind}_temp_path {d / kind};"
                          for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        return (f"{user}daemon off;\nworker_processes 1;\npid {d / 'nginx.pid'};\n"
                f"error_log {d / 'error.log'} info;\nevents {{ worker_connections 64; }}\n"
                f"http {{\n    access_log {d / 'access.log'};\n{temps}\n"
                f"{self.server_block}}}\n")

    def start(self, timeout: float = 20) -> Nginx:
        conf = self.directory / "nginx.conf"
        conf.write_text(self.config())
        args = [str(NGINX), "-p", str(self.directory), "-c", str(conf),
                "-e", str(self.directory / "error.log")]
        checked = subprocess.run([*args, "-t"], capture_output=True, text=True, timeout=30,
                                 check=False)
        assert checked.returncode == 0, checked.stderr
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"nginx exited with {self.proc.returncode}:\n{self.log()}")
            try:
                httpx.get(f"{self.url}/healthz", verify=self.trust(), timeout=1)
                return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise RuntimeError(f"nginx did not start:\n{self.log()}")

    def trust(self) -> ssl.SSLContext:
        """A client context that trusts this nginx's certificate (and checks it)."""
        return ssl.create_default_context(cafile=str(self.cert))

    def log(self) -> str:
        path = self.directory / "error.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
