"""Statuses by hand and their history, call results, the blacklist: on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctl import events as ev
from ctl.config import Settings
from ctl.errors import Conflict, DomainError, Forbidden, NotFound, ValidationError
from ctl.services import operators
from ctl.services.calls import dial_client_of, place_bridge_call, save_result
from ctl.services.directory import ResultCodeSpec, add_operator, add_project, get_operator, get_project
from ctl.store.engine import Store
from ctl.store.models import Call, OperatorStatusChange
from ctl.testing import FakeSwitch

SETTINGS = Settings()
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def people(store: Store) -> Store:
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("102", "operator"), ("200", "supervisor")):
            add_operator(session, SETTINGS.calls, extension, f"P{extension}", role, None)
        add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True), ResultCodeSpec("later", "Later",
                                                                                               False)], ["101"])
    return store


def test_statuses_by_hand_are_checked_and_every_change_is_a_row(people: Store) -> None:
    settings = SETTINGS.operators
    with people.transaction() as session:
        operator, changed = operators.set_status_by_hand(session, settings, "101", "available", None, None)
        assert (operator.status, changed) == ("available", True)
        operator, changed = operators.set_status_by_hand(session, settings, "101", "available", None, None)
        assert changed is False  # the same status again: no new row
        operators.set_status_by_hand(session, settings, "101", "break", "lunch", None)
        operators.set_status_by_hand(session, settings, "101", "DND", "training", "200")  # a supervisor may
    for status, reason, by, error, message in (
            ("talking", None, None, ValidationError, "follow the PBX"),
            ("break", "nap", None, ValidationError, "'nap' is not a pause reason"),
            ("available", "lunch", None, ValidationError, "only a break or do-not-disturb"),
            ("break", "lunch", "102", Forbidden, "may not set another person's status"),
            ("break", "lunch", "999", NotFound, "no operator with extension 999")):
        with pytest.raises(error, match=message), people.transaction() as session:
            operators.set_status_by_hand(session, settings, "101", status, reason, by)
    with people.transaction() as session:
        history = operators.status_history(session, "101")
        assert [(c.from_status, c.to_status, c.reason, c.set_by, c.source) for c in history] == [
            ("break", "dnd", "training", "200", "cli"),
            ("available", "break", "lunch", "101", "cli"),
            ("offline", "available", None, "101", "cli")]
        assert session.query(OperatorStatusChange).count() == 3  # refusals wrote nothing


def test_results_come_from_the_calls_project(people: Store) -> None:
    with people.transaction() as session:
        project_id = get_project(session, "Sales").id
        session.add_all([Call(node="n", pbx_call_id="a", direction="outbound", state="ended", created_at=NOW,
                              project_id=project_id),
                         Call(node="n", pbx_call_id="b", direction="outbound", state="ended", created_at=NOW)])
    with people.transaction() as session:
        saved = save_result(session, 1, "sale", "closed the deal")
        assert (saved.code, saved.successful) == ("sale", True)
    with pytest.raises(DomainError, match=r"no result code 'win' \(codes: later, sale\)"), \
            people.transaction() as session:
        save_result(session, 1, "win", None)
    with pytest.raises(DomainError, match="belongs to no project"), people.transaction() as session:
        save_result(session, 2, "sale", None)
    with people.transaction() as session:
        call = session.get(Call, 1)
        assert call is not None and (call.result, call.comment) == ("sale", "closed the deal")


async def test_no_originate_path_dials_a_blacklisted_number(people: Store) -> None:
    with people.transaction() as session:
        operators.blacklist_add(session, "+7 999 123-45-67", "asked not to be called")
    with pytest.raises(Conflict, match="already blacklisted"), people.transaction() as session:
        operators.blacklist_add(session, "79991234567", None)  # the same number without +
    switch = FakeSwitch()
    with pytest.raises(Forbidden, match=r"\+79991234567 is blacklisted: asked not to be called"):
        await place_bridge_call(people, switch, SETTINGS, "101", "+79991234567", "Sales")
    with people.transaction() as session:
        session.add(Call(node="fake", pbx_call_id="old", direction="outbound", state="ended", created_at=NOW,
                         client_number="+79991234567"))
    with pytest.raises(Forbidden, match="blacklisted"):
        await dial_client_of(people, switch, SETTINGS, 1, "101")
    assert switch.originated == [] and switch.connects == 0
    with people.transaction() as session:
        assert session.query(Call).count() == 1  # only the old call: nothing was written
        assert [r.number for r in operators.blacklist_list(session)] == ["79991234567"]
        operators.blacklist_remove(session, "+79991234567")
    with pytest.raises(NotFound, match="is not blacklisted"), people.transaction() as session:
        operators.blacklist_remove(session, "+79991234567")
    placed = await place_bridge_call(people, switch, SETTINGS, "101", "+79991234567", "Sales")
    assert placed.number == "+79991234567" and len(switch.originated) == 1


async def test_statuses_follow_the_phones_registration(people: Store) -> None:
    tracker = operators.StatusTracker(people, FakeSwitch(node="n"), ("clients",), SETTINGS.operators)

    async def contact(endpoint: str, state: str) -> None:
        await tracker.handle(ev.ContactChanged(node="n", at=datetime.now(UTC), endpoint=endpoint, state=state))

    def status(extension: str) -> tuple[str, str | None]:
        with people.transaction() as session:
            person = get_operator(session, extension)
            return person.status, person.status_reason

    with people.transaction() as session:
        operators.set_status_by_hand(session, SETTINGS.operators, "101", "break", "lunch", None)
        operators.set_status_by_hand(session, SETTINGS.operators, "102", "available", None, None)
    await contact("101", "unreachable")
    assert status("101") == ("suspended", "unreachable")
    await contact("101", "reachable")
    assert status("101") == ("break", "lunch")  # back to what it was, reason included
    await contact("102", "unreachable")
    await contact("102", "reachable")
    assert status("102") == ("available", None)
    await contact("102", "removed")
    assert status("102") == ("offline", "unregistered")
    await contact("102", "reachable")  # registering again is not logging in
    await contact("102", "unreachable")  # an offline phone is not suspended
    assert status("102") == ("offline", "unregistered")
    await contact("clients", "removed")  # the trunk is nobody
    await contact("999", "removed")  # nor is an unknown endpoint
    with people.transaction() as session:
        sources = [(c.to_status, c.source) for c in operators.status_history(session, "102")]
    assert sources == [("offline", "pbx"), ("available", "pbx"), ("suspended", "pbx"), ("available", "cli")]
