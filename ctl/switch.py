"""The Switch protocol: every operation the services need from a PBX.

Adapters (ctl.asterisk.AsteriskSwitch, later ctl.freeswitch) implement it; the
services never see AMI or ESL. Every call may raise a SwitchError subclass and
none waits longer than the adapter's action timeout.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from ctl.events import Event
from ctl.model import ChannelInfo, MonitorMode, OriginateRequest, RecordingOptions, SpyRequest

EventHandler = Callable[[Event], Awaitable[None] | None]


@runtime_checkable
class Switch(Protocol):
    node: str

    def subscribe(self, handler: EventHandler) -> None:
        """Call `handler` with every PBX-neutral event, in the order the PBX sent them."""

    def unsubscribe(self, handler: EventHandler) -> None:
        """Stop calling `handler` (a use case that waited for one event on a long-lived switch)."""

    async def connect(self) -> None:
        """Connect and log in once; raise SwitchUnreachable or AuthenticationFailed."""

    async def run(self) -> None:
        """Stay connected until close(): reconnect with back-off, emit SwitchConnected each time."""

    async def close(self) -> None: ...

    @property
    def connected(self) -> bool: ...

    async def originate(self, request: OriginateRequest) -> str:
        """Start ringing request.channel; return the channel id (request.channel_id)."""

    async def hangup(self, channel_id: str, cause: int = 16) -> None: ...

    async def bridge(self, channel_id: str, other_channel_id: str) -> None:
        """Bridge two live channels together."""

    async def channels(self) -> list[ChannelInfo]:
        """A snapshot of every live channel, for reconciliation."""

    async def device_available(self, dial_string: str) -> bool | None:
        """Whether the device behind a dial string can be rung now (None: unknown)."""

    async def spy(self, request: SpyRequest) -> str:
        """Ring the supervisor and, on answer, attach to the exact target channel."""

    async def set_spy_mode(self, spy_channel_id: str, mode: MonitorMode) -> None:
        """Switch a live session to `mode` without dropping the supervisor's call."""

    async def spy_attach(self, spy_channel_id: str, target_channel: str, mode: MonitorMode) -> None:
        """Attach a live spy leg (a following session between calls) to another exact channel."""

    async def record_start(self, channel_id: str, options: RecordingOptions) -> None: ...

    async def record_stop(self, channel_id: str) -> None: ...

    async def record_mute(self, channel_id: str, muted: bool) -> None: ...

    async def queue_pause(self, interface: str, paused: bool, reason: str | None = None) -> bool:
        """Pause or unpause a device in every queue it is a member of; False: in no queue."""
