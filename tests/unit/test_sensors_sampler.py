"""The sampler: deadband and heartbeat, errors as errors, simulated kinds, the counter's edges."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from pinpanel.errors import SensorReadError, SimulationOnlyError, UnknownSensorError
from pinpanel.hardware import Hardware
from pinpanel.sensors import drivers
from pinpanel.sensors.model import Sample
from pinpanel.sensors.sampler import HEARTBEAT_S, Sampler
from pinpanel.sensors.simulated import Simulated
from pinpanel.store.readings import ReadingStore
from tests.unit.conftest import config_of

SENSORS = """
[[sensors]]
id = "tank"
kind = "ds18b20"
min_change = 0.5

[[sensors]]
id = "air"
kind = "bme280"

[[sensors]]
id = "flow"
kind = "counter"
pin = 17
pulses_per_unit = 2
unit = "L"

[[sensors]]
id = "level"
kind = "mcp3008"
channel = 0
scale = 3.3
unit = "V"

[[sensors]]
id = "soc"
kind = "cpu_temperature"
"""


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ReadingStore]:
    opened = ReadingStore.open(tmp_path)
    yield opened
    opened.close()


@contextlib.asynccontextmanager
async def running(store: ReadingStore | None, text: str = SENSORS,
                  hardware: Hardware | None = None) -> AsyncIterator[Sampler]:
    config = config_of(text)
    hardware = hardware or Hardware.open("simulated")
    sampler = Sampler(config.sensors, drivers.open_drivers(config.sensors, hardware), store,
                      simulated=hardware.info.simulated)
    sampler.start()
    try:
        yield sampler
    finally:
        await sampler.close()
        hardware.close("release")


#: Recent enough that retention (48 h raw) keeps it: the store's clock is the real one here.
BASE = (time.time() // 3600 - 2) * 3600


def sample(values: dict[str, float] | None = None, at: float = 1000.0,
           error: str | None = None) -> Sample:
    """A sample ``at`` seconds after :data:`BASE`."""
    return Sample("tank", BASE + at, values or {}, error, "why" if error else None)


async def test_a_read_inside_the_deadband_is_neither_stored_nor_published(
        store: ReadingStore) -> None:
    async with running(store) as sampler:
        heard: list[Sample] = []
        sampler.add_listener(heard.append)
        state = sampler.state("tank")
        state.latest = None
        assert sampler.record(state, sample({"temperature": 20.0}, 1000))
        assert not sampler.record(state, sample({"temperature": 20.4}, 1030))
        assert sampler.record(state, sample({"temperature": 20.5}, 1060))
        assert not sampler.record(state, sample({"temperature": 20.6}, 1090))
        # a flat line is still kept once in a while
        assert sampler.record(state, sample({"temperature": 20.6}, 1060 + HEARTBEAT_S))
        assert [s.values["temperature"] for s in heard] == [20.0, 20.5, 20.6]
        store.flush()
        raw = store.raw("tank", "temperature", BASE, BASE + 10_000)
        assert [p.value for p in raw] == [20.0, 20.5, 20.6]
        # ... but every good read is in the rollups (their averages are exact)
        _, buckets = store.buckets("tank", "temperature", BASE + 960, BASE + 1200, 60)
        assert [b.n for b in buckets] == [1, 2, 1]  # 1000 | 1030, 1060 | 1090


async def test_an_error_always_shows_and_is_counted_never_stored_as_a_value(
        store: ReadingStore) -> None:
    async with running(store) as sampler:
        state = sampler.state("tank")
        state.latest = None
        assert sampler.record(state, sample({"temperature": 20.0}, 1000))
        assert sampler.record(state, sample(error="crc", at=1030))
        assert not sampler.record(state, sample(error="crc", at=1060))  # the same error
        assert sampler.record(state, sample(error="power_on", at=1090))
        assert sampler.record(state, sample({"temperature": 20.0}, 1120))  # recovered
        assert state.errors == {"crc": 2, "power_on": 1}
        store.flush()
        raw = store.raw("tank", "temperature", BASE, BASE + 10_000)
        assert [(p.value, p.error) for p in raw] == [
            (20.0, None), (None, "crc"), (None, "power_on"), (20.0, None)]


async def test_every_kind_has_a_plausible_simulated_reading(store: ReadingStore) -> None:
    async with running(store) as sampler:
        got = {sid: (await sampler.read_now(sid)).values for sid in sampler.states}
    assert 15 < got["tank"]["temperature"] < 27
    assert 15 < got["air"]["temperature"] < 27
    assert 40 < got["air"]["humidity"] < 70
    assert 1000 < got["air"]["pressure"] < 1025
    assert 0 <= got["level"]["value"] <= 3.3
    assert 35 < got["soc"]["temperature"] < 55
    assert got["flow"]["total"] >= 0 and got["flow"]["rate"] >= 0


def test_simulated_readings_are_seeded_by_the_sensor_id_and_vary_slowly() -> None:
    config = config_of(SENSORS).sensors[0]
    now = [1_767_225_600.0]
    one, two = Simulated(config, lambda: now[0]), Simulated(config, lambda: now[0])
    first = one.read()["temperature"]
    assert two.read()["temperature"] == first
    now[0] += 30
    assert abs(one.read()["temperature"] - first) < 0.3  # 30 s later: nearly the same


async def test_simulate_pins_a_value_or_an_error_until_auto(store: ReadingStore) -> None:
    async with running(store) as sampler:
        got = await sampler.simulate("tank", value=30.25)
        assert got.values == {"temperature": 30.25}
        assert (await sampler.read_now("tank")).values == {"temperature": 30.25}
        got = await sampler.simulate("tank", error="crc")
        assert got.error == "crc" and got.values == {}
        got = await sampler.simulate("air", value=40.0, reading="humidity")
        assert got.values["humidity"] == 40.0
        got = await sampler.simulate("tank", auto=True)
        assert got.error is None and got.values["temperature"] != 30.25
        with pytest.raises(ValueError, match="no reading 'wind'"):
            await sampler.simulate("air", value=1.0, reading="wind")
        with pytest.raises(UnknownSensorError):
            await sampler.simulate("nope", value=1.0)


async def test_the_counter_counts_edges_on_its_input_pin(store: ReadingStore) -> None:
    hardware = Hardware.open("simulated")
    async with running(store, hardware=hardware) as sampler:
        await sampler.simulate("flow", value=0)  # stop the simulated drift: by hand only
        before = (await sampler.read_now("flow")).values["total"]
        for _ in range(5):  # five pulses on the wire, as a meter would make them
            hardware.drive_input(17, False)
            hardware.drive_input(17, True)
        got = await sampler.simulate("flow", value=3)  # and three more through the API
        assert got.values["total"] == before + 8 / 2  # 2 pulses per litre
        assert got.values["rate"] > 0


async def test_simulate_is_refused_on_real_hardware(store: ReadingStore) -> None:
    class Fixed:
        def read(self) -> dict[str, float]:
            return {"temperature": 20.0}

        def close(self) -> None:
            pass

    config = config_of('[[sensors]]\nid = "tank"\nkind = "ds18b20"\n')
    sampler = Sampler(config.sensors, {"tank": Fixed()}, store, simulated=False)
    sampler.start()
    try:
        assert (await sampler.read_now("tank")).values == {"temperature": 20.0}
        with pytest.raises(SimulationOnlyError):
            await sampler.simulate("tank", value=1.0)
    finally:
        await sampler.close()


async def test_a_missing_library_is_an_unavailable_reading_not_a_crash(
        store: ReadingStore, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_smbus(name: str, *args: object, **kwargs: object) -> object:
        if name == "smbus2":
            raise ImportError("No module named 'smbus2'", name="smbus2")
        return real_import(name, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(builtins, "__import__", no_smbus)

    hardware = Hardware.open("simulated")
    hardware.info = type(hardware.info)("lgpio", False, None)  # as on a Pi
    config = config_of('[[sensors]]\nid = "air"\nkind = "bme280"\n')
    opened = drivers.open_drivers(config.sensors, hardware)
    with pytest.raises(SensorReadError) as caught:
        opened["air"].read()
    assert caught.value.code == "unavailable"
    assert "pinpanel[sensors]" in str(caught.value)
    hardware.close("release")


async def test_a_slow_read_runs_off_the_loop_and_a_due_read_is_skipped_not_queued(
        store: ReadingStore) -> None:
    release = threading.Event()
    calls: list[float] = []

    class Slow:
        def read(self) -> dict[str, float]:
            calls.append(time.monotonic())
            release.wait(10)
            return {"temperature": 20.0}

        def close(self) -> None:
            release.set()

    config = config_of('[[sensors]]\nid = "tank"\nkind = "ds18b20"\ninterval_s = 1\n')
    sampler = Sampler(config.sensors, {"tank": Slow()}, store, simulated=False)
    sampler.start()
    try:
        state = sampler.state("tank")
        pending = sampler.read_now("tank")
        # the loop is free while the read blocks its thread: the timer fires and skips
        import asyncio
        task = asyncio.ensure_future(pending)
        while not state.busy:
            await asyncio.sleep(0)
        sampler._due(state)
        sampler._due(state)
        release.set()
        got = await task
        assert got.values == {"temperature": 20.0}
        assert len(calls) == 1
    finally:
        await sampler.close()
