"""The bounded event queue: back-pressure on a reader that can wait, counted drops for one that cannot."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Any

import pytest

from ctl import events as ev
from ctl.asterisk.switch import _Protocol
from ctl.dispatch import MAX_QUEUE, PAUSE_AT, RESUME_AT, EventDispatch

AT = datetime(2026, 11, 22, tzinfo=UTC)


def event(n: int) -> ev.Event:
    return ev.ContactChanged(node="n", at=AT, endpoint=str(n), state="reachable")


class FakeReader:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


def test_the_bounds_are_sensible_module_constants() -> None:
    assert MAX_QUEUE == 10_000 and RESUME_AT < PAUSE_AT < MAX_QUEUE


async def test_a_reader_is_paused_when_the_queue_fills_and_resumed_once_it_drained() -> None:
    dispatch = EventDispatch("t", limit=10, pause_at=8, resume_at=3)
    reader = FakeReader()
    dispatch.attach(reader)
    seen: list[str] = []
    dispatch.subscribe(lambda e: seen.append(e.endpoint))  # type: ignore[attr-defined]
    for n in range(8):
        assert dispatch.put(event(n))
    assert reader.calls == ["pause"] and dispatch.paused and dispatch.stats.delayed == 1
    assert dispatch.put(event(8)) and dispatch.put(event(9))  # the headroom: nothing lost
    assert dispatch.stats.dropped == 0 and len(dispatch) == 10
    dispatch.start()
    await dispatch.drain()
    assert reader.calls == ["pause", "resume"] and not dispatch.paused
    assert seen == [str(n) for n in range(10)]
    await dispatch.stop()


async def test_a_producer_that_cannot_wait_loses_events_counted_and_logged_once(
        caplog: pytest.LogCaptureFixture) -> None:
    dispatch = EventDispatch("t", limit=5, pause_at=4, resume_at=2)  # no reader attached (FreeSWITCH today)
    caplog.set_level(logging.WARNING, logger="ctl.dispatch")
    accepted = [dispatch.put(event(n)) for n in range(8)]
    assert accepted == [True] * 5 + [False] * 3
    assert (dispatch.stats.dropped, dispatch.stats.delayed, len(dispatch)) == (3, 0, 5)
    assert len([r for r in caplog.records if "dropping events" in r.getMessage()]) == 1
    dispatch.start()
    await dispatch.drain()
    dispatch.put(event(0))  # a new burst is a new episode with its own line
    for n in range(6):
        dispatch.put(event(n))
    assert len([r for r in caplog.records if "dropping events" in r.getMessage()]) == 2
    await dispatch.stop()


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.reading = True
        self.closing = False

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def write(self, data: Any) -> None:
        pass


def newchannel(n: int) -> bytes:
    return f"Event: Newchannel\r\nChannel: PJSIP/101-00000001\r\nUniqueid: u{n}\r\nLinkedid: u{n}\r\n\r\n".encode()


async def test_messages_held_back_when_the_link_drops_are_handled_before_it_is_reported_lost() -> None:
    from ctl.asterisk.switch import _Manager

    dispatch = EventDispatch("t", limit=10, pause_at=8, resume_at=3)
    manager = _Manager(host="x", port=1, encoding="utf-8")
    seen: list[str] = []

    def translate(_: object, message: Any) -> None:
        dispatch.put(ev.ChannelCreated(node="n", at=AT, call_id="c", channel_id=message["Uniqueid"], name="x",
                                       endpoint=None, caller_number=None, caller_name=None, dialed=None))

    manager.register_event("*", translate)
    protocol = _Protocol(manager, dispatch)
    transport = FakeTransport()
    protocol.connection_made(transport)
    dispatch.subscribe(lambda e: seen.append(e.channel_id))  # type: ignore[attr-defined]
    protocol.data_received(b"Asterisk Call Manager/11.0.0\r\n" + b"".join(newchannel(n) for n in range(20)))
    assert len(dispatch) == 8 and not transport.reading  # the rest waits in the splitter, unread
    protocol.connection_lost(None)
    assert not protocol.lost.done()  # not yet: twelve messages read before the loss are still waiting
    dispatch.start()
    await asyncio.wait_for(protocol.lost, 5)
    await dispatch.drain()
    assert seen == [f"u{n}" for n in range(20)]
    assert not transport.reading  # a closed link is not read again
    await dispatch.stop()
