"""Statuses that follow calls (talking, wrap-up), forced logout, and the queues kept in step:
CallTracker + StatusTracker + QueueSync on the FakeSwitch, on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ctl import events as ev
from ctl.config import Settings
from ctl.errors import Conflict, Forbidden, ValidationError
from ctl.model import ChannelInfo, ChannelState, HangupCause
from ctl.services import operators
from ctl.services.calls import CallTracker, save_result
from ctl.services.directory import (
    ResultCodeSpec,
    add_operator,
    add_project,
    get_operator,
    get_project,
    set_project_distribution,
    set_project_members,
)
from ctl.services.queues import QueueSync
from ctl.store.engine import Store
from ctl.store.models import Call, OperatorStatusChange
from ctl.testing import FakeSwitch

# Event times: hours after the set-up rows written at the wall clock, however long the suite runs before.
T0 = datetime.now(UTC).replace(microsecond=0) + timedelta(hours=6)
SETTINGS = Settings()


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
def people(store: Store) -> Store:
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("102", "operator"), ("200", "supervisor"), ("201", "admin")):
            add_operator(session, SETTINGS.calls, extension, f"P{extension}", role, None)
        add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True)], ["101", "102"], queue="sales",
                    wrapup_seconds=30)
        for extension in ("101", "102"):
            operators.set_status_by_hand(session, SETTINGS.operators, extension, "available", None, None)
    return store


class Wiring:
    """The trackers subscribed as `ctl serve` does, in its order."""

    def __init__(self, store: Store, wrapup_seconds: int = 120) -> None:
        self.store = store
        self.switch = FakeSwitch(node="fake")
        self.calls = CallTracker(store, self.switch, SETTINGS)
        settings = replace(SETTINGS.operators, wrapup_seconds=wrapup_seconds)
        self.statuses = operators.StatusTracker(store, self.switch, ("clients",), settings)
        self.switch.subscribe(self.calls.handle)
        self.switch.subscribe(self.statuses.handle)

    async def emit(self, *events: ev.Event) -> None:
        for event in events:
            await self.switch.emit(event)

    def status(self, extension: str) -> tuple[str, str | None]:
        with self.store.transaction() as session:
            person = get_operator(session, extension)
            return person.status, person.status_reason

    def history(self, extension: str) -> list[tuple[str, str, str, bool]]:
        """(from, to, source, has a call) in the order they were written (the events carry test times)."""
        with self.store.transaction() as session:
            person = get_operator(session, extension)
            rows = session.query(OperatorStatusChange).filter_by(operator_id=person.id).order_by(
                OperatorStatusChange.id)
            return [(c.from_status, c.to_status, c.source, c.call_id is not None) for c in rows]


def created(call: str, channel: str, endpoint: str, seconds: float, dialed: str | None = None,
            number: str | None = None) -> ev.ChannelCreated:
    return ev.ChannelCreated(node="fake", at=at(seconds), call_id=call, channel_id=channel,
                             name=f"PJSIP/{endpoint}-0000{len(channel):04d}", endpoint=endpoint,
                             caller_number=number, caller_name=None, dialed=dialed)


def up(call: str, channel: str, seconds: float) -> ev.ChannelStateChanged:
    return ev.ChannelStateChanged(node="fake", at=at(seconds), call_id=call, channel_id=channel, state=ChannelState.UP)


def ringing(call: str, channel: str, seconds: float) -> ev.ChannelStateChanged:
    return ev.ChannelStateChanged(node="fake", at=at(seconds), call_id=call, channel_id=channel,
                                  state=ChannelState.RINGING)


def hangup(call: str, channel: str, seconds: float) -> ev.ChannelHungUp:
    return ev.ChannelHungUp(node="fake", at=at(seconds), call_id=call, channel_id=channel,
                            cause=HangupCause.NORMAL_CLEARING, cause_code=16, cause_text="")


def queue_joined(call: str, channel: str, queue: str, seconds: float) -> ev.QueueJoined:
    return ev.QueueJoined(node="fake", at=at(seconds), call_id=call, channel_id=channel, queue=queue)


def call_row(store: Store, pbx_call_id: str) -> Call:
    with store.transaction() as session:
        found = session.query(Call).filter_by(pbx_call_id=pbx_call_id).one()
        session.expunge(found)
        return found


async def test_an_inbound_queue_call_makes_talking_then_wrap_up_until_the_result(people: Store) -> None:
    w = Wiring(people)
    await w.emit(created("c1", "c1", "clients", 0, dialed="5001", number="79990001122"),
                 queue_joined("c1", "c1", "sales", 0.1),
                 created("c1", "op", "101", 1), ringing("c1", "op", 1.1))
    assert w.status("101") == ("available", None)  # a ringing phone is not a conversation
    await w.emit(up("c1", "op", 3))
    assert w.status("101") == ("talking", None)
    await w.emit(hangup("c1", "c1", 60), hangup("c1", "op", 60.1))
    assert w.status("101") == ("wrap_up", None)
    call = call_row(people, "c1")
    assert call.project_id is not None  # the queue made it a Sales call
    with people.transaction() as session:
        saved = save_result(session, call.id, "sale", None)
    assert (saved.operator, saved.operator_status) == ("101", "available")
    assert w.history("101")[1:] == [("available", "talking", "pbx", True), ("talking", "wrap_up", "pbx", True),
                                    ("wrap_up", "available", "cli", True)]


async def test_a_wrap_up_ends_at_the_projects_maximum(people: Store) -> None:
    w = Wiring(people)
    await w.emit(created("c1", "c1", "clients", 0, dialed="5001", number="79990001122"),
                 queue_joined("c1", "c1", "sales", 0.1), created("c1", "op", "101", 1), up("c1", "op", 3),
                 hangup("c1", "c1", 60), hangup("c1", "op", 60))
    assert w.status("101")[0] == "wrap_up"
    w.statuses.tick(at(89))  # the project allows 30 s
    assert w.status("101")[0] == "wrap_up"
    w.statuses.tick(at(90))
    assert w.status("101") == ("available", None)
    assert w.history("101")[-1] == ("wrap_up", "available", "system", True)
    with people.transaction() as session:  # a late result changes nothing about the status
        assert save_result(session, call_row(people, "c1").id, "sale", None).operator_status == "available"


async def test_no_wrap_up_without_a_project_or_with_zero_seconds_and_a_break_stays_a_break(people: Store) -> None:
    w = Wiring(people)
    with people.transaction() as session:
        operators.set_status_by_hand(session, SETTINGS.operators, "101", "break", "lunch", None)
    # 101 on a break dials 102 from the phone: an internal call, no project.
    await w.emit(created("c1", "c1", "101", 0, dialed="102"))
    assert w.status("101") == ("talking", None)  # dialing is talking
    await w.emit(created("c1", "b", "102", 0.1), up("c1", "b", 2), up("c1", "c1", 2))
    assert w.status("102") == ("talking", None)
    await w.emit(hangup("c1", "b", 10), hangup("c1", "c1", 10))
    assert w.status("101") == ("break", "lunch")
    assert w.status("102") == ("available", None)
    with people.transaction() as session:
        set_project_distribution(session, "Sales", wrapup_seconds=0)
    await w.emit(created("c2", "c2", "clients", 20, dialed="5001", number="79990001122"),
                 queue_joined("c2", "c2", "sales", 20), created("c2", "op", "102", 21), up("c2", "op", 22),
                 hangup("c2", "op", 30), hangup("c2", "c2", 30))
    assert w.status("102") == ("available", None)  # 0 s: no wrap-up


async def test_two_legs_at_once_and_feature_code_dials_are_not_calls(people: Store) -> None:
    w = Wiring(people)
    await w.emit(created("c1", "c1", "clients", 0, number="7999"), created("c1", "op", "101", 1), up("c1", "op", 2))
    # An attended transfer: 101 has a second leg; hanging up the first does not end talking.
    await w.emit(created("c2", "c2", "101", 5, dialed="102"), hangup("c1", "op", 6))
    assert w.status("101")[0] == "talking"
    await w.emit(hangup("c2", "c2", 8))
    assert w.status("101") == ("available", None)
    # A supervisor's feature code (a monitor session) and a ctl-originated spy leg.
    await w.emit(created("s1", "s1", "200", 10, dialed="*222101"), up("s1", "s1", 11),
                 created("ctl-spy-1", "ctl-spy-1", "200", 12), up("ctl-spy-1", "ctl-spy-1", 13))
    assert w.status("200") == ("offline", None)


async def test_after_a_reconnect_the_snapshot_decides_who_is_talking(people: Store) -> None:
    w = Wiring(people)
    await w.emit(created("c1", "c1", "clients", 0, number="7999"), created("c1", "op", "101", 1), up("c1", "op", 2))
    assert w.status("101")[0] == "talking"
    # ctl serve was away while 101's call ended and 102's began.
    w.switch.snapshot = [
        ChannelInfo("c9", "c9", "PJSIP/clients-00000009", "clients", ChannelState.UP, "7998", "b9"),
        ChannelInfo("c9", "x", "PJSIP/102-0000000a", "102", ChannelState.UP, None, "b9")]
    await w.switch.run()  # emits SwitchConnected
    assert w.status("101") == ("available", None)
    assert w.status("102")[0] == "talking"
    await w.emit(hangup("c9", "x", 30))
    assert w.status("102") == ("available", None)


async def test_forced_logout_and_its_refusals(people: Store) -> None:
    w = Wiring(people)
    await w.emit(created("c1", "c1", "clients", 0, number="7999"), created("c1", "op", "101", 1), up("c1", "op", 2))
    for force, by, error, message in ((False, None, Conflict, "in a call; --force"),
                                      (True, "102", Forbidden, "may not log another person out"),
                                      (True, "200", Forbidden, "supervisor")):
        with pytest.raises(error, match=message), people.transaction() as session:
            operators.logout(session, "101", force, None, by)
    with pytest.raises(ValidationError), people.transaction() as session:
        operators.logout(session, "101", True, "bad\nreason", "201")
    with people.transaction() as session:
        assert session.query(OperatorStatusChange).filter_by(to_status="offline").count() == 0
        person, changed = operators.logout(session, "101", True, None, "201")
        assert (person.status, person.status_reason, changed) == ("offline", "forced logout", True)
    await w.emit(hangup("c1", "op", 9))
    assert w.status("101") == ("offline", "forced logout")  # the end of the call does not log them back in
    with people.transaction() as session:
        person, _ = operators.logout(session, "102", False, None, None)
        assert (person.status, person.status_reason) == ("offline", None)


async def test_queue_pauses_follow_the_statuses(people: Store) -> None:
    switch = FakeSwitch(node="fake", queue_members={"PJSIP/101": (False, None), "PJSIP/102": (False, None)})
    sync = QueueSync(people, switch)
    await switch.connect()
    await sync.handle(ev.SwitchConnected(node="fake", at=at(0)))
    assert switch.queue_members == {"PJSIP/101": (False, None), "PJSIP/102": (False, None)}
    with people.transaction() as session:
        operators.set_status_by_hand(session, SETTINGS.operators, "101", "break", "lunch", None)
        operators.logout(session, "102", True, None, "201")
    switch.calls.clear()
    await sync.tick()
    assert switch.queue_members == {"PJSIP/101": (True, "lunch"), "PJSIP/102": (True, "forced logout")}
    assert len(switch.calls) == 2  # only the two changes were sent
    switch.calls.clear()
    await sync.tick()
    assert switch.calls == []  # nothing changed, nothing sent
    with people.transaction() as session:
        operators.set_status_by_hand(session, SETTINGS.operators, "101", "available", None, None)
    await sync.tick()
    assert switch.queue_members["PJSIP/101"] == (False, None)
    # After a reconnect everything is told again (the PBX may have restarted).
    switch.calls.clear()
    await sync.handle(ev.SwitchConnected(node="fake", at=at(5)))
    assert len([c for c in switch.calls if c[0] == "queue_pause"]) == 4  # 101, 102, 200, 201
    await switch.close()
    with people.transaction() as session:
        operators.set_status_by_hand(session, SETTINGS.operators, "101", "dnd", None, None)
    await sync.tick()  # not connected: nothing sent, nothing remembered
    await switch.connect()
    await sync.tick()
    assert switch.queue_members["PJSIP/101"] == (True, "dnd")


def test_project_queue_wrapup_and_members_are_checked(people: Store) -> None:
    with people.transaction() as session:
        add_project(session, "Support", "", [], [])
    for kwargs, error, message in (({"queue": "sales"}, Conflict, "belongs to project 'Sales'"),
                                   ({"queue": "bad queue"}, ValidationError, "not a queue name"),
                                   ({"queue": "x,y"}, ValidationError, "not a queue name"),
                                   ({"wrapup_seconds": -1}, ValidationError, "0 to 86400"),
                                   ({"wrapup_seconds": 86_401}, ValidationError, "0 to 86400")):
        with pytest.raises(error, match=message), people.transaction() as session:
            set_project_distribution(session, "Support", **kwargs)  # type: ignore[arg-type]
    with people.transaction() as session:
        set_project_distribution(session, "Support", queue="support", wrapup_seconds=10)
        set_project_members(session, "Support", ["101", "102"], [])
        set_project_members(session, "Support", [], ["102"])
    with pytest.raises(ValidationError, match="both added and removed"), people.transaction() as session:
        set_project_members(session, "Support", ["102"], ["102"])
    with people.transaction() as session:
        project = get_project(session, "Support")
        assert (project.queue, project.wrapup_seconds, [m.extension for m in project.members]) == \
            ("support", 10, ["101"])
        sales = get_project(session, "Sales")
        assert "101" in [m.extension for m in sales.members]  # in two projects at once
