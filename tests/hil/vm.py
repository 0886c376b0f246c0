"""Host side of pinpanel's HIL tests: boot the emulated Raspberry Pi 3B, watch its console,
read the BCM2835 GPIO registers over QMP, drive the guest agent and pinpanel over HTTP.

Everything has a timeout; QEMU is only ever stopped by its own PID (``VM.kill``).
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from pinpanel.local_broker import free_port

GPIO_BASE = 0x3F200000  # BCM2837 (Pi 3) GPIO block, ARM physical address
GPFSEL0, GPSET0, GPSET1, GPCLR0, GPCLR1, GPLEV0, GPLEV1 = 0x00, 0x1C, 0x20, 0x28, 0x2C, 0x34, 0x38
FSEL_IN, FSEL_OUT = 0b000, 0b001
READY_MARK = "=== AGENT READY"
PANIC_MARKS = ("Kernel panic", "end Kernel panic")


class VMError(RuntimeError):
    pass


_LIVE: weakref.WeakSet[VM] = weakref.WeakSet()


@atexit.register
def _kill_leftovers() -> None:
    """Last resort (e.g. an interrupted pytest): no QEMU outlives the harness."""
    for machine in list(_LIVE):
        machine.kill()


@dataclass(frozen=True)
class GpioRegs:
    """One snapshot of GPFSEL0-5 and GPLEV0-1."""

    fsel: tuple[int, ...]
    lev: int  # 54 bits, GPLEV1 << 32 | GPLEV0
    t: float = 0.0

    def level(self, pin: int) -> int:
        return (self.lev >> pin) & 1

    def function(self, pin: int) -> int:
        return (self.fsel[pin // 10] >> (3 * (pin % 10))) & 0b111

    def is_output(self, pin: int) -> bool:
        return self.function(pin) == FSEL_OUT

    def pins(self, pins: list[int]) -> dict[int, tuple[str, int]]:
        return {p: ("out" if self.is_output(p) else f"fsel{self.function(p)}", self.level(p))
                for p in pins}


@dataclass
class Recording:
    """Changes of (function, level) of some pins seen by polling GPFSEL/GPLEV over QMP."""

    pins: list[int]
    samples: int = 0
    t_start: float = 0.0
    t_end: float = 0.0
    changes: list[tuple[float, dict[int, tuple[str, int]]]] = field(default_factory=list)

    @property
    def rate_hz(self) -> float:
        d = self.t_end - self.t_start
        return self.samples / d if d > 0 else 0.0

    def history(self, pin: int) -> list[tuple[float, str, int]]:
        """(t, function, level) each time this pin's state changed; the first entry is the
        state when recording started."""
        out: list[tuple[float, str, int]] = []
        for t, st in self.changes:
            fn, lev = st[pin]
            if not out or out[-1][1:] != (fn, lev):
                out.append((t, fn, lev))
        return out

    def levels(self, pin: int) -> list[int]:
        """Distinct successive levels of the pin, e.g. [0, 1, 0]."""
        out: list[int] = []
        for _t, _fn, lev in self.history(pin):
            if not out or out[-1] != lev:
                out.append(lev)
        return out

    def describe(self) -> str:
        lines = [f"{self.samples} samples in {self.t_end - self.t_start:.2f} s "
                 f"({self.rate_hz:.0f}/s)"]
        for t, st in self.changes:
            lines.append(f"  +{t - self.t_start:7.3f}s " + " ".join(
                f"{p}:{fn}/{lev}" for p, (fn, lev) in sorted(st.items())))
        return "\n".join(lines)


@dataclass
class GpioWrite:
    #: Host time of the write as QEMU's trace logged it (``-msg timestamp=on``, microseconds;
    #: single-threaded TCG runs the guest in step with the host clock), else when parsed.
    t: float
    offset: int
    value: int


class QMP:
    """A minimal QMP client (one socket, serialised by a lock)."""

    def __init__(self, path: Path, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = socket.socket(socket.AF_UNIX)
                self.sock.settimeout(timeout)
                self.sock.connect(str(path))
                break
            except OSError:
                self.sock.close()
                if time.monotonic() > deadline:
                    raise VMError(f"QMP socket {path} not available") from None
                time.sleep(0.05)
        self.f = self.sock.makefile("rwb", buffering=0)
        self.lock = threading.Lock()
        json.loads(self.f.readline())  # greeting
        self.execute("qmp_capabilities")

    def execute(self, cmd: str, **args: object) -> object:
        msg = {"execute": cmd, "arguments": args} if args else {"execute": cmd}
        with self.lock:
            self.f.write(json.dumps(msg).encode() + b"\n")
            while True:
                line = self.f.readline()
                if not line:
                    raise VMError("QMP connection closed")
                r = json.loads(line)
                if "return" in r:
                    return r["return"]
                if "error" in r:
                    raise VMError(f"QMP {cmd}: {r['error']}")
                # else: an asynchronous event; ignore

    def hmp(self, command_line: str) -> str:
        return str(self.execute("human-monitor-command", **{"command-line": command_line}))

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()


@dataclass
class Image:
    kernel: Path
    dtb: Path
    initrd: Path


class VM:
    """One emulated Pi 3B. ``boot()`` may be called again after the guest rebooted (QEMU
    exits on reboot because of -no-reboot): same SD image, fresh QEMU, fresh GPIO block."""

    def __init__(self, image: Image, workdir: Path, sd_image: Path | None = None,
                 boot_timeout: float = 300.0, memory: str = "1G") -> None:
        self.image = image
        self.workdir = workdir
        self.sd_image = sd_image
        self.boot_timeout = boot_timeout
        self.memory = memory
        self.proc: subprocess.Popen[bytes] | None = None
        self.qmp_conn: QMP | None = None
        self.boots = 0
        self.console_lines: list[str] = []
        self.ready = threading.Event()
        self.panic: str | None = None
        self.boot_seconds: list[float] = []
        self.pinpanel_ready_s: list[float] = []
        self.shared_pinpanel = False  # set while a fixture keeps one pinpanel for many tests
        self.agent_port = 0
        self.http_port = 0
        self._console_log = None
        self._t0 = 0.0
        self.trace_log = workdir / "qemu-trace.log"
        # QMP's socket path must be short (sun_path is 108 bytes): a private dir in /tmp.
        self._sockdir = Path(tempfile.mkdtemp(prefix="pinpanel-hil-"))
        _LIVE.add(self)

    # ---------------------------------------------------------------- lifecycle
    def _cmd(self) -> list[str]:
        append = (f"console=ttyAMA0 rdinit=/init panic=-1 hil.epoch={time.time():.3f}"
                  + (" hil.sd=1" if self.sd_image else ""))
        cmd = [
            "qemu-system-aarch64", "-M", "raspi3b", "-m", self.memory,
            # Single-threaded TCG: MTTCG's 4 vCPUs fight over 2 host cores (boot 3x slower).
            "-accel", "tcg,thread=single",
            "-kernel", str(self.image.kernel), "-dtb", str(self.image.dtb),
            "-initrd", str(self.image.initrd), "-append", append,
            "-display", "none", "-serial", "stdio", "-monitor", "none", "-no-reboot",
            "-qmp", f"unix:{self._sockdir / 'qmp.sock'},server=on,wait=off",
            "-D", str(self.trace_log),
            # Each trace line stamped with the host time of the write (pwm duty, pulse width).
            "-msg", "timestamp=on",
            "-device", "usb-net,netdev=net0,bus=usb-bus.0,port=1",
            "-netdev", (f"user,id=net0,net=10.0.2.0/24,"
                        f"hostfwd=tcp:127.0.0.1:{self.http_port}-:8080,"
                        f"hostfwd=tcp:127.0.0.1:{self.agent_port}-:9000"),
        ]
        if self.sd_image:
            cmd += ["-drive", f"if=sd,format=raw,file={self.sd_image}"]
        return cmd

    def boot(self) -> float:
        """Start QEMU and wait for the agent. Returns the seconds it took."""
        if self.running:
            raise VMError("VM already running")
        last_err: Exception | None = None
        for _attempt in range(3):  # a hostfwd port may be taken between free_port() and QEMU
            self.agent_port, self.http_port = free_port(), free_port()
            try:
                return self._boot_once()
            except VMError as e:
                last_err = e
                if "hostfwd" not in str(e) and "Could not set up host forwarding" not in str(e):
                    raise
        raise VMError(f"QEMU failed to start 3 times: {last_err}")

    def _boot_once(self) -> float:
        self.boots += 1
        self.ready.clear()
        self.panic = None
        self.console_lines = []
        self._t0 = time.monotonic()
        (self._sockdir / "qmp.sock").unlink(missing_ok=True)
        console = self.workdir / f"console-boot{self.boots}.log"
        self._console_log = console.open("w")
        self.proc = subprocess.Popen(self._cmd(), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        threading.Thread(target=self._read_console, args=(self.proc, self._console_log),
                         daemon=True).start()
        try:
            deadline = self._t0 + self.boot_timeout
            while not self.ready.wait(0.1):
                if self.panic:
                    raise VMError(f"guest kernel panic during boot: {self.panic}\n"
                                  + self.console_tail())
                if self.proc.poll() is not None:
                    raise VMError(f"QEMU exited with {self.proc.returncode} during boot\n"
                                  + self.console_tail())
                if time.monotonic() > deadline:
                    raise VMError(f"no '{READY_MARK}' within {self.boot_timeout:.0f} s\n"
                                  + self.console_tail())
            self.qmp_conn = QMP(self._sockdir / "qmp.sock")
        except BaseException:
            self.kill()
            raise
        took = time.monotonic() - self._t0
        self.boot_seconds.append(round(took, 2))
        return took

    def _read_console(self, proc: subprocess.Popen[bytes], logf) -> None:  # type: ignore[no-untyped-def]
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode(errors="replace").rstrip("\r\n")
            self.console_lines.append(line)
            with contextlib.suppress(ValueError):
                logf.write(f"{time.monotonic() - self._t0:8.3f} {line}\n")
                logf.flush()
            if READY_MARK in line:
                self.ready.set()
            if any(m in line for m in PANIC_MARKS) and not self.panic:
                self.panic = line.strip()
        with contextlib.suppress(ValueError):
            logf.close()
        proc.stdout.close()

    def console_tail(self, n: int = 40) -> str:
        return "--- guest console (last lines) ---\n" + "\n".join(self.console_lines[-n:])

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit by itself (guest `reboot -f`); kill it by PID on timeout."""
        assert self.proc is not None
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            raise VMError(f"QEMU did not exit within {timeout} s (killed pid)\n"
                          + self.console_tail()) from None
        self._after_exit()
        return rc

    def _after_exit(self) -> None:
        if self.qmp_conn:
            self.qmp_conn.close()
            self.qmp_conn = None

    def kill(self) -> None:
        """Stop QEMU by its PID (SIGTERM, then SIGKILL)."""
        p = self.proc
        if p is not None and p.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(p.pid, signal.SIGTERM)
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        self._after_exit()

    def reboot(self, stop_pinpanel: bool = False, timeout: float = 60.0) -> float:
        """Guest reboot (sync + reboot -f) -> QEMU exits -> boot again with the same SD card.
        Returns the seconds from the request until the agent answered again."""
        t = time.monotonic()
        self.agent("POST", "/reboot", {"stop_pinpanel": stop_pinpanel})
        rc = self.wait_exit(timeout)
        if rc != 0:
            raise VMError(f"QEMU exited with {rc} on guest reboot\n" + self.console_tail())
        self.boot()
        return time.monotonic() - t

    def shutdown(self, timeout: float = 30.0) -> None:
        """Stop pinpanel, unmount, reboot -f (QEMU exits); kill by PID if that fails."""
        if not self.running:
            self._after_exit()
            return
        try:
            self.agent("POST", "/poweroff", {}, timeout=10)
            self.wait_exit(timeout)
        except (VMError, OSError):
            self.kill()

    def close(self) -> None:
        try:
            self.shutdown()
        finally:
            self.kill()
            shutil.rmtree(self._sockdir, ignore_errors=True)

    # ---------------------------------------------------------------- GPIO registers over QMP
    @property
    def qmp(self) -> QMP:
        if self.qmp_conn is None:
            raise VMError("VM not running")
        return self.qmp_conn

    def regs(self) -> GpioRegs:
        """GPFSEL0-5 and GPLEV0-1 in one `xp` of 0x00..0x38. Reading the block's other words
        (reserved, write-only GPSET/GPCLR) returns 0 and changes nothing in QEMU's model."""
        w = self._xp(GPIO_BASE + GPFSEL0, (GPLEV1 - GPFSEL0) // 4 + 1)
        return GpioRegs(tuple(w[:6]), w[GPLEV0 // 4] | (w[GPLEV1 // 4] << 32), time.monotonic())

    def _xp(self, addr: int, words: int) -> list[int]:
        out = self.qmp.hmp(f"xp /{words}wx {addr:#x}")
        vals = [int(v, 16) for v in re.findall(r"0x([0-9a-fA-F]{8})(?!:)", out)]
        # lines look like "000000003f200000: 0x00000000 0x00000000 ..."
        if len(vals) != words:
            raise VMError(f"unexpected xp output: {out!r}")
        return vals

    def level(self, pin: int) -> int:
        return self.regs().level(pin)

    def levels(self, pins: list[int]) -> dict[int, int]:
        r = self.regs()
        return {p: r.level(p) for p in pins}

    @contextlib.contextmanager
    def record(self, pins: list[int]) -> Iterator[Recording]:
        """Poll GPFSEL/GPLEV as fast as QMP answers, in a thread, while the block runs; keep
        every change of the given pins' (function, level)."""
        rec = Recording(pins=list(pins))
        stop = threading.Event()
        err: list[BaseException] = []

        def loop() -> None:
            last = None
            try:
                while not stop.is_set():
                    r = self.regs()
                    rec.samples += 1
                    st = r.pins(rec.pins)
                    if st != last:
                        rec.changes.append((r.t, st))
                        last = st
            except BaseException as e:  # noqa: BLE001 - re-raised below
                err.append(e)

        rec.t_start = time.monotonic()
        th = threading.Thread(target=loop, daemon=True)
        th.start()
        try:
            yield rec
        finally:
            time.sleep(0.05)
            stop.set()
            th.join(10)
            rec.t_end = time.monotonic()
        if err:
            raise VMError(f"GPIO polling failed: {err[0]!r}")

    def wait_level(self, pin: int, level: int, timeout: float = 10.0) -> float:
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.level(pin) == level:
                return time.monotonic() - t
            time.sleep(0.005)
        raise AssertionError(f"GPIO{pin} did not reach level {level} within {timeout} s "
                             f"(regs {self.regs().pins([pin])})")

    # ------------------------------------------------ exact register-write trace (QEMU -trace)
    @contextlib.contextmanager
    def trace_gpio_writes(self) -> Iterator[list[GpioWrite]]:
        """Every guest write to the GPIO block while the block runs, in order, from QEMU's
        ``memory_region_ops_write`` trace event (log backend, -D file). Unlike polling, this
        cannot miss a short glitch. Yields a list filled in when the block ends."""
        writes: list[GpioWrite] = []
        start = self.trace_log.stat().st_size if self.trace_log.exists() else 0
        self.qmp.execute("trace-event-set-state", name="memory_region_ops_write", enable=True)
        try:
            yield writes
        finally:
            if self.running and self.qmp_conn:
                self.qmp.execute("trace-event-set-state", name="memory_region_ops_write",
                                 enable=False)
            # QEMU's log is line-buffered by the trace backend; wait until it stops growing.
            size = -1
            for _ in range(40):
                now = self.trace_log.stat().st_size if self.trace_log.exists() else 0
                if now == size:
                    break
                size = now
                time.sleep(0.05)
            writes.extend(self._parse_trace(start))

    def _parse_trace(self, start: int) -> list[GpioWrite]:
        out = []
        pat = re.compile(r"memory_region_ops_write .*?addr 0x([0-9a-f]+) value 0x([0-9a-f]+)"
                         r" size \d+ name '([^']*)'")
        stamp = re.compile(r"\d+@(\d+)\.(\d{6}):memory_region_ops_write")
        with self.trace_log.open("rb") as f:
            f.seek(start)
            for raw in f:
                line = raw.decode(errors="replace")
                if "bcm2835_gpio" not in line:
                    continue
                m = pat.search(line)
                if m:
                    # QEMU prints the offset in the block here (or an absolute address)
                    off = int(m.group(1), 16) & 0xFFF
                    at = stamp.search(line)
                    t = int(at.group(1)) + int(at.group(2)) / 1e6 if at else time.monotonic()
                    out.append(GpioWrite(t, off, int(m.group(2), 16)))
        return out

    # ---------------------------------------------------------------- HTTP
    def _http(self, port: int, method: str, path: str, body: object = None,
              headers: dict[str, str] | None = None, timeout: float = 30.0,
              raw_body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        try:
            data = raw_body if raw_body is not None else (
                json.dumps(body).encode() if body is not None else None)
            hdrs = dict(headers or {})
            if body is not None and raw_body is None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=data, headers=hdrs)
            r = conn.getresponse()
            return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
        finally:
            conn.close()

    def agent(self, method: str, path: str, body: object = None, timeout: float = 60.0) -> dict:
        try:
            status, _h, data = self._http(self.agent_port, method, path, body, timeout=timeout)
        except (OSError, http.client.HTTPException) as e:
            if self.panic:
                raise VMError(f"guest kernel panic: {self.panic}\n{self.console_tail()}") from e
            if not self.running:
                raise VMError(f"QEMU is gone (rc {self.proc.returncode if self.proc else None})"
                              f"\n{self.console_tail()}") from e
            raise
        res = json.loads(data)
        if status != 200:
            raise VMError(f"agent {method} {path}: {status} {res}")
        return res

    def http(self, method: str, path: str, body: object = None,
             headers: dict[str, str] | None = None, timeout: float = 30.0,
             raw_body: bytes | None = None) -> tuple[int, dict[str, str], bytes]:
        """A request to pinpanel inside the guest (port 8080)."""
        return self._http(self.http_port, method, path, body, headers, timeout, raw_body)

    def http_json(self, method: str, path: str, body: object = None,
                  headers: dict[str, str] | None = None, expect: int | None = 200,
                  timeout: float = 30.0) -> object:
        status, _h, data = self.http(method, path, body, headers, timeout)
        if expect is not None and status != expect:
            raise AssertionError(f"{method} {path} -> {status} (expected {expect}): "
                                 f"{data[:500]!r}")
        return json.loads(data)

    # ---------------------------------------------------------------- pinpanel in the guest
    def start_pinpanel(self, config: str | None, args: list[str] | None = None,
                       data_dir: str = "/data/state", ready_timeout: float = 300.0,
                       wait_ready: bool = True) -> dict:
        """Start ``python3 -m pinpanel serve`` in the guest; wait until /healthz answers."""
        res = self.agent("POST", "/pinpanel/start",
                         {"config": config, "args": args or [], "data_dir": data_dir})
        if wait_ready:
            res["ready_s"] = self.wait_pinpanel_ready(ready_timeout)
            self.pinpanel_ready_s.append(round(res["ready_s"], 2))
        return res

    def wait_pinpanel_ready(self, timeout: float = 300.0) -> float:
        t = time.monotonic()
        while True:
            st = None
            try:
                status, _h, _b = self.http("GET", "/healthz", timeout=5)
                if status == 200:
                    return time.monotonic() - t
            except (OSError, http.client.HTTPException):
                pass
            st = self.agent("GET", "/pinpanel/status")
            if not st["running"]:
                raise VMError(f"pinpanel exited with {st['exit_code']} before serving:\n"
                              + st["log"][-4000:])
            if time.monotonic() - t > timeout:
                raise VMError(f"pinpanel not ready within {timeout} s:\n" + st["log"][-4000:])
            time.sleep(0.1)

    def stop_pinpanel(self, sig: str = "TERM", timeout: float = 30.0) -> dict:
        return self.agent("POST", "/pinpanel/stop", {"signal": sig, "timeout": timeout},
                          timeout=timeout + 30)

    def pinpanel_status(self) -> dict:
        return self.agent("GET", "/pinpanel/status")

    def drive(self, pins: dict[int, int], hold_s: float = 0.0) -> dict:
        """Claim lines as outputs at the given levels with the guest's gpiozero+lgpio, hold,
        release (QEMU keeps the latched level; the line reverts to input)."""
        res = self.agent("POST", "/gpio/drive",
                         {"pins": {str(p): v for p, v in pins.items()}, "hold_s": hold_s},
                         timeout=240 + hold_s)
        if res.get("rc") != 0:
            raise VMError(f"gpio drive failed: {res}")
        return res

    def exec(self, argv: list[str], timeout: float = 30.0) -> dict:
        return self.agent("POST", "/exec", {"argv": argv, "timeout": timeout},
                          timeout=timeout + 30)


def make_sd_image(path: Path, files: dict[str, str] | None = None, size_mb: int = 64) -> Path:
    """An ext4 SD card image made with mkfs.ext4 -d (no root mount needed). QEMU wants the
    size of an SD card to be a power of 2."""
    if size_mb & (size_mb - 1):
        raise ValueError("SD image size must be a power of 2")
    with tempfile.TemporaryDirectory(prefix="pinpanel-sd-") as tmp:
        for rel, text in (files or {}).items():
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            (Path(tmp) / rel).write_text(text)
        path.unlink(missing_ok=True)
        subprocess.run(["mkfs.ext4", "-q", "-F", "-L", "pinpanel-data", "-d", tmp, str(path),
                        f"{size_mb}M"], check=True, capture_output=True, timeout=60)
    return path


def replay(start: GpioRegs, writes: list[GpioWrite], pins: list[int]
           ) -> dict[int, list[tuple[str, int]]]:
    """Replay register writes on a snapshot as QEMU's bcm2835_gpio model does (GPSET/GPCLR
    latch the level whatever the direction; GPFSELn sets functions). For each pin: the
    successive distinct (function, level) states, starting with the snapshot's. Exact: every
    write is in the trace, so no glitch can fall between two samples."""
    fsel, lev = list(start.fsel), start.lev
    out = {p: [start.pins([p])[p]] for p in pins}
    for w in writes:
        if w.offset <= 0x14 and w.offset % 4 == 0:
            fsel[w.offset // 4] = w.value
        elif w.offset == GPSET0:
            lev |= w.value
        elif w.offset == GPSET1:
            lev |= w.value << 32
        elif w.offset == GPCLR0:
            lev &= ~w.value
        elif w.offset == GPCLR1:
            lev &= ~(w.value << 32)
        else:
            continue
        now = GpioRegs(tuple(fsel), lev)
        for p in pins:
            st = now.pins([p])[p]
            if out[p][-1] != st:
                out[p].append(st)
    return out
