"""The hub (events.py): what it replays, what it forgets, who it drops.

The stream that serves the hub's changes over HTTP is tested in test_web_stream.py.
"""

from __future__ import annotations

import asyncio

from pinpanel.changes import Actor, Change, Committed, PinView
from pinpanel.events import EventHub, SubscriberDropped

USER = Actor("tester", "api", "127.0.0.1")


def change(seq: int, state: bool = True) -> Change:
    view = PinView(18, "gpio18", "GPIO 18", "output", state, False, seq, "t")
    return Change(Committed(18, "gpio18", not state, state, USER, "t", seq), view)


async def test_hub_since_replays_what_it_holds_and_admits_what_it_forgot() -> None:
    hub = EventHub(replay=3)
    assert hub.since(0) == []
    for seq in range(1, 6):
        hub.publish(change(seq))
    assert [c.seq for c in hub.since(2) or []] == [3, 4, 5]
    assert [c.seq for c in hub.since(4) or []] == [5]
    assert hub.since(5) == []
    assert hub.since(1) is None  # 2 was forgotten: the client needs a snapshot


async def test_a_subscriber_that_falls_behind_is_dropped_and_the_others_are_not() -> None:
    hub = EventHub(buffer=3)
    slow, fast = hub.subscribe(), hub.subscribe()
    for seq in range(1, 4):
        hub.publish(change(seq))
    assert [c.seq for c in await fast.next_batch()] == [1, 2, 3]
    hub.publish(change(4))
    assert hub.subscriber_count == 1
    try:
        await slow.next_batch()
        raise AssertionError("a dropped subscriber must not read on")
    except SubscriberDropped:
        pass
    assert [c.seq for c in await fast.next_batch()] == [4]
    fast.close()
    assert hub.subscriber_count == 0


async def test_a_poke_wakes_a_reader_with_nothing_and_leaves_it_subscribed() -> None:
    hub = EventHub()
    sub = hub.subscribe()
    waiting = asyncio.create_task(sub.next_batch())
    await asyncio.sleep(0)
    sub.poke()  # the stream's keep-alive timer: nothing new, but a keep-alive is due
    assert await waiting == [] and not sub.closed
    hub.publish(change(1))
    assert [c.seq for c in await sub.next_batch()] == [1]
    sub.close()
    assert await sub.next_batch() == [] and sub.closed


async def test_wait_dropped_returns_when_the_hub_drops_the_subscriber() -> None:
    hub = EventHub(buffer=1)
    sub = hub.subscribe()
    watcher = asyncio.create_task(sub.wait_dropped())
    hub.publish(change(1))
    await asyncio.sleep(0)
    assert not watcher.done()  # within its buffer: still subscribed
    hub.publish(change(2))
    await asyncio.wait_for(watcher, 5)
    assert sub.dropped and hub.subscriber_count == 0
    await sub.wait_dropped()  # already dropped: returns at once
