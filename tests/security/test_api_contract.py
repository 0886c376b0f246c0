"""The server does what its OpenAPI document says: a property-based run from /openapi.json.

Schemathesis reads the live server's document and, for every operation, sends the examples,
the coverage cases (boundaries, every undocumented method, missing headers) and generated
requests, valid and invalid, with a control token and the failed-auth limit raised for the
run (and the token API again with an admin token, so its operations get past their 403).
Every check is on: no schema-valid request refused, no status or content type the document
does not list, responses matching their schemas, a 405 with the right ``Allow``,
and no 5xx. Bounded in examples (and the event stream cut after its first event) so it
runs in well under a minute; ``PINPANEL_FUZZ_EXAMPLES`` and ``PINPANEL_FUZZ_SEED`` widen
or vary a run by hand.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import Spawn, make_tokens

SERVER_CONFIG = """
[auth]
login_attempts_per_minute = 1000
"""
#: The event stream never ends by itself: read its first event, then judge it.
SCHEMATHESIS_CONFIG = """
[[operations]]
include-path = "/api/v1/events"
max-stream-events = 1
"""
EXAMPLES = os.environ.get("PINPANEL_FUZZ_EXAMPLES", "12")
SEED = os.environ.get("PINPANEL_FUZZ_SEED", "20261202")


@pytest.mark.parametrize(("scope", "tag"), [
    ("control", None),  # every operation (the token API answers this scope 403)
    ("admin", "tokens"),  # and the token API once more, past its scope check
])
def test_every_operation_does_what_the_document_says(spawn: Spawn, tmp_path: Path,
                                                      scope: str, tag: str | None) -> None:
    server = spawn(SERVER_CONFIG)
    token = make_tokens(server, fuzz=scope)["fuzz"]
    auth = {"Authorization": f"Bearer {token}"}
    document = httpx.get(f"{server.url}/openapi.json", headers=auth, timeout=10).json()
    operations = sum(1 for item in document["paths"].values() for op in item.values()
                     if tag is None or tag in op["tags"])
    # Read from a file: from a URL, Schemathesis leaves out the operation serving it.
    (tmp_path / "openapi.json").write_text(json.dumps(document), encoding="utf-8")
    config = tmp_path / "schemathesis.toml"
    config.write_text(SCHEMATHESIS_CONFIG, encoding="utf-8")
    run = subprocess.run(
        [str(Path(sys.executable).with_name("schemathesis")), "--config-file", str(config),
         "--no-color", "run", str(tmp_path / "openapi.json"), "--url", server.url,
         "-H", f"Authorization: Bearer {token}",
         "--checks", "all", "--phases", "examples,coverage,fuzzing",
         "--max-examples", EXAMPLES, "--seed", SEED, "--workers", "1",
         "--request-timeout", "10", *(["--include-tag", tag] if tag else [])],
        capture_output=True, text=True, timeout=300, cwd=tmp_path, check=False)
    report = run.stdout + run.stderr
    assert run.returncode == 0, report[-30000:]
    total = sum(len(item) for item in document["paths"].values())
    assert f"Selected: {operations}/{total}" in report, report[-3000:]
    assert f"Tested: {operations}" in report, report[-3000:]
    assert "Traceback" not in server.log()
