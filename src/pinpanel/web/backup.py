"""``GET /api/v1/backup`` (admin): the archive ``pinpanel backup`` writes, as a download.

The snapshot is SQLite's online backup (see :mod:`pinpanel.backup`), made on a worker thread:
it reads the whole database, which must not stall the event loop, and it never blocks the
store's writer, so pins keep switching while an admin downloads. Nothing changes on this
GET; the answer is never cached (it holds token hashes).
"""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from pinpanel import backup
from pinpanel.config import Config
from pinpanel.errors import BackupError, StoreError
from pinpanel.web.context import store_of
from pinpanel.web.openapi import problems
from pinpanel.web.problems import Problem
from pinpanel.web.routing import ApiRoute

MEDIA_TYPE = "application/gzip"
WHY = {503: "The snapshot failed (the database is damaged or cannot be read)"}


async def download(request: Request) -> Response:
    config: Config = request.app.state.config
    path = store_of(request).path
    try:
        data = await asyncio.to_thread(backup.archive, path, backup.config_file(config))
    except (BackupError, StoreError) as exc:
        raise Problem(503, f"backup failed: {exc}") from None
    return Response(data, media_type=MEDIA_TYPE, headers={
        "Content-Disposition": f'attachment; filename="{backup.file_name()}"',
        "Cache-Control": "no-store"})


def routes() -> list[ApiRoute]:
    return [
        ApiRoute("/api/v1/backup", download, methods=["GET"], name="backup", policy="admin",
                 openapi={
                     "summary": "Download a backup (admin): database snapshot and config",
                     "description": "A tar.gz with manifest.json (versions, created_at, "
                                    "each member's sha256), pinpanel.sqlite3 (an online "
                                    "snapshot, consistent while pins switch) and "
                                    "pinpanel.toml if the server has a config file. Restore "
                                    "it with pinpanel restore FILE, the server stopped.",
                     "tags": ["system"],
                     "responses": {"200": {"description": "The archive", "content": {
                         MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
                         **problems(WHY, 503)}}),
    ]
