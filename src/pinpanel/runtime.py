"""The composition root: config -> store -> hardware -> board, then the adapters.

The web app and (when configured) the MQTT bridge are siblings over one board, run under
one lifecycle in one event loop and one process: GPIO belongs to one process. pinpanel owns
the signal handling rather than uvicorn's, because recent uvicorn re-raises SIGTERM after
its graceful shutdown, which would make a clean stop exit with -15 instead of 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import gc
import logging
import os
import signal
import socket
import sys
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import uvicorn

from pinpanel import auth, changelog, first_start, lock
from pinpanel.automation.notify import Outbox
from pinpanel.automation.rulebook import RuleBook
from pinpanel.automation.rules import RuleEngine
from pinpanel.automation.scheduler import Scheduler
from pinpanel.automation.schedules import ScheduleBook
from pinpanel.automation.when import Place
from pinpanel.board import Board, LoopClock
from pinpanel.changes import Actor, parse_time
from pinpanel.config import Config
from pinpanel.errors import ConfigError, PortInUseError, ServeError
from pinpanel.events import EventHub
from pinpanel.hardware import Hardware
from pinpanel.live_config import LiveConfig
from pinpanel.sensors.sampler import Sampler
from pinpanel.store import Store
from pinpanel.store.readings import ReadingStore
from pinpanel.telemetry import Telemetry

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from pinpanel.hub.core import Hub

log = logging.getLogger("pinpanel")


class _Server(uvicorn.Server):
    """uvicorn without its own signal capture (pinpanel's handlers set its flags)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass
class Runtime:
    """Everything a running pinpanel holds, opened in order and closed in reverse."""

    config: Config
    store: Store
    hardware: Hardware
    board: Board
    hub: EventHub
    #: Counts for ``/metrics``, fed from the hub and the store; handed to the adapters.
    telemetry: Telemetry
    #: The readings path (None without ``[[sensors]]``).
    sampler: Sampler | None = None
    #: Every schedule (config and API) and their timers.
    schedules: ScheduleBook | None = None
    #: Every rule (config and API) and the engine that runs them.
    rules: RuleBook | None = None
    #: The notifications outbox (its sender runs while the runtime is open).
    outbox: Outbox | None = None


#: Test-only: the wall time (RFC 3339) the server starts at, running on from there. The
#: power-cut test starts a server "at 19:59" and again "at 20:01" with it. Never set it on
#: a real installation: timestamps of schedules and pulses would be off by the difference.
TEST_NOW_ENV = "PINPANEL_TEST_NOW"


class OffsetClock(LoopClock):
    """The loop's clock, shifted so that it read ``start`` when it was made."""

    def __init__(self, start: float) -> None:
        self.offset = start - time.time()

    def time(self) -> float:
        return time.time() + self.offset


def clock_of(environ: MutableMapping[str, str] | None = None) -> LoopClock:
    """The clock the board and the schedules share: the wall clock, or the test override."""
    value = (os.environ if environ is None else environ).get(TEST_NOW_ENV, "").strip()
    if not value:
        return LoopClock()
    log.warning("%s=%s: running on a shifted clock (tests only)", TEST_NOW_ENV, value)
    return OffsetClock(parse_time(value).timestamp())


@contextlib.asynccontextmanager
async def opened(config: Config) -> AsyncIterator[Runtime]:
    """Open store, hardware and board, and wire the telemetry; release them in reverse."""
    store = Store.open(config.server.data_path, max_rows=config.history.max_rows,
                       max_age_days=config.history.max_age_days)
    try:
        hardware = Hardware.open(config.gpio.backend, chip=config.gpio.chip)
        hub = EventHub()
        hub.add_listener(changelog.log_change)  # before start: start-up changes are logged too
        clock = clock_of()
        board = Board(config, hardware, store, hub, clock=clock)
        book = ScheduleBook(config, store, Place.of(config.location))
        now = datetime.fromtimestamp(clock.time(), UTC)
        try:
            # What each initial = "schedule" pin should be now: the automation decides, the
            # board claims the lines (it never imports automation).
            await board.start(book.initial_states(now))
        except BaseException:
            hardware.close("release")
            raise
        scheduler = Scheduler(board, book.place, clock)
        book.scheduler = scheduler
        book.reload()
        outbox = Outbox(store, {n.id: n for n in config.notifiers}, clock)
        engine = RuleEngine(board, book.place, clock, store=store, outbox=outbox)
        rules = RuleBook(config, store, engine, {s.id for s in book.schedules()})
        hub.add_listener(engine.on_change)
        scheduler.listeners.append(engine.on_schedule)
        stop_sending = asyncio.Event()
        sender = asyncio.create_task(outbox.run(stop_sending))
        # Fed from here on, as the board starts serving: what it did at start-up (restoring
        # the pins) is in the log and the history, not in the counts.
        telemetry = Telemetry()
        hub.add_listener(telemetry.on_change)
        store.add_commit_observer(telemetry.commit_seconds.observe)
        try:
            async with sampling(config, hardware) as sampler:
                if sampler is not None:
                    sampler.add_listener(engine.on_sample)
                yield Runtime(config, store, hardware, board, hub, telemetry, sampler=sampler,
                              schedules=book, rules=rules, outbox=outbox)
        finally:
            scheduler.close()
            engine.close()
            await scheduler.drain()
            await engine.drain()
            stop_sending.set()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(sender, timeout=5)
            await board.close(config.gpio.on_exit)
    finally:
        store.close()


@contextlib.asynccontextmanager
async def sampling(config: Config, hardware: Hardware) -> AsyncIterator[Sampler | None]:
    """The readings store and sampler for ``[[sensors]]``; closed (last batch written) after."""
    if not config.sensors:
        yield None
        return
    # The drivers only when a sensor is configured: a server without sensors skips them.
    from pinpanel.sensors.drivers import open_drivers

    readings = ReadingStore.open(config.server.data_path)
    try:
        totals = {s.id: total for s in config.sensors if s.kind == "counter"
                  and (total := readings.last_value(s.id, "total")) is not None}
        sampler = Sampler(config.sensors, open_drivers(config.sensors, hardware, totals),
                          readings, simulated=hardware.info.simulated)
        sampler.start()
        try:
            yield sampler
        finally:
            await sampler.close()
    finally:
        await asyncio.to_thread(readings.close)


def describe_backend(hardware: Hardware) -> str:
    info = hardware.info
    if info.simulated:
        return ("gpio backend: simulated (no GPIO hardware here; the pins are not wired to "
                "anything)")
    board = f", board {info.board}" if info.board else ""
    chip = f"; {info.chip.describe()}" if info.chip else ""
    return f"gpio backend: {info.name} (real pins{board}){chip}"


def _server_config(config: Config, app: Any) -> uvicorn.Config:
    from pinpanel.web import limits

    server = config.server
    # proxy_headers off: web/proxy.py is the one reader of forwarded headers (uvicorn's reads
    # neither X-Forwarded-Host nor Forwarded), with its own trust list. ws off: no route
    # speaks WebSocket, and "auto" would import the websockets package (memory, start-up).
    return uvicorn.Config(
        app, host=server.host, port=server.port, lifespan="on", log_config=None, ws="none",
        access_log=False, server_header=False, proxy_headers=False,
        ssl_certfile=server.certfile or None, ssl_keyfile=server.keyfile or None,
        timeout_graceful_shutdown=5, **limits.protocol_options(),
    )


def bind(host: str, port: int) -> list[socket.socket]:
    """Bind (not yet listen on) the server's address(es), as asyncio would for uvicorn.

    Done before anything else starts, so a busy port stops ``serve`` before a pin is touched
    or a login link is printed. ``""`` means every interface (IPv4 and IPv6).
    """
    try:
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                   flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _name, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            try:
                sock.bind(address)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise PortInUseError(host, port) from None
                raise ServeError(f"cannot listen on {host or '*'}:{port}: "
                                 f"{exc.strerror}") from None
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def serve(config: Config, config_path: Path | None = None,
                overrides: Mapping[str, Any] | None = None) -> int:
    """Run until SIGINT/SIGTERM; return the process exit code (0 on a clean stop).

    ``config_path`` is the file ``config`` came from (None: none; the first save from the
    settings page writes one in the data directory), ``overrides`` the command-line flags,
    applied again over every reload of the file (SIGHUP, ``pinpanel reload``, the page).

    The order matters: the data directory's lock first (a second server on it stops here,
    having changed nothing), then the port (a busy one stops here, before a pin is touched
    or a login link is printed), then store, hardware and board, then the adapters.
    """
    with lock.hold(config.server.data_path):
        sockets = bind(config.server.host, config.server.port)
        try:
            return await _serve(config, sockets, config_path, overrides or {})
        finally:
            for sock in sockets:
                sock.close()


def hub_routes(hub: Hub) -> list[BaseRoute]:
    """The hub's routes, declared by it as data, as the web app's ``ApiRoute`` objects."""
    from pinpanel.hub import api as hub_api
    from pinpanel.web.routing import ApiRoute
    from pinpanel.web.security import csrf_token_of

    return [ApiRoute(**spec) for spec in hub_api.routes(
        hub, lambda request: csrf_token_of(request.scope))]


async def _serve(config: Config, sockets: list[socket.socket], config_path: Path | None,
                 overrides: Mapping[str, Any]) -> int:
    from pinpanel.web.app import create_app

    async with opened(config) as runtime:
        log.info(describe_backend(runtime.hardware))
        from pinpanel import hub

        fleet_hub = hub.adapter(config)
        live = LiveConfig(runtime.board, config_path, config.server.data_path,
                          overrides=overrides, store=runtime.store)
        from pinpanel import lan

        homekit = None
        if config.homekit.enabled:
            from pinpanel import homekit as homekit_adapter

            try:
                addresses = lan.announce_addresses(config)
            except OSError as exc:  # a sandbox that cannot list the interfaces (netlink)
                log.error("homekit: cannot list this machine's addresses to announce the "
                          "bridge (%s); serving without HomeKit", exc)
            else:
                homekit = homekit_adapter.adapter(
                    config, runtime.board, config.server.data_path,
                    listen=runtime.hub.add_listener, addresses=addresses,
                    sensors=runtime.sampler)
        app = create_app(config, runtime.board, runtime.store, auth.Keyring(runtime.store),
                         runtime.telemetry, sensors=runtime.sampler,
                         schedules=runtime.schedules, rules=runtime.rules,
                         extra_routes=hub_routes(fleet_hub) if fleet_hub else (),
                         settings=live, homekit=homekit)
        live.listeners.append(lambda new: setattr(app.state, "config", new))
        server = _Server(_server_config(config, app))
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                log.warning("second %s: forcing exit", signal.Signals(signum).name)
                server.force_exit = True
            else:
                log.info("%s received: shutting down", signal.Signals(signum).name)
            stop.set()
            app.state.shutdown.set()  # uvicorn waits for open event streams: end them now
            if fleet_hub is not None:
                fleet_hub.closing.set()
            server.should_exit = True

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, on_signal, sig)
        reloads: set[asyncio.Task[None]] = set()
        loop.add_signal_handler(signal.SIGHUP, lambda: _spawn(reloads, _reload(live)))
        # Adapters beside the web server, each handed what it needs (none reaches through
        # the board for the store or the hub).
        # Each adapter's modules are imported only when it is configured on: a server without
        # them does not carry their memory (bench/README.md, idle cost per feature).
        bridge = None
        if config.mqtt.enabled:
            from pinpanel import mqtt

            bridge = mqtt.make_bridge(config, runtime.board, listen=runtime.hub.add_listener,
                                      memory=runtime.store, hardware=runtime.hardware.info,
                                      telemetry=runtime.telemetry, sensors=runtime.sampler)
        runners: list[Callable[[asyncio.Event], Coroutine[Any, Any, None]]] = (
            [bridge.run] if bridge else [])
        if bridge is not None:  # a live apply: the bridge follows once the board applied it
            live.listeners.append(bridge.reconfigure)
        if homekit is not None:
            await homekit.start()  # a taken HAP port stops here, before the web server
            runners.append(homekit.run)
            live.listeners.append(homekit.reconfigure)
        from pinpanel.mqtt.topics import Topics

        topics = Topics.of(config.mqtt)
        announce = lan.announcer(config, topics.device_id,
                                 topics.base if config.mqtt.enabled else "")
        if announce is not None:
            runners.append(announce)
        if fleet_hub is not None:
            runners.append(fleet_hub.run)
            log.info("hub on /hub, listening for %s on %s:%d", config.hub.bases,
                     config.mqtt.host, config.mqtt.port)
        scheme = "https" if config.server.certfile else "http"
        first_start.announce(config, runtime.store)  # auth off: warn; no token: a link
        log.info("pinpanel on %s://%s:%d/ (data in %s)", scheme, config.server.host,
                 config.server.port, runtime.store.path)
        if config.server.public_url:
            log.info("public address %s; forwarded headers believed from %s",
                     config.server.public_url, ", ".join(config.server.forwarded_allow_ips))
        # What exists now lives as long as the process (modules, the app, the board): frozen
        # out of the collector's sight, a full collection no longer walks those ~200,000
        # objects in the middle of a fan-out (40-60 ms pauses with 1,000 streams open). A
        # young generation of 10,000 rather than 700: a change fanned out to 1,000 streams
        # allocates thousands of short-lived futures, and each collection of them walked the
        # streams' own objects too. bench.fanout: 1,000 streams' worst toggle 85-95 -> ~35 ms.
        gc.collect()
        gc.freeze()
        gc.set_threshold(10_000, 10, 10)
        _return_freed_heap()
        try:
            tasks = [asyncio.create_task(run(stop)) for run in runners]
            await server.serve(sockets=sockets)
            stop.set()
            for task in tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await asyncio.wait_for(task, timeout=5)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                loop.remove_signal_handler(sig)
            for task in list(reloads):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        if not server.started:
            return 1
    log.info("stopped cleanly")
    return 0


RELOAD = Actor("system", "reload")


async def _reload(live: LiveConfig) -> None:
    """SIGHUP: the config file again, as a diff; a file that fails to load changes nothing."""
    log.info("SIGHUP received: reloading %s", live.path)
    try:
        await live.reload(RELOAD)
    except ConfigError:
        pass  # logged by reload: the running setup stays
    except Exception:
        log.exception("reload of %s failed", live.path)


def _return_freed_heap() -> None:
    """Give the memory start-up freed back to the kernel, once, before serving.

    Parsing the config and the command line, building the routes and the collection above
    leave freed chunks in glibc's heap, which glibc keeps mapped (and counted as resident)
    until ``malloc_trim``: about 0.9 MiB here. ctypes, needed to call it, costs ~0.35 MiB, so
    the server idles ~0.5 MiB smaller (#21, idle RSS). Elsewhere (musl, macOS) nothing.
    """
    if sys.platform != "linux":
        return
    import ctypes

    trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc only
    if trim is not None:
        trim(0)


def _spawn(tasks: set[asyncio.Task[None]], work: Coroutine[Any, Any, None]) -> None:
    task = asyncio.get_running_loop().create_task(work)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


def run(main: Coroutine[Any, Any, int]) -> int:
    """Run ``main`` to completion on uvloop where it is installed, else on asyncio's loop.

    uvicorn picks uvloop only in ``uvicorn.run``; pinpanel drives ``Server.serve`` itself
    (for its own signal handling), so the loop is chosen here. uvloop is a dependency only
    on x86_64 and aarch64 (armv7l has no wheel): elsewhere asyncio's loop is the design, not
    a degraded mode. On this stack uvloop takes about a quarter off each request's CPU.
    """
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


async def get_once(config: Config, path: str, headers: dict[str, str] | None = None,
                   ) -> tuple[int, bytes]:
    """Send one GET through the app with no socket (``pinpanel serve --get``).

    It claims the pins like a server, so it takes the data directory's lock like one: beside
    a running server it stops with that server's pid instead of claiming its lines.
    """
    with lock.hold(config.server.data_path):
        return await _get_once(config, path, headers)


async def _get_once(config: Config, path: str, headers: dict[str, str] | None,
                    ) -> tuple[int, bytes]:
    from pinpanel.web.app import create_app

    async with opened(config) as runtime:
        app = create_app(config, runtime.board, runtime.store, auth.Keyring(runtime.store),
                         runtime.telemetry, sensors=runtime.sampler,
                         schedules=runtime.schedules, rules=runtime.rules)
        raw_path, _, query = path.partition("?")
        sent: dict[str, Any] = {"status": 0, "body": b""}
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
            "scheme": "http", "path": raw_path, "raw_path": raw_path.encode(),
            "query_string": query.encode(), "root_path": "",
            "headers": [(b"host", b"localhost"), (b"content-type", b"application/json"),
                        *((k.lower().encode(), v.encode()) for k, v in (headers or {}).items())],
            "client": ("127.0.0.1", 0), "server": ("localhost", 80), "state": {},
            # The operator at the shell holds the data directory anyway: an internal admin.
            "pinpanel.principal": auth.OPERATOR,
        }

        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]
            elif message["type"] == "http.response.body":
                sent["body"] += message.get("body", b"")

        await app(scope, receive, send)
        return sent["status"], sent["body"]
