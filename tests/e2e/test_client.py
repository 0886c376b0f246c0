"""pinpanel.client and the client commands against a real server with authentication on."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from pinpanel.client import (
    AuthRefusedError,
    Client,
    ClientConfigError,
    ConflictError,
    NotFoundError,
    RejectedError,
    ServerUnreachableError,
)
from tests.support import ServerFactory, free_port, pinpanel_cmd, run_cli

CONFIG = """
[[pins]]
pin = 18
name = "Relay"
[[pins]]
pin = 17
id = "lamp"
name = "Lamp"
pulse_ms = 300
[[pins]]
pin = 27
id = "button"
mode = "input"
"""


@pytest.fixture
def server(make_server: ServerFactory) -> object:
    return make_server(CONFIG)


def env_of(server: object, token: str | None = None) -> dict[str, str]:
    return {"PINPANEL_URL": server.url,  # type: ignore[attr-defined]
            "PINPANEL_TOKEN": token or server.token}  # type: ignore[attr-defined]


# -- the library ---------------------------------------------------------------------------------


def test_client_reads_and_switches_pins(server: object) -> None:
    pp = Client(server.url, server.create_token("script", "control"))  # type: ignore[attr-defined]
    pins = pp.pins()
    assert [(p.pin, p.id, p.mode) for p in pins] == [
        (18, "gpio18", "output"), (17, "lamp", "output"), (27, "button", "input")]
    assert pp.pin("lamp") == pp.pin(17)
    on = pp.on(18)
    assert on.state is True and on.name == "Relay"
    assert pp.off("gpio18").seq == on.seq + 1
    assert pp.toggle(18).state is True
    assert pp.set(18, False).state is False
    pulsed = pp.pulse("lamp", 60_000)
    assert pulsed.state is True and pulsed.pulse_until is not None
    assert pp.system()["pins"] == 3


def test_event_stream_gives_a_snapshot_then_changes(server: object) -> None:
    pp = Client(server.url, server.token)  # type: ignore[attr-defined]
    stream = pp.events()
    snapshot = next(stream)
    assert snapshot.kind == "snapshot"
    assert [p.pin for p in snapshot.pins] == [18, 17, 27]
    done = pp.toggle(18)
    change = next(stream)
    assert change.kind == "change" and change.seq == done.seq
    assert change.pin is not None and (change.pin.pin, change.pin.state) == (18, True)
    stream.close()
    # Resuming after a seq gives the missed changes, not a snapshot.
    later = pp.toggle(18)
    resumed = pp.events(last_event_id=done.seq)
    first = next(resumed)
    assert (first.kind, first.seq) == ("change", later.seq)
    resumed.close()


def test_client_errors_say_what_went_wrong(server: object) -> None:
    url = server.url  # type: ignore[attr-defined]
    with pytest.raises(AuthRefusedError) as refused:
        Client(url, "pp_not-a-real-token").pins()
    assert refused.value.status == 401
    with pytest.raises(AuthRefusedError):
        Client(url).pins()  # no token at all
    reader = Client(url, server.create_token("viewer", "read"))  # type: ignore[attr-defined]
    assert reader.pins()
    with pytest.raises(AuthRefusedError) as scope:
        reader.on(18)
    assert scope.value.status == 403
    pp = Client(url, server.token)  # type: ignore[attr-defined]
    with pytest.raises(NotFoundError, match="no configured pin"):
        pp.on(4)
    with pytest.raises(NotFoundError):
        pp.pin("nope")
    with pytest.raises(ConflictError, match="input"):
        pp.toggle("button")
    with pytest.raises(RejectedError):
        pp.pulse(18, 0)
    with pytest.raises(ServerUnreachableError, match="cannot reach"):
        Client(f"http://127.0.0.1:{free_port()}", "x").pins()
    with pytest.raises(ClientConfigError):
        Client("ftp://pi.local")


# -- the commands ---------------------------------------------------------------------------------


def test_pins_command_prints_a_table_and_json(server: object) -> None:
    result = run_cli("pins", env=env_of(server))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["BCM", "id", "mode", "state", "name"]
    assert lines[1].split() == ["18", "gpio18", "output", "off", "Relay"]
    assert lines[3].split()[:3] == ["27", "button", "input"]
    as_json = run_cli("pins", "lamp", "--json", env=env_of(server))
    assert as_json.returncode == 0
    assert [p["id"] for p in json.loads(as_json.stdout)] == ["lamp"]


def test_switch_commands(server: object) -> None:
    env = env_of(server)
    on = run_cli("on", "18", env=env)
    assert on.returncode == 0, on.stderr
    assert on.stdout.startswith("gpio18\ton\t")
    off = run_cli("off", "gpio18", "--json", env=env)
    assert off.returncode == 0 and json.loads(off.stdout)["state"] is False
    toggled = run_cli("toggle", "18", "--json", env=env)
    assert json.loads(toggled.stdout)["state"] is True
    pulse = run_cli("pulse", "lamp", "--ms", "60000", "--json", env=env)
    assert pulse.returncode == 0, pulse.stderr
    assert json.loads(pulse.stdout)["pulse_until"]
    # --url and --token beat the environment.
    flags = run_cli("off", "18", "--url", server.url, "--token", server.token,  # type: ignore[attr-defined]
                    env={"PINPANEL_URL": "http://127.0.0.1:9", "PINPANEL_TOKEN": "wrong"})
    assert flags.returncode == 0, flags.stderr


def test_watch_prints_events(server: object) -> None:
    env = env_of(server)
    proc = subprocess.Popen(pinpanel_cmd("watch", "--count", "2"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **env})
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()  # the snapshot: the stream is open from here on
        assert first.startswith("snapshot seq=") and "gpio18=off" in first
        seq = json.loads(run_cli("toggle", "18", "--json", env=env).stdout)["seq"]
        run_cli("toggle", "18", env=env)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, err
    changes = out.splitlines()
    assert len(changes) == 2
    assert f"seq={seq} gpio18 on cause=api actor=" in changes[0]
    assert f"seq={seq + 1} gpio18 off" in changes[1]


def test_watch_json_resumes_after_a_seq(server: object) -> None:
    env = env_of(server)
    seq = json.loads(run_cli("on", "18", "--json", env=env).stdout)["seq"]
    run_cli("off", "18", env=env)
    result = run_cli("watch", "--json", "--since", str(seq - 1), "--count", "2", env=env)
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["event"], e["id"], e["data"]["pin"]["state"]) for e in events] == [
        ("change", str(seq), True), ("change", str(seq + 1), False)]


EXIT_CASES = [
    # (arguments, token override, exit code, words in the message)
    (("on", "18"), "pp_wrong", 4, "401"),
    (("on", "4"), None, 5, "no configured pin"),
    (("toggle", "button"), None, 6, "input"),
    (("pulse", "18", "--ms", "0"), None, 2, "--ms"),
    (("pins", "--url", "not a url"), None, 3, "server URL"),
]


@pytest.mark.parametrize(("args", "token", "code", "words"), EXIT_CASES)
def test_exit_codes_and_one_line_messages(server: object, args: tuple[str, ...],
                                          token: str | None, code: int, words: str) -> None:
    result = run_cli(*args, env=env_of(server, token))
    assert result.returncode == code, (result.stdout, result.stderr)
    assert words in result.stderr
    if code != 2:  # argparse prints its usage; every other refusal is exactly one line
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert result.stdout == ""


def test_read_token_cannot_switch(server: object) -> None:
    reader = server.create_token("dashboard", "read")  # type: ignore[attr-defined]
    assert run_cli("pins", env=env_of(server, reader)).returncode == 0
    refused = run_cli("on", "18", env=env_of(server, reader))
    assert refused.returncode == 4 and "403" in refused.stderr


def test_server_down_is_exit_1(server: object) -> None:
    server.stop()  # type: ignore[attr-defined]
    for args in (("pins",), ("on", "18"), ("watch",)):
        result = run_cli(*args, env=env_of(server))
        assert result.returncode == 1, (args, result.stderr)
        assert result.stderr.startswith("pinpanel: cannot reach http://127.0.0.1:")
