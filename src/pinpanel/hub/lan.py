"""The hub's eyes on the LAN: pinpanels that announce ``_pinpanel._tcp`` over mDNS.

A Pi found only this way is listed with a link to its page but is not controlled (the hub
commands only through the broker); one that is also on MQTT is the same entry, marked as
found both ways. Off with ``[mdns] enabled = false`` or without zeroconf.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from pinpanel import fleetwire
from pinpanel.config import Config
from pinpanel.hub.fleet import Fleet

log = logging.getLogger("pinpanel.hub")


def browser(config: Config, fleet: Fleet, changed: Callable[[], None],
            ) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None:
    if not config.mdns.enabled:
        return None
    try:
        import zeroconf  # noqa: F401
    except ImportError:
        log.info("hub: not browsing the LAN (pip install 'pinpanel[mdns]')")
        return None

    async def run(stop: asyncio.Event) -> None:
        from zeroconf import InterfaceChoice, IPVersion, ServiceStateChange
        from zeroconf.asyncio import AsyncServiceBrowser, AsyncServiceInfo, AsyncZeroconf

        interfaces: Any = (fleetwire.mdns_interfaces(config.mdns.interfaces, config.server.host)
                           or InterfaceChoice.All)
        try:
            zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except OSError as exc:
            log.warning("hub: cannot browse the LAN (%s)", exc)
            await stop.wait()
            return
        pending: set[asyncio.Task[None]] = set()

        async def resolve(kind: str, name: str) -> None:
            info = AsyncServiceInfo(kind, name)
            if not await info.async_request(zc.zeroconf, 3000):
                return
            txt = {k.decode(): (v or b"").decode(errors="replace")
                   for k, v in info.properties.items()}
            addresses = info.parsed_addresses()
            if not addresses or not info.port:
                return
            device_id = txt.get("device_id") or name.split(".")[0]
            url = f"http://{addresses[0]}:{info.port}{txt.get('path') or '/'}"
            fleet.found_on_lan(device_id, url, txt.get("version", ""), txt.get("base", ""))
            changed()

        def on_change(zeroconf: Any, service_type: str, name: str,
                      state_change: ServiceStateChange) -> None:
            if state_change is ServiceStateChange.Removed:
                fleet.gone_from_lan(name.split(".")[0])
                changed()
                return
            task = asyncio.ensure_future(resolve(service_type, name))
            pending.add(task)
            task.add_done_callback(pending.discard)

        browse = AsyncServiceBrowser(zc.zeroconf, [fleetwire.PINPANEL_SERVICE],
                                     handlers=[on_change])
        try:
            await stop.wait()
        finally:
            await browse.async_cancel()
            for task in pending:
                task.cancel()
            await zc.async_close()

    return run
