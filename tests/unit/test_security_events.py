"""What goes around ctl's rules is seen, kept and ended: a spy or a recording ctl did not start,
a session that never attached, a pause whose source depends on a race, a caller id that does
not fit the store. On SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ctl import events as ev
from ctl.config import MonitorSettings, Settings
from ctl.model import MonitorMode
from ctl.services import recording
from ctl.services.calls import CallTracker
from ctl.services.directory import add_operator
from ctl.services.monitoring import Approved, MonitorTracker, open_session
from ctl.services.recording import RecordingTracker
from ctl.store.engine import Store
from ctl.store.models import Call, MonitorSession, Operator, Recording, RecordingPause, SecurityEvent
from ctl.testing import FakeSwitch
from ctl.validation import inbound_number

SETTINGS = Settings()
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def staff(store: Store) -> Store:
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("200", "supervisor")):
            add_operator(session, SETTINGS.calls, extension, f"P{extension}", role, None)
        anna = session.scalar(select(Operator).where(Operator.extension == "101"))
        assert anna is not None
        session.add(Call(node="fake", pbx_call_id="call-1", direction="outbound", state="bridged",
                         operator_id=anna.id, created_at=NOW))
    return store


def _events(store: Store) -> list[tuple[str, str, str | None, str, int | None]]:
    with store.transaction() as session:
        return [(e.kind, e.channel_id, e.target_channel_id, e.action, e.call_id)
                for e in session.scalars(select(SecurityEvent))]


@pytest.mark.parametrize("policy", ["hangup", "log"])
async def test_a_spy_ctl_did_not_start_is_kept_and_hung_up(staff: Store, policy: str,
                                                           caplog: pytest.LogCaptureFixture) -> None:
    """The reported injection ended in ChanSpy on another operator's call, and ctl dropped
    its ChanSpyStart without a word."""
    switch = FakeSwitch()
    tracker = MonitorTracker(staff, switch, lambda call: [], MonitorSettings(foreign_spy=policy),
                             lambda channel_id: "PJSIP/102-0000000f")
    await tracker.handle(ev.SpyStarted(node="fake", at=NOW, call_id="call-1", spy_channel_id="spy-x",
                                       target_channel_id="op-leg"))
    with staff.transaction() as session:
        call_id = session.scalar(select(Call.id))
    expected_action = "hung_up" if policy == "hangup" else "logged"
    assert _events(staff) == [("unauthorised_monitor", "spy-x", "op-leg", expected_action, call_id)]
    assert (("hangup", ("spy-x", 16)) in switch.calls) is (policy == "hangup")
    errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert any("unauthorised monitor" in m and "PJSIP/102-0000000f" in m for m in errors), errors
    assert "spy-x" not in tracker.spy_legs


async def test_ctls_own_spy_is_not_an_alert_and_a_session_that_never_attaches_ends(staff: Store) -> None:
    switch = FakeSwitch()
    tracker = MonitorTracker(staff, switch, lambda call: [], MonitorSettings(ring_timeout=30))
    with staff.transaction() as session:
        supervisor = session.scalar(select(Operator).where(Operator.extension == "200"))
        operator = session.scalar(select(Operator).where(Operator.extension == "101"))
        call = session.scalar(select(Call))
        assert supervisor and operator and call
        approved = Approved(supervisor.id, "200", "PJSIP/200", operator.id, "101", call.id, "call-1",
                            MonitorMode.LISTEN)
    attached = open_session(staff, "fake", approved, "spy-ok", False, "cli")
    await tracker.handle(ev.SpyStarted(node="fake", at=NOW, call_id="call-1", spy_channel_id="spy-ok",
                                       target_channel_id="op-leg"))
    assert _events(staff) == []
    assert switch.calls == []
    with staff.transaction() as session:
        session.get(MonitorSession, attached).ended_at = NOW  # type: ignore[union-attr]
    # A forged feature-code request would have left this one active forever.
    stuck = open_session(staff, "fake", approved, "spy-never", False, "feature_code")
    with staff.transaction() as session:
        started = session.get(MonitorSession, stuck).started_at  # type: ignore[union-attr]
    assert tracker.tick(started + timedelta(seconds=44)) == []
    assert tracker.tick(started + timedelta(seconds=46)) == [stuck]
    with staff.transaction() as session:
        assert session.get(MonitorSession, stuck).end_reason == "never_attached"  # type: ignore[union-attr]


async def test_a_recording_ctl_did_not_start_is_kept_and_stopped(staff: Store, tmp_path: Path) -> None:
    switch = FakeSwitch()
    settings = replace(SETTINGS, recording=replace(SETTINGS.recording, directory=str(tmp_path)))
    tracker = RecordingTracker(staff, switch, settings, lambda call: [], lambda call: "bridged",
                               lambda call, channel: None)
    await tracker.handle(ev.RecordingStarted(node="fake", at=NOW, call_id="call-1", channel_id="client-leg"))
    assert [(kind, channel, action) for kind, channel, _, action, _ in _events(staff)] == [
        ("unauthorised_monitor", "client-leg", "stopped")]
    assert ("record_stop", ("client-leg",)) in switch.calls


def test_the_pause_source_is_the_requests_whoever_writes_first(staff: Store) -> None:
    """The PBX's MixMonitorMute event can be read before the CLI writes its pause: the
    pause is still the CLI's (it was stored as pbx or cli depending on the race)."""
    with staff.transaction() as session:
        call = session.scalar(select(Call))
        assert call is not None
        row = Recording(node="fake", call_id=call.id, channel_id="client-leg", channel_name="PJSIP/clients-1",
                        path="/x.wav", pbx_path="/x.wav",
                        state="recording", source="policy", requested_at=NOW)
        session.add(row)
        session.flush()
        assert recording.mark_paused(session, row, True, NOW, "pbx")  # the event first…
        assert recording.mark_paused(session, row, True, NOW + timedelta(milliseconds=5), "cli")  # …then the CLI
        assert recording.mark_paused(session, row, True, NOW, "pbx") is False
        assert recording.mark_paused(session, row, False, NOW + timedelta(seconds=1), "pbx")
        assert recording.mark_paused(session, row, True, NOW + timedelta(seconds=2), "cli")  # the CLI first
        assert recording.mark_paused(session, row, True, NOW + timedelta(seconds=2), "pbx") is False
        pauses = session.scalars(select(RecordingPause).order_by(RecordingPause.id)).all()
        assert [(p.source, p.paused_at) for p in pauses] == [("cli", NOW), ("cli", NOW + timedelta(seconds=2))]


@pytest.mark.parametrize(("raw", "stored"), [
    ("+7 (999) 123-45-67", "+79991234567"),
    ("79991234567", "79991234567"),
    ("1" * 40, None),  # too long for the store (failed the insert on PostgreSQL) and not a number
    ("Anonymous", None),
    ("0000&PJSIP/clients,30,G(x^s^1)", None),
    ("", None),
    (None, None),
])
def test_inbound_caller_ids_are_normalised_and_bounded(raw: str | None, stored: str | None) -> None:
    assert inbound_number(raw) == stored


async def test_a_long_caller_id_from_the_trunk_is_still_a_followed_call(store: Store) -> None:
    """On PostgreSQL a caller id longer than 32 characters failed the insert: the call was
    never tracked (no status, no recording policy)."""
    tracker = CallTracker(store, FakeSwitch(), SETTINGS)
    tracker.apply(ev.ChannelCreated(node="fake", at=NOW, call_id="in-1", channel_id="in-1",
                                    name="PJSIP/clients-00000001", endpoint="clients", caller_number="9" * 48,
                                    caller_name="x" * 200, dialed="5001"))
    tracker.apply(ev.ChannelCreated(node="fake", at=NOW, call_id="in-2", channel_id="in-2",
                                    name="PJSIP/clients-00000002", endpoint="clients",
                                    caller_number="+7 999 123-45-67", caller_name=None, dialed="5001"))
    with store.transaction() as session:
        rows = {c.pbx_call_id: (c.direction, c.client_number) for c in session.scalars(select(Call))}
    assert rows == {"in-1": ("inbound", None), "in-2": ("inbound", "+79991234567")}
