"""pwm levels and servo angles against a real server process: v1, the tutorial's routes, the
form, the event stream and the history agree on every value and seq; kill -9 loses none."""

from __future__ import annotations

from typing import Any

from tests.e2e.audit import all_history
from tests.e2e.sse import Reader, async_client
from tests.support import JSON, ServerFactory

CONFIG = """
[gpio]
backend = "simulated"

[[pins]]
pin = 18
id = "lamp"
mode = "pwm"

[[pins]]
pin = 12
id = "blind"
mode = "servo"
min_angle = 0
max_angle = 180

[[pins]]
pin = 23
"""


def value_of(pin: dict[str, Any]) -> tuple[bool, Any]:
    return pin["state"], pin.get("level", pin.get("angle"))


async def test_levels_and_angles_over_v1_the_tutorial_and_the_form_agree_everywhere(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        start = stream.events[0].id or 0
        answers = [
            (await http.put("/api/v1/pins/lamp", json={"level": 0.4})).json(),
            (await http.put("/api/v1/pins/12", json={"angle": 30})).json(),
            (await http.post("/api/v1/pins/lamp/off")).json(),
            (await http.put("/api/v1/pins/lamp", json={"state": True})).json(),
        ]
        assert [value_of(a) for a in answers] == [(True, 0.4), (True, 30.0), (False, 0.0),
                                                  (True, 0.4)]  # on: the level it had
        listed = (await http.get("/api/list", headers=JSON)).json()
        assert listed["18"] is True and listed["12"] is True  # level > 0, attached
        assert (await http.post("/api/toggle/18", headers=JSON)).json() == {"Success": True}
        assert (await http.get("/api/v1/pins/lamp")).json()["level"] == 0.0
        assert (await http.post("/toggle", params={"pin": "18"})).status_code == 303
        lamp = (await http.get("/api/v1/pins/lamp")).json()
        assert value_of(lamp) == (True, 0.4)  # the form's toggle: brightness memory too
        detached = (await http.put("/api/v1/pins/blind", json={"angle": None})).json()
        assert value_of(detached) == (False, None)
        final = (await http.get("/api/v1/pins")).json()["seq"]
        await stream.wait_seq(final)
        changes = stream.changes
        assert [c.id for c in changes] == list(range(start + 1, final + 1))
        assert [c.data["pin"] for c in changes[:4]] == answers  # the response is the event
        assert changes[0].data["old_level"] == 0.0 and changes[0].data["new_level"] == 0.4
        with server.client() as sync:
            rows = [r for r in all_history(sync) if r["seq"] > start]
        assert [r["seq"] for r in rows] == [c.id for c in changes]
        for row, change in zip(rows, changes, strict=True):
            pin = change.data["pin"]
            assert (row["pin"], row["new"]) == (pin["pin"], pin["state"])
            if pin["mode"] == "pwm":
                assert row["new_level"] == pin["level"]
            else:
                assert row["new_angle"] == pin["angle"]
        assert [(r["old_angle"], r["new_angle"]) for r in rows if r["pin"] == 12] == \
            [(None, 30.0), (30.0, None)]


async def test_out_of_range_and_wrong_kind_are_refused_and_change_nothing(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http:
        seq = (await http.get("/api/v1/pins")).json()["seq"]
        for pin, body, status in [
            ("lamp", {"level": 1.5}, 422), ("lamp", {"level": -0.1}, 422),
            ("lamp", {"level": "half"}, 422), ("blind", {"angle": 181}, 422),
            ("lamp", {"level": 0.5, "state": True}, 422), ("lamp", {}, 422),
            ("blind", {"level": 0.5}, 409), ("23", {"level": 0.5}, 409),
            ("lamp", {"angle": 10}, 409), ("nope", {"level": 0.5}, 404),
        ]:
            answer = await http.put(f"/api/v1/pins/{pin}", json=body)
            assert answer.status_code == status, (pin, body, answer.text)
            assert answer.headers["content-type"] == "application/problem+json"
        bad_fade = await http.post("/api/v1/pins/lamp/fade", json={"level": 0.5, "ms": -5})
        assert bad_fade.status_code == 422
        assert (await http.post("/api/v1/pins/lamp/fade", json={"level": 2, "ms": 5})
                ).status_code == 422
        assert (await http.get("/api/v1/pins")).json()["seq"] == seq


async def test_a_fade_answers_at_once_with_its_target_and_the_stream_shows_it(
        make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    async with async_client(server) as http, Reader(http) as stream:
        await stream.wait_for(lambda r: r.events, "snapshot")
        faded = (await http.post("/api/v1/pins/lamp/fade",
                                 json={"level": 0.8, "ms": 60_000})).json()
        assert faded["level"] == 0.8 and "fade_until" in faded  # a minute: still fading
        await stream.wait_seq(faded["seq"])
        assert stream.changes[-1].data["pin"] == faded
        assert (await http.get("/api/v1/pins/lamp")).json()["fade_until"] == \
            faded["fade_until"]
        later = (await http.put("/api/v1/pins/lamp", json={"level": 0.2})).json()
        assert later["level"] == 0.2 and "fade_until" not in later  # the fade is over
        with server.client() as sync:
            rows = all_history(sync, pin="lamp")
        assert [(r["old_level"], r["new_level"]) for r in rows[-2:]] == [(0.0, 0.8),
                                                                         (0.8, 0.2)]


def test_levels_and_angles_come_back_after_kill_9(make_server: ServerFactory) -> None:
    server = make_server(CONFIG)
    with server.client() as http:
        acked = [http.put("/api/v1/pins/lamp", json={"level": 0.65}).json(),
                 http.put("/api/v1/pins/blind", json={"angle": 135}).json()]
    server.kill()
    again = make_server(CONFIG, token=server.token)
    with again.client() as http:
        pins = {p["id"]: p for p in http.get("/api/v1/pins").json()["pins"]}
        assert (pins["lamp"]["level"], pins["lamp"]["seq"]) == (0.65, acked[0]["seq"])
        assert (pins["blind"]["angle"], pins["blind"]["seq"]) == (135.0, acked[1]["seq"])
        assert http.post("/api/v1/pins/lamp/off").json()["level"] == 0.0
        assert http.post("/api/v1/pins/lamp/on").json()["level"] == 0.65
