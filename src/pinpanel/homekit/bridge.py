"""The HomeKit bridge: HAP-python's accessory server on pinpanel's event loop.

One bridge accessory holds one accessory per pin (and per sensor with a temperature or
humidity). Both directions take the paths every adapter takes:

- **In**: a controller's write becomes a board call with actor ``homekit`` (the client is
  the paired controller's id), and the controller is answered once the change is
  committed, as an HTTP caller is; a refused change answers with HAP's error status and the
  accessory shows the pin as it is.
- **Out**: a hub listener and a sampler listener hand each committed change and each reading
  to its accessory, which HAP-python sends as an event to every controller that subscribed.

Pairings live in HAP-python's state file (with pinpanel's setup code and accessory ids, see
:mod:`pinpanel.homekit.state`); a wrong setup code counts against
``[homekit] pair_attempts_per_minute``.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import logging
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pyhap.accessory import Bridge
from pyhap.accessory_driver import AccessoryDriver
from pyhap.const import CATEGORY_BRIDGE, HAP_SERVER_STATUS

from pinpanel import fleetwire
from pinpanel.board import Board
from pinpanel.changes import Actor, Change
from pinpanel.config import Config
from pinpanel.errors import PinpanelError, PortInUseError
from pinpanel.homekit.accessories import (
    HomeAccessory,
    PinAccessory,
    Request,
    SensorAccessory,
    home_name,
)
from pinpanel.homekit.state import (
    FILE_NAME,
    AccessoryIds,
    PinpanelEncoder,
    new_setup_code,
    saved_code,
    setup_uri,
)
from pinpanel.sensors.model import Sample
from pinpanel.sensors.sampler import Sampler

log = logging.getLogger(__name__)

#: The actor of every change a HomeKit controller makes (its client: the controller's id).
CAUSE = "homekit"


class HomekitPortInUseError(PortInUseError):
    """The HAP port is taken (another bridge, Home Assistant's HomeKit, a second pinpanel)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        PinpanelError.__init__(self, f"HomeKit port {port} on {host or '*'} is already in use "
                                     "by another program; stop it, or set [homekit] port")


class AttemptLimit:
    """Wrong setup codes allowed per minute, for every pairing attempt alike.

    One count for all addresses, not one per address: the code is the only secret between
    the LAN and the relays, and an attacker has as many addresses as they like. While over
    the limit every pair-setup is refused, the right code's too; the owner waits a minute.
    """

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.failures: collections.deque[float] = collections.deque()

    def blocked(self) -> bool:
        now = self.clock()
        while self.failures and now - self.failures[0] >= 60:
            self.failures.popleft()
        return len(self.failures) >= self.per_minute

    def failed(self) -> None:
        self.failures.append(self.clock())


class _Driver(AccessoryDriver):  # type: ignore[misc]
    """HAP-python's driver, with pinpanel's write path, code guard and no printed code."""

    def __init__(self, bridge: HomeKitBridge, **kwargs: Any) -> None:
        self.pinpanel = bridge
        self._writes: list[tuple[Request, HomeAccessory]] | None = None
        super().__init__(**kwargs)

    def register_failed_pairing_attempt(self) -> None:
        """HAP-python's hook for a wrong setup code: counted in pinpanel's window instead
        of its fixed five-then-a-minute, so ``pair_attempts_per_minute`` sets the pace."""
        self.pinpanel.attempts.failed()
        log.warning("homekit: a pairing attempt gave a wrong setup code")

    @property
    def pairing_locked_out(self) -> bool:
        """While over the limit HAP-python answers pair-setup with HAP's Busy error (the
        controller may retry later), before it spends a 3072-bit SRP verifier on a guess."""
        if not self.pinpanel.attempts.blocked():
            return False
        log.warning("homekit: pairing refused: %d wrong setup codes in the last minute",
                    self.pinpanel.attempts.per_minute)
        return True

    def set_characteristics(self, chars_query: dict[str, Any],
                            client_addr: tuple[str, int]) -> dict[str, Any] | None:
        """Collect the writes' board requests, then answer once they are committed.

        HAP-python calls the services' callbacks synchronously; each hands its request to
        :meth:`submit`. The handler's response is then held back (HAP-python's delayed
        response, a task on it) until every request has gone through the board.
        """
        self._writes = []
        try:
            result: dict[str, Any] | None = super().set_characteristics(chars_query,
                                                                        client_addr)
            writes = self._writes
        finally:
            self._writes = None
        if writes:
            connection = self.http_server.connections.get(client_addr)
            handler = getattr(connection, "handler", None)
            controller = getattr(handler, "client_uuid", None)
            actor = Actor("homekit", CAUSE, self.pinpanel.controller_name(controller)
                          if controller else client_addr[0])
            work = asyncio.ensure_future(self.pinpanel.run_writes(writes, actor))
            self.pinpanel.keep(work)
            response = getattr(handler, "response", None)
            if response is not None:
                response.task = asyncio.ensure_future(
                    _answer(work, response, chars_query, result))
        return result

    def submit(self, request: Request, accessory: HomeAccessory) -> None:
        """A service callback's request; HAP-python calls those only from a write, inside
        :meth:`set_characteristics`, which runs the batch."""
        assert self._writes is not None, "a HomeKit setter outside a write"
        self._writes.append((request, accessory))

    def pair(self, client_username_bytes: bytes, client_public: bytes,
             client_permissions: bytes) -> bool:
        log.info("homekit: controller %s paired%s", client_username_bytes.decode(errors="replace"),
                 " (admin)" if ord(client_permissions) & 1 else "")
        return bool(super().pair(client_username_bytes, client_public, client_permissions))

    def unpair(self, client_uuid: uuid.UUID) -> None:
        log.info("homekit: controller %s unpaired",
                 self.pinpanel.controller_name(client_uuid))
        super().unpair(client_uuid)  # its name is dropped with it when the file is written


async def _answer(work: asyncio.Future[list[tuple[int, bool]]], response: Any,
                  query: dict[str, Any], result: dict[str, Any] | None) -> bytes:
    """The held-back answer: empty (204) when every change committed, else HAP's
    "unable to communicate" for the writes of the refused accessories (207)."""
    from pyhap.util import to_hap_json

    failed_aids = {aid for aid, ok in await work if not ok}
    if not failed_aids:
        return b"" if result is None else bytes(to_hap_json(result))
    # HAP-python's own statuses (a value it refused) stay; a refused pin's writes fail.
    reported = {(c["aid"], c["iid"]): c for c in (result or {}).get("characteristics", ())}
    chars = []
    for c in query.get("characteristics", ()):
        if "value" not in c and (c["aid"], c["iid"]) not in reported:
            continue
        row = dict(reported.get((c["aid"], c["iid"]), {"aid": c["aid"], "iid": c["iid"],
                                                       "status": HAP_SERVER_STATUS.SUCCESS}))
        if c["aid"] in failed_aids:
            row["status"] = HAP_SERVER_STATUS.SERVICE_COMMUNICATION_FAILURE
        chars.append(row)
    response.status_code, response.reason = 207, "Multi-Status"
    response.headers = [("Content-Type", "application/hap+json")]
    return bytes(to_hap_json({"characteristics": chars}))


class HomeKitBridge:
    """pinpanel as one HomeKit bridge; the admin page's :class:`HomeKitPanel` too."""

    def __init__(self, config: Config, board: Board, data_dir: Path, *,
                 listen: Callable[[Callable[[Change], None]], None],
                 addresses: list[str], sensors: Sampler | None = None) -> None:
        """``addresses`` are the IPv4 addresses announced (the web server's, as the LAN
        announcer has them); the HAP server listens where the web server does."""
        settings = config.homekit
        # HAP-python says INFO for every connection a phone opens (several an hour each);
        # pinpanel logs pairings and refusals itself. Its detail stays for --log-level debug.
        if not logging.getLogger("pinpanel").isEnabledFor(logging.DEBUG):
            logging.getLogger("pyhap").setLevel(logging.WARNING)
        self.board = board
        self.name = home_name(settings.name)
        self.port = settings.port
        self.path = data_dir / FILE_NAME
        self.attempts = AttemptLimit(settings.pair_attempts_per_minute)
        self.aids = AccessoryIds()
        self.names: dict[str, str] = {}
        self.host = config.server.host
        code = saved_code(self.path)
        interfaces = fleetwire.mdns_interfaces(config.mdns.interfaces, config.server.host)
        self.driver = _Driver(
            self, loop=asyncio.get_running_loop(), port=settings.port,
            listen_address=config.server.host, address=addresses[0],
            advertised_address=addresses,
            persist_file=str(self.path), pincode=code or new_setup_code(),
            encoder=PinpanelEncoder(self.aids, self.names), interface_choice=interfaces)
        if code is not None:
            self.driver.load()
        self._sensors = sensors
        self._tasks: set[asyncio.Future[Any]] = set()
        self.accessories: dict[str, HomeAccessory] = {}
        self._by_pin: dict[int, PinAccessory] = {}
        self._doors: dict[int, list[PinAccessory]] = {}  # input BCM -> garage doors it reads
        self._build(config)
        if code is None or self.aids.changed:
            self.driver.persist()  # the code and ids exist on disk before anyone sees them
        listen(self._on_change)
        if sensors is not None:
            sensors.add_listener(self._on_sample)

    # -- the accessories ----------------------------------------------------------------------

    def _build(self, config: Config) -> None:
        bridge = Bridge(self.driver, self.name)
        bridge.setup_message = self._setup_message
        from pinpanel import __version__

        bridge.set_info_service(firmware_revision=__version__, manufacturer="pinpanel",
                                model="pinpanel bridge", serial_number=self.driver.state.mac)
        views = {v.pin: v for v in self.board.views()}
        by_id = {p.id: p for p in config.pins}
        self.accessories, self._by_pin, self._doors = {}, {}, {}
        for pin in config.pins:
            if pin.homekit_kind == "none":
                continue
            door = by_id.get(pin.homekit_door) if pin.homekit_door else None
            accessory = PinAccessory(self.driver, self.aids(f"pin:{pin.id}"), pin,
                                     self.driver.submit,
                                     door=views.get(door.pin) if door is not None else None)
            accessory.show(views[pin.pin])
            bridge.add_accessory(accessory)
            self.accessories[f"pin:{pin.id}"] = accessory
            self._by_pin[pin.pin] = accessory
            if door is not None:
                self._doors.setdefault(door.pin, []).append(accessory)
        for sensor in config.sensors:
            if not SensorAccessory.shows_anything(sensor):
                continue
            reading = SensorAccessory(self.driver, self.aids(f"sensor:{sensor.id}"), sensor)
            latest = self._sensors.states[sensor.id].latest if self._sensors else None
            if latest is not None:
                reading.show_sample(latest)
            bridge.add_accessory(reading)
            self.accessories[f"sensor:{sensor.id}"] = reading
        self.sensor_accessories = {k.split(":", 1)[1]: a for k, a in self.accessories.items()
                                   if isinstance(a, SensorAccessory)}
        # Not driver.add_accessory: HAP-python 5.2 reloads its file there, which on a live
        # reconfigure would drop a pairing or an accessory id not yet written back. The
        # file was loaded once, before the ids were handed out (see __init__).
        self.driver.accessory = bridge

    def reconfigure(self, config: Config) -> None:
        """Follow a config applied live: rebuild the accessories (ids kept by pin id) and
        tell controllers the layout changed (HAP's config number, in the mDNS record)."""
        self._build(config)
        if self.aids.changed:
            self.driver.async_persist()
        if self.driver.state.set_accessories_hash(self.driver.accessories_hash):
            self.driver.async_persist()
            self.driver.async_update_advertisement()

    @staticmethod
    def _setup_message() -> None:
        """HAP-python prints the code and QR to stdout here; pinpanel shows it to admins on
        the page only (stdout is the journal)."""
        log.info("homekit: not paired yet; an admin finds the setup code on /homekit")

    # -- the lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Listen and announce; a taken port is the same one-line error as the web port's."""
        try:
            await self.driver.async_start()
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise HomekitPortInUseError(self.host, self.port) from None
            raise
        log.info("homekit: bridge %r on port %d, %d accessories, %s", self.name, self.port,
                 len(self.accessories),
                 f"{len(self.driver.state.paired_clients)} controllers paired"
                 if self.driver.state.paired else "not paired")

    async def run(self, stop: asyncio.Event) -> None:
        """The runtime's runner: serve until ``stop``, then stop announcing and close."""
        try:
            await stop.wait()
        finally:
            await self.driver.async_stop()

    # -- in: controllers' writes ------------------------------------------------------------

    def keep(self, task: asyncio.Future[Any]) -> None:
        """Hold a write's task until it is done (the loop keeps only weak references)."""
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def run_writes(self, writes: list[tuple[Request, HomeAccessory]],
                         actor: Actor) -> list[tuple[int, bool]]:
        """Each write through the board, in order; a refused one shows its pin as it is."""
        done: list[tuple[int, bool]] = []
        for request, accessory in writes:
            try:
                await request(self.board, actor)
            except PinpanelError as exc:
                log.warning("homekit: %s refused: %s", accessory.display_name, exc)
                done.append((accessory.aid, False))
                if isinstance(accessory, PinAccessory):
                    accessory.show(self.board.view(accessory.pin.pin))
            else:
                done.append((accessory.aid, True))
        return done

    # -- out: committed changes and readings ---------------------------------------------------

    def _on_change(self, change: Change) -> None:
        """Hub listener: show the change on its accessory (and on the doors it reports)."""
        view = change.pin
        accessory = self._by_pin.get(view.pin)
        if accessory is not None:
            accessory.show(view)
        for door in self._doors.get(view.pin, ()):
            door.show_door(view.state)

    def _on_sample(self, sample: Sample) -> None:
        accessory = self.sensor_accessories.get(sample.sensor)
        if accessory is not None:
            accessory.show_sample(sample)

    # -- the admin page's panel -----------------------------------------------------------------

    def setup_code(self) -> str:
        return str(self.driver.state.pincode.decode("ascii"))

    def setup_uri(self) -> str:
        return setup_uri(self.driver.state.pincode, self.driver.state.setup_id,
                         CATEGORY_BRIDGE)

    def controllers(self) -> list[tuple[str, bool, str]]:
        """The paired controllers: id, whether an admin (may add others), the name given."""
        state = self.driver.state
        return [(str(client), state.is_admin(client), self.names.get(str(client), ""))
                for client in state.paired_clients]

    def controller_name(self, client: uuid.UUID) -> str:
        """What the history calls a controller: the name an admin gave it, else its id."""
        return self.names.get(str(client)) or str(client)

    async def rename(self, controller: str, name: str) -> bool:
        """Name a paired controller (empty: no name); False when no pairing has that id."""
        if controller not in {str(c) for c in self.driver.state.paired_clients}:
            return False
        if name:
            self.names[controller] = name
        else:
            self.names.pop(controller, None)
        self.driver.async_persist()
        return True

    async def unpair(self, controller: str) -> bool:
        """Remove a pairing as the Home app would, and close that controller's sessions."""
        try:
            client = uuid.UUID(controller)
        except ValueError:
            return False
        state = self.driver.state
        if client not in state.paired_clients:
            return False
        self.driver.unpair(client)
        for connection in list(self.driver.http_server.connections.values()):
            if getattr(connection.handler, "client_uuid", None) == client or \
                    not state.paired_clients:
                connection.close()
        self.driver.async_update_advertisement()
        return True
