"""Groups and scenes: config, the board's one commit for many pins, and the HTTP routes."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest

from pinpanel import auth, runtime
from pinpanel.automation import groups
from pinpanel.board import Board
from pinpanel.changes import Actor, Change
from pinpanel.errors import ConfigError, PinModeError, PinValueError, UnknownNameError
from pinpanel.web.app import create_app
from tests.unit.conftest import config_of, running_board

USER = Actor("tester", "scene")

HOUSE = """
[[pins]]
pin = 17
id = "porch"
[[pins]]
pin = 27
id = "hall"
[[pins]]
pin = 22
id = "fan_low"
[[pins]]
pin = 23
id = "fan_high"
auto_off_ms = 60000
[[pins]]
pin = 5
id = "door"
mode = "input"

[[interlocks]]
pins = ["fan_low", "fan_high"]

[[groups]]
id = "lights"
name = "Lights"
pins = ["porch", 27]

[[scenes]]
id = "evening"
name = "Evening"
set = { porch = "on", hall = true, fan_high = "on" }

[[scenes]]
id = "night"
set = { porch = "off", hall = "off", fan_low = "on" }
"""


def collect(board: Board) -> list[Change]:
    seen: list[Change] = []
    board.hub.add_listener(seen.append)
    return seen


def test_groups_and_scenes_are_read_with_the_builtin_all() -> None:
    config = config_of(HOUSE)
    assert config.group("lights") is not None and config.group("lights").pins == (17, 27)  # type: ignore[union-attr]
    everything = config.group("all")
    assert everything is not None and everything.pins == (17, 27, 22, 23)  # outputs only
    assert [g.id for g in config.all_groups()] == ["all", "lights"]
    evening = config.scene("evening")
    assert evening is not None and evening.set == ((17, True), (27, True), (23, True))
    assert config.scene("nope") is None and config.group("nope") is None


@pytest.mark.parametrize(("text", "problem"), [
    ('[[groups]]\nid = "g"\npins = ["nope"]', "groups[0].pins[0]: 'nope' is not a configured"),
    ('[[groups]]\nid = "g"\npins = ["door"]', "groups[0].pins[0]: pin 5 is an input"),
    ('[[groups]]\nid = "G!"\npins = [17]', "groups[0].id: 'G!' must be lowercase"),
    ('[[groups]]\nid = "g"\npins = [17]\n[[groups]]\nid = "g"\npins = [27]',
     "groups[1].id: 'g' is already used"),
    ('[[groups]]\nid = "g"', "groups[0].pins: required"),
    ('[[scenes]]\nid = "s"\nset = { porch = 0.5 }', "scenes[0].set.porch: a level (0.0 to 1.0)"),
    ('[[scenes]]\nid = "s"\nset = { porch = [1] }', "scenes[0].set.porch: expected"),
    ('[[scenes]]\nid = "s"\nset = { fan_low = "on", fan_high = "on" }',
     "scenes[0].set: pins 22, 23 are interlocked"),
    ('[[scenes]]\nid = "s"\nset = { porch = "on" }\ncolour = 1',
     "scenes[0].colour: unknown key"),
])
def test_bad_groups_and_scenes_are_reported_with_their_path(text: str, problem: str) -> None:
    base = HOUSE.split("[[groups]]")[0]
    with pytest.raises(ConfigError) as caught:
        config_of(base + text)
    assert any(p.startswith(problem) for p in caught.value.problems), caught.value.problems


async def test_a_scene_is_one_commit_with_contiguous_seqs(tmp_path: Path) -> None:
    async with running_board(tmp_path, HOUSE) as board:
        await board.command("fan_low", "on", USER)
        seen = collect(board)
        commits: list[int] = []
        commit = board.store.commit

        def counted(records):  # type: ignore[no-untyped-def]
            commits.append(len(records))
            return commit(records)

        board.store.commit = counted  # type: ignore[method-assign]
        applied = await groups.apply_scene(board, "evening", USER)
        assert commits == [4]  # porch, hall, fan_high, and fan_low off by interlock: ONE commit
        seqs = [c.seq for c in applied.changes]
        assert seqs == list(range(seqs[0], seqs[0] + 4)) == [c.seq for c in seen]
        by_pin = {c.pin.id: c.committed for c in applied.changes}
        assert by_pin["fan_low"].actor.cause == "interlock" and by_pin["fan_low"].new is False
        assert by_pin["porch"].actor == USER
        # Off before on: the interlock partner went off before fan_high came on.
        assert seqs.index(by_pin["fan_low"].seq) < seqs.index(by_pin["fan_high"].seq)
        assert [v.id for v in applied.pins] == ["porch", "hall", "fan_high"]
        assert all(v.state for v in applied.pins)
        assert board.view("fan_high").pulse_until is not None  # its auto-off holds
        assert groups.scene_active(board, board.config.scene("evening"))  # type: ignore[arg-type]
        again = await groups.apply_scene(board, "evening", USER)
        assert again.changes == [] and [v.seq for v in again.pins] == [
            by_pin[p].seq for p in ("porch", "hall", "fan_high")]


async def test_interlocks_hold_while_scenes_race(tmp_path: Path) -> None:
    async with running_board(tmp_path, HOUSE) as board:
        await asyncio.gather(*(groups.apply_scene(board, name, USER)
                               for name in ("evening", "night") * 10))
        assert not (board.hardware.read(22) and board.hardware.read(23))
        state = {22: False, 23: False}
        for row in reversed(board.store.history(pins=[22, 23], limit=1000)):
            state[row.pin] = row.new
            assert not all(state.values()), row


async def test_groups_switch_together_and_toggle_goes_off_if_any_is_on(tmp_path: Path) -> None:
    async with running_board(tmp_path, HOUSE) as board:
        await board.command("porch", "on", USER)
        assert groups.group_state(board, board.config.group("lights")) is None  # type: ignore[arg-type]
        off = await groups.switch_group(board, "lights", "toggle", USER)
        assert [v.state for v in off.pins] == [False, False] and len(off.changes) == 1
        on = await groups.switch_group(board, "lights", "toggle", USER)
        assert [v.state for v in on.pins] == [True, True]
        with pytest.raises(PinValueError, match="interlocked"):
            await groups.switch_group(board, "all", "on", USER)  # fan_low and fan_high
        assert board.view("porch").state is True  # nothing changed
        everything = await groups.switch_group(board, "all", "off", USER)
        assert not any(v.state for v in everything.pins)
        with pytest.raises(UnknownNameError):
            await groups.switch_group(board, "garden", "on", USER)
        with pytest.raises(PinModeError):
            await board.apply({"door": True}, USER)


async def test_groups_and_scenes_over_http(tmp_path: Path) -> None:
    config = config_of(HOUSE + f'\n[server]\ndata_dir = "{tmp_path}"\n[gpio]\n'
                       'backend = "simulated"\n')
    async with runtime.opened(config) as opened:
        admin = auth.create_token(opened.store, "alice", "control")
        reader = auth.create_token(opened.store, "rita", "read")
        app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1") as http:
            def as_(token: str) -> dict[str, str]:
                return {"Authorization": f"Bearer {token}"}

            listed = (await http.get("/api/v1/groups", headers=as_(reader))).json()
            assert [g["id"] for g in listed["groups"]] == ["all", "lights"]
            assert listed["groups"][1] == {"id": "lights", "name": "Lights",
                                           "pins": ["porch", "hall"], "state": False}
            scenes = (await http.get("/api/v1/scenes", headers=as_(reader))).json()["scenes"]
            assert scenes[0]["set"] == {"porch": "on", "hall": "on", "fan_high": "on"}
            denied = await http.post("/api/v1/scenes/evening/apply", headers=as_(reader))
            assert denied.status_code == 403
            applied = await http.post("/api/v1/scenes/evening/apply", headers=as_(admin))
            assert applied.status_code == 200, applied.text
            body = applied.json()
            assert body["scene"] == "evening" and body["changes"] == 3
            assert body["seq"]["last"] - body["seq"]["first"] == 2
            history = (await http.get("/api/v1/history", headers=as_(reader))).json()
            rows = history["items"]
            assert {r["cause"] for r in rows if r["seq"] >= body["seq"]["first"]} == {"scene"}
            group = await http.post("/api/v1/groups/lights/off", headers=as_(admin))
            assert group.status_code == 200 and group.json()["changes"] == 2
            assert (await http.post("/api/v1/groups/all/off", headers=as_(admin))).json()[
                "changes"] == 1
            missing = await http.post("/api/v1/groups/garden/on", headers=as_(admin))
            assert missing.status_code == 404 and "no group 'garden'" in missing.text
            bad = await http.post("/api/v1/groups/lights/blink", headers=as_(admin))
            assert bad.status_code == 404
            clash = await http.post("/api/v1/groups/all/on", headers=as_(admin))
            assert clash.status_code == 422 and "interlocked" in clash.text
            doc = (await http.get("/openapi.json", headers=as_(reader))).json()
            assert {"/api/v1/groups", "/api/v1/scenes", "/api/v1/scenes/{scene}/apply",
                    "/api/v1/groups/{group}/toggle"} <= set(doc["paths"])


DIMMED = """
[[pins]]
pin = 18
id = "lamp"
mode = "pwm"

[[pins]]
pin = 17
id = "porch"

[[scenes]]
id = "film"
set = { lamp = 0.25, porch = "off" }

[[scenes]]
id = "bright"
set = { lamp = 1.0, porch = "on" }

[[scenes]]
id = "dark"
set = { lamp = 0, porch = false }
"""


async def test_a_scene_sets_a_pwm_level_in_the_same_commit(tmp_path: Path) -> None:
    async with running_board(tmp_path, DIMMED) as board:
        bright = await groups.apply_scene(board, "bright", USER)
        assert len(bright.changes) == 2
        film = await groups.apply_scene(board, "film", USER)
        seqs = [c.seq for c in film.changes]
        assert len(seqs) == 2 and seqs[1] == seqs[0] + 1  # one commit, contiguous
        assert board.view("lamp").level == 0.25 and board.view("porch").state is False
        assert groups.scene_active(board, board.config.scene("film"))  # type: ignore[arg-type]
        assert groups.scene_json(board, board.config.scene("film"))["set"] == {  # type: ignore[arg-type]
            "lamp": 0.25, "porch": "off"}
        await groups.apply_scene(board, "dark", USER)
        assert board.view("lamp").state is False
        with pytest.raises(PinModeError):
            await board.apply({"porch": 0.5}, USER)  # a level needs a pwm pin
