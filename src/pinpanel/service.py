"""``pinpanel install-service``: run pinpanel at boot as a hardened systemd service.

The unit runs pinpanel as a dedicated system user that is in the ``gpio`` group and
nothing else: GPIO on Raspberry Pi OS needs group membership, never root. systemd gives
it a private state directory (``StateDirectory=``, which pinpanel's ``data_dir`` default
follows through ``$STATE_DIRECTORY``) and that directory is also the working directory,
because lgpio writes small notification files into whatever directory it runs from. The
rest of the file system is read-only to it (``ProtectSystem=strict``), home directories
are invisible (``ProtectHome``), and only the GPIO character devices are reachable.

Everything here builds text or argument lists; only :func:`install` touches the system,
so the unit's contents are tested without root.
"""

from __future__ import annotations

import grp
import pwd
import re
import shlex
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from pinpanel.errors import PinpanelError

UNIT_NAME = "pinpanel.service"
UNIT_DIR = Path("/etc/systemd/system")
DEFAULT_USER = "pinpanel"
GPIO_GROUP = "gpio"
#: Directories that ``ProtectHome=yes`` hides from the service.
HIDDEN_ROOTS = ("/home", "/root", "/run/user")
#: What useradd accepts on Debian without --badname.
USER_PATTERN = re.compile(r"^[a-z_][a-z0-9_-]{0,31}$")


class ServiceError(PinpanelError):
    """The service cannot be installed as asked (not root, unreachable program...)."""


@dataclass(frozen=True)
class ServicePlan:
    """What the unit runs and as whom."""

    user: str
    exec_args: tuple[str, ...]
    config: Path | None = None
    privileged_port: bool = False

    @property
    def exec_start(self) -> str:
        return " ".join(_quote(arg) for arg in self.exec_args)


def _quote(arg: str) -> str:
    """systemd's command-line quoting: double quotes when needed, ``%`` doubled."""
    arg = arg.replace("%", "%%")
    if arg and not any(ch in arg for ch in " \t\"'\\;$"):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def pinpanel_program() -> list[str]:
    """The command that starts this very installation of pinpanel.

    The venv's ``bin/pinpanel`` script when there is one, so the unit uses exactly the
    packages (and the system lgpio of a ``--system-site-packages`` venv) that run now.
    """
    script = Path(sys.prefix) / "bin" / "pinpanel"
    if script.is_file():
        return [str(script)]
    return [sys.executable, "-m", "pinpanel"]


def plan(user: str = DEFAULT_USER, config: str | None = None,
         program: Sequence[str] | None = None) -> ServicePlan:
    """Check the inputs and decide the command line (the config file must be valid)."""
    from pinpanel.config import load

    if not USER_PATTERN.match(user):
        raise ServiceError(f"{user!r} is not a usable user name")
    args = list(program or pinpanel_program())
    args.append("serve")
    config_path: Path | None = None
    privileged = False
    if config is not None:
        config_path = Path(config).expanduser().resolve()
        loaded = load(config_path)  # a ConfigError here means exit 3 before anything is written
        privileged = loaded.server.port < 1024
        args += ["--config", str(config_path)]
    return ServicePlan(user=user, exec_args=tuple(args), config=config_path,
                       privileged_port=privileged)


def hidden_paths(service: ServicePlan) -> list[str]:
    """Paths the unit needs that ``ProtectHome=yes`` would hide from it."""
    needed = [service.exec_args[0]] + ([str(service.config)] if service.config else [])
    return [p for p in needed if any(p == r or p.startswith(r + "/") for r in HIDDEN_ROOTS)]


def unit_text(service: ServicePlan) -> str:
    """The complete unit file."""
    capabilities = (
        "# The configured port is below 1024: allow binding it, and nothing more.\n"
        "AmbientCapabilities=CAP_NET_BIND_SERVICE\n"
        "CapabilityBoundingSet=CAP_NET_BIND_SERVICE\n"
        if service.privileged_port else
        "# No capabilities at all: GPIO access comes from the gpio group.\n"
        "CapabilityBoundingSet=\n"
    )
    return f"""\
# Written by `pinpanel install-service`. Re-run it to regenerate; edit with
# `systemctl edit pinpanel` (a drop-in) so a regeneration keeps your changes.
[Unit]
Description=pinpanel: Raspberry Pi GPIO pins on the network
Wants=network-online.target
After=network-online.target

[Service]
Type=exec
ExecStart={service.exec_start}
User={service.user}
Group={service.user}
# GPIO without root: /dev/gpiochip* belongs to the gpio group on Raspberry Pi OS.
SupplementaryGroups={GPIO_GROUP}
# /var/lib/pinpanel: the state database ($STATE_DIRECTORY is pinpanel's default data_dir).
StateDirectory=pinpanel
StateDirectoryMode=0700
# lgpio writes notification files in its working directory: give it the writable one.
WorkingDirectory=%S/pinpanel
UMask=0077
Restart=on-failure
RestartSec=2
# pinpanel stops cleanly on SIGTERM (exit 0); outputs follow [gpio] on_exit.
KillSignal=SIGTERM
TimeoutStopSec=15

# Hardening: read-only system, no home directories, private /tmp, no privilege gain.
NoNewPrivileges=yes
ProtectSystem=strict
ProtectHome=yes
PrivateTmp=yes
{capabilities}\
# Devices: only the GPIO character devices (plus /dev/null and friends).
DevicePolicy=closed
DeviceAllow=char-gpiochip rw
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
# AF_NETLINK: listing the interfaces (getifaddrs), which mDNS and the HomeKit bridge need
# to announce a server on 0.0.0.0; without it they fail with EAFNOSUPPORT.
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
SystemCallArchitectures=native
SystemCallFilter=@system-service

[Install]
WantedBy=multi-user.target
"""


def user_commands(user: str, *, user_exists: bool, in_gpio: bool,
                  gpio_exists: bool) -> list[list[str]]:
    """The commands that give the service its user: created if missing, put in gpio."""
    commands: list[list[str]] = []
    if not gpio_exists:
        # Off a Pi there is no gpio group; create it so SupplementaryGroups= resolves.
        commands.append(["groupadd", "--system", GPIO_GROUP])
    if not user_exists:
        commands.append(["useradd", "--system", "--user-group", "--groups", GPIO_GROUP,
                         "--home-dir", f"/var/lib/{DEFAULT_USER}", "--no-create-home",
                         "--shell", "/usr/sbin/nologin",
                         "--comment", "pinpanel GPIO service", user])
    elif not in_gpio:
        commands.append(["usermod", "--append", "--groups", GPIO_GROUP, user])
    return commands


def system_user_commands(user: str) -> list[list[str]]:
    """:func:`user_commands` for this machine's users and groups."""
    try:
        members = grp.getgrnam(GPIO_GROUP).gr_mem
        gpio_exists = True
    except KeyError:
        members, gpio_exists = [], False
    try:
        pwd.getpwnam(user)
        user_exists = True
    except KeyError:
        user_exists = False
    return user_commands(user, user_exists=user_exists, in_gpio=user in members,
                         gpio_exists=gpio_exists)


def next_steps() -> str:
    return ("Start it now and at every boot, then follow its log:\n"
            "  sudo systemctl enable --now pinpanel\n"
            "  journalctl -u pinpanel -f\n")


Runner = Callable[[list[str]], None]


def _run(argv: list[str]) -> None:
    try:
        subprocess.run(argv, check=True, capture_output=True, text=True)
    except FileNotFoundError:
        raise ServiceError(f"{argv[0]} is not installed") from None
    except subprocess.CalledProcessError as exc:
        why = (exc.stderr or exc.stdout or "").strip().splitlines()
        raise ServiceError(f"{' '.join(argv)} failed: {why[-1] if why else exc}") from None


def install(service: ServicePlan, *, unit_dir: Path = UNIT_DIR, run: Runner = _run,
            commands: list[list[str]] | None = None) -> Path:
    """Create the user if needed, write the unit, reload systemd. Needs root."""
    hidden = hidden_paths(service)
    if hidden:
        raise ServiceError(
            f"the service could not reach {', '.join(hidden)}: home directories are private "
            "and hidden from it (ProtectHome). Install pinpanel outside /home, e.g. "
            "sudo python3 -m venv --system-site-packages /opt/pinpanel && "
            "sudo /opt/pinpanel/bin/pip install pinpanel, and keep the config in "
            "/etc/pinpanel/")
    for argv in commands if commands is not None else system_user_commands(service.user):
        print("+ " + shlex.join(argv))
        run(argv)
    unit_dir.mkdir(parents=True, exist_ok=True)
    path = unit_dir / UNIT_NAME
    temporary = path.with_suffix(".tmp")
    temporary.write_text(unit_text(service))
    temporary.chmod(0o644)
    temporary.replace(path)
    if unit_dir == UNIT_DIR:
        run(["systemctl", "daemon-reload"])
    return path
