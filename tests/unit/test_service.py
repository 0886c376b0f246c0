"""The systemd unit of ``pinpanel install-service``: contents, --dry-run, systemd's verdict."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from pinpanel import service
from pinpanel.cli import main
from pinpanel.errors import ConfigError

PROGRAM = ["/opt/pinpanel/bin/pinpanel"]


def directives(text: str) -> dict[str, list[str]]:
    """Every ``Key=value`` of a unit, in order per key (comments and sections skipped)."""
    found: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line and not line.startswith(("#", "[")):
            key, _, value = line.partition("=")
            found.setdefault(key, []).append(value)
    return found


def test_unit_runs_as_a_gpio_user_with_a_writable_state_directory() -> None:
    unit = directives(service.unit_text(service.plan("pinpanel", program=PROGRAM)))
    assert unit["User"] == ["pinpanel"] and unit["Group"] == ["pinpanel"]
    assert unit["SupplementaryGroups"] == ["gpio"]
    assert unit["StateDirectory"] == ["pinpanel"]
    # lgpio writes files in the working directory: it must be the writable state dir.
    assert unit["WorkingDirectory"] == ["%S/pinpanel"]
    assert unit["ExecStart"] == ["/opt/pinpanel/bin/pinpanel serve"]
    assert unit["Restart"] == ["on-failure"]
    assert unit["WantedBy"] == ["multi-user.target"]


def test_unit_is_hardened() -> None:
    unit = directives(service.unit_text(service.plan(program=PROGRAM)))
    for key, value in {"NoNewPrivileges": "yes", "ProtectSystem": "strict",
                       "ProtectHome": "yes", "PrivateTmp": "yes",
                       "DevicePolicy": "closed"}.items():
        assert unit[key] == [value], key
    assert unit["DeviceAllow"] == ["char-gpiochip rw"]
    assert unit["CapabilityBoundingSet"] == [""]
    assert "AmbientCapabilities" not in unit
    # Sockets of these families only; netlink lists the interfaces mDNS and HomeKit announce
    # on (tests/e2e/test_service_sandbox.py starts a server under exactly this list).
    assert unit["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6 AF_NETLINK"]
    assert "root" not in unit["User"]


def test_config_file_is_validated_and_passed(tmp_path: Path) -> None:
    config = tmp_path / "pinpanel.toml"
    config.write_text("[server]\nport = 80\n[[pins]]\npin = 17\n")
    plan = service.plan("relay-user", str(config), program=PROGRAM)
    unit = directives(service.unit_text(plan))
    assert unit["ExecStart"] == [f"/opt/pinpanel/bin/pinpanel serve --config {config}"]
    # Port 80 needs exactly one capability, and gets only that one.
    assert unit["AmbientCapabilities"] == ["CAP_NET_BIND_SERVICE"]
    assert unit["CapabilityBoundingSet"] == ["CAP_NET_BIND_SERVICE"]
    config.write_text("[[pins]]\npin = 99\n")
    with pytest.raises(ConfigError):
        service.plan("pinpanel", str(config), program=PROGRAM)


def test_exec_start_quotes_spaces_and_percent() -> None:
    plan = service.plan(program=["/opt/pin panel/bin/pinpanel"])
    assert plan.exec_start == '"/opt/pin panel/bin/pinpanel" serve'
    assert service._quote("50%") == "50%%"


def test_bad_user_name_is_refused() -> None:
    for name in ("", "-rf", "Root Admin", "a" * 40):
        with pytest.raises(service.ServiceError):
            service.plan(name, program=PROGRAM)


def test_user_commands_create_only_what_is_missing() -> None:
    fresh = service.user_commands("pinpanel", user_exists=False, in_gpio=False,
                                  gpio_exists=True)
    assert len(fresh) == 1 and fresh[0][0] == "useradd"
    assert {"--system", "--user-group", "--no-create-home"} <= set(fresh[0])
    assert fresh[0][fresh[0].index("--groups") + 1] == "gpio"
    assert fresh[0][-1] == "pinpanel"
    assert service.user_commands("pi", user_exists=True, in_gpio=False, gpio_exists=True) == [
        ["usermod", "--append", "--groups", "gpio", "pi"]]
    assert service.user_commands("pi", user_exists=True, in_gpio=True, gpio_exists=True) == []
    off_pi = service.user_commands("pinpanel", user_exists=False, in_gpio=False,
                                   gpio_exists=False)
    assert off_pi[0] == ["groupadd", "--system", "gpio"]


def test_dry_run_prints_the_unit_and_the_two_commands(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["install-service", "--dry-run", "--user", "gpiouser"]) == 0
    out = capsys.readouterr().out
    unit = directives(out)
    assert unit["User"] == ["gpiouser"]
    assert "sudo systemctl enable --now pinpanel" in out
    assert "journalctl -u pinpanel -f" in out
    assert "/etc/systemd/system/pinpanel.service" in out


def test_install_writes_the_unit_and_runs_the_user_commands(tmp_path: Path) -> None:
    ran: list[list[str]] = []
    plan = service.plan(program=PROGRAM)
    commands = [["useradd", "pinpanel"]]
    path = service.install(plan, unit_dir=tmp_path, run=ran.append, commands=commands)
    assert path == tmp_path / "pinpanel.service"
    assert path.read_text() == service.unit_text(plan)
    assert path.stat().st_mode & 0o777 == 0o644
    assert ran == commands


def test_install_refuses_a_program_the_service_cannot_see(tmp_path: Path) -> None:
    plan = service.plan(program=["/home/pi/pinpanel/.venv/bin/pinpanel"])
    with pytest.raises(service.ServiceError, match="ProtectHome"):
        service.install(plan, unit_dir=tmp_path, run=lambda argv: None, commands=[])
    assert not (tmp_path / "pinpanel.service").exists()


def test_install_command_through_the_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    # Wherever this checkout lives (maybe under /root), the unit names an /opt program.
    monkeypatch.setattr(service, "pinpanel_program", lambda: PROGRAM)
    code = main(["install-service", "--unit-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert (tmp_path / "pinpanel.service").exists()
    assert "sudo systemctl enable --now pinpanel" in out


def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze is missing: install Debian's systemd package"
    program = tmp_path / "bin" / "pinpanel"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\n")
    program.chmod(0o755)
    path = service.install(service.plan(program=[str(program)]), unit_dir=tmp_path,
                           run=lambda argv: None, commands=[])
    result = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True,
                            check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == "", result.stderr
