"""PBX-neutral value types shared by the adapters, the services and the store."""

from __future__ import annotations

import enum
from dataclasses import dataclass


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"


class CallState(enum.StrEnum):
    """A call only moves forward through these states."""

    CREATED = "created"
    RINGING = "ringing"
    ANSWERED = "answered"
    BRIDGED = "bridged"
    ENDED = "ended"

    @property
    def rank(self) -> int:
        return list(CallState).index(self)


class Direction(enum.StrEnum):
    OUTBOUND = "outbound"  # to a client
    INBOUND = "inbound"  # from a client
    INTERNAL = "internal"  # between phones of the PBX


class ChannelState(enum.StrEnum):
    DOWN = "down"
    RINGING = "ringing"  # ours or the far end's phone is ringing
    UP = "up"


class MonitorMode(enum.StrEnum):
    """Who hears whom. listen: the supervisor hears both, nobody hears the supervisor;
    whisper: the operator hears the supervisor, the client does not; barge: both do."""

    LISTEN = "listen"
    WHISPER = "whisper"
    BARGE = "barge"


class HangupCause(enum.StrEnum):
    """Why a call ended, named after its ITU-T Q.850 cause."""

    NORMAL_CLEARING = "normal_clearing"
    USER_BUSY = "user_busy"
    NO_USER_RESPONSE = "no_user_response"
    NO_ANSWER = "no_answer"
    SUBSCRIBER_ABSENT = "subscriber_absent"
    CALL_REJECTED = "call_rejected"
    UNALLOCATED_NUMBER = "unallocated_number"
    DESTINATION_OUT_OF_ORDER = "destination_out_of_order"
    INVALID_NUMBER_FORMAT = "invalid_number_format"
    NORMAL_UNSPECIFIED = "normal_unspecified"
    CONGESTION = "congestion"
    NETWORK_OUT_OF_ORDER = "network_out_of_order"
    ORIGINATOR_CANCEL = "originator_cancel"
    FAILED = "failed"  # the PBX could not place it at all (no contact, bad route)
    LOST = "lost"  # ended while ctl was not connected; no cause known
    UNKNOWN = "unknown"

    @property
    def q850(self) -> int | None:
        return _Q850_BY_CAUSE.get(self)

    @classmethod
    def from_q850(cls, code: int) -> HangupCause:
        return _CAUSE_BY_Q850.get(code, cls.UNKNOWN)


_Q850_BY_CAUSE = {
    HangupCause.UNALLOCATED_NUMBER: 1,
    HangupCause.NORMAL_CLEARING: 16,
    HangupCause.USER_BUSY: 17,
    HangupCause.NO_USER_RESPONSE: 18,
    HangupCause.NO_ANSWER: 19,
    HangupCause.SUBSCRIBER_ABSENT: 20,
    HangupCause.CALL_REJECTED: 21,
    HangupCause.DESTINATION_OUT_OF_ORDER: 27,
    HangupCause.INVALID_NUMBER_FORMAT: 28,
    HangupCause.NORMAL_UNSPECIFIED: 31,
    HangupCause.CONGESTION: 34,
    HangupCause.NETWORK_OUT_OF_ORDER: 38,
    HangupCause.ORIGINATOR_CANCEL: 127,
}
_CAUSE_BY_Q850 = {code: cause for cause, code in _Q850_BY_CAUSE.items()}


@dataclass(frozen=True)
class ChannelInfo:
    """One live channel as the PBX reports it in a snapshot (reconciliation)."""

    call_id: str  # the PBX's call grouping id (Asterisk Linkedid, FreeSWITCH call UUID)
    channel_id: str  # Asterisk Uniqueid, FreeSWITCH channel UUID
    name: str
    endpoint: str | None  # PJSIP endpoint (extension or trunk name)
    state: ChannelState
    caller_number: str | None
    bridge_id: str | None
    dialed: str | None = None
    caller_name: str | None = None  # what this channel asked for (exten)


@dataclass(frozen=True)
class OriginateRequest:
    """Ring `channel` (a dial string); when it answers, run `context`/`exten` or `application`."""

    channel: str
    channel_id: str  # chosen by ctl so that every event can be matched without races
    context: str | None = None
    exten: str = "s"
    priority: int = 1
    application: str | None = None
    data: str | None = None
    caller_id: str | None = None
    timeout: float = 30.0
    variables: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class SpyRequest:
    supervisor_dial: str  # the supervisor's phone
    target_channel: str  # the exact channel name of the operator's leg
    mode: MonitorMode
    spy_channel_id: str  # chosen by ctl: the supervisor's leg, matched in every spy event
    session_id: int
    follow: bool = False
    caller_id: str | None = None
    timeout: float = 30.0


@dataclass(frozen=True)
class RecordingOptions:
    path: str
    stereo: bool = False
    # Which audio: what the channel's party says and hears (both), only says (rx), only hears (tx).
    direction: str = "both"
    # Continue an existing file (the same recording picked up again after a transfer).
    append: bool = False
