"""Guest agent of pinpanel's HIL tests: a stdlib HTTP/JSON server on port 9000 inside the
emulated Pi, driven by tests/hil/vm.py on the host through a QEMU hostfwd.

It starts and stops pinpanel (the real CLI, real lgpio), hides/restores lgpio, drives lines
with gpiozero+lgpio directly (smoke test, pre-setting latched levels), syncs and reboots.
Only the standard library: it must run even when pinpanel's own dependencies are broken.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

PORT = 9000
DATA = Path("/data")
RUN = Path("/run/pinpanel")  # pinpanel's cwd: lgpio writes its notification files there
LGPIO_HIDDEN = Path("/run/hidden-lgpio")
SITE_DEB = Path("/usr/lib/python3/dist-packages")


def uptime() -> float:
    return float(Path("/proc/uptime").read_text().split()[0])


def console(msg: str) -> None:
    print(f"=== HIL AGENT {msg}", flush=True)


class Pinpanel:
    """One pinpanel process at a time."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = RUN / "pinpanel.log"
        self.argv: list[str] = []
        self.started = 0.0
        self.lock = threading.Lock()

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def status(self) -> dict:
        p = self.proc
        return {"running": p is not None and p.poll() is None, "pid": p.pid if p else None,
                "exit_code": p.poll() if p else None, "argv": self.argv, "log": self.log()}

    def start(self, req: dict) -> dict:
        with self.lock:
            if self.proc is not None and self.proc.poll() is None:
                raise ValueError(f"pinpanel already running (pid {self.proc.pid})")
            RUN.mkdir(parents=True, exist_ok=True)
            data_dir = req.get("data_dir", str(DATA / "state"))
            argv = [sys.executable, "-m", "pinpanel", "serve", "--host", "0.0.0.0",
                    "--port", str(req.get("port", 8080)), "--data-dir", data_dir]
            if req.get("config") is not None:
                cfg = DATA / req.get("config_name", "pinpanel.toml")
                if not DATA.is_mount():
                    cfg = RUN / cfg.name
                cfg.write_text(req["config"])
                argv += ["--config", str(cfg)]
            argv += [str(a) for a in req.get("args", [])]
            env = dict(os.environ, PYTHONUNBUFFERED="1", HOME="/root", LG_WD=str(RUN),
                       **{k: str(v) for k, v in req.get("env", {}).items()})
            self.log_path.write_text("")
            logf = self.log_path.open("ab")
            self.argv = argv
            self.started = time.monotonic()
            self.proc = subprocess.Popen(argv, cwd=RUN, env=env, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
            logf.close()
            console(f"pinpanel started pid={self.proc.pid}: {' '.join(argv)}")
            return {"pid": self.proc.pid, "argv": argv, "uptime": uptime()}

    def wait(self, timeout: float) -> dict:
        p = self.proc
        if p is None:
            raise ValueError("pinpanel was never started")
        with contextlib.suppress(subprocess.TimeoutExpired):
            p.wait(timeout=timeout)
        return self.status()

    def stop(self, sig: str, timeout: float) -> dict:
        p = self.proc
        if p is None:
            raise ValueError("pinpanel was never started")
        t = time.monotonic()
        killed = False
        if p.poll() is None:
            p.send_signal(getattr(signal, f"SIG{sig}"))
            try:
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
                killed = True
        st = self.status()
        st.update(stop_elapsed=round(time.monotonic() - t, 3), killed_after_timeout=killed)
        console(f"pinpanel stopped with SIG{sig}: exit {p.returncode} killed={killed}")
        return st


PANEL = Pinpanel()

DRIVE_LOCK = threading.Lock()


def drive(req: dict) -> dict:
    """Claim lines as outputs at the given levels with gpiozero + lgpio (stock
    DigitalOutputDevice, LGPIOFactory), hold, release. On this (mainline) kernel a released
    bcm2835 line returns to input; QEMU keeps the latched level, which is how tests pre-set a
    line's level before pinpanel claims it. In-process (gpiozero is imported once: about 3 s
    under emulation), one factory per request so nothing stays claimed."""
    t = time.monotonic()
    try:
        with DRIVE_LOCK:
            os.environ["LG_WD"] = "/run"  # lgpio's notification files
            from gpiozero import DigitalOutputDevice
            from gpiozero.pins.lgpio import LGPIOFactory

            factory = LGPIOFactory(chip=0)
            try:
                devs = [DigitalOutputDevice(int(p), initial_value=bool(v), pin_factory=factory)
                        for p, v in req["pins"].items()]
                time.sleep(float(req.get("hold_s", 0)))
                vals = {str(d.pin.info.number): d.value for d in devs}
                board = factory.board_info
                for d in devs:
                    d.close()
            finally:
                factory.close()
        res = {"values": vals, "model": board.model, "revision": board.revision,
               "factory": type(factory).__name__, "rc": 0}
    except Exception as e:  # noqa: BLE001 - reported to the host
        res = {"rc": 1, "stderr": f"{type(e).__name__}: {e}"}
    res["elapsed"] = round(time.monotonic() - t, 3)
    return res


def lgpio_files() -> list[Path]:
    return [*SITE_DEB.glob("lgpio*"), *SITE_DEB.glob("_lgpio*"),
            *(SITE_DEB / "__pycache__").glob("lgpio.*")]


def hide_lgpio() -> dict:
    LGPIO_HIDDEN.mkdir(parents=True, exist_ok=True)
    moved = []
    for f in lgpio_files():
        shutil.move(str(f), str(LGPIO_HIDDEN / f.name))
        moved.append(str(f))
    check = subprocess.run([sys.executable, "-c", "import lgpio"], capture_output=True, text=True)
    return {"moved": moved, "import_lgpio_rc": check.returncode, "stderr": check.stderr[-500:]}


def restore_lgpio() -> dict:
    restored = []
    if LGPIO_HIDDEN.is_dir():
        for f in LGPIO_HIDDEN.iterdir():
            dest = (SITE_DEB / "__pycache__" / f.name) if f.suffix == ".pyc" else SITE_DEB / f.name
            shutil.move(str(f), str(dest))
            restored.append(str(dest))
    check = subprocess.run([sys.executable, "-c", "import lgpio"], capture_output=True, text=True)
    return {"restored": restored, "import_lgpio_rc": check.returncode}


def go_down(stop_pinpanel: bool) -> None:
    """Reboot the board; under QEMU -no-reboot that makes QEMU exit (the host may boot the
    same SD image again). Without stop_pinpanel this is a power cut after a sync."""
    time.sleep(0.2)  # let the HTTP answer leave
    if stop_pinpanel and PANEL.proc is not None and PANEL.proc.poll() is None:
        PANEL.stop("TERM", 20)
    os.sync()
    if DATA.is_mount():
        rc = subprocess.run(["umount", str(DATA)], capture_output=True).returncode
        console(f"umount /data rc={rc}")
    os.sync()
    console("reboot -f")
    subprocess.run(["reboot", "-f"])


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt: str, *args: object) -> None:  # quiet: console is the log
        pass

    def _send(self, code: int, obj: object) -> None:
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> dict:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}") if n else {}

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        try:
            req = self._body() if method == "POST" else {}
            code, res = 200, self._route(method, self.path, req)
        except (ValueError, KeyError, FileNotFoundError) as e:
            code, res = 400, {"error": f"{type(e).__name__}: {e}"}
        except Exception as e:  # noqa: BLE001 - report it, keep serving
            code, res = 500, {"error": f"{type(e).__name__}: {e}"}
        if code != 200:
            console(f"{method} {self.path} -> {code} {res}")
        self._send(code, res)

    def _route(self, method: str, path: str, req: dict) -> object:
        if path == "/ping":
            return {"ok": True, "uptime": uptime(), "data_mounted": DATA.is_mount(),
                    "time": time.time()}
        if method != "POST":
            if path == "/pinpanel/status":
                return PANEL.status()
            raise KeyError(path)
        if path == "/pinpanel/start":
            return PANEL.start(req)
        if path == "/pinpanel/stop":
            return PANEL.stop(req.get("signal", "TERM"), float(req.get("timeout", 30)))
        if path == "/pinpanel/wait":
            return PANEL.wait(float(req.get("timeout", 30)))
        if path == "/gpio/drive":
            return drive(req)
        if path == "/lgpio/hide":
            return hide_lgpio()
        if path == "/lgpio/restore":
            return restore_lgpio()
        if path == "/exec":
            p = subprocess.run(req["argv"], capture_output=True, text=True,
                               timeout=float(req.get("timeout", 30)), cwd=req.get("cwd", "/run"))
            return {"rc": p.returncode, "stdout": p.stdout[-20000:], "stderr": p.stderr[-5000:]}
        if path == "/sync":
            os.sync()
            return {"ok": True}
        if path in ("/reboot", "/poweroff"):
            stop = bool(req.get("stop_pinpanel", path == "/poweroff"))
            threading.Thread(target=go_down, args=(stop,), daemon=True).start()
            return {"ok": True, "stop_pinpanel": stop}
        raise KeyError(path)


def set_clock() -> None:
    """No RTC on the emulated board: take the host's time from the kernel command line."""
    for tok in Path("/proc/cmdline").read_text().split():
        if tok.startswith("hil.epoch="):
            try:
                time.clock_settime(time.CLOCK_REALTIME, float(tok.split("=", 1)[1]))
            except (OSError, ValueError) as e:
                console(f"WARN clock not set: {e}")


def main() -> None:
    set_clock()
    RUN.mkdir(parents=True, exist_ok=True)
    srv = ThreadingHTTPServer(("0.0.0.0", PORT), Handler)
    srv.daemon_threads = True
    console(f"listening on :{PORT}")
    print(f"=== AGENT READY uptime={uptime():.2f}", flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
