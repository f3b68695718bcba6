"""The outbox: each change becomes an event in its own transaction, whatever door made it;
a rolled-back change publishes nothing; readers see only what they may and never skip a
row committed late."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctl.config import CallSettings
from ctl.services.directory import add_operator
from ctl.services.events import events_after, purge_events, safe_point
from ctl.store.engine import Store
from ctl.store.models import Call, MonitorSession, Operator, Recording

NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def staff(store: Store) -> Store:
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("102", "operator"), ("200", "supervisor")):
            add_operator(session, CallSettings(), extension, f"P{extension}", role, None)
    return store


def _kinds(store: Store, role: str | None = None, extension: str | None = None) -> list[str]:
    with store.transaction() as session:
        return [e.kind for e in events_after(session, 0, role, extension)]


def test_a_call_its_monitor_and_its_recording_become_events_in_order(staff: Store) -> None:
    with staff.transaction() as session:
        operator = session.query(Operator).filter_by(extension="101").one()
        supervisor = session.query(Operator).filter_by(extension="200").one()
        call = Call(node="asterisk", pbx_call_id="x", direction="outbound", state="created", operator_id=operator.id,
                    client_number="79991234567")
        session.add(call)
        session.flush()
        call_id = call.id
    for state in ("ringing", "answered", "bridged"):
        with staff.transaction() as session:
            session.get(Call, call_id).state = state  # type: ignore[union-attr]
    with staff.transaction() as session:
        operator = session.query(Operator).filter_by(extension="101").one()
        operator.status = "talking"
        monitor = MonitorSession(node="asterisk", call_id=call_id, supervisor_id=supervisor.id,
                                 operator_id=operator.id, mode="listen", spy_channel_id="spy")
        session.add(monitor)
        session.add(Recording(call_id=call_id, node="asterisk", channel_id="c", channel_name="PJSIP/c-1",
                              path="/r/a.wav", pbx_path="/r/a.wav", source="policy"))
    with staff.transaction() as session:
        rec = session.query(Recording).one()
        rec.state = "recording"
        session.query(MonitorSession).one().attached_at = NOW
    with staff.transaction() as session:
        session.query(Recording).one().state = "paused"
    with staff.transaction() as session:
        session.query(Recording).one().state = "recording"
        session.query(MonitorSession).one().ended_at = NOW
    with staff.transaction() as session:
        found = session.get(Call, call_id)
        assert found is not None
        found.state, found.hangup_cause = "ended", "normal_clearing"
        rec = session.query(Recording).one()
        rec.state, rec.complete = "stopped", True
    team = _kinds(staff)
    # Within one transaction new rows come first, then changed ones; transactions in commit order.
    assert team == ["call.created", "call.ringing", "call.answered", "call.bridged", "monitor.started",
                    "operator.status", "recording.started", "monitor.attached", "recording.paused",
                    "recording.resumed", "monitor.stopped", "call.ended", "recording.stopped"], team
    # The operator sees their own call, status and recording; never who monitors them.
    mine = _kinds(staff, "operator", "101")
    assert "monitor.started" not in mine and "call.bridged" in mine and "recording.paused" in mine
    assert _kinds(staff, "operator", "102") == []
    with staff.transaction() as session:
        [ended] = [e for e in events_after(session, 0, None, None) if e.kind == "call.ended"]
        assert ended.as_json()["cause"] == "normal_clearing" and ended.as_json()["operator"] == "101"


def test_a_rolled_back_change_publishes_nothing(staff: Store) -> None:
    before = _kinds(staff)
    with pytest.raises(RuntimeError), staff.transaction() as session:
        session.query(Operator).filter_by(extension="101").one().status = "break"
        session.flush()  # the event row is written...
        raise RuntimeError("…and rolled back with the change")
    assert _kinds(staff) == before


def test_a_gap_in_the_ids_is_waited_for_then_passed() -> None:
    wait = timedelta(seconds=2)
    rows = [(11, NOW), (13, NOW)]
    assert safe_point(10, rows, NOW, wait) == 11  # 12 may still commit
    assert safe_point(10, rows, NOW + timedelta(seconds=3), wait) == 13  # rolled back, or purged
    assert safe_point(10, [], NOW, wait) == 10


def test_events_past_their_retention_are_purged(staff: Store) -> None:
    with staff.transaction() as session:
        session.query(Operator).filter_by(extension="101").one().status = "break"
    with staff.transaction() as session:
        assert purge_events(session, datetime.now(UTC), 7) == 0
        assert purge_events(session, datetime.now(UTC) + timedelta(days=8), 7) >= 1
    assert _kinds(staff) == []


def test_compare_and_set_changes_of_a_recording_are_published_too(staff: Store) -> None:
    """mark_started / mark_paused change the row with an UPDATE statement, which the flush
    hook cannot see: they publish themselves."""
    from ctl.services.recording import mark_paused, mark_started

    with staff.transaction() as session:
        operator = session.query(Operator).filter_by(extension="101").one()
        call = Call(node="asterisk", pbx_call_id="y", direction="inbound", state="bridged", operator_id=operator.id)
        session.add(call)
        session.flush()
        session.add(Recording(call_id=call.id, node="asterisk", channel_id="c", channel_name="PJSIP/c-1",
                              path="/r/b.wav", pbx_path="/r/b.wav", source="cli"))
    with staff.transaction() as session:
        row = session.query(Recording).one()
        assert mark_started(session, row, NOW)
        assert not mark_started(session, row, NOW)  # applied once, published once
    with staff.transaction() as session:
        mark_paused(session, session.query(Recording).one(), True, NOW, "cli")
    kinds = [k for k in _kinds(staff) if k.startswith("recording.")]
    assert kinds == ["recording.started", "recording.paused"]
    assert [k for k in _kinds(staff, "operator", "101") if k.startswith("recording.")] == kinds


def test_a_new_session_is_one_event_and_a_later_mode_another(staff: Store) -> None:
    """open_session writes the session and its first mode together: monitor.started only."""
    from ctl.model import MonitorMode
    from ctl.services.monitoring import Approved, get_session, open_session, record_mode

    with staff.transaction() as session:
        operator = session.query(Operator).filter_by(extension="101").one()
        supervisor = session.query(Operator).filter_by(extension="200").one()
        call = Call(node="asterisk", pbx_call_id="z", direction="outbound", state="bridged", operator_id=operator.id)
        session.add(call)
        session.flush()
        approved = Approved(supervisor.id, "200", "PJSIP/200", operator.id, "101", call.id, "z", MonitorMode.LISTEN)
    session_id = open_session(staff, "asterisk", approved, "spy-1", False, "api")
    with staff.transaction() as session:
        record_mode(session, get_session(session, session_id), MonitorMode.WHISPER, "api")
    with staff.transaction() as session:
        monitor = [(e.kind, e.data.get("mode")) for e in events_after(session, 0, None, None)
                   if e.kind.startswith("monitor.")]
    assert monitor == [("monitor.started", "listen"), ("monitor.mode", "whisper")]


def test_a_call_created_and_attached_in_one_transaction_is_published_as_it_ended_up(staff: Store) -> None:
    """The call tracker inserts a call, flushes for its id, then sets its operator and
    direction: the one call.created carries them, so the operator's stream sees it."""
    with staff.transaction() as session:
        call = Call(node="asterisk", pbx_call_id="w", direction="internal", state="created")
        session.add(call)
        session.flush()
        call.operator_id = session.query(Operator).filter_by(extension="101").one().id
        call.direction, call.state = "inbound", "ringing"
    with staff.transaction() as session:
        [created] = [e for e in events_after(session, 0, "operator", "101") if e.kind.startswith("call.")]
    assert created.kind == "call.created"
    assert (created.data["operator"], created.data["direction"], created.data["state"]) == ("101", "inbound",
                                                                                             "ringing")


def test_a_call_added_and_committed_without_a_flush_is_published(staff: Store) -> None:
    with staff.transaction() as session:
        session.add(Call(node="asterisk", pbx_call_id="v", direction="outbound", state="created"))
    assert "call.created" in _kinds(staff)
