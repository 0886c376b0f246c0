"""Telemetry: made and fed by the runtime, handed to the adapters; no registry beside it."""

from __future__ import annotations

from pathlib import Path

from pinpanel import runtime
from pinpanel.changes import Actor
from pinpanel.config import load, with_overrides
from pinpanel.store import Store
from pinpanel.telemetry import Telemetry

USER = Actor("tester", "api")


async def test_the_runtime_feeds_its_telemetry_from_the_hub_and_the_store(
        tmp_path: Path) -> None:
    config = with_overrides(load(None), server__data_dir=str(tmp_path / "data"),
                            gpio__backend="simulated")
    async with runtime.opened(config) as opened:
        stats = opened.telemetry
        assert stats.changes == {}  # counted from serving on, not the start-up restore
        await opened.board.command(18, "on", USER)
        await opened.board.command(18, "off", USER)
        assert stats.changes == {(18, "gpio18", "api"): 2}
        await opened.store.write(lambda conn: None)  # runs after the last batch's observer
        _, total, count = stats.commit_seconds.snapshot()
        assert count >= 2 and total > 0


async def test_each_runtime_has_its_own_telemetry(tmp_path: Path) -> None:
    configs = [with_overrides(load(None), server__data_dir=str(tmp_path / name),
                              gpio__backend="simulated") for name in ("a", "b")]
    async with runtime.opened(configs[0]) as one, runtime.opened(configs[1]) as two:
        await one.board.command(18, "on", USER)
        assert one.telemetry is not two.telemetry
        assert two.telemetry.changes == {}


async def test_every_commit_observer_hears_each_transaction_and_a_failing_one_harms_none(
        tmp_path: Path) -> None:
    store = Store.open(tmp_path)
    try:
        heard: list[float] = []

        def broken(seconds: float) -> None:
            raise RuntimeError("observer bug")

        store.add_commit_observer(broken)
        store.add_commit_observer(heard.append)
        await store.write(lambda conn: None)
        await store.write(lambda conn: None)  # the first batch's observers have run by now
        assert len(heard) >= 1 and all(s >= 0 for s in heard)
    finally:
        store.close()


def test_a_gauge_is_declared_on_first_use() -> None:
    stats = Telemetry()
    stats.set_gauge("mqtt_connected", 1)
    stats.set_gauge("sensor_up", 1, "1 while the sensor answers.")
    assert stats.gauges["mqtt_connected"].value == 1.0
    assert stats.gauges["sensor_up"].help == "1 while the sensor answers."
