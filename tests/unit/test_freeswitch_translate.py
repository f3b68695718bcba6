"""FreeSWITCH events → PBX-neutral events, on the events of the real 1.10.12 capture."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from ctl import events as ev
from ctl.freeswitch.frames import MessageReader, parse_plain_event
from ctl.freeswitch.translate import Translator, bridged_pairs, cause_of, channels_from_json, endpoint_of
from ctl.model import ChannelState, HangupCause
from tests.protocol.fake_esl import load_sections

SECTIONS = load_sections()
CLIENT, CLIENT_B = "b7f44b01-646b-434c-9c57-54d5ffda9b7e", "176d2f2a-d268-4457-baca-a07d66888c5b"
OPERATOR, OPERATOR_B = "d27c55ce-f5d3-4744-985c-d1f170b5f73c", "da4645bb-343d-413f-9bb7-3796e7f4d882"
SPY, SPIED = "8906beb4-f7fa-41e5-88e1-7b4e8bbed5f3", "1df4c400-f16d-4a5f-a3a0-64b725546ab4"


def captured_events(section: str) -> list[dict[str, str]]:
    stream = b"".join(s.data for s in SECTIONS[section].steps if s.sender == "server")
    return [parse_plain_event(m.body).headers for m in MessageReader().feed(stream)
            if m.content_type == "text/event-plain"]


def translate_all(translator: Translator, section: str) -> list[ev.Event]:
    return [event for headers in captured_events(section) for event in translator.translate(headers)]


def test_a_bridged_call_of_the_capture() -> None:
    events = translate_all(Translator("fs1"), "4")
    created = [e for e in events if isinstance(e, ev.ChannelCreated)]
    assert [(e.channel_id, e.call_id, e.name, e.caller_number, e.dialed) for e in created] == [
        (CLIENT, CLIENT, "loopback/tone_500-a", "client", "tone_500"),
        (CLIENT_B, CLIENT_B, "loopback/tone_500-b", "client", "tone_500"),
        (OPERATOR, OPERATOR, "loopback/tone_1300-a", "operator", "tone_1300"),
        (OPERATOR_B, OPERATOR_B, "loopback/tone_1300-b", "operator", "tone_1300")]
    assert created[0].at == datetime(2026, 11, 22, 8, 22, 9, 818593, tzinfo=UTC)  # Event-Date-Timestamp
    answered = [e.channel_id for e in events if isinstance(e, ev.ChannelStateChanged) and e.state is ChannelState.UP]
    assert answered == [CLIENT, CLIENT_B, OPERATOR, OPERATOR_B]
    bridged = [e for e in events if isinstance(e, ev.ChannelEnteredBridge)]
    assert [(e.channel_id, e.bridge_id) for e in bridged] == [(CLIENT, f"fs-bridge-{CLIENT}"),
                                                               (OPERATOR, f"fs-bridge-{CLIENT}")]
    hung_up = {e.channel_id: e for e in events if isinstance(e, ev.ChannelHungUp)}
    assert set(hung_up) == {CLIENT, CLIENT_B, OPERATOR, OPERATOR_B}
    assert all((e.cause, e.cause_code) == (HangupCause.NORMAL_CLEARING, 16) for e in hung_up.values())
    # uuid_bridge moved the operator's leg into the client's call (Channel-Call-UUID); ctl keeps a
    # channel in the call it was created in, as with Asterisk's Linkedid.
    hangup_headers = next(h for h in captured_events("4")
                          if h["Event-Name"] == "CHANNEL_HANGUP_COMPLETE" and h["Unique-ID"] == OPERATOR)
    assert hangup_headers["Channel-Call-UUID"] == CLIENT
    assert hung_up[OPERATOR].call_id == OPERATOR


def test_eavesdrop_and_recording_of_the_capture() -> None:
    translator = Translator("fs1")
    events = translate_all(translator, "8")
    kinds = [type(e).__name__ for e in events]
    assert kinds == ["ChannelCreated", "ChannelStateChanged", "SpyStarted", "RecordingStarted",
                     "RecordingStopped", "SpyStopped", "ChannelHungUp"]
    started = next(e for e in events if isinstance(e, ev.SpyStarted))
    assert (started.spy_channel_id, started.target_channel_id) == (SPY, SPIED)
    recording = next(e for e in events if isinstance(e, ev.RecordingStarted))
    assert (recording.channel_id, recording.call_id) == (SPIED, "378c4cdb-07cd-4655-9404-2f98c76dd46c")
    stopped = next(e for e in events if isinstance(e, ev.SpyStopped))
    assert (stopped.spy_channel_id, stopped.target_channel_id) == (SPY, SPIED)
    assert stopped.call_id == "378c4cdb-07cd-4655-9404-2f98c76dd46c"  # learnt from the recording's events


def test_a_known_snapshot_gives_the_spied_call_at_once() -> None:
    translator = Translator("fs1")
    row = {"uuid": SPIED, "call_uuid": "call-9", "name": "sofia/internal/101@127.0.0.1", "callstate": "ACTIVE"}
    for channel in channels_from_json(json.dumps({"row_count": 1, "rows": [row]})):
        translator.learn(channel)
    started = next(e for e in translate_all(translator, "8") if isinstance(e, ev.SpyStarted))
    assert started.call_id == "call-9"


def test_a_caller_entering_a_callcenter_queue_joins_ctls_queue_of_that_name() -> None:
    translator = Translator("fs1")
    [joined] = translator.translate({"Event-Name": "CHANNEL_EXECUTE", "Application": "callcenter",
                                     "Application-Data": "sales@default", "Unique-ID": "leg-1",
                                     "Channel-Call-UUID": "leg-1"})
    assert isinstance(joined, ev.QueueJoined)
    assert (joined.queue, joined.call_id, joined.channel_id) == ("sales", "leg-1", "leg-1")


def test_events_ctl_does_not_read_or_that_lack_a_header() -> None:
    from ctl.freeswitch.translate import MissingHeader

    translator = Translator("fs1")
    assert translator.translate({"Event-Name": "HEARTBEAT"}) == []
    assert translator.translate({"Event-Name": "CHANNEL_EXECUTE", "Application": "park", "Unique-ID": "x"}) == []
    with pytest.raises(MissingHeader):
        translator.translate({"Event-Name": "CHANNEL_CREATE", "Unique-ID": "x"})


@pytest.mark.parametrize(("name", "gateway", "endpoint"), [
    ("sofia/gateway/clients/79991234567", None, "clients"),
    ("sofia/internal/101@127.0.0.1:5060", None, "101"),
    ("sofia/internal/sip:102@10.0.0.2:5062", None, "102"),
    ("sofia/external/+79991234567@198.51.100.7", "clients", "clients"),
    ("loopback/tone_500-a", None, None),
])
def test_endpoints(name: str, gateway: str | None, endpoint: str | None) -> None:
    assert endpoint_of(name, gateway) == endpoint


def test_a_leg_on_a_trunk_profile_is_the_trunks() -> None:
    """The carrier's call in, as a real 1.10.12 names it: no gateway, the caller's number as user."""
    trunks = frozenset({"clients", "ctl-clients"})
    assert endpoint_of("sofia/ctl-clients/79990000001@127.0.0.1", None, trunks) == "ctl-clients"
    assert endpoint_of("sofia/ctl-phones/101@127.0.0.1:20246", None, trunks) == "101"


# A queue call on a real FreeSWITCH 1.10.12 (headers as received, URL-decoded): the caller's
# leg enters callcenter; mod_callcenter dials agent 101 as a call of its own, then bridges.
MEMBER, AGENT = "e5ec3189-1fcc-41f1-9639-f2d93835b252", "5983b93d-8a73-4d9a-b8b2-538e09b437dd"
QUEUE_CALL = [
    {"Event-Name": "CHANNEL_CREATE", "Channel-Name": "sofia/ctl-clients/79990000001@127.0.0.1", "Unique-ID": MEMBER,
     "Call-Direction": "inbound", "Channel-Call-UUID": MEMBER, "Caller-Caller-ID-Number": "79990000001",
     "Caller-Destination-Number": "5001", "variable_sofia_profile_name": "ctl-clients"},
    {"Event-Name": "CHANNEL_EXECUTE", "Unique-ID": MEMBER, "Channel-Call-UUID": MEMBER, "Application": "callcenter",
     "Application-Data": "sales@default"},
    {"Event-Name": "CHANNEL_CREATE", "Channel-Name": "sofia/ctl-phones/101@127.0.0.1:20246", "Unique-ID": AGENT,
     "Call-Direction": "outbound", "Channel-Call-UUID": AGENT, "Caller-Caller-ID-Number": "79990000001",
     "Caller-Destination-Number": "101", "variable_cc_queue": "sales@default",
     "variable_cc_member_session_uuid": MEMBER, "variable_cc_side": "agent"},
    {"Event-Name": "CHANNEL_ANSWER", "Unique-ID": AGENT, "Channel-Call-UUID": AGENT},
    {"Event-Name": "CHANNEL_BRIDGE", "Bridge-A-Unique-ID": MEMBER, "Bridge-B-Unique-ID": AGENT, "Unique-ID": MEMBER,
     "Channel-Call-UUID": MEMBER},
]


def test_a_queue_call_is_one_call_from_the_clients_trunk_to_the_agent() -> None:
    translator = Translator("fs1", frozenset({"clients", "ctl-clients"}))
    events = [e for headers in QUEUE_CALL for e in translator.translate(headers)]
    created = [e for e in events if isinstance(e, ev.ChannelCreated)]
    assert [(e.call_id, e.channel_id, e.endpoint) for e in created] == [
        (MEMBER, MEMBER, "ctl-clients"), (MEMBER, AGENT, "101")]
    [joined] = [e for e in events if isinstance(e, ev.QueueJoined)]
    assert (joined.call_id, joined.queue) == (MEMBER, "sales")
    answered = next(e for e in events if isinstance(e, ev.ChannelStateChanged))
    assert answered.call_id == MEMBER
    bridged = [e for e in events if isinstance(e, ev.ChannelEnteredBridge)]
    assert {(e.call_id, e.channel_id) for e in bridged} == {(MEMBER, MEMBER), (MEMBER, AGENT)}
    assert len({e.bridge_id for e in bridged}) == 1


def test_causes() -> None:
    assert cause_of({"Hangup-Cause": "USER_BUSY", "variable_hangup_cause_q850": "17"}) == (
        HangupCause.USER_BUSY, 17, "USER_BUSY")
    assert cause_of({"Hangup-Cause": "NO_ROUTE_DESTINATION"})[:2] == (HangupCause.UNALLOCATED_NUMBER, 1)
    assert cause_of({"Hangup-Cause": "SOMETHING_NEW", "variable_hangup_cause_q850": "19"})[:2] == (
        HangupCause.NO_ANSWER, 19)
    assert cause_of({})[0] is HangupCause.UNKNOWN


def test_channels_snapshot() -> None:
    assert channels_from_json('{"row_count": 0}') == []  # what an idle FreeSWITCH answers (the capture)
    rows = channels_from_json(
        '{"row_count": 2, "rows": ['
        '{"uuid": "a", "call_uuid": "a", "name": "sofia/internal/101@h", "callstate": "ACTIVE", "cid_num": "101",'
        ' "dest": "79991234567"},'
        '{"uuid": "b", "call_uuid": "a", "name": "sofia/gateway/clients/79991234567", "callstate": "RINGING"}]}')
    assert [(c.channel_id, c.call_id, c.endpoint, c.state, c.caller_number, c.dialed) for c in rows] == [
        ("a", "a", "101", ChannelState.UP, "101", "79991234567"),
        ("b", "a", "clients", ChannelState.RINGING, None, None)]


@pytest.mark.parametrize(("subclass", "state"), [("sofia::register", "reachable"), ("sofia::unregister", "removed"),
                                                 ("sofia::expire", "removed")])
def test_registrations_become_contact_changes(subclass: str, state: str) -> None:
    (changed,) = Translator("fs1").translate({"Event-Name": "CUSTOM", "Event-Subclass": subclass,
                                              "username": "101", "profile-name": "internal"})
    assert isinstance(changed, ev.ContactChanged) and (changed.endpoint, changed.state) == ("101", state)
    assert Translator("fs1").translate({"Event-Name": "CUSTOM", "Event-Subclass": "esl::eavesdrop"}) == []


@pytest.mark.parametrize(("ping_status", "state"), [("UNREACHABLE", "unreachable"), ("REACHABLE", "reachable"),
                                                     ("INVALID", None)])
def test_options_pings_become_contact_changes(ping_status: str, state: str | None) -> None:
    """sofia::sip_user_state's headers as FreeSWITCH 1.10.12 sent them (all-reg-options-ping)."""
    events = Translator("fs1").translate({
        "Event-Name": "CUSTOM", "Event-Subclass": "sofia::sip_user_state", "profile-name": "ctl-phones",
        "sip_contact": '"" <sip:101@127.0.0.1:20582>', "sip_user": "101@127.0.0.1", "from-user": "101",
        "from-host": "127.0.0.1", "call-id": "80925c6ca1b5cc7d", "Ping-Status": ping_status, "Status": "503"})
    if state is None:
        assert events == []
    else:
        (changed,) = events
        assert isinstance(changed, ev.ContactChanged) and (changed.endpoint, changed.state) == ("101", state)


def test_a_snapshot_of_a_bridged_click_to_call_as_a_real_freeswitch_gives_it() -> None:
    """`show channels` and `show calls` as json on 1.10.12 during user/101 bridged to the
    clients' gateway (fields ctl reads; the gateway leg is named by profile, with no host)."""
    b_leg = "30f1bcd8-ef20-4c7f-9dac-94e510b978e5"
    channels = {"row_count": 2, "rows": [
        {"uuid": "ctl-test-1", "direction": "outbound", "name": "sofia/ctl-phones/101@127.0.0.1:28852",
         "cid_num": "101", "dest": "101", "callstate": "ACTIVE", "call_uuid": "ctl-test-1"},
        {"uuid": b_leg, "direction": "outbound", "name": "sofia/ctl-clients/79991234567", "cid_num": "101",
         "dest": "79991234567", "callstate": "ACTIVE", "call_uuid": "ctl-test-1"}]}
    calls = {"row_count": 1, "rows": [
        {"uuid": "ctl-test-1", "name": "sofia/ctl-phones/101@127.0.0.1:28852", "call_uuid": "ctl-test-1",
         "b_uuid": b_leg, "b_name": "sofia/ctl-clients/79991234567", "b_callstate": "ACTIVE"}]}
    pairs = bridged_pairs(json.dumps(calls))
    assert pairs == {"ctl-test-1": "fs-bridge-ctl-test-1", b_leg: "fs-bridge-ctl-test-1"}
    snapshot = channels_from_json(json.dumps(channels), frozenset({"clients", "ctl-clients"}), pairs)
    assert [(c.call_id, c.endpoint, c.bridge_id, c.dialed) for c in snapshot] == [
        ("ctl-test-1", "101", "fs-bridge-ctl-test-1", "101"),
        ("ctl-test-1", "ctl-clients", "fs-bridge-ctl-test-1", "79991234567")]
    assert bridged_pairs('{"row_count": 0}') == {}
