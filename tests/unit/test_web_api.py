"""API v1 in process: what a reader sees of a pin while a change of it is being committed."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx

from pinpanel import auth, runtime
from pinpanel.changes import Actor
from pinpanel.config import load, with_overrides
from pinpanel.web.app import create_app
from tests.unit.conftest import hold_commits, settle

USER = Actor("tester", "api")


async def test_a_pin_read_mid_commit_pairs_its_state_with_that_states_seq(
        tmp_path: Path) -> None:
    config = with_overrides(load(None), server__data_dir=str(tmp_path / "data"),
                            gpio__backend="simulated")
    async with runtime.opened(config) as opened:
        token = auth.create_token(opened.store, "reader", "read")
        app = create_app(config, opened.board, opened.store, auth.Keyring(opened.store),
                         opened.telemetry)
        board = opened.board
        before = board.view(18)
        gate = hold_commits(opened.store)
        switching = asyncio.create_task(board.command(18, "on", USER))
        await settle()  # the line is on and the change on disk; its commit is not answered
        assert board.hardware.read(18) is True and not switching.done()
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                     base_url="http://127.0.0.1",
                                     headers={"Authorization": f"Bearer {token}"}) as http:
            one = (await http.get("/api/v1/pins/18")).json()
            every = (await http.get("/api/v1/pins")).json()
            listed = next(p for p in every["pins"] if p["pin"] == 18)
            # The committed pin: the state that goes with its seq, not the line's new state.
            assert (one["state"], one["seq"]) == (False, before.seq)
            assert (listed["state"], listed["seq"]) == (False, before.seq)
            assert every["seq"] == board.hub.last_seq >= before.seq
            gate.set()
            done = await switching
            after = (await http.get("/api/v1/pins/18")).json()
            assert (after["state"], after["seq"]) == (True, done.seq) and done.seq > before.seq
