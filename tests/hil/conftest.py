"""Fixtures of the hardware-in-the-loop tests: the guest image (built or taken from the cache),
one emulated Pi 3B per test module, and pinpanel's log on failure. See tests/hil/README.md."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from vm import VM, Image, VMError, make_sd_image  # noqa: E402

# Host tools the image build and the VM need, and the Debian packages that carry them.
TOOLS = {
    "qemu-system-aarch64": "qemu-system-arm", "cpio": "cpio", "depmod": "kmod",
    "fdtput": "device-tree-compiler", "aarch64-linux-gnu-gcc": "gcc-aarch64-linux-gnu",
    "aarch64-linux-gnu-readelf": "binutils-aarch64-linux-gnu", "swig": "swig",
    "mkfs.ext4": "e2fsprogs", "dpkg-deb": "dpkg", "apt-get": "apt",
    # the gpio-sim module build and test_edges.py's broker
    "make": "make", "xz": "xz-utils", "aarch64-linux-gnu-gcc-12": "gcc-12-aarch64-linux-gnu",
    "aarch64-linux-gnu-strip": "binutils-aarch64-linux-gnu", "modinfo": "kmod",
    "mosquitto_sub": "mosquitto-clients",
}
COSTS: dict[str, object] = {"boots_s": [], "pinpanel_ready_s": []}


def _missing_tools() -> list[str]:
    missing = sorted({pkg for tool, pkg in TOOLS.items() if shutil.which(tool) is None})
    if not Path("/usr/aarch64-linux-gnu/include/stdio.h").exists():
        missing.append("libc6-dev-arm64-cross")
    return missing


@pytest.fixture(scope="session")
def hil_image() -> Image:
    """Build (or reuse from tests/hil/.cache) the kernel, dtb and initramfs."""
    missing = _missing_tools()
    if missing:
        pytest.fail("HIL tests need Debian packages that are not installed: "
                    f"apt-get install --no-install-recommends {' '.join(missing)}",
                    pytrace=False)
    if os.geteuid() != 0:
        pytest.fail("HIL image build needs root (apt-get download of arm64 .debs)", pytrace=False)
    cache = Path(os.environ.get("PINPANEL_HIL_CACHE", HERE / ".cache"))
    cache.mkdir(parents=True, exist_ok=True)
    log = cache / "build.log"
    t = time.monotonic()
    with log.open("w") as err:
        p = subprocess.run([sys.executable, str(HERE / "build_image.py"), "--json",
                            "--cache", str(cache)], stdout=subprocess.PIPE, stderr=err,
                           text=True, timeout=1500)
    if p.returncode != 0:
        pytest.fail(f"image build failed (rc {p.returncode}); {log}:\n"
                    + log.read_text()[-5000:], pytrace=False)
    res = json.loads(p.stdout)
    COSTS["image_build_s"] = round(time.monotonic() - t, 1)
    COSTS["image"] = {k: res[k] for k in ("dir", "initrd_mb", "timings_s", "layers")}
    return Image(Path(res["kernel"]), Path(res["dtb"]), Path(res["initrd"]))


@pytest.fixture(scope="module")
def vm(hil_image: Image, tmp_path_factory: pytest.TempPathFactory) -> Iterator[VM]:
    """One booted emulated Pi 3B (with an ext4 SD card at /data) for the whole module.
    Tests that reboot it leave it booted again."""
    work = tmp_path_factory.mktemp("hil-vm")
    sd = make_sd_image(work / "sd.img", {"README": "pinpanel HIL SD card\n"})
    machine = VM(hil_image, work, sd_image=sd)
    try:
        machine.boot()
    except BaseException:
        machine.close()
        raise
    try:
        yield machine
    finally:
        COSTS["boots_s"].extend(machine.boot_seconds)  # type: ignore[union-attr]
        COSTS["pinpanel_ready_s"].extend(machine.pinpanel_ready_s)  # type: ignore[union-attr]
        machine.close()
        machine.trace_log.unlink(missing_ok=True)  # tens of MB of MMIO trace


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"rep_{rep.when}", rep)


@pytest.fixture(autouse=True)
def _pinpanel_cleanup(request: pytest.FixtureRequest) -> Iterator[None]:
    """After each test: stop a pinpanel it left running; on failure show pinpanel's log and
    the end of the guest console."""
    yield
    if "vm" not in request.fixturenames:
        return
    machine: VM = request.getfixturevalue("vm")
    rep = getattr(request.node, "rep_call", None)
    if not machine.running:
        return
    try:
        st = machine.pinpanel_status()
        if rep is not None and rep.failed:
            print("--- pinpanel log (guest) ---\n" + st.get("log", "")[-6000:])
            print(machine.console_tail(30))
        if st.get("running") and not machine.shared_pinpanel:
            machine.stop_pinpanel("TERM", timeout=30)
    except (VMError, OSError) as e:
        print(f"cleanup could not reach the guest agent: {e}")


def pytest_terminal_summary(terminalreporter) -> None:  # type: ignore[no-untyped-def]
    if not COSTS.get("image") and not COSTS["boots_s"]:
        return
    tr = terminalreporter
    tr.section("hil costs")
    if "image" in COSTS:
        img = COSTS["image"]
        tr.write_line(f"image: {COSTS['image_build_s']} s (layers {img['timings_s']}), "  # type: ignore[index]
                      f"initrd {img['initrd_mb']} MB, {img['dir']}")  # type: ignore[index]
    tr.write_line(f"VM boots to agent ready (s): {COSTS['boots_s']}")
    tr.write_line(f"pinpanel start to /healthz (s): {COSTS['pinpanel_ready_s']}")
