"""Process lifecycle: clean exits on signals, config errors before any pin is touched."""

from __future__ import annotations

import signal
from pathlib import Path

from tests.support import JSON, ServerFactory, run_cli


def test_sigterm_exits_zero_after_a_clean_shutdown(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        http.post("/api/toggle/18", headers=JSON)
    assert server.stop(signal.SIGTERM) == 0
    assert "stopped cleanly" in server.log()


def test_sigint_exits_zero(make_server: ServerFactory) -> None:
    server = make_server()
    assert server.stop(signal.SIGINT) == 0


def test_state_survives_a_restart(make_server: ServerFactory) -> None:
    server = make_server()
    with server.client() as http:
        http.post("/api/v1/pins/23/on")
    assert server.stop() == 0
    again = make_server()
    with again.client() as http:
        assert http.get("/api/list", headers=JSON).json() == {"18": False, "23": True, "24": False}


def test_simulated_board_is_announced(make_server: ServerFactory) -> None:
    server = make_server()
    assert "gpio backend: simulated" in server.log()
    with server.client() as http:
        assert "Simulated board" in http.get("/").text


def test_invalid_config_exits_non_zero_naming_every_problem(tmp_path: Path) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("[[pins]]\npin = 40\n[[pins]]\npin = 3\nmode = 'blink'\n")
    result = run_cli("serve", "--config", str(config), "--data-dir", str(tmp_path / "d"),
                     "--port", "1")
    assert result.returncode == 3
    assert "pins[0].pin: must be between 0 and 27, got 40" in result.stderr
    assert "pins[1].mode: must be one of output, input, pwm, servo" in result.stderr
    assert not (tmp_path / "d").exists()  # nothing opened, nothing touched


def test_check_config_prints_the_pin_table(tmp_path: Path) -> None:
    config = tmp_path / "ok.toml"
    config.write_text("[[pins]]\npin = 17\nid = 'door'\nname = 'Garage'\n"
                      "[[pins]]\npin = 27\nmode = 'input'\n")
    result = run_cli("check-config", str(config))
    assert result.returncode == 0, result.stderr
    assert "door" in result.stdout and "Garage" in result.stdout and "pull up" in result.stdout
    config.write_text("[[pins]]\npin = 17\nbogus = 1\n")
    bad = run_cli("check-config", str(config))
    assert bad.returncode == 3 and "pins[0].bogus: unknown key" in bad.stderr


def test_serve_get_smoke_test_without_a_socket(tmp_path: Path) -> None:
    result = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--no-auth",
                     "--get", "/api/v1/pins")
    assert result.returncode == 0, result.stderr
    assert '"pin":18' in result.stdout
    missing = run_cli("serve", "--data-dir", str(tmp_path / "d"), "--no-auth",
                      "--get", "/api/v1/pins/4")
    assert missing.returncode == 1


def test_help_is_complete() -> None:
    result = run_cli("serve", "--help")
    for flag in ("--config", "--host", "--port", "--data-dir", "--simulate", "--no-auth",
                 "--certfile", "--keyfile", "--get"):
        assert flag in result.stdout
    assert run_cli("--help-settings").stdout.count("|") > 50
    assert run_cli("serve", "--port", "70000").returncode == 2
