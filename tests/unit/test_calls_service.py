"""CallTracker and click-to-call on the FakeSwitch and an SQLite store: the call state machine."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from ctl import events as ev
from ctl.cli.pbx import connected
from ctl.config import Settings
from ctl.errors import ActionFailed, DomainError, NotFound, SwitchUnreachable, ValidationError
from ctl.model import ChannelInfo, ChannelState, HangupCause
from ctl.services.calls import CallTracker, dial_client_of, dial_operator_of, place_bridge_call
from ctl.services.directory import ResultCodeSpec, add_operator, add_project
from ctl.store.engine import Store
from ctl.store.models import Call
from ctl.switch import Switch
from ctl.testing import FakeSwitch

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
SETTINGS = Settings()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def people(store: Store) -> Store:
    with store.transaction() as session:
        add_operator(session, SETTINGS.calls, "101", "Anna", "operator", None)
        add_operator(session, SETTINGS.calls, "102", "Boris", "operator", None)
        add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True)], ["101"])
    return store


def only_call(store: Store) -> Call:
    with store.transaction() as session:
        [call] = session.query(Call).all()
        return call


def created(call: str, channel: str, endpoint: str, seconds: float, number: str | None = None) -> ev.ChannelCreated:
    return ev.ChannelCreated(node="fake", at=at(seconds), call_id=call, channel_id=channel,
                             name=f"PJSIP/{endpoint}-0000000{len(channel)}", endpoint=endpoint,
                             caller_number=number, caller_name=None, dialed=None)


def state(call: str, channel: str, new: ChannelState, seconds: float) -> ev.ChannelStateChanged:
    return ev.ChannelStateChanged(node="fake", at=at(seconds), call_id=call, channel_id=channel, state=new)


def hangup(call: str, channel: str, seconds: float, code: int = 16) -> ev.ChannelHungUp:
    return ev.ChannelHungUp(node="fake", at=at(seconds), call_id=call, channel_id=channel,
                            cause=HangupCause.from_q850(code), cause_code=code, cause_text="")


def bridged(call: str, channel: str, seconds: float) -> ev.ChannelEnteredBridge:
    return ev.ChannelEnteredBridge(node="fake", at=at(seconds), call_id=call, channel_id=channel, bridge_id="b1")


async def test_inbound_call_from_the_trunk(people: Store) -> None:
    switch = FakeSwitch()
    tracker = CallTracker(people, switch, SETTINGS)
    switch.subscribe(tracker.handle)
    for event in [created("c1", "c1", "clients", 0, number="79990001122"),
                  created("c1", "op", "101", 0.1), state("c1", "op", ChannelState.RINGING, 0.2),
                  state("c1", "op", ChannelState.UP, 3), bridged("c1", "c1", 3.1), bridged("c1", "op", 3.1),
                  hangup("c1", "c1", 60), hangup("c1", "op", 60.1)]:
        await switch.emit(event)
    call = only_call(people)
    assert (call.direction, call.client_number, call.state) == ("inbound", "79990001122", "ended")
    assert call.operator_id is not None
    assert (call.answered_at, call.bridged_at, call.ended_at) == (at(3), at(3.1), at(60.1))
    assert (call.hangup_cause, call.hangup_cause_code) == ("normal_clearing", 16)


async def test_internal_call_and_states_never_go_back(people: Store) -> None:
    switch = FakeSwitch()
    tracker = CallTracker(people, switch, SETTINGS)
    switch.subscribe(tracker.handle)
    await switch.emit(created("c2", "c2", "101", 0))
    await switch.emit(created("c2", "b", "102", 0.1))
    await switch.emit(state("c2", "b", ChannelState.UP, 1))
    await switch.emit(state("c2", "b", ChannelState.RINGING, 2))  # late and out of order: ignored
    call = only_call(people)
    assert (call.direction, call.state, call.answered_at) == ("internal", "answered", at(1))


async def test_a_failed_dial_is_the_cause_of_an_unanswered_call(people: Store) -> None:
    switch = FakeSwitch()
    tracker = CallTracker(people, switch, SETTINGS)
    switch.subscribe(tracker.handle)
    await switch.emit(created("c3", "c3", "101", 0))
    await switch.emit(state("c3", "c3", ChannelState.UP, 1))  # the operator picks up: not "answered"
    await switch.emit(ev.DialStarted(node="fake", at=at(1.1), call_id="c3", channel_id="c3",
                                     target_channel_id="cl", dial_string="79990002233@clients"))
    await switch.emit(created("c3", "cl", "clients", 1.1))
    await switch.emit(ev.DialEnded(node="fake", at=at(1.5), call_id="c3", channel_id="c3", target_channel_id="cl",
                                   status="BUSY", cause=HangupCause.USER_BUSY))
    await switch.emit(hangup("c3", "cl", 1.5, code=16))
    await switch.emit(hangup("c3", "c3", 1.6, code=16))
    call = only_call(people)
    assert (call.direction, call.client_number) == ("outbound", "79990002233")
    assert (call.state, call.hangup_cause, call.hangup_cause_code, call.answered_at) == ("ended", "user_busy", 17, None)


async def test_originate_failure_without_any_leg_ends_the_call(people: Store) -> None:
    switch = FakeSwitch()
    placed = await place_bridge_call(people, switch, SETTINGS, "101", "79990003344", None)
    tracker = CallTracker(people, switch, SETTINGS)
    await tracker.handle(ev.OriginateFailed(node="fake", at=at(1), channel_id=placed.pbx_call_id, reason="failed",
                                            cause=HangupCause.FAILED))
    call = only_call(people)
    assert (call.state, call.hangup_cause) == ("ended", "failed")


async def test_reconciliation_ends_vanished_calls_and_adopts_unknown_ones(people: Store) -> None:
    switch = FakeSwitch()
    tracker = CallTracker(people, switch, SETTINGS)
    await tracker.handle(created("gone", "gone", "101", 0))
    switch.snapshot = [
        ChannelInfo("new", "new", "PJSIP/clients-00000009", "clients", ChannelState.UP, "79990004455", "b7"),
        ChannelInfo("new", "op", "PJSIP/102-0000000a", "102", ChannelState.UP, "102", "b7"),
    ]
    await tracker.handle(ev.SwitchConnected(node="fake", at=at(5)))
    with people.transaction() as session:
        rows = {c.pbx_call_id: c for c in session.query(Call).all()}
    assert (rows["gone"].state, rows["gone"].hangup_cause) == ("ended", "lost")
    adopted = rows["new"]
    assert (adopted.state, adopted.direction, adopted.client_number) == ("bridged", "inbound", "79990004455")
    # The adopted call goes on from events as usual.
    await tracker.handle(hangup("new", "new", 9))
    await tracker.handle(hangup("new", "op", 9.1))
    with people.transaction() as session:
        assert session.query(Call).filter_by(pbx_call_id="new").one().state == "ended"


async def test_events_of_unknown_calls_are_ignored(people: Store) -> None:
    tracker = CallTracker(people, FakeSwitch(), SETTINGS)
    await tracker.handle(hangup("nobody", "x", 1))
    await tracker.handle(state("nobody", "x", ChannelState.UP, 1))
    with people.transaction() as session:
        assert session.query(Call).count() == 0


async def test_click_to_call_originates_the_operator_into_the_bridge_context(people: Store) -> None:
    switch = FakeSwitch()
    async with connected(switch):
        placed = await place_bridge_call(people, switch, SETTINGS, "101", "+7 999 000-55-66", "Sales")
    [request] = switch.originated
    assert request.channel == "PJSIP/101" and request.channel_id == placed.pbx_call_id
    assert request.context == "ctl-click-to-call"
    assert dict(request.variables)["CTL_CLIENT_DIAL"] == "PJSIP/+79990005566@clients"
    assert dict(request.variables)["CTL_RING_TIMEOUT"] == "30"
    call = only_call(people)
    assert (call.state, call.direction, call.client_number, call.pbx_call_id) == \
        ("created", "outbound", "+79990005566", placed.pbx_call_id)
    assert not switch.connected  # the CLI's connection is closed again


@pytest.mark.parametrize(("operator", "number", "project", "fake", "error"), [
    ("109", "79990001111", None, FakeSwitch(), NotFound),
    ("101", "7999x", None, FakeSwitch(), ValidationError),
    ("101", "79990001111", "Nope", FakeSwitch(), NotFound),
    ("102", "79990001111", "Sales", FakeSwitch(), DomainError),  # not a member
    ("101", "79990001111", None, FakeSwitch(available=False), DomainError),
    ("101", "79990001111", None, FakeSwitch(connect_error=SwitchUnreachable("down")), SwitchUnreachable),
])
async def test_refused_click_to_calls_write_nothing(people: Store, operator: str, number: str, project: str | None,
                                                    fake: FakeSwitch, error: type[Exception]) -> None:
    with pytest.raises(error):
        async with connected(fake):
            await place_bridge_call(people, fake, SETTINGS, operator, number, project)
    assert fake.originated == []
    with people.transaction() as session:
        assert session.query(Call).count() == 0


async def test_an_originate_the_pbx_refuses_leaves_a_failed_row(people: Store) -> None:
    switch = FakeSwitch(originate_error=ActionFailed("Originate failed"))
    with pytest.raises(ActionFailed):
        await place_bridge_call(people, switch, SETTINGS, "101", "79990001111", None)
    call = only_call(people)
    assert (call.state, call.hangup_cause) == ("ended", "failed")


def test_the_fake_is_a_switch() -> None:
    assert isinstance(FakeSwitch(), Switch)


async def test_dial_client_and_operator_of_a_call(people: Store) -> None:
    switch = FakeSwitch()
    placed = await place_bridge_call(people, switch, SETTINGS, "101", "79990007788", "Sales")
    with people.transaction() as session:
        add_operator(session, SETTINGS.calls, "200", "Sam", "supervisor", None)

    again = await dial_client_of(people, switch, SETTINGS, placed.id, "200")
    debrief = await dial_operator_of(people, switch, SETTINGS, placed.id, "200")
    _, client_request, operator_request = switch.originated
    assert client_request.channel == "PJSIP/200"
    assert dict(client_request.variables)["CTL_CLIENT_DIAL"] == "PJSIP/79990007788@clients"
    assert operator_request.channel == "PJSIP/200"
    assert dict(operator_request.variables)["CTL_CLIENT_DIAL"] == "PJSIP/101"
    with people.transaction() as session:
        rows = {c.id: c for c in session.query(Call).all()}
    assert (rows[again.id].direction, rows[again.id].client_number) == ("outbound", "79990007788")
    assert rows[again.id].project_id == rows[placed.id].project_id
    assert (rows[debrief.id].direction, rows[debrief.id].client_number) == ("internal", None)

    with pytest.raises(DomainError, match="101 is the operator of call"):
        await dial_operator_of(people, switch, SETTINGS, placed.id, "101")
    with pytest.raises(NotFound, match="no call with id 999"):
        await dial_client_of(people, switch, SETTINGS, 999, "200")
    with pytest.raises(DomainError, match="has no client number"):
        await dial_client_of(people, switch, SETTINGS, debrief.id, "200")
