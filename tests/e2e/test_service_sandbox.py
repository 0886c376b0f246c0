"""The systemd unit's socket sandbox, reproduced: pinpanel on 0.0.0.0 with mDNS and HomeKit.

``RestrictAddressFamilies=`` in the unit (pinpanel.service) decides which sockets the service
may open; listing the interfaces to announce takes a netlink socket (glibc's getifaddrs),
so a list without AF_NETLINK stops mDNS and the HomeKit bridge on a Pi and nowhere else.
The test reads the list from the unit as ``pinpanel service install`` writes it, applies it
with a seccomp filter as systemd does (tests/e2e/restrict_af.c: any other family fails with
EAFNOSUPPORT), and starts the server under it, in a network namespace of its own so that
0.0.0.0 is that namespace's loopback only.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
from pathlib import Path

from pinpanel import service
from tests.support import REPO

SOURCE = Path(__file__).with_name("restrict_af.c")


def unit_families() -> list[int]:
    """The unit's RestrictAddressFamilies, as the numbers socket(2) takes."""
    unit = service.unit_text(service.plan(program=["/opt/pinpanel/bin/pinpanel"]))
    found = re.search(r"^RestrictAddressFamilies=(.+)$", unit, re.M)
    assert found is not None, "the unit restricts no address families"
    return [int(getattr(socket, name)) for name in found.group(1).split()]


def run_sandboxed(families: list[int], tmp_path: Path) -> dict[str, object]:
    helper = tmp_path / "restrict_af"
    subprocess.run(["gcc", "-O2", "-o", str(helper), str(SOURCE)], check=True)
    script = ('ip link set lo up && exec "$0" "$1" -- "$2" -m tests.e2e.sandbox_check "$3"')
    done = subprocess.run(["unshare", "--net", "sh", "-c", script, str(helper),
                           ",".join(map(str, families)), sys.executable, str(tmp_path)],
                          cwd=REPO, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_the_helper_refuses_what_the_list_leaves_out(tmp_path: Path) -> None:
    """The filter itself, so the test below cannot pass by filtering nothing."""
    helper = tmp_path / "restrict_af"
    subprocess.run(["gcc", "-O2", "-o", str(helper), str(SOURCE)], check=True)
    probe = ("import socket\nsocket.socket(socket.AF_INET).close()\n"
             "try:\n    socket.socket(socket.AF_NETLINK, socket.SOCK_RAW)\n"
             "except OSError as e:\n    print(e.errno)\n")
    done = subprocess.run([str(helper), f"{socket.AF_UNIX},{socket.AF_INET}", "--",
                           sys.executable, "-c", probe], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "97"  # EAFNOSUPPORT, as under RestrictAddressFamilies


def test_under_the_unit_s_socket_families_mdns_and_homekit_start_on_0_0_0_0(
        tmp_path: Path) -> None:
    families = unit_families()
    assert socket.AF_NETLINK in families
    result = run_sandboxed(families, tmp_path)
    log = str(result["log"])
    assert isinstance(result["homekit"], dict) and result["homekit"].get("enabled") is True, log
    assert "homekit: bridge 'pinpanel'" in log
    assert "mdns: announced" in log
    assert "Address family not supported" not in log


def test_without_netlink_the_bridge_is_off_with_one_clear_line_not_a_crash(
        tmp_path: Path) -> None:
    """What a hand-written unit without AF_NETLINK gets: the server runs, the log says why."""
    families = [f for f in unit_families() if f != socket.AF_NETLINK]
    result = run_sandboxed(families, tmp_path)
    log = str(result["log"])
    assert result["homekit"] == {"enabled": False}, log
    assert "homekit: cannot list this machine's addresses" in log
    assert "mdns: cannot list this machine's addresses" in log
