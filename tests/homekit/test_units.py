"""The bridge's own arithmetic, in-process: codes, the setup payload, ids, the limit, refusals."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

from pyhap.state import State

from pinpanel.homekit.bridge import AttemptLimit, _answer
from pinpanel.homekit.state import (
    AccessoryIds,
    PinpanelEncoder,
    new_setup_code,
    setup_uri,
)


def test_setup_codes_are_random_digits_in_hap_s_form_never_a_forbidden_one() -> None:
    codes = {new_setup_code() for _ in range(200)}
    assert len(codes) == 200
    for code in codes:
        digits = code.replace(b"-", b"")
        assert len(code) == 10 and code[3:4] == code[6:7] == b"-" and digits.isdigit()
        assert digits not in (b"12345678", b"87654321") and len(set(digits)) > 1


def test_the_setup_payload_carries_the_category_the_ip_flag_and_the_code() -> None:
    uri = setup_uri(b"518-08-582", "7OSX", category=2)
    assert uri.startswith("X-HM://") and uri.endswith("7OSX") and len(uri) == 7 + 9 + 4
    payload = int(uri[7:16], 36)
    assert payload & 0x7FFFFFF == 51808582  # the code, 27 bits
    assert payload >> 27 & 0xF == 2  # flags: pairs over IP
    assert payload >> 31 & 0xFF == 2  # category: bridge
    assert payload >> 39 == 0  # version and reserved bits


def test_accessory_ids_are_kept_by_key_and_never_reused() -> None:
    ids = AccessoryIds({"pin:lamp": 2, "pin:gone": 5})
    assert ids("pin:lamp") == 2 and not ids.changed
    assert ids("pin:new") == 6 and ids.changed  # after every number handed out, not 3
    assert ids("pin:other") == 7


def test_the_state_file_round_trips_code_setup_id_and_ids_with_hap_python_s_keys() -> None:
    state = State(address="127.0.0.1", pincode=b"518-08-582", port=51826)
    ids = AccessoryIds({"pin:lamp": 2})
    out = io.StringIO()
    PinpanelEncoder(ids).persist(out, state)
    data = json.loads(out.getvalue())
    assert {"mac", "private_key", "paired_clients", "config_version"} <= set(data)
    restored = State(address="127.0.0.1", pincode=b"000-00-001", port=51826)
    again = AccessoryIds()
    PinpanelEncoder(again).load_into(io.StringIO(out.getvalue()), restored)
    assert (restored.pincode, restored.setup_id, restored.mac) == (
        b"518-08-582", state.setup_id, state.mac)
    assert again.known == {"pin:lamp": 2} and again("pin:x") == 3


def test_the_wrong_code_limit_counts_one_minute_for_everyone() -> None:
    now = [1000.0]
    limit = AttemptLimit(2, clock=lambda: now[0])
    limit.failed()
    limit.failed()
    assert limit.blocked()
    now[0] += 59.9
    assert limit.blocked()
    now[0] += 0.2
    assert not limit.blocked()


async def test_a_refused_write_answers_hap_s_error_for_that_accessory_only() -> None:
    class Response:
        status_code, reason, headers = 204, "No Content", [("X", "y")]

    response: Any = Response()
    work: asyncio.Future[list[tuple[int, bool]]] = asyncio.get_running_loop().create_future()
    work.set_result([(2, True), (3, False)])
    query = {"characteristics": [{"aid": 2, "iid": 9, "value": True},
                                 {"aid": 3, "iid": 9, "value": True},
                                 {"aid": 3, "iid": 10, "ev": True}]}
    body = await _answer(work, response, query, None)
    assert response.status_code == 207
    assert json.loads(body) == {"characteristics": [
        {"aid": 2, "iid": 9, "status": 0}, {"aid": 3, "iid": 9, "status": -70402}]}
    # A status HAP-python itself gave (a value out of range) is kept beside the refusal.
    hap = {"characteristics": [{"aid": 2, "iid": 9, "status": -70410}]}
    body = await _answer(work, Response(), query, hap)
    assert json.loads(body) == {"characteristics": [
        {"aid": 2, "iid": 9, "status": -70410}, {"aid": 3, "iid": 9, "status": -70402}]}
    ok: asyncio.Future[list[tuple[int, bool]]] = asyncio.get_running_loop().create_future()
    ok.set_result([(2, True)])
    assert await _answer(ok, Response(), query, None) == b""
