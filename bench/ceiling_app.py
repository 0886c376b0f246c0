"""The ceiling: the smallest raw ASGI app that returns the bytes pinpanel returns.

Why it exists: a ratio to the tutorial says how much better pinpanel is; a ratio to this app
says how much of the serving stack's capacity pinpanel's own code (routing, auth, state, the
durable commit, templates) uses up. It runs on the very stack pinpanel uses (uvicorn with the
``auto`` loop and HTTP implementation, which here means uvloop and httptools, one worker) and
does nothing else: a dict lookup and two ``send`` calls per request, no logging.

The bodies and headers are, where possible, *captured from pinpanel* by the harness and passed
in with ``--routes FILE``, so both servers put the same bytes on the wire; without that file it
falls back to the tutorial's contract made valid JSON (see ``DEFAULT_ROUTES``).

It also serves a minimal Server-Sent Events stream at ``/api/v1/events`` (a snapshot, then a
``change`` event per toggle request) so the harness can measure its own floor for event
delivery: whatever latency this stream shows is the harness's and the stack's, not pinpanel's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import Any, TypeAlias

import uvicorn

Headers: TypeAlias = list[tuple[bytes, bytes]]
Scope: TypeAlias = dict[str, Any]

# (method, path) -> (status, headers, body, toggles). The page body is the baseline's page, so
# without a capture the ceiling still sends a same-sized table.
DEFAULT_PAGE = (
    b"<table>\n<tr>\n    <td>Pin Number</td>\n    <td>Current Value</td>\n    <td></td>\n</tr>\n"
    + b"".join(
        b'    <form action="/toggle?pin=%d" method="post">\n    <tr>\n        <td>%d</td>\n'
        b'        <td>False</td>\n        <td><input type="submit" value="Toggle"/></td>\n'
        b"    </tr>\n    </form>\n" % (pin, pin)
        for pin in (18, 23, 24)
    )
    + b"</table>\n"
)
JSON_CT: Headers = [(b"content-type", b"application/json")]
DEFAULT_ROUTES: dict[tuple[str, str], tuple[int, Headers, bytes, bool]] = {
    ("GET", "/"): (200, [(b"content-type", b"text/html; charset=utf-8")], DEFAULT_PAGE, False),
    ("GET", "/healthz"): (200, JSON_CT, b'{"status": "ok"}', False),
    ("GET", "/api/list"): (200, JSON_CT, b'{"18": false, "23": false, "24": false}', False),
    ("POST", "/api/toggle/18"): (200, JSON_CT, b'{"Success": true}', True),
}
NOT_FOUND: tuple[int, Headers, bytes, bool] = (404, JSON_CT, b'{"error": "not found"}', False)
EVENTS_PATH = "/api/v1/events"


def load_routes(path: Path | None) -> dict[tuple[str, str], tuple[int, Headers, bytes, bool]]:
    """Read the harness's captured routes (JSON list), falling back to the defaults.

    Each entry: ``{"method", "path", "status", "headers": [[name, value], ...], "body",
    "toggles"}``; captured entries replace defaults for the same method and path.
    """
    routes = dict(DEFAULT_ROUTES)
    if path is None:
        return routes
    for entry in json.loads(path.read_text(encoding="utf-8")):
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in entry["headers"]]
        routes[(entry["method"], entry["path"])] = (
            int(entry["status"]),
            headers,
            entry["body"].encode("utf-8"),
            bool(entry.get("toggles", False)),
        )
    return routes


def _with_length(
    entry: tuple[int, Headers, bytes, bool],
) -> tuple[int, Headers, bytes, bool]:
    """Return the route entry with exactly one Content-Length header, matching its body."""
    status, headers, body, toggles = entry
    kept = [h for h in headers if h[0].lower() != b"content-length"]
    return status, [*kept, (b"content-length", str(len(body)).encode("ascii"))], body, toggles


class CeilingApp:
    """A raw ASGI callable: fixed bytes per route, plus a tiny broadcast SSE stream."""

    def __init__(self, routes: dict[tuple[str, str], tuple[int, Headers, bytes, bool]]) -> None:
        # Content-Length is computed once here, as Starlette's Response does per request;
        # without it uvicorn would fall back to chunked encoding and send different bytes.
        self.routes = {key: _with_length(entry) for key, entry in routes.items()}
        self.not_found = _with_length(NOT_FOUND)
        self.subscribers: set[asyncio.Queue[bytes]] = set()
        self.seq = 0
        self.state = False

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        """Answer one request with the stored bytes; no parsing beyond method and path."""
        if scope["type"] != "http":
            return
        if scope["path"] == EVENTS_PATH and scope["method"] == "GET":
            await self._events(receive, send)
            return
        status, headers, body, toggles = self.routes.get(
            (scope["method"], scope["path"]), self.not_found
        )
        if toggles:
            self._broadcast()
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _broadcast(self) -> None:
        """Queue one ``change`` event, shaped like pinpanel's, for every subscriber."""
        self.seq += 1
        self.state = not self.state
        data = json.dumps(
            {
                "seq": self.seq,
                "pin": {"pin": 18, "state": self.state},
                "actor": "bench",
                "cause": "toggle",
            }
        )
        event = f"id: {self.seq}\nevent: change\ndata: {data}\n\n".encode()
        for queue in self.subscribers:
            queue.put_nowait(event)

    async def _events(self, receive: Any, send: Any) -> None:
        """Stream a snapshot and then every change until the client goes away."""
        queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.subscribers.add(queue)
        try:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [
                        (b"content-type", b"text/event-stream"),
                        (b"cache-control", b"no-cache"),
                    ],
                }
            )
            snapshot = json.dumps({"seq": self.seq, "pins": [{"pin": 18, "state": self.state}]})
            await send(
                {
                    "type": "http.response.body",
                    "body": f"event: snapshot\ndata: {snapshot}\n\n".encode(),
                    "more_body": True,
                }
            )
            disconnect = asyncio.ensure_future(self._wait_disconnect(receive))
            try:
                while True:
                    getter = asyncio.ensure_future(queue.get())
                    done, _ = await asyncio.wait(
                        {getter, disconnect}, return_when=asyncio.FIRST_COMPLETED
                    )
                    if disconnect in done:
                        getter.cancel()
                        return
                    await send(
                        {"type": "http.response.body", "body": getter.result(), "more_body": True}
                    )
            finally:
                disconnect.cancel()
        finally:
            self.subscribers.discard(queue)

    @staticmethod
    async def _wait_disconnect(receive: Any) -> None:
        """Return once the server reports the client gone (ends the stream)."""
        while (await receive())["type"] != "http.disconnect":
            pass


def main(argv: list[str] | None = None) -> None:
    """Serve as pinpanel's runtime configures uvicorn: auto loop and parser, no access log."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--routes", type=Path, default=None, help="captured routes JSON")
    parser.add_argument("--loop", choices=("auto", "asyncio", "uvloop"), default="auto",
                        help="event loop; auto picks uvloop when installed (for comparisons "
                             "with a server that runs on the stdlib loop)")
    args = parser.parse_args(argv)
    app = CeilingApp(load_routes(args.routes))
    uvicorn.run(
        app,
        host=args.host,
        port=args.port,
        workers=1,
        loop=args.loop,
        http="auto",
        lifespan="off",
        access_log=False,
        server_header=False,  # pinpanel turns it off too: same bytes on the wire
        log_level="warning",
    )


if __name__ == "__main__":
    main()
