"""The AMI reader against a hostile or flooding peer (the fake AMI server): a malformed
message is skipped and the link survives; a burst larger than the event queue is
delivered whole and in order, with the socket paused rather than memory growing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from ctl import events as ev
from ctl.asterisk import AsteriskSwitch
from ctl.asterisk import switch as switch_module
from ctl.dispatch import MAX_QUEUE
from tests.protocol.fake_ami import FakeAmiServer
from tests.protocol.test_asterisk_switch import Collector, settings_for

# A server that answers the login and then waits for an Originate that never comes: the test
# writes on the connection itself.
RECORDING, ANSWERS = "bridge-answered.ami", ["Login", "Originate", "CoreShowChannels"]


def newchannel(uniqueid: str) -> bytes:
    return (f"Event: Newchannel\r\nPrivilege: call,all\r\nChannel: PJSIP/101-00000001\r\nChannelState: 0\r\n"
            f"CallerIDNum: 101\r\nExten: s\r\nUniqueid: {uniqueid}\r\nLinkedid: {uniqueid}\r\n\r\n").encode()


@pytest.fixture
async def server() -> AsyncIterator[FakeAmiServer]:
    fake = FakeAmiServer(RECORDING, ANSWERS)
    yield fake
    await fake.stop()


async def connected(server: FakeAmiServer, **settings: object) -> tuple[AsteriskSwitch, asyncio.StreamWriter]:
    port = await server.start()
    switch = AsteriskSwitch(settings_for(port, **settings))
    await switch.connect()
    for _ in range(100):  # the server's side of the connection, once it has served the login
        if server._writers:  # noqa: SLF001 - the fake has no public handle on its connections
            break
        await asyncio.sleep(0.01)
    [writer] = server._writers  # noqa: SLF001
    return switch, writer


MALFORMED = {
    # panoramisk makes a list of a repeated header and calls .lower() on it inside data_received.
    "duplicate-event": b"Event: Newchannel\r\nEvent: Hangup\r\nUniqueid: bad\r\nLinkedid: bad\r\n\r\n",
    # ... or looks a list up as a dict key (TypeError: unhashable type).
    "duplicate-actionid": b"Response: Success\r\nActionID: a-1\r\nActionID: a-2\r\n\r\n",
    # A repeated Response would be the same list for panoramisk's reply matching.
    "duplicate-response": b"Response: Success\r\nResponse: Error\r\nActionID: a-3\r\n\r\n",
}


@pytest.mark.parametrize("same_read", [True, False], ids=["same-read", "next-read"])
@pytest.mark.parametrize("bad", list(MALFORMED), ids=list(MALFORMED))
async def test_a_malformed_message_is_skipped_and_the_connection_survives(
        server: FakeAmiServer, bad: str, same_read: bool, caplog: pytest.LogCaptureFixture) -> None:
    switch, writer = await connected(server)
    seen = Collector()
    switch.subscribe(seen)
    caplog.set_level(logging.WARNING)
    if same_read:
        writer.write(MALFORMED[bad] + newchannel("good-1"))
    else:
        writer.write(MALFORMED[bad])
        await writer.drain()
        await asyncio.sleep(0.05)
        writer.write(newchannel("good-1"))
    await writer.drain()
    await seen.wait(ev.ChannelCreated)
    assert [e.channel_id for e in seen.of(ev.ChannelCreated)] == ["good-1"]  # type: ignore[attr-defined]
    assert switch.connected
    assert switch.stats.malformed == 1
    [warning] = [r for r in caplog.records if "malformed AMI message" in r.getMessage()]
    assert warning.levelno == logging.WARNING and warning.exc_info is None  # one line, no traceback
    assert "\n" not in warning.getMessage()
    # The link still carries actions and their replies.
    assert await switch.channels() == []
    await switch.close()


async def test_a_burst_larger_than_the_queue_is_delivered_whole_with_the_reader_paused(
        server: FakeAmiServer, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    switch, writer = await connected(server, action_timeout=30.0)
    dispatch = switch._events  # noqa: SLF001 - the queue's length is what is measured
    peak = 0
    put = dispatch.put

    def measured(event: ev.Event) -> bool:
        nonlocal peak
        accepted = put(event)
        peak = max(peak, len(dispatch))
        return accepted

    monkeypatch.setattr(dispatch, "put", measured)
    gate = asyncio.Event()
    seen: list[str] = []

    async def slow(event: ev.Event) -> None:
        await gate.wait()  # the handlers are stuck until the whole burst has been sent
        if isinstance(event, ev.ChannelCreated):
            seen.append(event.channel_id)

    switch.subscribe(slow)
    caplog.set_level(logging.INFO, logger="ctl.dispatch")
    count = MAX_QUEUE + MAX_QUEUE // 2
    burst = b"".join(newchannel(f"burst-{n:05d}") for n in range(count))
    writer.write(burst)
    sending = asyncio.create_task(writer.drain())
    for _ in range(500):  # until the reader has filled the queue and stopped reading
        if dispatch.paused:
            break
        await asyncio.sleep(0.01)
    assert dispatch.paused
    await asyncio.sleep(0.2)
    assert len(dispatch) <= MAX_QUEUE  # no further read while paused
    gate.set()
    await asyncio.wait_for(sending, 30)

    async def all_seen() -> None:
        while len(seen) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_seen(), 60)
    assert seen == [f"burst-{n:05d}" for n in range(count)]  # every event, in order
    assert peak <= MAX_QUEUE
    assert switch.stats.delayed >= 1 and switch.stats.dropped == 0 and switch.stats.malformed == 0
    assert switch.connected and not dispatch.paused
    paused = [r for r in caplog.records if "reading paused" in r.getMessage()]
    assert len(paused) == switch.stats.delayed  # one line per episode, not per event
    await switch.close()


async def test_an_unanswered_ping_while_reading_is_paused_keeps_the_link(
        server: FakeAmiServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(switch_module, "PING_INTERVAL", 0.05)
    switch, writer = await connected(server, action_timeout=0.3)
    runner = asyncio.create_task(switch.run())
    dispatch = switch._events  # noqa: SLF001
    gate = asyncio.Event()

    async def stuck(event: ev.Event) -> None:
        await gate.wait()

    switch.subscribe(stuck)
    writer.write(b"".join(newchannel(f"p-{n}") for n in range(MAX_QUEUE)))
    for _ in range(500):
        if dispatch.paused:
            break
        await asyncio.sleep(0.01)
    assert dispatch.paused
    await asyncio.sleep(1.0)  # several pings unanswered: their replies wait behind unread events
    assert switch.connected and server.connections == 1
    gate.set()
    await switch.drain()
    assert switch.connected and server.connections == 1
    await switch.close()
    await runner
