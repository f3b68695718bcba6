"""The live channels of one PBX, as its events describe them: the first subscriber of every event.

The feature-code servers check a caller against it: a FastAGI or outbound-ESL connection
names a channel (unique id and name), and only a channel the PBX itself announced — alive
now, with that very name — is believed. After every (re)connect the registry is rebuilt
from the PBX's snapshot, so a channel created while ctl was away is known too.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from ctl import events as ev
from ctl.errors import SwitchError
from ctl.switch import Switch

log = logging.getLogger("ctl.live")


@dataclass(frozen=True)
class LiveChannel:
    channel_id: str
    name: str
    endpoint: str | None
    call_id: str


class LiveChannels:
    def __init__(self, switch: Switch) -> None:
        self.switch = switch
        self.channels: dict[str, LiveChannel] = {}
        self._changed = asyncio.Event()

    def get(self, channel_id: str) -> LiveChannel | None:
        return self.channels.get(channel_id)

    async def wait_for(self, channel_id: str, timeout: float) -> LiveChannel | None:
        """The channel, once its creation event has been read (the dialplan can reach ctl
        a moment before the event does); None if it is not announced in time."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while (found := self.channels.get(channel_id)) is None:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except TimeoutError:
                return self.channels.get(channel_id)
        return found

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.ChannelCreated):
            self.channels[event.channel_id] = LiveChannel(event.channel_id, event.name, event.endpoint, event.call_id)
            self._changed.set()
        elif isinstance(event, ev.ChannelHungUp):
            self.channels.pop(event.channel_id, None)
        elif isinstance(event, ev.SwitchConnected):
            try:
                snapshot = await self.switch.channels()
            except SwitchError as error:
                log.warning("live channels not refreshed: %s", error)
                return
            self.channels = {info.channel_id: LiveChannel(info.channel_id, info.name, info.endpoint, info.call_id)
                             for info in snapshot}
            self._changed.set()
