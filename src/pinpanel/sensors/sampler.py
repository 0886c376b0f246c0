"""The one sampler: every sensor read on its own timer, kept, and told to whoever listens.

Cheap when idle, by construction: each sensor is one ``call_at`` timer on the event loop (no
polling loop, no thread per sensor), and its blocking read (a 1-wire conversion takes
~750 ms, an I2C transfer a few) runs in a small thread pool, never on the loop. A sensor
whose read is still running when its next one is due skips that turn rather than queueing.

A read becomes a :class:`~pinpanel.sensors.model.Sample`. Every good value is folded into
the store's rollups; a sample is *stored and published* (raw row, SSE ``reading`` event, MQTT
state) only when it passes the deadband: some value moved at least ``min_change`` from the
last published one, the error changed (an error always shows), or :data:`HEARTBEAT_S`
passed (so a flat line is still drawn and ``at`` stays fresh). Readings are observations:
they never pass through the board or its durable per-change commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field

from pinpanel.errors import (
    SensorReadError,
    SensorValueError,
    SimulationOnlyError,
    UnknownSensorError,
)
from pinpanel.feed import SUBSCRIBER_BUFFER, FeedSubscription
from pinpanel.sensor_config import SensorConfig
from pinpanel.sensors.model import Driver, Quantity, Sample, quantities
from pinpanel.store.readings import ReadingStore

log = logging.getLogger("pinpanel.sensors")

#: A sample inside the deadband is still stored when the last stored one is this old.
HEARTBEAT_S = 600.0
#: Reads that may run at once (each 1-wire read holds a thread for ~750 ms).
READ_WORKERS = 4
#: First reads are spread this far apart, so ten sensors do not wake together.
STAGGER_S = 0.05


#: One stream's queue of readings (bounded; dropped when it falls behind).
ReadingSubscription = FeedSubscription[Sample]


@dataclass
class SensorState:
    """One sensor as the sampler runs it."""

    config: SensorConfig
    quantities: tuple[Quantity, ...]
    driver: Driver
    latest: Sample | None = None
    reads: int = 0
    #: Failed reads since start, by error code (``pinpanel_sensor_read_errors_total``).
    errors: dict[str, int] = field(default_factory=dict)
    handle: asyncio.TimerHandle | None = None
    next_at: float = 0.0
    busy: bool = False
    #: The read in flight, for a caller that wants the next sample (read_now).
    inflight: asyncio.Future[Sample] | None = None


class Sampler:
    """Reads ``sensors`` with ``drivers``; stores into ``store``; publishes to listeners."""

    def __init__(self, sensors: Sequence[SensorConfig], drivers: Mapping[str, Driver],
                 store: ReadingStore | None, *, simulated: bool = False,
                 clock: Callable[[], float] = time.time) -> None:
        self.states: dict[str, SensorState] = {
            s.id: SensorState(s, quantities(s), drivers[s.id]) for s in sensors}
        self.store = store
        self.simulated = simulated
        self._clock = clock
        self._subscribers: set[ReadingSubscription] = set()
        self._listeners: list[Callable[[Sample], None]] = []
        self._executor: ThreadPoolExecutor | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        #: Samples published since start: the page's cache key moves with it.
        self.published = 0

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        """Arm every sensor's timer on the running loop (first reads staggered)."""
        if not self.states:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = ThreadPoolExecutor(max_workers=min(READ_WORKERS, len(self.states)),
                                            thread_name_prefix="pinpanel-sensor")
        now = self._loop.time()
        for i, state in enumerate(self.states.values()):
            state.next_at = now + i * STAGGER_S
            state.handle = self._loop.call_at(state.next_at, self._due, state)

    async def close(self) -> None:
        """Stop the timers, let running reads finish, close the drivers."""
        self._closed = True
        for state in self.states.values():
            if state.handle is not None:
                state.handle.cancel()
        if self._executor is not None:
            await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        for state in self.states.values():
            try:
                state.driver.close()
            except Exception:
                log.exception("closing sensor %s failed", state.config.id)
        for sub in list(self._subscribers):
            sub.close()

    # -- reading -----------------------------------------------------------------------------

    def _due(self, state: SensorState) -> None:
        assert self._loop is not None
        interval = state.config.interval_s
        state.next_at += interval
        now = self._loop.time()
        if state.next_at <= now:  # the loop was stalled (or a read overran): skip ahead
            state.next_at = now + interval
        state.handle = self._loop.call_at(state.next_at, self._due, state)
        if state.busy:
            return
        self._submit(state)

    def _submit(self, state: SensorState) -> asyncio.Future[Sample]:
        assert self._loop is not None and self._executor is not None
        state.busy = True
        done: asyncio.Future[Sample] = self._loop.create_future()
        state.inflight = done

        def finished(future: Future[Sample]) -> None:
            def on_loop() -> None:
                state.busy = False
                try:
                    sample = future.result()
                except BaseException as exc:  # noqa: BLE001 - reported as a sample's error
                    sample = Sample(state.config.id, self._clock(), {}, "io", str(exc))
                if not self._closed:
                    self.record(state, sample)
                if not done.done():
                    done.set_result(state.latest or sample)
            with contextlib.suppress(RuntimeError):  # the loop closed while a read ran
                assert self._loop is not None
                self._loop.call_soon_threadsafe(on_loop)

        self._executor.submit(self._read, state).add_done_callback(finished)
        return done

    def _read(self, state: SensorState) -> Sample:
        """On a pool thread: one read, always a sample (an error is a sample too)."""
        at = self._clock()
        try:
            values = state.driver.read()
        except SensorReadError as exc:
            return Sample(state.config.id, at, {}, exc.code, exc.detail)
        except Exception as exc:  # a driver bug must not stop the sampler
            log.exception("sensor %s: read failed", state.config.id)
            return Sample(state.config.id, at, {}, "io", str(exc))
        return Sample(state.config.id, at, values)

    def record(self, state: SensorState, sample: Sample) -> bool:
        """Count, roll up, and (past the deadband) store and publish; True if published."""
        state.reads += 1
        sid = state.config.id
        if sample.error is not None:
            state.errors[sample.error] = state.errors.get(sample.error, 0) + 1
            if state.latest is None or state.latest.error != sample.error:
                log.warning("sensor %s: %s (%s)", sid, sample.error, sample.detail)
        elif self.store is not None:
            for name, value in sample.values.items():
                self.store.observe(sid, name, sample.at, value)
        if not self._passes(state, sample):
            return False
        if self.store is not None:
            if sample.error is not None:
                for q in state.quantities:
                    self.store.add(sid, q.name, sample.at, None, sample.error)
            else:
                for name, value in sample.values.items():
                    self.store.add(sid, name, sample.at, value)
        state.latest = sample
        self._publish(sample)
        return True

    @staticmethod
    def _passes(state: SensorState, sample: Sample) -> bool:
        last = state.latest
        if last is None or last.error != sample.error:
            return True
        if sample.at - last.at >= HEARTBEAT_S:
            return True
        if sample.error is not None:
            return False
        band = state.config.min_change
        return any(abs(value - last.values.get(name, float("inf"))) >= band
                   for name, value in sample.values.items())

    def _publish(self, sample: Sample) -> None:
        self.published += 1
        for sub in list(self._subscribers):
            sub.push(sample)
            if sub.dropped:
                self._subscribers.discard(sub)
                log.warning("dropped a readings subscriber that fell %d behind",
                            SUBSCRIBER_BUFFER)
        for listener in self._listeners:
            try:
                listener(sample)
            except Exception:
                log.exception("reading listener failed")

    # -- what adapters use -------------------------------------------------------------------

    def add_listener(self, listener: Callable[[Sample], None]) -> None:
        """A synchronous listener (MQTT's queue); called on the loop, must not block."""
        self._listeners.append(listener)

    def subscribe(self) -> ReadingSubscription:
        sub = ReadingSubscription(self._subscribers.discard)
        self._subscribers.add(sub)
        return sub

    def state(self, sensor_id: str) -> SensorState:
        found = self.states.get(sensor_id)
        if found is None:
            raise UnknownSensorError(f"no sensor {sensor_id!r}")
        return found

    async def read_now(self, sensor_id: str) -> Sample:
        """Read one sensor at once (after a simulated value is set); its latest sample."""
        state = self.state(sensor_id)
        if self._executor is None:
            raise RuntimeError("the sampler is not running")
        if state.inflight is not None and not state.inflight.done():
            await asyncio.shield(state.inflight)  # a scheduled read is running: let it land
        return await self._submit(state)

    async def simulate(self, sensor_id: str, *, value: float | None = None,
                       reading: str | None = None, error: str | None = None,
                       auto: bool = False) -> Sample:
        """Simulated board only: pin a value or an error (or drift again), then read."""
        state = self.state(sensor_id)
        setter = getattr(state.driver, "set", None)
        if not self.simulated or setter is None:
            raise SimulationOnlyError("sensors can be set by hand only on the simulated board")
        names = [q.name for q in state.quantities]
        if reading is not None and reading not in names:
            raise SensorValueError(f"{sensor_id} has no reading {reading!r} "
                                   f"(it has {', '.join(names)})")
        setter(value=value, reading=reading, error=error, auto=auto)
        return await self.read_now(sensor_id)
