#!/usr/bin/env python3
"""Build the emulated Raspberry Pi 3B guest that pinpanel's hardware-in-the-loop tests boot.

Usage:  python3 tests/hil/build_image.py [--repo ROOT] [--cache DIR] [--json]

Needs root on a Debian 12 host with: qemu-system-arm cpio kmod device-tree-compiler
gcc-aarch64-linux-gnu libc6-dev-arm64-cross swig e2fsprogs (see tests/hil/README.md).
Downloads only from Debian's archive (arm64 .debs via ``apt-get download``) and PyPI.

Four cached layers, each a gzip'd newc cpio archive; Linux unpacks concatenated archives in
order, later files replacing earlier ones:

* ``base-<key>``: kernel ``Image``, ``rpi3b.dtb`` (with ``linux,revision = a02082`` under
  /system so gpiozero sees a Pi 3B), and ``base.cpio.gz``: busybox, Debian's python3.11
  closure, the kernel modules the guest loads, gpiozero + colorzero, and lgpio cross-compiled
  from its PyPI sdist. Keyed by the package lists, pins and the code that builds it
  (about 30 s cold).
* ``gpiosim-<key>``: the kernel's ``gpio-sim`` module (with ``irq_sim`` linked into it), which
  Debian's arm64 kernel does not build, cross-compiled from Debian's ``linux-source`` of the
  guest kernel's exact version against that kernel's config and Module.symvers (its
  ``linux-headers`` package), plus the kernel's own ``configfs.ko``. Keyed by the kernel
  version (about 20 s cold).
* ``deps-<key>``: pinpanel's runtime dependencies as aarch64/cp311 (or pure) wheels, resolved
  by ``pip download`` for the target platform from the wheel's own Requires-Dist. Keyed by that
  list (a few seconds cold).
* ``app-<key>``: the pinpanel wheel (``pip wheel --no-deps`` of a copy of the source tree) and
  tests/hil/guest (``/init`` + the guest agent). Keyed by the source tree and guest files,
  so a code change costs a few seconds.

The four are concatenated into ``.cache/<key>/initrd.cpio.gz`` next to ``Image`` and
``rpi3b.dtb``. Resolved Debian package versions and wheels are listed in each layer's
``manifest.json``. The base key holds package *names*, not versions: a Debian point release
does not rebuild a cached base (delete ``tests/hil/.cache`` to pick it up).
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterator
from email.parser import Parser
from pathlib import Path

HERE = Path(__file__).resolve().parent
GUEST_DIR = HERE / "guest"
DEFAULT_CACHE = HERE / ".cache"

# ---------------------------------------------------------------- what goes into the base layer
BASE_REVISION = 1  # bump to force a rebuild of the base layer
KERNEL_META = "linux-image-arm64"
DEBS = [
    "busybox-static", "python3", "python3-minimal", "python3.11", "python3.11-minimal",
    "libpython3-stdlib", "libpython3.11-minimal", "libpython3.11-stdlib", "libpython3.11-dev",
    "libc6", "libexpat1", "zlib1g", "libffi8", "libbz2-1.0", "liblzma5", "libssl3",
    "libsqlite3-0", "libuuid1", "libncursesw6", "libtinfo6", "libreadline8", "libdb5.3", "libnsl2",
    "libtirpc3", "libcrypt1", "libgssapi-krb5-2", "libkrb5-3", "libk5crypto3", "libkrb5support0",
    "libkeyutils1", "libcom-err2", "libgcc-s1", "libstdc++6", "media-types", "readline-common",
    "libtirpc-common",
    "tzdata",  # /usr/share/zoneinfo, as on Raspberry Pi OS: schedules resolve time zones
]
PY_BASE_WHEELS = ["gpiozero==2.0.1.post3", "colorzero==2.0"]
LGPIO_SDIST = "lgpio==0.2.2.0"
# Modules the guest's /init modprobes (their dependencies come along via modules.dep).
MODULES = [
    "bcm2835_wdt",  # watchdog: `reboot -f` + QEMU's -no-reboot = clean QEMU exit
    "phy-generic", "dwc2",  # USB host controller
    # QEMU's usb-net (0525:a4a2). cdc_subset drives only its bulk data interface: no status
    # interrupt URB, so dwc2 needs no SOF interrupts (~2000 IRQs/s that halve guest speed
    # under TCG). cdc_ether/rndis_host are the fallback.
    "cdc_subset", "cdc_ether", "rndis_host",
    "bcm2835",  # SD host controller (mmc_block is built in)
    "sdhci-iproc",  # the other (Arasan) SD controller, harmless when unused
    "crc32c_generic", "ext4",  # ext4 with metadata_csum on the SD card
]
TRIM = [
    "usr/share/doc", "usr/share/man", "usr/share/locale", "usr/share/info", "usr/share/lintian",
    "usr/include", "usr/lib/python3.11/config-3.11-aarch64-linux-gnu", "usr/lib/python3.11/test",
    "usr/lib/python3.11/idlelib", "usr/lib/python3.11/tkinter", "usr/lib/python3.11/ensurepip",
    "usr/lib/python3.11/lib2to3",
    "usr/lib/aarch64-linux-gnu/gconv",  # glibc iconv modules: unused by Python
]
# ---------------------------------------------------------------- gpio-sim layer
GPIOSIM_REVISION = 1  # bump to force a rebuild of the gpio-sim layer
#: Files taken from linux-source: gpio-sim includes the private gpiolib.h of the same kernel.
GPIOSIM_SOURCES = {"drivers/gpio/gpio-sim.c": "gpio-sim-main.c",
                   "drivers/gpio/gpiolib.h": "gpiolib.h", "kernel/irq/irq_sim.c": "irq_sim.c"}
#: irq_sim is built into the kernel when enabled, and calls irq_to_desc(), which the kernel
#: does not export to modules; generic_handle_irq() (exported) runs the same handler.
IRQ_SIM_PATCH = ("handle_simple_irq(irq_to_desc(irqnum));", "generic_handle_irq(irqnum);")
GPIOSIM_KBUILD = "obj-m := gpio-sim.o\ngpio-sim-y := gpio-sim-main.o irq_sim.o\n"
# ---------------------------------------------------------------- deps layer
PIP_TARGET = ["--only-binary=:all:", "--platform", "manylinux2014_aarch64",
              "--platform", "manylinux_2_17_aarch64", "--python-version", "3.11",
              "--implementation", "cp"]
# Already in the base layer at exactly these versions; pinned so pip resolves the same ones.
DEPS_CONSTRAINTS = PY_BASE_WHEELS
DEPS_SKIP = {"gpiozero", "colorzero"}
SITE_LOCAL = "usr/local/lib/python3.11/dist-packages"  # where Debian's pip would install
SITE_DEB = "usr/lib/python3/dist-packages"  # where Debian's python3-* packages live
# ---------------------------------------------------------------- app layer
APP_FILES = ["pyproject.toml", "setup.py", "setup.cfg", "MANIFEST.in", "README.md", "LICENSE"]
KEEP_BUILDS = 3  # per layer kind, most recent first

T0 = time.monotonic()


def log(msg: str) -> None:
    print(f"[build_image {time.monotonic() - T0:6.1f}s] {msg}", file=sys.stderr, flush=True)


@contextlib.contextmanager
def step(name: str) -> Iterator[None]:
    t = time.monotonic()
    yield
    log(f"{name}: {time.monotonic() - t:.1f} s")


def run(cmd: list[str] | str, cwd: Path | None = None, env: dict[str, str] | None = None,
        capture: bool = False, timeout: float = 900) -> str:
    shell = isinstance(cmd, str)
    p = subprocess.run(cmd, cwd=cwd, env=env, shell=shell, text=True, timeout=timeout,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT if not capture else
                       subprocess.PIPE)
    if p.returncode != 0:
        out = p.stdout + (p.stderr or "")
        raise SystemExit(f"build_image: command failed ({p.returncode}): {cmd}\n{out[-4000:]}")
    return p.stdout


def sha(*parts: object) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part if isinstance(part, bytes) else json.dumps(part, sort_keys=True).encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


def tree_digest(root: Path, rel_paths: list[str]) -> str:
    h = hashlib.sha256()
    for rel in sorted(rel_paths):
        h.update(rel.encode() + b"\0" + (root / rel).read_bytes() + b"\0")
    return h.hexdigest()[:16]


def pip(*args: str, cwd: Path | None = None) -> str:
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1", PIP_NO_INPUT="1")
    return run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env)


def compileall(root: Path, *subdirs: str) -> None:
    """Debian ships no .pyc and the guest's / is a ramfs: precompile with host CPython 3.11
    (same magic number as the guest's 3.11.2). Cuts guest import time several-fold."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    dirs = [str(root / d) for d in subdirs if (root / d).is_dir()]
    if dirs:
        # Exit status 1 means some file failed to compile (e.g. py2-only test data): tolerated.
        subprocess.run([sys.executable, "-m", "compileall", "-q", "-j0", *dirs], env=env,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=900)


def pack_cpio(root: Path, out: Path) -> None:
    """gzip'd newc cpio of root (owner root:root). Directories are included so the archive
    also unpacks on its own over an earlier layer."""
    run(f"find . -mindepth 1 | LC_ALL=C sort | cpio -o -H newc -R 0:0 --quiet | gzip -1 > {out}",
        cwd=root)


def unpack_wheel(whl: Path, site: Path) -> None:
    with zipfile.ZipFile(whl) as z:
        for info in z.infolist():
            # *.data/ (scripts, headers) is irrelevant for python -m; purelib/platlib go to site.
            name = info.filename
            m = re.match(r"[^/]+\.data/(purelib|platlib)/(.*)", name)
            if m:
                name = m.group(2)
            elif re.match(r"[^/]+\.data/", name):
                continue
            if not name or name.endswith("/"):
                continue
            dest = site / name
            dest.parent.mkdir(parents=True, exist_ok=True)
            with z.open(info) as src, dest.open("wb") as dst:
                shutil.copyfileobj(src, dst)
            mode = (info.external_attr >> 16) & 0o777
            if mode:
                dest.chmod(mode)


def check_elf_needs(root: Path, files: list[Path], libdirs: list[Path]) -> list[str]:
    """The sonames that some ELF file in ``files`` needs and no ``libdirs`` provides."""
    have = set()
    for d in libdirs:
        if d.is_dir():
            have.update(p.name for p in d.iterdir())
    missing = set()
    for f in files:
        try:
            with f.open("rb") as fh:
                if fh.read(4) != b"\x7fELF":
                    continue
        except OSError:
            continue
        out = subprocess.run(["aarch64-linux-gnu-readelf", "-d", str(f)], capture_output=True,
                             text=True).stdout
        for so in re.findall(r"\(NEEDED\)\s+Shared library: \[(.+?)\]", out):
            if so not in have:
                missing.add(f"{so} (needed by /{f.relative_to(root)})")
    return sorted(missing)


def ensure_apt_arm64() -> None:
    """Idempotent: the arm64 foreign architecture (download only, nothing arm64 gets
    installed) and fresh package lists."""
    archs = run(["dpkg", "--print-foreign-architectures"], capture=True).split()
    added = False
    if "arm64" not in archs:
        run(["dpkg", "--add-architecture", "arm64"])
        added = True
    probe = subprocess.run(["apt-cache", "policy", f"{KERNEL_META}:arm64"], capture_output=True,
                           text=True).stdout
    if added or "Candidate: (none)" in probe or "Candidate:" not in probe:
        with step("apt-get update"):
            run(["apt-get", "update", "-qq"])


@contextlib.contextmanager
def building(cache: Path, name: str) -> Iterator[Path]:
    """A scratch dir that becomes cache/name atomically when the block succeeds."""
    final = cache / name
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{name}-", dir=cache))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        tmp.rename(final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def prune(cache: Path, prefix: str, keep: int, protect: Path) -> None:
    dirs = sorted((d for d in cache.glob(f"{prefix}*") if d.is_dir() and d != protect
                   and re.fullmatch(rf"{prefix}[0-9a-f]{{16}}", d.name)),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for d in dirs[keep - 1:]:
        shutil.rmtree(d, ignore_errors=True)


# ================================================================= layer 1: base
def build_base(out: Path) -> dict:
    ensure_apt_arm64()
    work = out / "work"
    debs, root, kex = work / "debs", work / "root", work / "kernel"
    for d in (debs, root, kex):
        d.mkdir(parents=True)
    pol = run(["apt-cache", "depends", f"{KERNEL_META}:arm64"], capture=True)
    m = re.search(r"Depends: linux-image-(\S+?):arm64", pol)
    if not m:
        raise SystemExit(f"build_image: cannot resolve the arm64 kernel from:\n{pol}")
    kver = m.group(1)
    log(f"kernel {kver}")
    with step("apt-get download (arm64 .debs)"):
        pkgs = [f"linux-image-{kver}:arm64"] + [
            p if p in ("media-types", "readline-common", "libtirpc-common", "tzdata")
            else f"{p}:arm64"
            for p in DEBS]
        run(["apt-get", "download", "-q", *pkgs], cwd=debs)
    versions = {}
    with step("dpkg-deb -x"):
        for deb in sorted(debs.glob("*.deb")):
            name, ver = deb.name.split("_")[:2]
            versions[name] = ver.replace("%3a", ":")
            run(["dpkg-deb", "-x", str(deb), str(kex if name.startswith("linux-image") else root)])

    # --- kernel + device tree
    shutil.copy(kex / "boot" / f"vmlinuz-{kver}", out / "Image")  # arm64: a raw Image already
    dtb = out / "rpi3b.dtb"
    shutil.copy(kex / "usr/lib" / f"linux-image-{kver}" / "broadcom/bcm2837-rpi-3-b.dtb", dtb)
    # The firmware would put the board revision here; mainline has no Revision in
    # /proc/cpuinfo, so gpiozero reads /proc/device-tree/system/linux,revision (a02082 = 3B).
    run(["fdtput", "-c", str(dtb), "/system"])
    run(["fdtput", "-t", "x", str(dtb), "/system", "linux,revision", "a02082"])

    # --- kernel modules: closure from modules.dep, then a depmod for busybox modprobe
    with step("kernel modules"):
        run(["depmod", "-b", str(kex), kver])
        mdir = kex / "lib/modules" / kver
        dep = {}
        for line in (mdir / "modules.dep").read_text().splitlines():
            mod, _, rest = line.partition(":")
            dep[mod] = rest.split()
        by_name = {Path(k).name.removesuffix(".ko").replace("-", "_"): k for k in dep}
        need: set[str] = set()
        for name in MODULES:
            key = by_name[name.replace("-", "_")]
            need.add(key)
            need.update(dep[key])
        rmdir = root / "lib/modules" / kver
        for rel in sorted(need):
            (rmdir / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(mdir / rel, rmdir / rel)
        for f in ("modules.order", "modules.builtin", "modules.builtin.modinfo"):
            shutil.copy(mdir / f, rmdir / f)
        run(["depmod", "-b", str(root), kver])

    # --- gpiozero + colorzero (pure python) and lgpio cross-compiled from its sdist
    with step("PyPI: gpiozero, colorzero, lgpio sdist"):
        py = work / "py"
        py.mkdir()
        pip("download", "-q", "--no-deps", "--only-binary=:all:", "-d", str(py), *PY_BASE_WHEELS)
        pip("download", "-q", "--no-deps", "--no-binary=:all:", "-d", str(py), LGPIO_SDIST)
        site = root / SITE_DEB
        site.mkdir(parents=True, exist_ok=True)
        wheels = sorted(py.glob("*.whl"))
        for whl in wheels:
            unpack_wheel(whl, site)
        run(["tar", "xzf", next(py.glob("lgpio-*.tar.gz")).name], cwd=py)
    with step("lgpio: swig + aarch64-linux-gnu-gcc (static liblgpio, like setup.py's PYPI=1)"):
        src = next(p for p in py.iterdir() if p.is_dir() and p.name.startswith("lgpio-"))
        lg_ver = src.name.split("-", 1)[1]
        run(["swig", "-python", "-o", "lgpio_wrap.c", "lgpio.i"], cwd=src)
        so = "_lgpio.cpython-311-aarch64-linux-gnu.so"
        csrc = sorted(str(p.relative_to(src)) for p in (src / "src").glob("lg*.c"))
        run(["aarch64-linux-gnu-gcc", "-O2", "-fPIC", "-shared", "-pthread", "-Isrc",
             f"-I{root}/usr/include/python3.11", f"-I{root}/usr/include",
             *csrc, "src/rgpiod.c", "lgpio_wrap.c", "-o", so, "-lrt", "-ldl"], cwd=src)
        shutil.copy(src / so, site / so)
        shutil.copy(src / "lgpio.py", site / "lgpio.py")
        di = site / f"lgpio-{lg_ver}.dist-info"
        di.mkdir()
        (di / "METADATA").write_text(f"Metadata-Version: 2.1\nName: lgpio\nVersion: {lg_ver}\n")
        (di / "INSTALLER").write_text("pinpanel-hil-build\n")
        (di / "RECORD").write_text("")

    # --- trim and lay out: merged /usr for bin+sbin, busybox applets are linked at boot
    with step("trim + layout"):
        for rel in TRIM:
            shutil.rmtree(root / rel, ignore_errors=True)
        for p in root.rglob("*.a"):
            p.unlink()
        for p in (root / "usr/lib/aarch64-linux-gnu").glob("libpython3.11.so*"):
            p.unlink()  # only for embedding; python3.11 links libpython statically
        for d in ("bin", "sbin"):
            src_d, dst_d = root / d, root / "usr" / d
            dst_d.mkdir(parents=True, exist_ok=True)
            if src_d.is_dir() and not src_d.is_symlink():
                for p in src_d.iterdir():
                    shutil.move(str(p), str(dst_d / p.name))
                src_d.rmdir()
            if not src_d.exists():
                src_d.symlink_to(f"usr/{d}")
        (root / "usr/bin/sh").unlink(missing_ok=True)
        (root / "usr/bin/sh").symlink_to("busybox")
        for d in ("proc", "sys", "dev", "run", "tmp", "data", "root", "etc", "var/tmp",
                  SITE_LOCAL):
            (root / d).mkdir(parents=True, exist_ok=True)
        (root / "var/run").symlink_to("../run")
        etc = root / "etc"
        (etc / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
        (etc / "group").write_text("root:x:0:\n")
        (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 pi\n")
        (etc / "nsswitch.conf").write_text("passwd: files\ngroup: files\nhosts: files\n")
        (etc / "hostname").write_text("pi\n")
    with step("check ELF NEEDED"):
        libdirs = [root / "lib/aarch64-linux-gnu", root / "usr/lib/aarch64-linux-gnu", root / "lib"]
        elfs = [p for p in root.rglob("*") if p.is_file() and not p.is_symlink()
                and (p.suffix == ".so" or ".so." in p.name or p.parent.name in ("bin", "sbin"))]
        missing = check_elf_needs(root, elfs, libdirs)
        if missing:
            raise SystemExit("build_image: missing shared libraries in the guest:\n  "
                             + "\n  ".join(missing))
        sonames = sorted({p.name for d in libdirs if d.is_dir() for p in d.iterdir()})
    with step("compileall (stdlib + dist-packages)"):
        compileall(root, "usr/lib/python3.11", SITE_DEB)
    with step("cpio base"):
        pack_cpio(root, out / "base.cpio.gz")
    shutil.rmtree(work)
    return {"kernel": kver, "debs": versions, "wheels": [w.name for w in wheels],
            "lgpio": lg_ver, "modules": MODULES, "sonames": sonames}


# ================================================================= layer 1b: gpio-sim
def build_gpiosim(out: Path, kver: str, kdeb: str) -> dict:
    """gpio-sim.ko for kernel ``kver`` (Debian package version ``kdeb``), and configfs.ko.

    External-module build (``make M=``) against the arm64 ``linux-headers`` package (its
    .config and Module.symvers, so vermagic and symbol CRCs match the booted kernel), with the
    host-arch ``linux-kbuild`` tools (fixdep, modpost) of the same version and the cross gcc.
    Unsigned: the kernel has CONFIG_MODULE_SIG but not CONFIG_MODULE_SIG_FORCE.
    """
    ensure_apt_arm64()
    work = out / "work"
    debs, x, mod = work / "debs", work / "x", work / "mod"
    for d in (debs, x, mod):
        d.mkdir(parents=True)
    series = ".".join(kver.split(".")[:2])  # 6.1
    deps = run(["apt-cache", "depends", f"linux-headers-{kver}:arm64={kdeb}"], capture=True)
    common = re.search(r"Depends: <?(linux-headers-[^\s:>]+-common)", deps)
    if not common:
        raise SystemExit(f"build_image: no common headers package for {kver}:\n{deps}")
    pkgs = [f"linux-source-{series}={kdeb}", f"linux-headers-{kver}:arm64={kdeb}",
            f"{common.group(1)}={kdeb}", f"linux-kbuild-{series}={kdeb}",
            f"linux-image-{kver}:arm64={kdeb}"]
    with step("apt-get download (linux-source, headers, kbuild)"):
        try:
            run(["apt-get", "download", "-q", *pkgs], cwd=debs)
        except SystemExit as exc:
            # The base caches a kernel by name; the archive keeps only recent versions.
            raise SystemExit(f"{exc}\nbuild_image: the cached base's kernel {kver} ({kdeb}) "
                             "may be gone from the archive: delete tests/hil/.cache to build "
                             "a base (and gpio-sim) for the current kernel") from None
    with step("dpkg-deb -x + sources from linux-source"):
        for deb in sorted(debs.glob("*.deb")):
            run(["dpkg-deb", "-x", str(deb), str(x)])
        tarball = x / f"usr/src/linux-source-{series}.tar.xz"
        top = f"linux-source-{series}"
        run(["tar", "xJf", str(tarball), "-C", str(work),
             *[f"{top}/{rel}" for rel in GPIOSIM_SOURCES]])
        for rel, name in GPIOSIM_SOURCES.items():
            shutil.copy(work / top / rel, mod / name)
        irq_sim = (mod / "irq_sim.c").read_text()
        if IRQ_SIM_PATCH[0] not in irq_sim:
            raise SystemExit("build_image: irq_sim.c changed; revisit IRQ_SIM_PATCH")
        (mod / "irq_sim.c").write_text(irq_sim.replace(*IRQ_SIM_PATCH))
        (mod / "Kbuild").write_text(GPIOSIM_KBUILD)
        headers = x / "usr/src" / f"linux-headers-{kver}"
        # Its Makefile includes the common headers by absolute path: point it at ours.
        mk = headers / "Makefile"
        mk.write_text(mk.read_text().replace("/usr/src/", f"{x}/usr/src/"))
    with step("make modules (gpio-sim, cross)"):
        run(["make", "-C", str(headers), f"M={mod}", "ARCH=arm64",
             "CROSS_COMPILE=aarch64-linux-gnu-", "modules"])
        run(["aarch64-linux-gnu-strip", "--strip-debug", str(mod / "gpio-sim.ko")])
    vermagic = run(["modinfo", "-F", "vermagic", str(mod / "gpio-sim.ko")], capture=True).strip()
    if not vermagic.startswith(kver + " "):
        raise SystemExit(f"build_image: gpio-sim.ko vermagic {vermagic!r} is not for {kver}")
    root = work / "root"
    dest = root / "lib/modules" / kver / "extra"
    dest.mkdir(parents=True)
    shutil.copy(mod / "gpio-sim.ko", dest / "gpio-sim.ko")
    configfs = next((x / "lib/modules" / kver).rglob("configfs.ko*"))
    shutil.copy(configfs, dest / configfs.name)
    pack_cpio(root, out / "gpiosim.cpio.gz")
    size = (dest / "gpio-sim.ko").stat().st_size
    shutil.rmtree(work)
    return {"kernel": kver, "kernel_deb": kdeb, "vermagic": vermagic, "gpio_sim_ko_bytes": size,
            "configfs": configfs.name, "packages": pkgs}


# ================================================================= layer 3a: pinpanel wheel
def source_files(repo: Path) -> list[str]:
    """pinpanel's build inputs: the files a wheel build reads. Tracked and untracked-but-not-
    ignored files under src/, plus the top-level build files that exist."""
    out = run(["git", "-C", str(repo), "ls-files", "-co", "--exclude-standard", "-z", "--",
               "src"], capture=True)
    files = [f for f in out.split("\0") if f and (repo / f).is_file()]
    files += [f for f in APP_FILES if (repo / f).is_file()]
    return sorted(set(files))


def build_wheel(repo: Path, files: list[str], dest: Path) -> Path:
    """``pip wheel --no-deps`` of a copy of the tree (an in-tree build would leave build/ and
    egg-info behind in the developer's checkout)."""
    with tempfile.TemporaryDirectory(prefix="pinpanel-src-") as tmp:
        for rel in files:
            (Path(tmp) / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(repo / rel, Path(tmp) / rel)
        pip("wheel", "-q", "--no-deps", "-w", str(dest), tmp)
    return next(dest.glob("pinpanel-*.whl"))


def wheel_requires(whl: Path) -> list[str]:
    with zipfile.ZipFile(whl) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        msg = Parser().parsestr(z.read(meta).decode())
    return sorted(msg.get_all("Requires-Dist") or [])


# ================================================================= layer 2: deps
def build_deps(out: Path, requires: list[str], base_sonames: list[str]) -> dict:
    work = out / "work"
    dl, root = work / "dl", work / "root"
    dl.mkdir(parents=True)
    # Extras-only requirements (e.g. lgpio under [pi]) are not pulled in: lgpio is in the base.
    reqs = [r for r in requires if "extra ==" not in r]
    (work / "requirements.txt").write_text("\n".join(reqs) + "\n")
    (work / "constraints.txt").write_text("\n".join(DEPS_CONSTRAINTS) + "\n")
    with step("pip download (aarch64, cp311)"):
        # Environment markers are evaluated on the host (x86_64); pinpanel's markers select
        # the same extras for x86_64 and aarch64, so that is what a Pi gets too.
        pip("download", "-q", *PIP_TARGET, "-d", str(dl), "-r", str(work / "requirements.txt"),
            "-c", str(work / "constraints.txt"))
    site = root / SITE_LOCAL
    site.mkdir(parents=True)
    wheels = []
    for whl in sorted(dl.glob("*.whl")):
        name = whl.name.split("-")[0].lower().replace("_", "-")
        if name in DEPS_SKIP:
            continue
        unpack_wheel(whl, site)
        wheels.append(whl.name)
    others = sorted(p.name for p in dl.iterdir() if not p.name.endswith(".whl"))
    if others:
        raise SystemExit(f"build_image: pip downloaded non-wheels: {others}")
    with step("check ELF NEEDED (wheels)"):
        libdir = work / "libs"
        libdir.mkdir()
        for so in base_sonames:
            (libdir / so).touch()
        # manylinux wheels vendor their own libs in <pkg>.libs/
        libdirs = [libdir, *[d for d in site.glob("*.libs") if d.is_dir()]]
        sos = [p for p in site.rglob("*")
               if p.is_file() and (p.suffix == ".so" or ".so." in p.name)]
        missing = check_elf_needs(root, sos, libdirs)
        if missing:
            raise SystemExit("build_image: wheels need libraries the guest lacks:\n  "
                             + "\n  ".join(missing))
    with step("compileall (deps)"):
        compileall(root, SITE_LOCAL)
    pack_cpio(root, out / "deps.cpio.gz")
    shutil.rmtree(work)
    return {"requires": reqs, "wheels": wheels}


# ================================================================= layer 3: app
def build_app(out: Path, whl: Path) -> dict:
    root = out / "root"
    site = root / SITE_LOCAL
    site.mkdir(parents=True)
    unpack_wheel(whl, site)
    hil = root / "usr/local/lib/pinpanel-hil"
    hil.mkdir(parents=True)
    for f in sorted(GUEST_DIR.iterdir()):
        if f.is_file() and f.name != "init":
            shutil.copy(f, hil / f.name)
    shutil.copy(GUEST_DIR / "init", root / "init")
    (root / "init").chmod(0o755)
    compileall(root, SITE_LOCAL, "usr/local/lib/pinpanel-hil")
    pack_cpio(root, out / "app.cpio.gz")
    shutil.rmtree(root)
    return {"wheel": whl.name}


def layer_key(fn_names: list[str], *extra: object) -> str:
    src = [inspect.getsource(globals()[n]) for n in fn_names]
    return sha(src, *extra)


def build(repo: Path, cache: Path) -> dict:
    cache.mkdir(parents=True, exist_ok=True)
    lock = (cache / ".lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    timings: dict[str, float] = {}

    def timed(name: str, t: float) -> None:
        timings[name] = round(time.monotonic() - t, 2)

    # ---- base
    t = time.monotonic()
    base_key = layer_key(["build_base", "ensure_apt_arm64", "pack_cpio", "compileall",
                          "unpack_wheel"], BASE_REVISION, KERNEL_META, DEBS, PY_BASE_WHEELS,
                         LGPIO_SDIST, MODULES, TRIM, SITE_DEB, SITE_LOCAL)
    base = cache / f"base-{base_key}"
    if not (base / "manifest.json").exists():
        log(f"building base layer {base.name} (cold: about 30-60 s)")
        with building(cache, base.name) as tmp:
            (tmp / "manifest.json").write_text(json.dumps(build_base(tmp), indent=1))
    else:
        log(f"base layer {base.name}: cached")
    base_manifest = json.loads((base / "manifest.json").read_text())
    timed("base", t)

    # ---- gpio-sim, keyed by the kernel version the base holds
    t = time.monotonic()
    kver = base_manifest["kernel"]
    kdeb = base_manifest["debs"][f"linux-image-{kver}"]
    gpiosim_key = layer_key(["build_gpiosim", "ensure_apt_arm64", "pack_cpio"],
                            GPIOSIM_REVISION, kver, kdeb, GPIOSIM_SOURCES, IRQ_SIM_PATCH,
                            GPIOSIM_KBUILD)
    gpiosim = cache / f"gpiosim-{gpiosim_key}"
    if not (gpiosim / "manifest.json").exists():
        log(f"building gpio-sim layer {gpiosim.name} for kernel {kver} ({kdeb})")
        with building(cache, gpiosim.name) as tmp:
            (tmp / "manifest.json").write_text(json.dumps(build_gpiosim(tmp, kver, kdeb),
                                                          indent=1))
    else:
        log(f"gpio-sim layer {gpiosim.name}: cached")
    timed("gpiosim", t)

    # ---- app source key (cheap); wheel only when it changed
    t = time.monotonic()
    files = source_files(repo)
    guest_files = sorted(p.name for p in GUEST_DIR.iterdir() if p.is_file())
    app_key = layer_key(["build_app", "build_wheel", "source_files", "compileall", "pack_cpio",
                         "unpack_wheel"], tree_digest(repo, files),
                        tree_digest(GUEST_DIR, guest_files), SITE_LOCAL, sys.version_info[:2])
    app = cache / f"app-{app_key}"
    if not (app / "manifest.json").exists():
        log(f"building app layer {app.name} (pinpanel wheel + guest files)")
        with building(cache, app.name) as tmp:
            with step("pip wheel pinpanel"):
                whl = build_wheel(repo, files, tmp / "wheel")
            man = build_app(tmp, whl)
            man["requires"] = wheel_requires(whl)
            (tmp / "manifest.json").write_text(json.dumps(man, indent=1))
    else:
        log(f"app layer {app.name}: cached")
    app_manifest = json.loads((app / "manifest.json").read_text())
    timed("app", t)

    # ---- deps, keyed by the wheel's Requires-Dist
    t = time.monotonic()
    deps_key = layer_key(["build_deps", "compileall", "pack_cpio", "unpack_wheel"],
                         app_manifest["requires"], PIP_TARGET, DEPS_CONSTRAINTS,
                         sorted(DEPS_SKIP), SITE_LOCAL, base_key)
    deps = cache / f"deps-{deps_key}"
    if not (deps / "manifest.json").exists():
        log(f"building deps layer {deps.name}")
        with building(cache, deps.name) as tmp:
            man = build_deps(tmp, app_manifest["requires"], base_manifest["sonames"])
            (tmp / "manifest.json").write_text(json.dumps(man, indent=1))
    else:
        log(f"deps layer {deps.name}: cached")
    deps_manifest = json.loads((deps / "manifest.json").read_text())
    timed("deps", t)

    # ---- final: Image + dtb + concatenated initrd
    t = time.monotonic()
    final = cache / sha(base_key, gpiosim_key, deps_key, app_key)
    if not (final / "initrd.cpio.gz").exists():
        with building(cache, final.name) as tmp:
            for f in ("Image", "rpi3b.dtb"):
                os.link(base / f, tmp / f)
            with (tmp / "initrd.cpio.gz").open("wb") as dst:
                for part in (base / "base.cpio.gz", gpiosim / "gpiosim.cpio.gz",
                             deps / "deps.cpio.gz", app / "app.cpio.gz"):
                    with part.open("rb") as src:
                        shutil.copyfileobj(src, dst)
    for d in (base, gpiosim, deps, app, final):
        os.utime(d)
    layers = {"base-": base, "gpiosim-": gpiosim, "deps-": deps, "app-": app, "": final}
    for prefix, protect in layers.items():
        prune(cache, prefix, KEEP_BUILDS, protect)
    timed("final", t)
    result = {
        "dir": str(final), "kernel": str(final / "Image"), "dtb": str(final / "rpi3b.dtb"),
        "initrd": str(final / "initrd.cpio.gz"),
        "initrd_mb": round((final / "initrd.cpio.gz").stat().st_size / 2**20, 1),
        "layers": {"base": base.name, "gpiosim": gpiosim.name, "deps": deps.name,
                   "app": app.name},
        "kernel_version": base_manifest["kernel"], "lgpio": base_manifest["lgpio"],
        "base_wheels": base_manifest["wheels"], "deps_wheels": deps_manifest["wheels"],
        "pinpanel_wheel": app_manifest["wheel"], "timings_s": timings,
        "total_s": round(time.monotonic() - T0, 2),
    }
    log(f"done in {result['total_s']} s: {final}")
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repo", type=Path, default=HERE.parents[1],
                    help="pinpanel checkout (default: the one this script is in)")
    ap.add_argument("--cache", type=Path, default=DEFAULT_CACHE)
    ap.add_argument("--json", action="store_true", help="print the result as JSON on stdout")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("build_image: needs root (apt-get download/update of arm64 packages)",
              file=sys.stderr)
    res = build(args.repo.resolve(), args.cache.resolve())
    print(json.dumps(res, indent=1) if args.json else res["dir"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
