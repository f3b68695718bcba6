"""FreeSWITCH's events under back-pressure: when ctl's handlers fall behind, the bridge holds
events back (and greenswitch stops reading) instead of dropping them or buffering without end."""

from __future__ import annotations

import asyncio

from ctl import events as ev
from ctl.config import FreeswitchSettings
from ctl.dispatch import EventDispatch
from ctl.freeswitch import bridge
from ctl.freeswitch.switch import FreeswitchSwitch
from tests.protocol.fake_esl import RespondingEsl, captured_event

LIMIT = 300


async def test_a_burst_past_the_queue_bound_is_delivered_whole_and_in_order() -> None:
    fake = RespondingEsl()
    port = await fake.start()
    switch = FreeswitchSwitch(FreeswitchSettings(host="127.0.0.1", port=port, password="s3cret-for-tests",
                                                 node="fs1", connect_timeout=2.0, action_timeout=5.0))
    # A small queue, so a burst of a few thousand events fills it many times over.
    switch._events = EventDispatch("test", limit=LIMIT, pause_at=LIMIT - 2 * bridge.IN_FLIGHT,  # noqa: SLF001
                                   resume_at=LIMIT // 4)
    dispatch = switch._events  # noqa: SLF001
    gate = asyncio.Event()
    seen: list[str] = []
    peak = 0

    async def slow(event: ev.Event) -> None:
        nonlocal peak
        peak = max(peak, len(dispatch))
        await gate.wait()
        if isinstance(event, ev.ChannelCreated):
            seen.append(event.channel_id)

    switch.subscribe(slow)
    await switch.connect()
    count = 3000
    uuids = [f"7e1b5c3a-0000-4000-8000-{n:012d}" for n in range(count)]
    pushing = asyncio.ensure_future(asyncio.gather(*[
        fake.push(captured_event("8", "CHANNEL_CREATE", Unique_ID=uuid, Channel_Call_UUID=uuid,
                                 Channel_Name=f"sofia/internal/{100 + n % 9}@127.0.0.1"))
        for n, uuid in enumerate(uuids)]))
    for _ in range(500):
        if dispatch.paused:
            break
        await asyncio.sleep(0.01)
    assert dispatch.paused  # the queue filled: the bridge was told to hold events back
    await asyncio.sleep(0.3)
    assert len(dispatch) <= LIMIT
    gate.set()

    async def all_seen() -> None:
        while len(seen) < count:
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_seen(), 60)
    await asyncio.wait_for(pushing, 10)
    assert seen == uuids  # every event, in the PBX's order
    assert peak <= LIMIT
    assert dispatch.stats.dropped == 0 and dispatch.stats.delayed >= 1
    await switch.close()
    await fake.stop()
