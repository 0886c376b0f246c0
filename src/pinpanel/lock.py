"""One server per data directory: an exclusive lock, held for the server's whole life.

Two servers on one directory disagree about the pins and collide on the history's sequence
numbers, so ``serve`` takes this lock before it touches a pin, and a second ``serve`` stops
at once with one line naming the holder. The lock is ``flock`` on ``pinpanel.lock`` in the
data directory: the kernel releases it when its holder dies in any way (``kill -9`` and
power cuts included), so a stale lock file never keeps a server from starting. The file
stays after a stop; deleting it would race with a server opening it.

Commands that only write tokens or read (``pinpanel token ...``) take no lock: the store
serialises their writes with the server's, and the server sees them at its next request.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

from pinpanel.errors import DataDirInUseError, StoreError

LOCK_NAME = "pinpanel.lock"


def _holder(fd: int) -> str:
    """The pid the lock file names (written by its holder), or "?" if it is not there yet."""
    with contextlib.suppress(OSError):
        text = os.pread(fd, 32, 0).decode(errors="replace").strip()
        if text.isdecimal():
            return text
    return "?"


@contextlib.contextmanager
def hold(data_dir: Path) -> Iterator[Path]:
    """Hold the data directory's lock until the block ends; DataDirInUseError if taken."""
    try:
        existed = data_dir.is_dir()
        data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not existed:
            data_dir.chmod(0o700)  # whatever the umask said (the store checks it too)
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    except OSError as exc:
        raise StoreError(f"cannot lock the data directory {data_dir}: {exc.strerror}") from exc
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DataDirInUseError(f"another pinpanel (pid {_holder(fd)}) is using "
                                    f"{data_dir}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield data_dir / LOCK_NAME
    finally:
        os.close(fd)  # releases the lock (the kernel does the same on any death)


def holder(data_dir: Path) -> int | None:
    """The pid of the server holding ``data_dir``'s lock, or None if none holds it.

    Read from the kernel's list of locks (``/proc/locks``), never by trying the lock: a
    probe that took it, even for an instant, could make a server starting right then exit
    as if the directory were in use.
    """
    try:
        inode = (data_dir / LOCK_NAME).stat().st_ino
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    for line in table.splitlines():
        parts = line.split()
        # "1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF" (a blocked waiter has "->")
        if len(parts) < 6 or parts[1] != "FLOCK" or "->" in parts:
            continue
        device_inode = parts[5].rsplit(":", 1)
        if len(device_inode) == 2 and device_inode[1] == str(inode) and parts[4].isdecimal():
            return int(parts[4])
    return None
