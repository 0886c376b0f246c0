"""A real HomeKit controller for the tests: aiohomekit (Home Assistant's) behind a small async API.

The HomeKit tests must judge pinpanel's bridge the way a phone would, so every call here goes
through aiohomekit 4's own pair-setup, pair-verify (the encrypted session), ``/accessories``,
``/characteristics`` and ``/pairings`` code; this module only adds what a test needs around it:
pairing by ``(host, port)`` without mDNS, pairing data in a file to reconnect after a restart,
plain dataclasses for the accessory list, and events with a waiter that fails a test clearly.

::

    async with HomeKitController(tmp_path) as c:
        pairing = await c.pair(("127.0.0.1", port), "031-45-154", "bridge")
        lamp = (await c.accessories(pairing))[1].service("SWITCH").char("ON")
        await c.subscribe(pairing, [lamp.key])
        await c.put(pairing, lamp.aid, lamp.iid, True)
        event = await c.next_event(pairing, lambda e: e.key == lamp.key)

Why pairing by address: the default network namespace's loopback has no MULTICAST flag, so
an mDNS announcement on 127.0.0.1 never reaches a browser there (tests/hub/test_mdns.py makes
a namespace for that). aiohomekit's ``IpDiscovery`` only needs a ``HomeKitService`` with the
address and port, which is all mDNS would have given it; the pairing data it returns carries
``AccessoryIP``/``AccessoryPort``, so a loaded pairing reconnects without mDNS too. A device id
(``"AA:BB:..."``) is also accepted and found by aiohomekit's zeroconf browser, for a test run
where multicast works (a namespace with ``ip link set lo multicast on``).

Errors a test can expect: ``WrongSetupCode`` (the accessory rejected the code: aiohomekit's
``AuthenticationError`` at pair-setup M4; see :meth:`HomeKitController.pair` on retries),
``PairingRateLimited`` (the accessory answered busy/back-off/max-tries, e.g. HAP-python
5.2's lockout after 5 wrong codes),
``PairingRefused`` (any other pair-setup refusal, e.g. already paired: ``UnavailableError``),
``HomeKitRequestFailed`` (a read or write answered with a HAP status other than success) and
``EventTimeout`` (no matching event before the hang guard).
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohomekit.characteristic_cache import CharacteristicCacheMemory
from aiohomekit.controller import Controller
from aiohomekit.controller.abstract import AbstractPairing, TransportType
from aiohomekit.controller.ip.discovery import IpDiscovery
from aiohomekit.exceptions import (
    AuthenticationError,
    BackoffError,
    BusyError,
    MaxTriesError,
    ProtocolError,
)
from aiohomekit.model import Categories
from aiohomekit.model.characteristics import CharacteristicsTypes
from aiohomekit.model.feature_flags import FeatureFlags
from aiohomekit.model.services import ServicesTypes
from aiohomekit.model.status_flags import StatusFlags
from aiohomekit.zeroconf import (
    HAP_TYPE_TCP,
    HAP_TYPE_UDP,
    HomeKitService,
    ZeroconfServiceListener,
)
from zeroconf import IPVersion
from zeroconf.asyncio import AsyncServiceBrowser, AsyncZeroconf

#: A hang guard, not a timing expectation: a HomeKit write or event over loopback takes
#: milliseconds, a wait this long means it is never coming.
HANG_GUARD = 30.0


class PairingRefused(Exception):
    """The accessory refused pair-setup; ``cause`` is aiohomekit's exception."""

    def __init__(self, message: str, cause: BaseException) -> None:
        super().__init__(f"{message}: {type(cause).__name__}({cause})")
        self.cause = cause


class WrongSetupCode(PairingRefused):
    """The accessory rejected the setup code (its SRP proof did not match)."""


class PairingRateLimited(PairingRefused):
    """The accessory refused pair-setup for now (busy, back off, or too many tries)."""


class HomeKitRequestFailed(Exception):
    """A read or write came back with a HAP status other than success."""


class EventTimeout(AssertionError):
    """No event matched before the hang guard; the message lists what did arrive."""


def _names(types: type) -> dict[str, str]:
    return {value.upper(): name for name, value in vars(types).items()
            if isinstance(value, str) and name.isupper()}


_SERVICE_NAMES = _names(ServicesTypes)
_CHAR_NAMES = _names(CharacteristicsTypes)


def _one(items: Sequence[Any], name: str, where: str) -> Any:
    """The one item whose aiohomekit name or type UUID is ``name``; a LookupError listing
    what there is when there are none or several."""
    found = [item for item in items if name.upper() in (item.name, item.type)]
    if len(found) != 1:
        raise LookupError(f"{len(found)} {name!r} {where}: {[i.name for i in items]}")
    return found[0]


@dataclass(frozen=True)
class Characteristic:
    """One characteristic as ``/accessories`` listed it (``name`` is aiohomekit's, e.g. ``ON``)."""

    aid: int
    iid: int
    type: str
    name: str
    value: Any
    perms: tuple[str, ...]
    format: str | None

    @property
    def key(self) -> tuple[int, int]:
        return (self.aid, self.iid)


@dataclass(frozen=True)
class Service:
    """A service: ``name`` is its type's aiohomekit name (``SWITCH``), ``label`` its Name value."""

    aid: int
    iid: int
    type: str
    name: str
    characteristics: tuple[Characteristic, ...]

    @property
    def label(self) -> str | None:
        named = [c for c in self.characteristics if c.name == "NAME"]
        return str(named[0].value) if named else None

    def char(self, name: str) -> Characteristic:
        """The characteristic of this aiohomekit name (``ON``) or full type UUID."""
        return _one(self.characteristics, name, f"characteristics in {self.name} (aid {self.aid})")


@dataclass(frozen=True)
class Accessory:
    """An accessory of the bridge; ``name`` is its AccessoryInformation Name."""

    aid: int
    services: tuple[Service, ...]

    @property
    def name(self) -> str:
        return str(self.service("ACCESSORY_INFORMATION").char("NAME").value)

    def service(self, name: str) -> Service:
        """The one service of this aiohomekit name (``SWITCH``) or full type UUID."""
        return _one(self.services, name, f"services in aid {self.aid}")


@dataclass(frozen=True)
class Event:
    """One characteristic value an accessory pushed (a HAP ``EVENT/1.0`` message)."""

    aid: int
    iid: int
    value: Any

    @property
    def key(self) -> tuple[int, int]:
        return (self.aid, self.iid)


@dataclass
class _Inbox:
    events: list[Event] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)


class HomeKitController:
    """aiohomekit's ``Controller`` with its own zeroconf, scoped to one test.

    ``directory`` holds pairing files saved with :meth:`save`. ``interfaces`` are the ones
    its zeroconf speaks on: loopback only by default, like pinpanel's own mDNS for a server
    on 127.0.0.1 (``fleetwire.mdns_interfaces``), so a test never multicasts onto the LAN.
    """

    def __init__(self, directory: Path, interfaces: Sequence[str] = ("127.0.0.1",)) -> None:
        self.directory = directory
        self.interfaces = list(interfaces)
        self._zeroconf: AsyncZeroconf | None = None
        self._browser: AsyncServiceBrowser | None = None
        self._controller: Controller | None = None
        self._inboxes: dict[int, _Inbox] = {}

    async def __aenter__(self) -> HomeKitController:
        self._zeroconf = AsyncZeroconf(interfaces=self.interfaces, ip_version=IPVersion.V4Only)
        # aiohomekit's IP and CoAP backends each look for a browser of their type on the
        # zeroconf instance at start (aiohomekit/zeroconf.py find_brower_for_hap_type).
        self._browser = AsyncServiceBrowser(self._zeroconf.zeroconf, [HAP_TYPE_TCP, HAP_TYPE_UDP],
                                            listener=ZeroconfServiceListener())
        self._controller = Controller(async_zeroconf_instance=self._zeroconf,
                                      char_cache=CharacteristicCacheMemory())
        await self._controller.async_start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._controller is not None:
            for pairing in list(self._controller.aliases.values()):
                await pairing.shutdown()
            await self._controller.async_stop()
        if self._browser is not None:
            await self._browser.async_cancel()
        if self._zeroconf is not None:
            await self._zeroconf.async_close()
        # aiohomekit 4.0.1 can drop a socket it was connecting with when its reconnect task
        # is cancelled by the shutdown above (after aiohappyeyeballs returned it, before
        # create_connection owned it). Collected here, its ResourceWarning is this
        # controller's, not a later test's (pytest turns it into an error wherever the
        # collector happens to run).
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()

    @property
    def controller(self) -> Controller:
        """aiohomekit's own controller, for what this API does not wrap."""
        if self._controller is None:
            raise RuntimeError("use HomeKitController in `async with`")
        return self._controller

    # ### Pairing ###

    async def pair(self, target: tuple[str, int] | str, setup_code: str, alias: str,
                   attempts: int = 3) -> AbstractPairing:
        """Pair-setup with the accessory at ``(host, port)`` (or a device id found by mDNS).

        Returns the pairing, registered under ``alias``; it connects (pair-verify) on first
        use. Raises ``WrongSetupCode``, ``PairingRateLimited`` or ``PairingRefused``;
        aiohomekit's ``MalformedPinError`` if the code is not ``XXX-XX-XXX``.

        ``attempts``: a right code is refused about once in 100-250 pair-setups between
        HAP-python 5.x and aiohomekit 4.0.1, at M4 exactly like a wrong one: HAP-python
        leaves B, S and K without their leading zero bytes where aiohomekit pads them
        (pyhap/hsrp.py ``_derive_premaster_secret``/``set_A``, pyhap/hap_handler.py
        ``_pairing_one``; aiohomekit/crypto/srp.py ``pad_left``), so a refusal is retried.
        Each refusal counts towards HAP-python 5.2's lockout (5), so a test about wrong
        codes or that lockout passes ``attempts=1``.
        """
        for attempt in range(1, attempts + 1):
            try:
                return await self._pair_once(target, setup_code, alias)
            except WrongSetupCode:
                if attempt == attempts:
                    raise
        raise ValueError(f"attempts must be at least 1, not {attempts}")

    async def _pair_once(self, target: tuple[str, int] | str, setup_code: str,
                         alias: str) -> AbstractPairing:
        if isinstance(target, str):
            discovery = await self.controller.async_find(target, timeout=HANG_GUARD)
        else:
            discovery = IpDiscovery(self.controller.transports[TransportType.IP],
                                    _service_at(*target))
        try:
            try:
                finish = await discovery.async_start_pairing(alias)
                pairing = await finish(setup_code)
            except AuthenticationError as exc:
                raise WrongSetupCode(f"{target} refused the setup code", exc) from exc
            except (BusyError, BackoffError, MaxTriesError) as exc:
                raise PairingRateLimited(f"{target} refused pair-setup for now", exc) from exc
            except ProtocolError as exc:
                raise PairingRefused(f"{target} refused pair-setup", exc) from exc
        finally:
            if isinstance(discovery, IpDiscovery):
                await discovery.close()
        # IpDiscovery's finish registers the new pairing on the IP backend under the alias
        # (aiohomekit/controller/ip/discovery.py); load it the way Home Assistant does after
        # its config flow so the Controller knows the alias and the accessory pairing id.
        data = dict(pairing.pairing_data)
        await pairing.close()
        self.controller.transports[TransportType.IP].pairings.pop(alias, None)
        return self._load_data(alias, data)

    def _load_data(self, alias: str, data: dict[str, Any]) -> AbstractPairing:
        pairing = self.controller.load_pairing(alias, data)
        inbox = self._inboxes[id(pairing)] = _Inbox()
        delivered = pairing.event_received

        def received(event: dict[str, Any]) -> None:
            # Only what the accessory pushed: aiohomekit also tells its listeners about
            # this controller's own writes (IpPairing.put_characteristics), which are not
            # events and must not satisfy a test waiting for one.
            for row in event.get("characteristics", []):
                if isinstance(row, dict) and "value" in row:
                    inbox.events.append(Event(row["aid"], row["iid"], row["value"]))
            inbox.arrived.set()
            delivered(event)

        pairing.event_received = received  # type: ignore[method-assign]
        return pairing

    def pairing_data(self, pairing: AbstractPairing) -> dict[str, Any]:
        """The keys aiohomekit keeps: ``iOSPairingId`` (this controller's id, the one the
        accessory sees), ``AccessoryPairingID`` (the accessory's device id), keys, address."""
        return dict(pairing.pairing_data)

    def save(self, alias: str, path: Path | None = None) -> Path:
        """Write the pairing of ``alias`` to a 0600 JSON file (default ``directory/alias.json``)."""
        path = path or self.directory / f"{alias}.json"
        data = self.controller.aliases[alias].pairing_data
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump({alias: data}, out)
        return path

    def load(self, alias: str, path: Path | None = None) -> AbstractPairing:
        """Load a pairing saved by :meth:`save`; it connects (pair-verify) on first use."""
        path = path or self.directory / f"{alias}.json"
        return self._load_data(alias, json.loads(path.read_text())[alias])

    async def list_pairings(self, pairing: AbstractPairing) -> list[dict[str, Any]]:
        """The accessory's pairings: ``pairingId``, ``publicKey``, ``permissions``,
        ``controllerType`` (``admin``/``regular``)."""
        listed: list[dict[str, Any]] = await pairing.list_pairings()
        return listed

    async def remove_pairing(self, pairing: AbstractPairing, pairing_id: str | None = None) -> None:
        """Remove a pairing on the accessory (``/pairings`` RemovePairing).

        Without ``pairing_id``: this controller's own, after which aiohomekit shuts the
        pairing down and forgets the alias (as the Home app's "Remove Accessory" does).
        """
        own = pairing.pairing_data["iOSPairingId"]
        if pairing_id is None or pairing_id == own:
            alias = next(a for a, p in self.controller.aliases.items() if p is pairing)
            await self.controller.remove_pairing(alias)
        else:
            await pairing.remove_pairing(pairing_id)

    # ### Accessories and characteristics ###

    async def accessories(self, pairing: AbstractPairing) -> list[Accessory]:
        """``/accessories`` as dataclasses, in the accessory's order (the bridge is aid 1)."""
        raw = await pairing.list_accessories_and_characteristics()
        return [_accessory(a) for a in raw]

    async def get(self, pairing: AbstractPairing, aid: int, iid: int) -> Any:
        """The current value of one characteristic (``GET /characteristics``)."""
        result = await pairing.get_characteristics([(aid, iid)])
        row = result.get((aid, iid), {})
        if "value" not in row:
            raise HomeKitRequestFailed(f"reading {aid}.{iid}: {row}")
        return row["value"]

    async def put(self, pairing: AbstractPairing, aid: int, iid: int, value: Any) -> None:
        """Write one characteristic (``PUT /characteristics``); a HAP error status raises."""
        result = await pairing.put_characteristics([(aid, iid, value)])
        failed = {k: v for k, v in result.items() if v.get("status", 0) != 0}
        if failed:
            raise HomeKitRequestFailed(f"writing {aid}.{iid} = {value!r}: {failed}")

    # ### Events ###

    async def subscribe(self, pairing: AbstractPairing, keys: Iterable[tuple[int, int]]) -> None:
        """Ask for events of these ``(aid, iid)`` (``ev: true``); a refusal raises.

        aiohomekit re-subscribes on its own after it reconnects (IpPairing.connection_made).
        """
        status = await pairing.subscribe(sorted(set(keys)))
        failed = {k: v for k, v in (status or {}).items() if v.get("status", 0) != 0}
        if failed:
            raise HomeKitRequestFailed(f"subscribing: {failed}")

    def events(self, pairing: AbstractPairing) -> list[Event]:
        """Every event received on this pairing and not yet consumed by :meth:`next_event`."""
        return list(self._inboxes[id(pairing)].events)

    async def next_event(self, pairing: AbstractPairing,
                         predicate: Callable[[Event], bool] = lambda _: True,
                         timeout: float = HANG_GUARD) -> Event:
        """The first received event matching ``predicate``; it and those before it are consumed.

        Events that arrived before the call count, so a test may subscribe, act, then wait.
        Raises ``EventTimeout`` (an AssertionError) naming the events seen if none matches
        within ``timeout``, which is a hang guard, not a latency expectation.
        """
        inbox = self._inboxes[id(pairing)]
        seen: list[Event] = []

        def take() -> Event | None:
            while inbox.events:
                event = inbox.events.pop(0)
                seen.append(event)
                if predicate(event):
                    return event
            return None

        async def wait() -> Event:
            while (found := take()) is None:
                inbox.arrived.clear()
                await inbox.arrived.wait()
            return found

        try:
            return await asyncio.wait_for(wait(), timeout)
        except TimeoutError:
            raise EventTimeout(f"no matching HomeKit event within {timeout} s; "
                               f"received: {seen}") from None


def _service_at(host: str, port: int) -> HomeKitService:
    """What an mDNS answer for an unpaired HAP-python accessory would have said."""
    return HomeKitService(
        name=f"{host}:{port}", id="00:00:00:00:00:00", model="", feature_flags=FeatureFlags(0),
        status_flags=StatusFlags.UNPAIRED, config_num=1, state_num=1,
        category=Categories.BRIDGE, protocol_version="1.1", type=HAP_TYPE_TCP,
        address=host, addresses=[host], port=port)


def _accessory(raw: dict[str, Any]) -> Accessory:
    aid = int(raw["aid"])
    services = []
    for s in raw["services"]:
        chars = tuple(
            Characteristic(aid=aid, iid=int(c["iid"]), type=c["type"].upper(),
                           name=_CHAR_NAMES.get(c["type"].upper(), c["type"].upper()),
                           value=c.get("value"), perms=tuple(c.get("perms", ())),
                           format=c.get("format"))
            for c in s["characteristics"])
        services.append(Service(aid=aid, iid=int(s["iid"]), type=s["type"].upper(),
                                name=_SERVICE_NAMES.get(s["type"].upper(), s["type"].upper()),
                                characteristics=chars))
    return Accessory(aid=aid, services=tuple(services))

