"""AMI events → PBX-neutral events. Pure: headers in, events out.

panoramisk reads a missing header as '' — that hides bugs — so headers are
read through `_get`, which says None for absent or `<unknown>` values, and an
event lacking a header it needs is dropped with the reason, never guessed.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime

from ctl import events as ev
from ctl.model import ChannelInfo, ChannelState, HangupCause
from ctl.validation import small_number

_ENDPOINT = re.compile(r"^[A-Za-z0-9]+/(?P<endpoint>[^;@]+?)-[0-9a-f]{8}$")
# Asterisk channel states (ast_state): 4 Ring = a call is arriving, 5 Ringing =
# the far end rings, 6 Up. Others (Down, Reserved, OffHook, Dialing, Busy,
# Dialing Offhook, Pre-ring) do not change a call's state.
_STATES = {"5": ChannelState.RINGING, "6": ChannelState.UP}
DIAL_STATUS_CAUSES = {
    "ANSWER": None,
    "BUSY": HangupCause.USER_BUSY,
    "NOANSWER": HangupCause.NO_ANSWER,
    "CONGESTION": HangupCause.CONGESTION,
    "CHANUNAVAIL": HangupCause.SUBSCRIBER_ABSENT,
    "CANCEL": HangupCause.ORIGINATOR_CANCEL,
}
# OriginateResponse Reason (AST_CONTROL_* of the outgoing leg).
ORIGINATE_REASONS = {
    "0": ("failed", HangupCause.FAILED),
    "1": ("hung up", HangupCause.NORMAL_CLEARING),
    "3": ("no answer", HangupCause.NO_ANSWER),
    "5": ("busy", HangupCause.USER_BUSY),
    "8": ("congestion", HangupCause.CONGESTION),
}


class MissingHeader(Exception):
    pass


def _get(message: Mapping[str, object], key: str) -> str | None:
    value = message.get(key)
    if isinstance(value, list):
        value = value[0] if value else None
    if value is None:
        return None
    text = str(value)
    return None if text in ("", "<unknown>", "<null>") else text


def _need(message: Mapping[str, object], key: str) -> str:
    value = _get(message, key)
    if value is None:
        raise MissingHeader(f"{_get(message, 'Event')} without {key}")
    return value


def endpoint_of(channel_name: str) -> str | None:
    """PJSIP/101-00000007 → 101; PJSIP/clients-0000000a → clients; Local/… → None."""
    if channel_name.startswith("Local/"):
        return None
    match = _ENDPOINT.match(channel_name)
    return match.group("endpoint") if match else None


def cause_of(code: str | None) -> tuple[HangupCause, int | None]:
    """A Q.850 cause (0-127): anything else is unknown, never a number the store cannot hold."""
    number = small_number(code, 3)
    if number is None or number > 127:
        return HangupCause.UNKNOWN, None
    return HangupCause.from_q850(number), number


def originate_failure(reason_code: str | None) -> tuple[str, HangupCause]:
    return ORIGINATE_REASONS.get(reason_code or "", (f"reason {reason_code}", HangupCause.FAILED))


def translate(message: Mapping[str, object], node: str, at: datetime) -> list[ev.Event]:
    """The neutral events one AMI event stands for (usually zero or one)."""
    name = _get(message, "Event")
    handler = _HANDLERS.get(name or "")
    if handler is None:
        return []
    result = handler(message, node, at)
    return [] if result is None else [result]


def _newchannel(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    channel = _need(m, "Channel")
    exten = _get(m, "Exten")
    return ev.ChannelCreated(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                             name=channel, endpoint=endpoint_of(channel), caller_number=_get(m, "CallerIDNum"),
                             caller_name=_get(m, "CallerIDName"), dialed=None if exten in (None, "s") else exten)


def _newstate(m: Mapping[str, object], node: str, at: datetime) -> ev.Event | None:
    state = _STATES.get(_get(m, "ChannelState") or "")
    if state is None:
        return None
    return ev.ChannelStateChanged(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                                  state=state)


def _dial_begin(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.DialStarted(node=node, at=at, call_id=_need(m, "DestLinkedid"), channel_id=_get(m, "Uniqueid"),
                          target_channel_id=_need(m, "DestUniqueid"), dial_string=_get(m, "DialString") or "")


def _dial_end(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    status = _need(m, "DialStatus")
    return ev.DialEnded(node=node, at=at, call_id=_need(m, "DestLinkedid"), channel_id=_get(m, "Uniqueid"),
                        target_channel_id=_need(m, "DestUniqueid"), status=status,
                        cause=DIAL_STATUS_CAUSES.get(status, HangupCause.FAILED))


def _bridge_enter(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.ChannelEnteredBridge(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                                   bridge_id=_need(m, "BridgeUniqueid"))


def _bridge_leave(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.ChannelLeftBridge(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                                bridge_id=_need(m, "BridgeUniqueid"))


def _hangup(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    cause, code = cause_of(_get(m, "Cause"))
    return ev.ChannelHungUp(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                            cause=cause, cause_code=code, cause_text=_get(m, "Cause-txt") or "")


def _originate_response(m: Mapping[str, object], node: str, at: datetime) -> ev.Event | None:
    if _get(m, "Response") != "Failure":
        return None
    channel_id = _get(m, "Uniqueid")
    if channel_id is None:
        return None
    reason, cause = originate_failure(_get(m, "Reason"))
    return ev.OriginateFailed(node=node, at=at, channel_id=channel_id, reason=reason, cause=cause)


def _spy_start(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.SpyStarted(node=node, at=at, call_id=_need(m, "SpyeeLinkedid"),
                         spy_channel_id=_need(m, "SpyerUniqueid"), target_channel_id=_need(m, "SpyeeUniqueid"))


def _spy_stop(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.SpyStopped(node=node, at=at, call_id=_get(m, "SpyeeLinkedid"),
                         spy_channel_id=_need(m, "SpyerUniqueid"), target_channel_id=_get(m, "SpyeeUniqueid"))


def _mixmonitor_start(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.RecordingStarted(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"))


def _mixmonitor_stop(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.RecordingStopped(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"))


def _mixmonitor_mute(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.RecordingMuted(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                             muted=_get(m, "State") == "1")


_CONTACT_STATES = {"Reachable": "reachable", "NonQualified": "reachable", "Created": "reachable",
                   "Unreachable": "unreachable", "Removed": "removed"}


def _contact_status(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    state = _CONTACT_STATES.get(_get(m, "ContactStatus") or "", "unknown")
    return ev.ContactChanged(node=node, at=at, endpoint=_need(m, "EndpointName"), state=state)


def _queue_caller_join(m: Mapping[str, object], node: str, at: datetime) -> ev.Event:
    return ev.QueueJoined(node=node, at=at, call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"),
                          queue=_need(m, "Queue"))


_HANDLERS = {
    "Newchannel": _newchannel,
    "Newstate": _newstate,
    "DialBegin": _dial_begin,
    "DialEnd": _dial_end,
    "BridgeEnter": _bridge_enter,
    "BridgeLeave": _bridge_leave,
    "Hangup": _hangup,
    "OriginateResponse": _originate_response,
    "ChanSpyStart": _spy_start,
    "ChanSpyStop": _spy_stop,
    "MixMonitorStart": _mixmonitor_start,
    "MixMonitorStop": _mixmonitor_stop,
    "MixMonitorMute": _mixmonitor_mute,
    "ContactStatus": _contact_status,
    "QueueCallerJoin": _queue_caller_join,
}


def channel_info(m: Mapping[str, object]) -> ChannelInfo:
    """One CoreShowChannel entry of a CoreShowChannels snapshot."""
    channel = _need(m, "Channel")
    state = _STATES.get(_get(m, "ChannelState") or "", ChannelState.DOWN)
    exten = _get(m, "Exten")
    return ChannelInfo(call_id=_need(m, "Linkedid"), channel_id=_need(m, "Uniqueid"), name=channel,
                       endpoint=endpoint_of(channel), state=state, caller_number=_get(m, "CallerIDNum"),
                       bridge_id=_get(m, "BridgeId"), dialed=None if exten in (None, "s") else exten,
                       caller_name=_get(m, "CallerIDName"))
