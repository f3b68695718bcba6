"""PBX-neutral events. Every adapter translates its own wire events into these.

All carry `node` (which PBX), `call_id` (the PBX's call grouping: Asterisk
Linkedid, FreeSWITCH call UUID) and `channel_id` where one applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ctl.model import ChannelState, HangupCause, MonitorMode


@dataclass(frozen=True)
class Event:
    node: str
    at: datetime


@dataclass(frozen=True)
class SwitchConnected(Event):
    """(Re)connected and logged in: time to reconcile."""


@dataclass(frozen=True)
class SwitchDisconnected(Event):
    reason: str


@dataclass(frozen=True)
class ChannelCreated(Event):
    call_id: str
    channel_id: str
    name: str
    endpoint: str | None
    caller_number: str | None
    caller_name: str | None
    dialed: str | None


@dataclass(frozen=True)
class ChannelStateChanged(Event):
    call_id: str
    channel_id: str
    state: ChannelState


@dataclass(frozen=True)
class DialStarted(Event):
    call_id: str
    channel_id: str | None  # the dialing channel; None when the PBX itself originates
    target_channel_id: str
    dial_string: str


@dataclass(frozen=True)
class DialEnded(Event):
    call_id: str
    channel_id: str | None
    target_channel_id: str
    status: str  # ANSWER, BUSY, NOANSWER, CANCEL, CONGESTION, CHANUNAVAIL…
    cause: HangupCause | None  # what a failed dial means for the call


@dataclass(frozen=True)
class ChannelEnteredBridge(Event):
    call_id: str
    channel_id: str
    bridge_id: str


@dataclass(frozen=True)
class ChannelLeftBridge(Event):
    call_id: str
    channel_id: str
    bridge_id: str


@dataclass(frozen=True)
class ChannelHungUp(Event):
    call_id: str
    channel_id: str
    cause: HangupCause
    cause_code: int | None
    cause_text: str


@dataclass(frozen=True)
class OriginateFailed(Event):
    """The PBX could not even create the first leg (no contact, no route)."""

    channel_id: str
    reason: str
    cause: HangupCause


@dataclass(frozen=True)
class SpyStarted(Event):
    call_id: str
    spy_channel_id: str
    target_channel_id: str


@dataclass(frozen=True)
class SpyStopped(Event):
    call_id: str | None
    spy_channel_id: str
    target_channel_id: str | None


@dataclass(frozen=True)
class SpyModeChanged(Event):
    spy_channel_id: str
    mode: MonitorMode


@dataclass(frozen=True)
class RecordingStarted(Event):
    call_id: str
    channel_id: str


@dataclass(frozen=True)
class RecordingStopped(Event):
    call_id: str
    channel_id: str


@dataclass(frozen=True)
class RecordingMuted(Event):
    call_id: str
    channel_id: str
    muted: bool


@dataclass(frozen=True)
class ContactChanged(Event):
    """A phone's registration: reachable, unreachable (qualify failed), removed (unregistered)."""

    endpoint: str
    state: str  # reachable, unreachable, removed, unknown


@dataclass(frozen=True)
class QueueJoined(Event):
    """A caller entered a PBX queue: the call belongs to the project of that queue."""

    call_id: str
    channel_id: str
    queue: str
