"""Guest agent of pinpanel's HIL tests: a stdlib HTTP/JSON server on port 9000 inside the
emulated Pi, driven by tests/hil/vm.py on the host through a QEMU hostfwd.

It starts and stops pinpanel (the real CLI, real lgpio), hides/restores lgpio, drives lines
with gpiozero+lgpio directly (smoke test, pre-setting latched levels), makes gpio-sim chips
through configfs and moves their lines as a button would, syncs and reboots.
Only the standard library: it must run even when pinpanel's own dependencies are broken.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import stat
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
GPIOSIM = Path("/sys/kernel/config/gpio-sim")


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
            only = req.get("only_gpiochips")
            self.proc = subprocess.Popen(argv, cwd=RUN, env=env, stdin=subprocess.DEVNULL,
                                         stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True,
                                         preexec_fn=private_dev(only) if only is not None
                                         else None)
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


def private_dev(chips: list[int]):  # type: ignore[no-untyped-def]
    """A preexec_fn: the child gets its own mount namespace whose /dev holds only null, zero,
    random, urandom and the given /dev/gpiochipN (same device numbers). How a test shows
    pinpanel a Pi 5's chips while this board's own pinctrl-bcm2835 (built in, not unbindable)
    stays out of sight: what pinpanel scans is what it could open."""
    nodes = [(name, Path(f"/dev/{name}").stat().st_rdev) for name in
             ("null", "zero", "random", "urandom", *[f"gpiochip{n}" for n in chips])]
    libc = ctypes.CDLL(None, use_errno=True)
    clone_newns, ms_rec, ms_private = 0x20000, 0x4000, 0x40000

    def enter() -> None:
        if libc.unshare(clone_newns) != 0 or \
                libc.mount(b"none", b"/", None, ms_rec | ms_private, None) != 0 or \
                libc.mount(b"tmpfs", b"/dev", b"tmpfs", 0, b"mode=755") != 0:
            raise OSError(ctypes.get_errno(), "private /dev")
        for name, rdev in nodes:
            os.mknod(f"/dev/{name}", 0o666 | stat.S_IFCHR, rdev)
    return enter


class Sim:
    """gpio-sim chips, one configfs device per chip (so each has its own parent device, as
    a Pi's chips do), driven through /sys/devices/platform/<dev>/<chip>/sim_gpioN/pull."""

    def __init__(self) -> None:
        self.chips: list[dict] = []
        self.lock = threading.Lock()

    def teardown(self) -> None:
        for dev in sorted(GPIOSIM.iterdir()) if GPIOSIM.is_dir() else []:
            with contextlib.suppress(OSError):
                (dev / "live").write_text("0")
            for bank in dev.iterdir():
                if bank.is_dir():
                    bank.rmdir()
            dev.rmdir()
        self.chips = []

    def setup(self, req: dict) -> dict:
        """Replace every sim chip by ``req["chips"]`` ([{label, lines}], made in order, so
        each takes the lowest free gpiochip number)."""
        with self.lock:
            if PANEL.proc is not None and PANEL.proc.poll() is None:
                raise ValueError("stop pinpanel before remaking the sim chips")
            self.teardown()
            for i, spec in enumerate(req["chips"]):
                dev = GPIOSIM / f"sim{i}"
                dev.mkdir()
                bank = dev / "bank0"
                bank.mkdir()
                (bank / "num_lines").write_text(str(int(spec.get("lines", 28))))
                (bank / "label").write_text(spec["label"])
                (dev / "live").write_text("1")
                chip = (bank / "chip_name").read_text().strip()
                self.chips.append({"label": spec["label"], "chip": chip,
                                   "dev": (dev / "dev_name").read_text().strip(),
                                   "number": int(chip.removeprefix("gpiochip"))})
            return {"chips": self.chips, "dev": sorted(p.name for p in Path("/dev").iterdir()
                                                       if p.name.startswith("gpiochip"))}

    def _line(self, chip: str, line: int) -> Path:
        found = next((c for c in self.chips if chip in (c["chip"], c["label"])), None)
        if found is None:
            raise ValueError(f"no sim chip {chip!r}: {self.chips}")
        return Path("/sys/devices/platform") / found["dev"] / found["chip"] / f"sim_gpio{line}"

    def pull(self, req: dict) -> dict:
        """Steps [[line, "up"|"down", hold_s], ...] on one chip, back to back: a bounce burst
        is as tight as this loop in the guest (about a millisecond a step)."""
        steps = [(self._line(req["chip"], int(n)), f"pull-{d}", float(h))
                 for n, d, h in req["steps"]]
        t = time.monotonic()
        for line, pull, hold in steps:
            (line / "pull").write_text(pull)
            if hold:
                time.sleep(hold)
        took = time.monotonic() - t
        return {"steps": len(steps), "elapsed": round(took, 4)}

    def values(self, req: dict) -> dict:
        return {str(n): int((self._line(req["chip"], int(n)) / "value").read_text())
                for n in req["lines"]}


SIM = Sim()

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
        if path == "/gpiosim/setup":
            return SIM.setup(req)
        if path == "/gpiosim/pull":
            return SIM.pull(req)
        if path == "/gpiosim/values":
            return SIM.values(req)
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
