"""The pure parts of the Asterisk adapter: action builders and event translation."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctl import events as ev
from ctl.asterisk import actions
from ctl.asterisk.translate import channel_info, endpoint_of, translate
from ctl.errors import ValidationError
from ctl.model import ChannelState, HangupCause, MonitorMode, OriginateRequest, SpyRequest

AT = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(("name", "endpoint"), [
    ("PJSIP/101-00000007", "101"),
    ("PJSIP/clients-0000000a", "clients"),
    ("PJSIP/my-trunk-0000000a", "my-trunk"),
    ("Local/s@ctl-phones-00000001;1", None),
    ("garbage", None),
])
def test_endpoint_of_channel_names(name: str, endpoint: str | None) -> None:
    assert endpoint_of(name) == endpoint


def test_newchannel_is_grouped_by_linkedid() -> None:
    [event] = translate({"Event": "Newchannel", "Channel": "PJSIP/clients-00000002", "Uniqueid": "u.2",
                         "Linkedid": "ctl-abc", "CallerIDNum": "<unknown>", "Exten": "s"}, "n1", AT)
    assert event == ev.ChannelCreated(node="n1", at=AT, call_id="ctl-abc", channel_id="u.2",
                                      name="PJSIP/clients-00000002", endpoint="clients", caller_number=None,
                                      caller_name=None, dialed=None)


def test_states_hangup_and_dial_results() -> None:
    [ringing] = translate({"Event": "Newstate", "ChannelState": "5", "Uniqueid": "u", "Linkedid": "l"}, "n", AT)
    assert isinstance(ringing, ev.ChannelStateChanged) and ringing.state is ChannelState.RINGING
    assert translate({"Event": "Newstate", "ChannelState": "3", "Uniqueid": "u", "Linkedid": "l"}, "n", AT) == []
    [hangup] = translate({"Event": "Hangup", "Uniqueid": "u", "Linkedid": "l", "Cause": "17",
                          "Cause-txt": "User busy"}, "n", AT)
    assert isinstance(hangup, ev.ChannelHungUp)
    assert (hangup.cause, hangup.cause_code, hangup.cause_text) == (HangupCause.USER_BUSY, 17, "User busy")
    [dial] = translate({"Event": "DialEnd", "DestUniqueid": "d", "DestLinkedid": "l", "DialStatus": "NOANSWER"},
                       "n", AT)
    assert isinstance(dial, ev.DialEnded) and dial.channel_id is None and dial.cause is HangupCause.NO_ANSWER


def test_an_event_missing_a_needed_header_is_refused_not_guessed() -> None:
    from ctl.asterisk.translate import MissingHeader

    with pytest.raises(MissingHeader, match="Hangup without Linkedid"):
        translate({"Event": "Hangup", "Uniqueid": "u", "Cause": "16"}, "n", AT)


def test_originate_failure_names_the_leg_and_the_cause() -> None:
    [failed] = translate({"Event": "OriginateResponse", "Response": "Failure", "Reason": "0",
                          "Uniqueid": "ctl-1"}, "n", AT)
    assert failed == ev.OriginateFailed(node="n", at=AT, channel_id="ctl-1", reason="failed",
                                        cause=HangupCause.FAILED)
    assert translate({"Event": "OriginateResponse", "Response": "Success", "Uniqueid": "x"}, "n", AT) == []


def test_spy_events() -> None:
    [start] = translate({"Event": "ChanSpyStart", "SpyerUniqueid": "spy", "SpyeeUniqueid": "op",
                         "SpyeeLinkedid": "call"}, "n", AT)
    assert start == ev.SpyStarted(node="n", at=AT, call_id="call", spy_channel_id="spy", target_channel_id="op")


def test_snapshot_entry() -> None:
    info = channel_info({"Event": "CoreShowChannel", "Channel": "PJSIP/101-00000001", "Uniqueid": "u",
                         "Linkedid": "l", "ChannelState": "6", "BridgeId": "b1", "CallerIDNum": "101", "Exten": "s"})
    assert (info.endpoint, info.state, info.bridge_id, info.dialed) == ("101", ChannelState.UP, "b1", None)


def test_originate_action() -> None:
    action = actions.originate(OriginateRequest(channel="PJSIP/101", channel_id="ctl-1", context="ctl-click-to-call",
                                                timeout=5, variables=(("CTL_CLIENT_DIAL", "PJSIP/1@c"),)))
    assert action == {"Action": "Originate", "Channel": "PJSIP/101", "ChannelId": "ctl-1", "Timeout": "5000",
                      "Async": "true", "Context": "ctl-click-to-call", "Exten": "s", "Priority": "1",
                      "Variable": ["CTL_CLIENT_DIAL=PJSIP/1@c"]}


@pytest.mark.parametrize("field", ["channel", "channel_id", "context", "caller_id", "variable"])
def test_no_value_with_a_line_break_reaches_an_action(field: str) -> None:
    evil = "x\r\nAction: Originate\r\nChannel: PJSIP/999"
    request = OriginateRequest(
        channel=evil if field == "channel" else "PJSIP/101",
        channel_id=evil if field == "channel_id" else "ctl-1",
        context=evil if field == "context" else "c",
        caller_id=evil if field == "caller_id" else None,
        variables=(("V", evil),) if field == "variable" else (),
    )
    with pytest.raises(ValidationError, match="control characters"):
        actions.originate(request)


def test_spy_targets_an_exact_channel_with_the_mode_options() -> None:
    listen = actions.spy(SpyRequest("PJSIP/200", "PJSIP/101-00000001", MonitorMode.LISTEN, "spy-1", 7),
                         "ctl-monitor-spy")
    assert (listen["Channel"], listen["ChannelId"], listen["Context"]) == ("PJSIP/200", "spy-1", "ctl-monitor-spy")
    assert listen["Variable"] == ["CTL_SPY_TARGET=PJSIP/101-00000001", "CTL_SPY_OPTIONS=qES", "CTL_FOLLOW=0",
                                  "CTL_SESSION=7"]
    assert actions.spy_options(MonitorMode.WHISPER) == "qwES"
    assert actions.spy_options(MonitorMode.BARGE) == "qBES"
    with pytest.raises(ValidationError):
        actions.spy(SpyRequest("PJSIP/200", "PJSIP/101,qB", MonitorMode.LISTEN, "spy-1", 7), "ctl-monitor-spy")
    assert actions.redirect("PJSIP/200-00000002", "ctl-monitor-spy") == {
        "Action": "Redirect", "Channel": "PJSIP/200-00000002", "Context": "ctl-monitor-spy", "Exten": "s",
        "Priority": "1"}


def test_contact_status_becomes_a_neutral_registration_event() -> None:
    base = {"Event": "ContactStatus", "URI": "sip:101@127.0.0.1:5", "AOR": "101", "EndpointName": "101"}
    states = [translate({**base, "ContactStatus": status}, "n", AT)[0] for status in
              ("NonQualified", "Reachable", "Unreachable", "Removed", "Unknown")]
    assert [(e.endpoint, e.state) for e in states] == [  # type: ignore[attr-defined]
        ("101", "reachable"), ("101", "reachable"), ("101", "unreachable"), ("101", "removed"), ("101", "unknown")]


def test_queue_caller_join_and_queue_pause() -> None:
    [joined] = translate({"Event": "QueueCallerJoin", "Channel": "PJSIP/clients-00000001", "Uniqueid": "1.1",
                          "Linkedid": "1.1", "Queue": "sales", "Position": "1", "Count": "1"}, "n", AT)
    assert isinstance(joined, ev.QueueJoined) and (joined.call_id, joined.queue) == ("1.1", "sales")
    assert actions.queue_pause("PJSIP/101", True, "lunch") == {
        "Action": "QueuePause", "Interface": "PJSIP/101", "Paused": "true", "Reason": "lunch"}
    # No Queue header: every queue; no reason on an unpause.
    assert actions.queue_pause("PJSIP/101", False, "lunch") == {
        "Action": "QueuePause", "Interface": "PJSIP/101", "Paused": "false"}
    with pytest.raises(ValidationError):
        actions.queue_pause("PJSIP/101", True, "lunch\r\nAction: Originate")
    with pytest.raises(ValidationError):
        actions.queue_pause("PJSIP/101\r\nX: y", True, None)
