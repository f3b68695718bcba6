"""Callback tasks: their checks, reminders, overdue marking and automatic callbacks, on the
FakeSwitch and on SQLite and PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from ctl.config import Settings
from ctl.errors import ActionFailed, Conflict, DomainError, Forbidden, NotFound, ValidationError
from ctl.services import operators
from ctl.services.directory import ResultCodeSpec, add_operator, add_project
from ctl.services.tasks import TaskScheduler, add_task, close_task, due_tasks, get_task, list_tasks, parse_when, zone
from ctl.store.engine import Store
from ctl.store.models import Call, Task
from ctl.testing import FakeSwitch

SETTINGS = Settings()
NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture
def people(store: Store) -> Store:
    with store.transaction() as session:
        for extension in ("101", "102", "103", "104"):
            add_operator(session, SETTINGS.calls, extension, f"P{extension}", "operator", None)
        sales = add_project(session, "Sales", "", [ResultCodeSpec("sale", "Sale", True)], ["101", "102", "103"])
        session.add(Call(node="n", pbx_call_id="old-1", direction="outbound", state="ended",
                         client_number="+7999000111", operator_id=operators.get_operator(session, "101").id,
                         project_id=sales.id))
        session.add(Call(node="n", pbx_call_id="old-2", direction="internal", state="ended"))
        operators.blacklist_add(session, "+7999666", "asked not to be called")
    return store


def test_when_a_task_is_due_is_parsed_strictly() -> None:
    assert parse_when("+90s", NOW) == NOW + timedelta(seconds=90)
    assert parse_when("+2h", NOW) == NOW + timedelta(hours=2)
    assert parse_when("2026-12-01T10:00+03:00", NOW) == datetime(2026, 12, 1, 7, 0, tzinfo=UTC)
    assert parse_when("2026-07-01 10:00", NOW, zone("Europe/Berlin")) == datetime(2026, 7, 1, 8, 0, tzinfo=UTC)
    assert zone(None) is None and zone("UTC") == ZoneInfo("UTC")
    for text in ("tomorrow", "+5", "+1w", "10:00:00:00", ""):
        with pytest.raises(ValidationError, match="--at"):
            parse_when(text, NOW)
    with pytest.raises(ValidationError, match="not a time zone"):
        zone("Mars/Olympus")


def test_a_task_is_checked_before_anything_is_written(people: Store) -> None:
    soon = NOW + timedelta(minutes=30)
    cases: list[tuple[dict[str, object], type[Exception], str]] = [
        ({}, ValidationError, "one of them"),
        ({"call_id": 1, "number": "+7999"}, ValidationError, "one of them"),
        ({"number": "+7999123", "due": NOW - timedelta(minutes=5)}, ValidationError, "in the past"),
        ({"number": "+7999123", "due": NOW + timedelta(days=400)}, ValidationError, "more than a year"),
        ({"number": "call me"}, ValidationError, "not a phone number"),
        ({"number": "+7 999 666"}, Forbidden, "blacklisted"),
        ({"number": "+7999123", "auto": True}, ValidationError, "--auto needs a project"),
        ({"number": "+7999123", "project_name": "Sales", "assignee": "104"}, DomainError, "not a member"),
        ({"number": "+7999123", "project_name": "Nope"}, NotFound, "no project"),
        ({"number": "+7999123", "assignee": "999"}, NotFound, "no operator"),
        ({"call_id": 99}, NotFound, "no call"),
        ({"call_id": 2}, DomainError, "no client number"),
        ({"call_id": 1, "project_name": "Other"}, ValidationError, "belongs to 'Sales'"),
        ({"number": "+7999123", "note": "x" * 2001}, ValidationError, "--note"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message), people.transaction() as session:
            add_task(session, **{"due": soon, "now": NOW, **kwargs})  # type: ignore[arg-type]
    with people.transaction() as session:
        assert session.query(Task).count() == 0
        from_call = add_task(session, due=soon, call_id=1, auto=True, now=NOW)
        assert (from_call.number, from_call.project.name, from_call.assignee.extension) == (  # type: ignore[union-attr]
            "+7999000111", "Sales", "101")  # the call's client, project and operator
        by_number = add_task(session, due=soon, number="8 (999) 123-45-67", assignee="104", now=NOW)
        assert (by_number.number, by_number.project_id, by_number.auto) == ("89991234567", None, False)


async def _scheduler(people: Store, **task_settings: int) -> tuple[TaskScheduler, FakeSwitch]:
    switch = FakeSwitch(node="n")
    await switch.connect()
    settings = replace(SETTINGS, tasks=replace(SETTINGS.tasks, **task_settings))
    return TaskScheduler(people, switch, settings), switch


def _state(people: Store, task_id: int) -> tuple[str, int, str | None]:
    with people.transaction() as session:
        task = get_task(session, task_id)
        return task.state, task.attempts, task.placed_to.extension if task.placed_to else None


def _set_status(people: Store, extension: str, status: str) -> None:
    with people.transaction() as session:
        operators.set_status_by_hand(session, SETTINGS.operators, extension, status, None, None)


def _end_call(people: Store, call_id: int, bridged: bool) -> None:
    with people.transaction() as session:
        call = session.get(Call, call_id)
        assert call is not None
        if bridged:
            call.bridged_at = NOW
            call.state = "bridged"
        else:
            call.state, call.hangup_cause = "ended", "no_answer"


async def test_a_manual_task_is_reminded_then_overdue(people: Store) -> None:
    scheduler, switch = await _scheduler(people)
    with people.transaction() as session:
        task_id = add_task(session, due=NOW + timedelta(minutes=10), number="+7999123", assignee="102", now=NOW).id
    await scheduler.tick(NOW)
    with people.transaction() as session:
        assert due_tasks(session, SETTINGS.tasks, NOW) == []
        assert get_task(session, task_id).reminded_at is None
    await scheduler.tick(NOW + timedelta(minutes=5))  # 5 minutes before
    with people.transaction() as session:
        assert [t.id for t in due_tasks(session, SETTINGS.tasks, NOW + timedelta(minutes=5), "102")] == [task_id]
        assert get_task(session, task_id).reminded_at == NOW + timedelta(minutes=5)
    await scheduler.tick(NOW + timedelta(minutes=10, seconds=1))
    assert _state(people, task_id)[0] == "overdue"
    assert switch.originated == []  # a manual task is never dialed
    with people.transaction() as session:
        assert close_task(session, task_id, "done", "called from my phone").state == "done"
    with pytest.raises(Conflict, match="already done"), people.transaction() as session:
        close_task(session, task_id, "cancelled", None)


async def test_an_automatic_callback_rings_the_assignee_or_an_available_colleague(people: Store) -> None:
    scheduler, switch = await _scheduler(people)
    with people.transaction() as session:
        first = add_task(session, due=NOW + timedelta(seconds=30), number="+7999123", assignee="101",
                         project_name="Sales", auto=True, now=NOW).id
        second = add_task(session, due=NOW + timedelta(seconds=30), number="+7999124", assignee="101",
                          project_name="Sales", auto=True, now=NOW).id
    _set_status(people, "101", "available")
    _set_status(people, "103", "available")
    _set_status(people, "102", "available")  # available after 103: 103 waited longer
    await scheduler.tick(NOW)
    assert switch.originated == []  # not yet
    await scheduler.tick(NOW + timedelta(seconds=30))
    assert [r.channel for r in switch.originated] == ["PJSIP/101", "PJSIP/103"]  # one task each, never two for one
    assert _state(people, first) == ("placing", 1, "101")
    assert _state(people, second) == ("placing", 1, "103")
    with people.transaction() as session:
        call_ids = [get_task(session, t).call_id for t in (first, second)]
        placed = session.get(Call, call_ids[0])
        assert placed is not None and placed.project is not None and placed.project.name == "Sales"
        assert placed.client_number == "+7999123"
    _end_call(people, call_ids[0], bridged=True)
    _end_call(people, call_ids[1], bridged=False)
    await scheduler.tick(NOW + timedelta(seconds=40))
    assert _state(people, first)[0] == "done"
    assert _state(people, second)[0] == "pending"  # retried later
    with people.transaction() as session:
        retry = get_task(session, second)
        assert retry.due_at == NOW + timedelta(seconds=40 + SETTINGS.tasks.retry_seconds)
        assert "attempt 1 failed" in (retry.outcome or "")


async def test_nobody_available_waits_and_failures_end_overdue(people: Store) -> None:
    scheduler, switch = await _scheduler(people, attempts=2, retry_seconds=10)
    with people.transaction() as session:
        task_id = add_task(session, due=NOW, number="+7999123", assignee="101", project_name="Sales", auto=True,
                           now=NOW).id
    _set_status(people, "101", "break")
    await scheduler.tick(NOW + timedelta(seconds=1))
    await scheduler.tick(NOW + timedelta(seconds=2))
    assert switch.originated == [] and _state(people, task_id) == ("pending", 0, None)  # no attempt spent
    _set_status(people, "102", "available")
    switch.originate_error = ActionFailed("Asterisk refused to originate")
    await scheduler.tick(NOW + timedelta(seconds=3))
    assert _state(people, task_id) == ("pending", 1, "102")
    switch.originate_error = None
    await scheduler.tick(NOW + timedelta(seconds=13))
    assert _state(people, task_id) == ("placing", 2, "102")
    with people.transaction() as session:
        call_id = get_task(session, task_id).call_id
    assert call_id is not None
    _end_call(people, call_id, bridged=False)
    await scheduler.tick(NOW + timedelta(seconds=20))
    with people.transaction() as session:
        task = get_task(session, task_id)
        assert task.state == "overdue" and "not reached after 2 attempts" in (task.outcome or "")
        assert [t.id for t in list_tasks(session, "overdue")] == [task_id]
        assert list_tasks(session, "open") == [task]


async def test_two_controllers_never_dial_the_same_task(people: Store) -> None:
    one, switch_one = await _scheduler(people)
    two, switch_two = await _scheduler(people)
    with people.transaction() as session:
        add_task(session, due=NOW, number="+7999123", project_name="Sales", auto=True, now=NOW)
    _set_status(people, "101", "available")
    claims = one.claim_due(NOW) + two.claim_due(NOW)
    assert len(claims) == 1


def test_task_list_refuses_an_unknown_state(people: Store) -> None:
    with pytest.raises(ValidationError, match="--state"), people.transaction() as session:
        list_tasks(session, "finished")
