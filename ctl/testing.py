"""An in-memory FakeSwitch for the services' unit tests (and for anyone testing on top of ctl).

It implements the Switch protocol without a PBX: it records what it was asked to
do, answers `channels()` with a snapshot the test sets, and hands the events a
test emits to the subscribers, in order, as a real adapter does.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from ctl import events as ev
from ctl.errors import ActionFailed, SwitchError
from ctl.model import ChannelInfo, MonitorMode, OriginateRequest, RecordingOptions, SpyRequest
from ctl.switch import EventHandler


@dataclass
class FakeSwitch:
    node: str = "fake"
    available: bool | None = True
    connect_error: SwitchError | None = None
    originate_error: SwitchError | None = None
    snapshot: list[ChannelInfo] = field(default_factory=list)
    originated: list[OriginateRequest] = field(default_factory=list)
    spied: list[SpyRequest] = field(default_factory=list)
    calls: list[tuple[str, tuple[object, ...]]] = field(default_factory=list)  # every other operation
    connects: int = 0
    # Interfaces that are members of some queue, and each one's (paused, reason).
    queue_members: dict[str, tuple[bool, str | None]] = field(default_factory=dict)
    # Called on record_start, standing in for the PBX writing the file (None: nothing is written).
    recorder: Callable[[str, RecordingOptions], None] | None = None
    _handlers: list[EventHandler] = field(default_factory=list)
    _connected: bool = False

    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler: EventHandler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    async def emit(self, event: ev.Event) -> None:
        for handler in self._handlers:
            result = handler(event)
            if asyncio.iscoroutine(result):
                await result

    @staticmethod
    def now() -> datetime:
        return datetime.now(UTC)

    @property
    def connected(self) -> bool:
        return self._connected

    async def connect(self) -> None:
        self.connects += 1
        if self.connect_error is not None:
            raise self.connect_error
        self._connected = True

    async def run(self) -> None:
        await self.emit(ev.SwitchConnected(node=self.node, at=self.now()))

    async def close(self) -> None:
        self._connected = False

    async def originate(self, request: OriginateRequest) -> str:
        if self.originate_error is not None:
            raise self.originate_error
        self.originated.append(request)
        return request.channel_id

    async def hangup(self, channel_id: str, cause: int = 16) -> None:
        self.calls.append(("hangup", (channel_id, cause)))

    async def bridge(self, channel_id: str, other_channel_id: str) -> None:
        self.calls.append(("bridge", (channel_id, other_channel_id)))

    async def channels(self) -> list[ChannelInfo]:
        return list(self.snapshot)

    async def device_available(self, dial_string: str) -> bool | None:
        return self.available

    async def spy(self, request: SpyRequest) -> str:
        self.spied.append(request)
        return request.spy_channel_id

    async def set_spy_mode(self, spy_channel_id: str, mode: MonitorMode) -> None:
        self._spy_leg(spy_channel_id)
        self.calls.append(("set_spy_mode", (spy_channel_id, mode)))

    async def spy_attach(self, spy_channel_id: str, target_channel: str, mode: MonitorMode) -> None:
        self._spy_leg(spy_channel_id)
        self.calls.append(("spy_attach", (spy_channel_id, target_channel, mode)))

    def _spy_leg(self, spy_channel_id: str) -> None:
        if not any(s.spy_channel_id == spy_channel_id for s in self.spied):
            raise ActionFailed(f"no live channel with id {spy_channel_id}")

    async def record_start(self, channel_id: str, options: RecordingOptions) -> None:
        self.calls.append(("record_start", (channel_id, options)))
        if self.recorder is not None:
            self.recorder(channel_id, options)

    async def record_stop(self, channel_id: str) -> None:
        self.calls.append(("record_stop", (channel_id,)))

    async def record_mute(self, channel_id: str, muted: bool) -> None:
        self.calls.append(("record_mute", (channel_id, muted)))

    async def queue_pause(self, interface: str, paused: bool, reason: str | None = None) -> bool:
        self.calls.append(("queue_pause", (interface, paused, reason)))
        if interface not in self.queue_members:
            return False
        self.queue_members[interface] = (paused, reason if paused else None)
        return True
