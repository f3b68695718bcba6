"""FreeSWITCH events → PBX-neutral events.

Headers in, events out; the only state is which call each channel belongs to.
FreeSWITCH's `Channel-Call-UUID` can change during a call — `uuid_bridge` moves the
B-leg into the A-leg's call (seen in the 1.10.12 capture) — while ctl, as with
Asterisk's Linkedid, keeps a channel in the call it was created in, so the
translator remembers the first call UUID of every channel until it hangs up.

An event lacking a header it needs is dropped with the reason, never guessed.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime

from ctl import events as ev
from ctl.model import ChannelInfo, ChannelState, HangupCause, MonitorMode
from ctl.validation import small_number

# FreeSWITCH cause names are Q.850's (switch_types.h, SWITCH_CAUSE_*).
CAUSES = {
    "NORMAL_CLEARING": HangupCause.NORMAL_CLEARING,
    "USER_BUSY": HangupCause.USER_BUSY,
    "NO_USER_RESPONSE": HangupCause.NO_USER_RESPONSE,
    "NO_ANSWER": HangupCause.NO_ANSWER,
    "SUBSCRIBER_ABSENT": HangupCause.SUBSCRIBER_ABSENT,
    "CALL_REJECTED": HangupCause.CALL_REJECTED,
    "UNALLOCATED_NUMBER": HangupCause.UNALLOCATED_NUMBER,
    "NO_ROUTE_DESTINATION": HangupCause.UNALLOCATED_NUMBER,
    "DESTINATION_OUT_OF_ORDER": HangupCause.DESTINATION_OUT_OF_ORDER,
    "INVALID_NUMBER_FORMAT": HangupCause.INVALID_NUMBER_FORMAT,
    "NORMAL_UNSPECIFIED": HangupCause.NORMAL_UNSPECIFIED,
    "NORMAL_CIRCUIT_CONGESTION": HangupCause.CONGESTION,
    "NETWORK_OUT_OF_ORDER": HangupCause.NETWORK_OUT_OF_ORDER,
    "ORIGINATOR_CANCEL": HangupCause.ORIGINATOR_CANCEL,
    "USER_NOT_REGISTERED": HangupCause.SUBSCRIBER_ABSENT,
}
# Channel-Call-State / `show channels` callstate → ctl's channel state.
CALL_STATES = {"RINGING": ChannelState.RINGING, "EARLY": ChannelState.RINGING, "ACTIVE": ChannelState.UP,
               "HELD": ChannelState.UP}
# eavesdrop's own digits (mod_dptools): 0 listen, 2 whisper to the B-leg (the operator), 3 both.
EAVESDROP_DIGITS = {MonitorMode.LISTEN: "0", MonitorMode.WHISPER: "2", MonitorMode.BARGE: "3"}
REGISTRATION_STATES = {"sofia::register": "reachable", "sofia::unregister": "removed",
                       "sofia::expire": "removed"}
# sofia::sip_user_state (profile param all-reg-options-ping): the OPTIONS pings' verdict.
PING_STATES = {"REACHABLE": "reachable", "UNREACHABLE": "unreachable"}
_GATEWAY = re.compile(r"^sofia/gateway/(?P<gateway>[^/]+)/")
# `show channels` names a gateway leg by profile and number, with no host (seen on 1.10.12:
# sofia/ctl-clients/79991234567), while its CHANNEL_CREATE said sofia/gateway/clients/….
_SOFIA_USER = re.compile(r"^sofia/(?P<profile>[^/]+)/(?:sip:)?(?P<user>[^@/]+)(?:@|$)")


class MissingHeader(Exception):
    pass


def _get(headers: Mapping[str, str], key: str) -> str | None:
    value = headers.get(key)
    return None if value in (None, "", "_undef_") else value


def _need(headers: Mapping[str, str], key: str) -> str:
    value = _get(headers, key)
    if value is None:
        raise MissingHeader(f"{headers.get('Event-Name')} without {key}")
    return value


def event_time(headers: Mapping[str, str]) -> datetime:
    stamp = small_number(_get(headers, "Event-Date-Timestamp"), 17)  # microseconds since 1970, UTC
    if stamp is not None:
        try:
            return datetime.fromtimestamp(stamp / 1_000_000, UTC)
        except (OverflowError, OSError, ValueError):  # past what datetime can hold
            pass
    return datetime.now(UTC)


def endpoint_of(channel_name: str, gateway: str | None = None,
                trunks: frozenset[str] = frozenset()) -> str | None:
    """sofia/gateway/clients/7999… → clients; sofia/internal/101@host → 101; loopback/… → None.
    A leg on a SIP profile named in `trunks` (the carrier's calls in: sofia/ctl-clients/7999…@…,
    which FreeSWITCH ties to no gateway) is that trunk's, whoever the caller is."""
    if gateway:
        return gateway
    match = _GATEWAY.match(channel_name)
    if match:
        return match.group("gateway")
    match = _SOFIA_USER.match(channel_name)
    if match is None:
        return None
    return match.group("profile") if match.group("profile") in trunks else match.group("user")


def cause_of(headers: Mapping[str, str]) -> tuple[HangupCause, int | None, str]:
    name = _get(headers, "Hangup-Cause") or _get(headers, "variable_hangup_cause") or "UNKNOWN"
    code_text = _get(headers, "variable_hangup_cause_q850")
    code = small_number(code_text, 3)
    code = code if code is not None and code <= 127 else None
    cause = CAUSES.get(name) or (HangupCause.from_q850(code) if code is not None else HangupCause.UNKNOWN)
    return cause, code if code is not None else cause.q850, name


class Translator:
    def __init__(self, node: str, trunks: frozenset[str] = frozenset()) -> None:
        self.node = node
        self.trunks = trunks
        self._call_of: dict[str, str] = {}  # channel uuid → the call it was created in
        self._spies: dict[str, str] = {}  # spy channel uuid → the channel it eavesdrops on

    def forget(self) -> None:
        """After a reconnect: the snapshot rebuilds what matters."""
        self._call_of.clear()
        self._spies.clear()

    def learn(self, channel: ChannelInfo) -> None:
        self._call_of.setdefault(channel.channel_id, channel.call_id)

    def call_of(self, headers: Mapping[str, str]) -> str:
        channel = _need(headers, "Unique-ID")
        known = self._call_of.get(channel)
        if known is not None:
            return known
        # mod_callcenter dials the agent as a call of its own, then bridges it to the caller
        # waiting in the queue (seen on 1.10.12): the agent's leg names that caller's leg, and
        # belongs to its call, as a Queue() leg does on Asterisk.
        member = _get(headers, "variable_cc_member_session_uuid")
        if member is not None and _get(headers, "variable_cc_side") == "agent":
            call = self._call_of.get(member, member)
        else:
            call = _get(headers, "Channel-Call-UUID") or _get(headers, "variable_call_uuid") or channel
        self._call_of[channel] = call
        return call

    def translate(self, headers: Mapping[str, str]) -> list[ev.Event]:
        name = headers.get("Event-Name", "")
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is None:
            return []
        result: list[ev.Event] = handler(headers, event_time(headers))
        return result

    # -- channels ----------------------------------------------------------------------------
    def _on_channel_create(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        channel_name = _need(h, "Channel-Name")
        channel, call = _need(h, "Unique-ID"), self.call_of(h)
        events: list[ev.Event] = [ev.ChannelCreated(
            node=self.node, at=at, call_id=call, channel_id=channel, name=channel_name,
            endpoint=endpoint_of(channel_name, _get(h, "variable_sip_gateway_name"), self.trunks),
            caller_number=_get(h, "Caller-Caller-ID-Number"), caller_name=_get(h, "Caller-Caller-ID-Name"),
            dialed=_get(h, "Caller-Destination-Number"))]
        gateway = _GATEWAY.match(channel_name)
        if gateway is not None and _get(h, "Call-Direction") == "outbound":
            # A leg FreeSWITCH dials out through a gateway: the number dialed, as Asterisk's
            # DialBegin says it (number@trunk), so the call learns its client's number.
            number = channel_name[gateway.end():].partition(";")[0]
            events.append(ev.DialStarted(node=self.node, at=at, call_id=call, channel_id=None,
                                         target_channel_id=channel,
                                         dial_string=f"{number}@{gateway.group('gateway')}"))
        return events

    def _on_channel_progress(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        return [ev.ChannelStateChanged(node=self.node, at=at, call_id=self.call_of(h),
                                       channel_id=_need(h, "Unique-ID"), state=ChannelState.RINGING)]

    _on_channel_progress_media = _on_channel_progress

    def _on_channel_answer(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        return [ev.ChannelStateChanged(node=self.node, at=at, call_id=self.call_of(h),
                                       channel_id=_need(h, "Unique-ID"), state=ChannelState.UP)]

    def _on_channel_bridge(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        a_leg, b_leg = _need(h, "Bridge-A-Unique-ID"), _need(h, "Bridge-B-Unique-ID")
        bridge = f"fs-bridge-{a_leg}"
        call = self._call_of.get(a_leg) or self.call_of(h)
        return [ev.ChannelEnteredBridge(node=self.node, at=at, call_id=self._call_of.get(leg, call),
                                        channel_id=leg, bridge_id=bridge) for leg in (a_leg, b_leg)]

    def _on_channel_unbridge(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        a_leg, b_leg = _need(h, "Bridge-A-Unique-ID"), _need(h, "Bridge-B-Unique-ID")
        bridge = f"fs-bridge-{a_leg}"
        call = self._call_of.get(a_leg) or self.call_of(h)
        return [ev.ChannelLeftBridge(node=self.node, at=at, call_id=self._call_of.get(leg, call),
                                     channel_id=leg, bridge_id=bridge) for leg in (a_leg, b_leg)]

    def _on_channel_hangup_complete(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        channel = _need(h, "Unique-ID")
        call = self.call_of(h)
        cause, code, text = cause_of(h)
        events: list[ev.Event] = []
        target = self._spies.pop(channel, None)
        if target is not None:
            events.append(ev.SpyStopped(node=self.node, at=at, call_id=self._call_of.get(target),
                                        spy_channel_id=channel, target_channel_id=target))
        events.append(ev.ChannelHungUp(node=self.node, at=at, call_id=call, channel_id=channel, cause=cause,
                                       cause_code=code, cause_text=text))
        self._call_of.pop(channel, None)
        return events

    # -- eavesdrop ---------------------------------------------------------------------------
    def _on_channel_execute(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        application = _get(h, "Application")
        if application == "callcenter":
            # mod_callcenter's queue "sales@default" is ctl's (and Asterisk's) queue "sales".
            queue = _need(h, "Application-Data").split("@", 1)[0].strip()
            return [ev.QueueJoined(node=self.node, at=at, call_id=self.call_of(h), channel_id=_need(h, "Unique-ID"),
                                   queue=queue)]
        if application != "eavesdrop":
            return []
        spy, target = _need(h, "Unique-ID"), _need(h, "Application-Data")
        self.call_of(h)
        self._spies[spy] = target
        return [ev.SpyStarted(node=self.node, at=at, call_id=self._call_of.get(target, target),
                              spy_channel_id=spy, target_channel_id=target)]

    def _on_channel_execute_complete(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        if _get(h, "Application") != "eavesdrop":
            return []
        spy = _need(h, "Unique-ID")
        target = self._spies.pop(spy, None) or _get(h, "Application-Data")
        return [ev.SpyStopped(node=self.node, at=at, call_id=self._call_of.get(target) if target else None,
                              spy_channel_id=spy, target_channel_id=target)]

    # -- registrations -----------------------------------------------------------------------
    def _on_custom(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        """mod_sofia's registrations: a phone registered, unregistered, its registration expired,
        or its OPTIONS pings found it unreachable / reachable again."""
        subclass = _get(h, "Event-Subclass") or ""
        if subclass == "sofia::sip_user_state":
            state = PING_STATES.get((_get(h, "Ping-Status") or "").upper())
        else:
            state = REGISTRATION_STATES.get(subclass)
        user = _get(h, "username") or _get(h, "from-user")
        if state is None or user is None:
            return []
        return [ev.ContactChanged(node=self.node, at=at, endpoint=user, state=state)]

    # -- recording ---------------------------------------------------------------------------
    def _on_record_start(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        return [ev.RecordingStarted(node=self.node, at=at, call_id=self.call_of(h), channel_id=_need(h, "Unique-ID"))]

    def _on_record_stop(self, h: Mapping[str, str], at: datetime) -> list[ev.Event]:
        return [ev.RecordingStopped(node=self.node, at=at, call_id=self.call_of(h), channel_id=_need(h, "Unique-ID"))]


def bridged_pairs(text: str) -> dict[str, str]:
    """`show calls as json` → channel uuid → its bridge id, named as CHANNEL_BRIDGE's are
    (fs-bridge-<A-leg>). A row is one A-leg; `b_uuid` is the leg bridged to it, if any."""
    document = json.loads(text or "{}")
    pairs: dict[str, str] = {}
    for row in document.get("rows") or []:
        a_leg, b_leg = row.get("uuid") or "", row.get("b_uuid") or ""
        if a_leg and b_leg:
            pairs[a_leg] = pairs[b_leg] = f"fs-bridge-{a_leg}"
    return pairs


def channels_from_json(text: str, trunks: frozenset[str] = frozenset(),
                       bridges: Mapping[str, str] | None = None) -> list[ChannelInfo]:
    """`show channels as json` → a snapshot (FreeSWITCH answers {"row_count": 0} when idle);
    `bridges` (from bridged_pairs) gives each bridged leg its bridge."""
    bridges = bridges or {}
    document = json.loads(text or "{}")
    rows = document.get("rows") or []
    snapshot = []
    for row in rows:
        uuid, name = row.get("uuid") or "", row.get("name") or ""
        if not uuid:
            continue
        state = CALL_STATES.get((row.get("callstate") or "").upper(), ChannelState.DOWN)
        snapshot.append(ChannelInfo(
            call_id=row.get("call_uuid") or uuid, channel_id=uuid, name=name, endpoint=endpoint_of(name, trunks=trunks),
            state=state, caller_number=row.get("cid_num") or None, bridge_id=bridges.get(uuid),
            dialed=row.get("dest") or None, caller_name=row.get("cid_name") or None))
    return snapshot
