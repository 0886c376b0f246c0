"""Broker faults: killed and restarted, absent at start, frozen; passwords and TLS."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from tests.mqtt.conftest import BASE, entity, mqtt_config, probe, wait_online

from pinpanel.local_broker import LocalBroker

pytestmark = pytest.mark.mqtt


def http_state(server: Any, pin: str) -> bool:
    with server.client() as http:
        response = http.get(f"/api/v1/pins/{pin}")
        assert response.status_code == 200
        return bool(response.json()["state"])


def http_switch(server: Any, pin: str, action: str) -> dict[str, Any]:
    with server.client() as http:
        response = http.post(f"/api/v1/pins/{pin}/{action}")
        assert response.status_code == 200, response.text
        return dict(response.json())


async def test_broker_killed_and_restarted(make_server: Any, mosquitto: LocalBroker) -> None:
    server = make_server(mqtt_config(mosquitto))
    await wait_online(mosquitto)
    async with probe(mosquitto, f"{BASE}/lamp/#") as watch:
        mark = watch.mark
        await watch.publish(f"{BASE}/lamp/set", "ON")
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)

    mosquitto.kill()  # SIGKILL: no will is sent, retained messages are gone (no persistence)
    # HTTP keeps answering and switching while the broker is away.
    changed = http_switch(server, "lamp", "off")
    assert changed["state"] is False
    assert http_switch(server, "relay_a", "on")["state"] is True
    assert http_state(server, "relay_a") is True

    mosquitto.start()  # same port, empty broker
    await wait_online(mosquitto)
    async with probe(mosquitto, f"{BASE}/#", "homeassistant/#") as watch:
        # Everything was republished, including what changed while the broker was down.
        await watch.wait_for(entity("switch", "lamp"), retain=True)
        await watch.wait_for(f"{BASE}/lamp/state", "OFF", retain=True)
        attributes = await watch.wait_for(f"{BASE}/lamp/attributes", retain=True)
        assert attributes.json()["seq"] == changed["seq"]
        await watch.wait_for(f"{BASE}/relay_a/state", "ON", retain=True)
        # Commands work again.
        mark = watch.mark
        await watch.publish(f"{BASE}/lamp/set", "ON")
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
    assert http_state(server, "lamp") is True
    log = server.log()
    assert "unavailable" in log
    assert log.count("mqtt: connected to") == 2
    assert "Traceback" not in log


async def test_server_starts_without_a_broker_and_connects_when_it_appears(
        make_server: Any, tmp_path: Path) -> None:
    broker = LocalBroker(tmp_path / "late")  # a port, nothing listening yet
    server = make_server(mqtt_config(broker))
    assert http_switch(server, "lamp", "on")["state"] is True
    broker.start()
    try:
        await wait_online(broker)
        async with probe(broker, f"{BASE}/lamp/state") as watch:
            await watch.wait_for(f"{BASE}/lamp/state", "ON", retain=True)
    finally:
        broker.kill()


async def test_a_frozen_broker_never_stalls_http(make_server: Any, mosquitto: LocalBroker,
                                                 ) -> None:
    server = make_server(mqtt_config(mosquitto, keepalive=60))
    await wait_online(mosquitto)
    assert mosquitto.proc is not None
    mosquitto.proc.send_signal(signal.SIGSTOP)  # TCP stays up, nothing is acknowledged
    try:
        states = [http_switch(server, "lamp", "toggle")["state"] for _ in range(20)]
        assert states == [i % 2 == 0 for i in range(20)]
    finally:
        mosquitto.proc.send_signal(signal.SIGCONT)
    async with probe(mosquitto, f"{BASE}/lamp/state") as watch:
        # The latest state wins once the broker breathes again.
        await watch.wait_for(f"{BASE}/lamp/state", "OFF")


async def logged(server: Any, text: str, after: int = 0) -> None:
    """Wait until the server's log holds ``text`` past offset ``after`` (a hang guard of
    30 s, not a timing expectation)."""
    for _ in range(600):
        if text in server.log()[after:]:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{text!r} never logged:\n{server.log()[after:]}")


async def test_a_frozen_pinpanel_reconnects_cleanly_with_one_warning(
        make_server: Any, mosquitto: LocalBroker) -> None:
    """Frozen longer than the broker's timeout (1.5 x keep-alive), then thawed.

    On waking, one loop iteration holds both paho's keep-alive ping (write interest) and
    the broker's close of the connection: a write interest registered after the close
    used to end in an asyncio ERROR traceback (``add_writer``: bad file descriptor).
    """
    server = make_server(mqtt_config(mosquitto, keepalive=5))
    assert server.proc is not None
    async with probe(mosquitto, f"{BASE}/status", f"{BASE}/lamp/state") as watch:
        await watch.wait_for(f"{BASE}/status", "online")
        # The bridge says "online" on the broker before it logs the connection: wait for
        # that line, so it is in before and not in after.
        await logged(server, "mqtt: connected to")
        before = server.log()
        server.proc.send_signal(signal.SIGSTOP)
        try:
            mark = watch.mark  # the broker gives up on the silent client: its last will
            await watch.wait_for(f"{BASE}/status", "offline", since=mark, timeout=30)
        finally:
            server.proc.send_signal(signal.SIGCONT)
        mark = watch.mark
        await watch.wait_for(f"{BASE}/status", "online", since=mark, timeout=30)
        mark = watch.mark
        await watch.publish(f"{BASE}/lamp/set", "ON")  # and it works again
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
    await logged(server, "mqtt: connected to", after=len(before))
    after = server.log()[len(before):]
    assert "Traceback" not in after
    assert " ERROR " not in after
    warnings = [line for line in after.splitlines() if " WARNING " in line]
    assert len(warnings) == 1, warnings
    assert "pinpanel.mqtt: mqtt: broker 127.0.0.1" in warnings[0]
    assert after.count("mqtt: connected to") == 1


async def test_the_default_keep_alive_is_15_s(make_server: Any,
                                              mosquitto: LocalBroker) -> None:
    """An unplugged Pi is unavailable after 1.5 x keep-alive: about 23 s (README)."""
    make_server(mqtt_config(mosquitto))  # no keepalive setting
    await wait_online(mosquitto)
    connected = [line for line in mosquitto.log_path.read_text().splitlines()
                 if "as pinpanel-t1 (" in line]
    assert connected, mosquitto.log_path.read_text()
    assert ", k15" in connected[-1]


async def test_username_and_password(make_server: Any,
                                     make_broker: Callable[..., LocalBroker]) -> None:
    broker = make_broker("auth", users={"pi": "s3cret-Pa55"})
    # Anonymous clients are refused by this broker...
    refused = subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(broker.port),
                              "-t", "x", "-m", "y"], capture_output=True, timeout=10,
                             check=False)
    assert refused.returncode != 0
    # ...a wrong password is retried quietly, and HTTP serves meanwhile...
    wrong = make_server(mqtt_config(broker, username="pi", password="wrong-Guess-77"),
                        name="wrong")
    assert http_switch(wrong, "lamp", "on")["state"] is True
    # ...and the right one connects.
    right = make_server(mqtt_config(broker, device="t2", username="pi", password="s3cret-Pa55"),
                        name="right")
    async with probe(broker, "pinpanel/#", username="pi", password="s3cret-Pa55") as watch:
        await watch.wait_for("pinpanel/t2/status", "online")
        mark = watch.mark
        await watch.publish("pinpanel/t2/lamp/set", "ON")
        await watch.wait_for("pinpanel/t2/lamp/state", "ON", since=mark)
        assert watch.latest("pinpanel/t1/status") is None  # the wrong password never got in
    assert http_state(right, "lamp") is True
    assert wait_for_log(wrong, "unavailable")
    for server in (wrong, right):
        log = server.log()
        assert "s3cret-Pa55" not in log and "wrong-Guess-77" not in log
    assert "Traceback" not in wrong.log()


def wait_for_log(server: Any, text: str, timeout: float = 15) -> bool:
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in server.log():
            return True
        time.sleep(0.05)
    return False


def _make_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a server certificate for 127.0.0.1, made with openssl."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca_cert = directory / "ca.key", directory / "ca.pem"
    key, csr, cert = directory / "server.key", directory / "server.csr", directory / "server.pem"
    ext = directory / "san.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def openssl(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)

    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", "/CN=pinpanel test CA", "-keyout", str(ca_key), "-out", str(ca_cert))
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
            "-keyout", str(key), "-out", str(csr))
    openssl("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
            "-CAcreateserial", "-days", "2", "-extfile", str(ext), "-out", str(cert))
    return ca_cert, cert, key


async def test_tls(make_server: Any, make_broker: Callable[..., LocalBroker],
                   tmp_path: Path) -> None:
    ca, cert, key = _make_certificates(tmp_path / "pki")
    broker = make_broker("tls", tls=(cert, key))
    server = make_server(mqtt_config(broker, tls=True, ca_file=str(ca)))
    import ssl

    context = ssl.create_default_context(cafile=str(ca))
    async with probe(broker, f"{BASE}/#", tls_context=context) as watch:
        await watch.wait_for(f"{BASE}/status", "online")
        mark = watch.mark
        await watch.publish(f"{BASE}/lamp/set", "ON")
        await watch.wait_for(f"{BASE}/lamp/state", "ON", since=mark)
    assert http_state(server, "lamp") is True
