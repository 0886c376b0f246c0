"""pinpanel.client's pieces that need no server: the SSE parser and URL handling."""

from __future__ import annotations

import pytest

from pinpanel.client import Client, ClientConfigError, parse_sse


def lines(text: str) -> list[bytes]:
    return [line.encode() + b"\n" for line in text.split("\n")]


def test_parse_sse_events_comments_and_multiline_data() -> None:
    stream = lines(
        "retry: 2000\n"
        "\n"
        "event: snapshot\nid: 4\n"
        'data: {"seq": 4, "pins": [{"pin": 18, "id": "gpio18", "name": "GPIO 18",'
        ' "mode": "output", "state": true}]}\n'
        "\n"
        ": keep-alive\n"
        "\n"
        "event: change\nid: 5\n"
        'data: {"seq": 5, "pin": {"pin": 18, "id": "gpio18", "name": "GPIO 18",'
        ' "mode": "output", "state": false, "seq": 5}, "cause": "api"}\n'
        "\n"
        "data: first\ndata: second\n"
        "\n")
    events = list(parse_sse(iter(stream)))
    assert [e.kind for e in events] == ["snapshot", "change", "message"]
    snapshot, change, plain = events
    assert snapshot.seq == 4 and snapshot.pins[0].state is True
    assert change.seq == 5 and change.pin is not None and change.pin.state is False
    assert plain.data == "first\nsecond" and plain.seq == 5  # the last id carries over


def test_client_url_is_normalised_and_checked() -> None:
    assert Client("http://pi.local:8080/").url == "http://pi.local:8080"
    assert Client(" https://pi.local/pinpanel/ ").url == "https://pi.local/pinpanel"
    for bad in ("pi.local:8080", "ftp://pi.local", "http://", ""):
        with pytest.raises(ClientConfigError):
            Client(bad)
    assert Client("http://x", "").token is None
