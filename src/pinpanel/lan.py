"""This pinpanel on the LAN without a broker: mDNS/DNS-SD announcements (``[mdns]``).

Two services for the web server's port: ``_pinpanel._tcp`` (for a hub and pinpanel's own
tools, with the device id, version and MQTT base in its TXT record) and ``_http._tcp`` (so a
phone's or a desktop's service browser lists ``http://garage-pi.local:8080/``). zeroconf is
an extra (``pinpanel[mdns]``): without it this is one log line, never a crash.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Callable, Coroutine
from typing import Any

from pinpanel import __version__, fleetwire
from pinpanel.config import Config

log = logging.getLogger("pinpanel.lan")
_ANY = ("", "0.0.0.0", "::")


def announce_addresses(config: Config) -> list[str]:
    """The IPv4 addresses to put in the A records: the listen address, or every interface."""
    if config.mdns.interfaces:
        return list(config.mdns.interfaces)
    if config.server.host not in _ANY:
        return [config.server.host]
    import ifaddr

    found = [str(ip.ip) for adapter in ifaddr.get_adapters() for ip in adapter.ips
             if isinstance(ip.ip, str) and not ip.ip.startswith("127.")]
    return found or ["127.0.0.1"]


def announcer(config: Config, device_id: str, base: str,
              ) -> Callable[[asyncio.Event], Coroutine[Any, Any, None]] | None:
    """The announcer's runner, or None when ``[mdns]`` is off or zeroconf is missing."""
    if not config.mdns.enabled:
        return None
    try:
        import zeroconf  # noqa: F401
    except ImportError:
        log.info("mdns: not announced on the LAN (pip install 'pinpanel[mdns]' to turn it on)")
        return None

    async def run(stop: asyncio.Event) -> None:
        from zeroconf import IPVersion, ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf

        host = socket.gethostname().split(".")[0]
        try:
            addresses = announce_addresses(config)
        except OSError as exc:  # the interfaces cannot be listed (a sandbox without netlink)
            log.warning("mdns: cannot list this machine's addresses to announce (%s)", exc)
            await stop.wait()
            return
        txt = {"device_id": device_id, "version": __version__, "path": "/", "base": base}
        infos = [ServiceInfo(kind, f"{device_id}.{kind}", port=config.server.port,
                             properties=txt, server=f"{host}.local.",
                             parsed_addresses=addresses)
                 for kind in (fleetwire.PINPANEL_SERVICE, fleetwire.HTTP_SERVICE)]
        interfaces: Any = fleetwire.mdns_interfaces(config.mdns.interfaces, config.server.host)
        if interfaces is None:
            from zeroconf import InterfaceChoice

            interfaces = InterfaceChoice.All
        try:
            zc = AsyncZeroconf(interfaces=interfaces, ip_version=IPVersion.V4Only)
        except OSError as exc:
            log.warning("mdns: cannot announce on the LAN (%s)", exc)
            await stop.wait()
            return
        try:
            for info in infos:
                await zc.async_register_service(info, allow_name_change=True)
            log.info("mdns: announced %s on %s", device_id, ", ".join(addresses))
            await stop.wait()
            await zc.async_unregister_all_services()
        except Exception:
            log.exception("mdns: announcing failed; the LAN will not find this pinpanel")
            await stop.wait()
        finally:
            await zc.async_close()

    return run
