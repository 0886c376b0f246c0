"""Pulses, auto-off, interlocks and simulated inputs over HTTP, watched on the event stream.

The timing of pulses is proven with a hand-driven clock in tests/unit/test_board.py; here a
real server shows the same behaviour end to end: requests return at once, the turn-off is
its own committed change (cause ``pulse``), commands cancel it, interlocks hold on every
path and under concurrency.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime

from tests.e2e.sse import Event, Reader, async_client, replay
from tests.support import JSON, ServerFactory

CONFIG = """
[[pins]]
pin = 17
id = "garage"
name = "Garage door"
pulse_ms = 2000
[[pins]]
pin = 18
[[pins]]
pin = 22
id = "pump"
auto_off_ms = 400
[[pins]]
pin = 20
id = "up"
[[pins]]
pin = 21
id = "down"
[[pins]]
pin = 27
id = "button"
mode = "input"
pull = "up"
[[interlocks]]
pins = ["up", "down"]
"""


def summary(changes: list[Event]) -> list[tuple[int, bool, str]]:
    return [(c.data["pin"]["pin"], c.data["pin"]["state"], c.data["cause"]) for c in changes]


def stamp(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def seconds_until(text: str) -> float:
    return stamp(text) - time.time()


async def test_pulse_returns_at_once_and_the_turn_off_is_its_own_change(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        pulsed = await http.post("/api/v1/pins/garage/pulse")  # no body: the pin's pulse_ms
        assert pulsed.status_code == 200
        on = pulsed.json()
        assert on["state"] is True and "pulse_until" in on
        length = stamp(on["pulse_until"]) - stamp(on["changed_at"])
        assert 1.9 < length < 2.1  # the config's 2000 ms, counted from the change
        # The request did not wait for the pulse: the pin is still on and pulsing.
        still = (await http.get("/api/v1/pins/garage")).json()
        assert still["state"] is True and still["pulse_until"] == on["pulse_until"]
        await stream.wait_seq(on["seq"] + 1)
        first, off = stream.changes
        assert first.data["pin"] == on and first.data["cause"] == "pulse"
        assert (off.id, off.data["cause"], off.data["actor"]) == (on["seq"] + 1, "pulse",
                                                                  "pulse")
        assert off.data["pin"]["state"] is False and off.data["old"] is True
        assert "pulse_until" not in off.data["pin"]
        after = (await http.get("/api/v1/pins/garage")).json()
        assert after["state"] is False and "pulse_until" not in after


async def test_a_command_cancels_the_pending_turn_off(make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        start = stream.events[0].id or 0
        # An "off" ends the pulse early, as an ordinary change.
        await http.post("/api/v1/pins/18/pulse", json={"ms": 60_000})
        off = (await http.post("/api/v1/pins/18/off")).json()
        assert off["state"] is False and "pulse_until" not in off
        # An "on" during a pulse changes nothing now, but keeps the pin on for good.
        pulsed = (await http.post("/api/v1/pins/18/pulse", json={"ms": 600})).json()
        kept = (await http.post("/api/v1/pins/18/on")).json()
        assert kept["state"] is True and "pulse_until" not in kept
        await asyncio.sleep(max(0.0, seconds_until(pulsed["pulse_until"])) + 0.5)
        marker = (await http.post("/api/v1/pins/garage/on")).json()  # later than any timer
        await stream.wait_seq(marker["seq"])
        assert summary(stream.changes) == [
            (18, True, "pulse"), (18, False, "api"), (18, True, "pulse"), (17, True, "api")]
        assert [c.id for c in stream.changes] == list(range(start + 1, start + 5))
        assert (await http.get("/api/v1/pins/18")).json()["state"] is True


async def test_auto_off_turns_off_whatever_turned_it_on(make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        assert (await http.post("/toggle", params={"pin": "22"})).status_code == 303
        await stream.wait_for(lambda r: len(r.changes) == 2, "auto-off after the form")
        assert (await http.post("/api/toggle/22", headers=JSON)).json() == {"Success": True}
        await stream.wait_for(lambda r: len(r.changes) == 4, "auto-off after the tutorial API")
        assert summary(stream.changes) == [(22, True, "form"), (22, False, "pulse"),
                                           (22, True, "api"), (22, False, "pulse")]
        assert "pulse_until" in stream.changes[0].data["pin"]


async def test_interlock_holds_on_every_path(make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        snapshot = stream.events[0].data
        assert (await http.post("/api/v1/pins/up/on")).status_code == 200
        assert (await http.post("/api/toggle/21", headers=JSON)).json() == {"Success": True}
        assert (await http.post("/toggle", params={"pin": "20"})).status_code == 303
        assert (await http.put("/api/v1/pins/down", json={"state": True})).status_code == 200
        assert (await http.post("/api/v1/pins/up/pulse", json={"ms": 300})).status_code == 200
        await stream.wait_for(lambda r: len(r.changes) == 10, "every change")
        assert summary(stream.changes) == [
            (20, True, "api"),
            (20, False, "interlock"), (21, True, "api"),   # the tutorial's /api/toggle
            (21, False, "interlock"), (20, True, "form"),  # the page's form
            (20, False, "interlock"), (21, True, "api"),   # PUT
            (21, False, "interlock"), (20, True, "pulse"),  # a pulse
            (20, False, "pulse"),
        ]
        assert not any(s[20] and s[21] for s in replay(snapshot, stream.changes))
        pins = {p["id"]: p["state"] for p in (await http.get("/api/v1/pins")).json()["pins"]}
        assert (pins["up"], pins["down"]) == (False, False)


async def test_two_hundred_concurrent_on_commands_never_show_both_on(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        snapshot = stream.events[0].data
        async with async_client(server, connections=50) as load:

            async def command(i: int) -> int:
                pin = ("up", "down")[i % 2]
                if i % 4 < 2:
                    response = await load.post(f"/api/v1/pins/{pin}/on")
                else:
                    response = await load.put(f"/api/v1/pins/{pin}", json={"state": True})
                return response.status_code

            assert set(await asyncio.gather(*(command(i) for i in range(200)))) == {200}
        final = int((await http.get("/api/v1/system")).json()["seq"])
        await stream.wait_seq(final)
        changes = stream.changes
        assert [c.id for c in changes] == list(range(snapshot["seq"] + 1, final + 1))
        states = replay(snapshot, changes)
        assert len(states) > 20  # the pair really switched back and forth
        assert not any(s[20] and s[21] for s in states)
        pins = {p["id"]: p["state"] for p in (await http.get("/api/v1/pins")).json()["pins"]}
        assert pins["up"] != pins["down"]  # exactly one of the pair won the last command
        assert {states[-1][20], states[-1][21]} == {True, False}


async def test_a_simulated_press_arrives_as_an_input_event(make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        button = next(p for p in stream.events[0].data["pins"] if p["id"] == "button")
        assert button["state"] is True  # pulled up, nothing pressed
        pressed = (await http.post("/api/v1/pins/button/simulate", json={"level": "low"}))
        released = (await http.post("/api/v1/pins/button/simulate", json={"level": "high"}))
        assert pressed.status_code == released.status_code == 200
        await stream.wait_seq(released.json()["seq"])
        assert summary(stream.changes) == [(27, False, "input"), (27, True, "input")]
        assert {c.data["actor"] for c in stream.changes} == {"input"}
        assert stream.changes[0].data["pin"] == pressed.json()
