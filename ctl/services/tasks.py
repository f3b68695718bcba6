"""Callback tasks: a client to call back at a time.

A manual task is a reminder: `ctl serve` logs it `remind_minutes` before its time and
`ctl task due` lists it; once its time has passed without `ctl task done` it is overdue.
An automatic task is dialed by `ctl serve` at its time through its project: the
assignee's phone rings first if they are available, else that of any available member
of the project (the one available longest), then the client's. A reached client makes
it done; an attempt that fails (nobody answers, a phone unreachable) is retried
`retry_seconds` later, and after `attempts` tries the task is overdue. While nobody
is available it waits, without spending an attempt.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ctl.config import Settings, TaskSettings
from ctl.errors import Conflict, DomainError, NotFound, SwitchError, ValidationError
from ctl.services.calls import get_call, ring_person_then_client
from ctl.services.directory import get_operator, get_project
from ctl.services.operators import check_dialable
from ctl.store.engine import Store
from ctl.store.models import TASK_STATES, Call, Operator, Project, Task
from ctl.store.outbox import task_placed
from ctl.switch import Switch
from ctl.validation import check_text, normalise_number

log = logging.getLogger("ctl.tasks")

_RELATIVE = re.compile(r"\+(\d{1,6})([smhd])")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
OPEN_STATES = ("pending", "placing", "overdue")
MAX_AHEAD = timedelta(days=366)
PAST_TOLERANCE = timedelta(seconds=60)


def _now() -> datetime:
    return datetime.now(UTC)


def zone(name: str | None) -> ZoneInfo | None:
    """A named time zone (--tz), None for the machine's local zone."""
    if name is None:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValidationError(f"--tz: {name!r} is not a time zone name (e.g. Europe/Moscow, UTC)") from None


def parse_when(text: str, now: datetime, tz: ZoneInfo | None = None, field: str = "--at") -> datetime:
    """+90s, +10m, +2h, +1d; or an ISO date-time, with an offset or in `tz` (default: local)."""
    text = text.strip()
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now + timedelta(seconds=int(relative.group(1)) * _UNIT_SECONDS[relative.group(2)])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is neither +N[s|m|h|d] nor an ISO date-time "
                              "(e.g. 2026-11-23T10:30)") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=tz) if tz is not None else parsed.astimezone()
    return parsed.astimezone(UTC)


def add_task(session: Session, *, due: datetime, call_id: int | None = None, number: str | None = None,
             assignee: str | None = None, auto: bool = False, project_name: str | None = None,
             note: str | None = None, by: str | None = None, now: datetime | None = None) -> Task:
    """`ctl task add`: every check first; nothing is written if one fails."""
    now = now or _now()
    if (call_id is None) == (number is None):
        raise ValidationError("give --call ID or --number NUMBER (one of them)")
    if due < now - PAST_TOLERANCE:
        raise ValidationError(f"--at: {due.isoformat(timespec='seconds')} is in the past")
    if due > now + MAX_AHEAD:
        raise ValidationError("--at: more than a year ahead")
    if note is not None:
        note = check_text(note, "--note", 2000, allow_newlines=True)
    project: Project | None = None
    person: Operator | None = None
    source: Call | None = None
    if call_id is not None:
        source = get_call(session, call_id)
        if source.client_number is None:
            raise DomainError(f"call {call_id} has no client number to call back")
        number = source.client_number
        project = source.project
        if project_name is not None and (project is None or project.name != project_name.strip()):
            raise ValidationError(f"--project: call {call_id} belongs to "
                                  f"{repr(project.name) if project else 'no project'}; leave --project out")
        if assignee is None and source.operator is not None:
            person = source.operator
    else:
        assert number is not None
        number = normalise_number(number, "--number")
        if project_name is not None:
            project = get_project(session, project_name)
    if assignee is not None:
        person = get_operator(session, assignee)
    if project is not None and person is not None and project.members and person not in project.members:
        raise DomainError(f"{person.extension} is not a member of project {project.name!r}")
    if auto and project is None and person is None:
        raise ValidationError("--auto needs a project (--project, or a call that has one) or an --assignee")
    check_dialable(session, number)
    task = Task(number=number, project_id=project.id if project else None, assignee_id=person.id if person else None,
                source_call_id=source.id if source else None, auto=auto, state="pending", due_at=due, note=note,
                created_at=now, created_by=by)
    session.add(task)
    session.flush()
    return task


def get_task(session: Session, task_id: int) -> Task:
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound(f"no task with id {task_id}")
    return task


def list_tasks(session: Session, state: str | None = None, assignee: str | None = None,
               limit: int = 100) -> list[Task]:
    query = select(Task)
    if state is not None:
        if state not in TASK_STATES + ("open",):
            raise ValidationError(f"--state: expected open or one of {', '.join(TASK_STATES)}, got {state!r}")
        query = query.where(Task.state.in_(OPEN_STATES) if state == "open" else Task.state == state)
    if assignee is not None:
        query = query.where(Task.assignee_id == get_operator(session, assignee).id)
    return list(session.scalars(query.order_by(Task.due_at, Task.id).limit(limit)))


def due_tasks(session: Session, settings: TaskSettings, now: datetime, assignee: str | None = None) -> list[Task]:
    """Manual tasks whose reminder is raised: due within `remind_minutes`, or overdue."""
    query = select(Task).where(Task.auto.is_(False), Task.state.in_(("pending", "overdue")),
                               Task.due_at <= now + timedelta(minutes=settings.remind_minutes))
    if assignee is not None:
        query = query.where(Task.assignee_id == get_operator(session, assignee).id)
    return list(session.scalars(query.order_by(Task.due_at, Task.id)))


def close_task(session: Session, task_id: int, state: str, outcome: str | None, now: datetime | None = None) -> Task:
    """`ctl task done` / `ctl task cancel`."""
    assert state in ("done", "cancelled")
    task = get_task(session, task_id)
    if task.state not in OPEN_STATES:
        raise Conflict(f"task {task_id} is already {task.state}")
    if outcome is not None:
        outcome = check_text(outcome, "--comment", 300)
    task.state, task.closed_at, task.outcome = state, now or _now(), outcome or f"{state} by hand"
    return task


# ---------------------------------------------------------------------------
# ctl serve
# ---------------------------------------------------------------------------
class TaskScheduler:
    """Raises reminders, marks overdue tasks, and dials automatic callbacks. One tick a second."""

    def __init__(self, store: Store, switch: Switch, settings: Settings,
                 others: Sequence[Switch] = ()) -> None:
        self.store = store
        self.switch = switch
        self.settings = settings
        # With two PBXs: the assignee's phone decides which one places the callback.
        self.switches = {s.node: s for s in (switch, *others)}
        self._waiting_logged: set[int] = set()  # tasks already logged as waiting for someone available

    async def tick(self, now: datetime) -> None:
        await asyncio.to_thread(self.housekeeping, now)
        if not self.switch.connected:
            return
        for task_id, person_id in await asyncio.to_thread(self.claim_due, now):
            await self.place(task_id, person_id, now)

    # -- store work (worker thread) ---------------------------------------------------
    def housekeeping(self, now: datetime) -> None:
        settings = self.settings.tasks
        with self.store.transaction() as session:
            remind = session.scalars(select(Task).where(
                Task.auto.is_(False), Task.state == "pending", Task.reminded_at.is_(None),
                Task.due_at <= now + timedelta(minutes=settings.remind_minutes)))
            for task in remind:
                task.reminded_at = now
                log.info("task reminder", extra={"fields": _fields(task)})
            late = session.scalars(select(Task).where(Task.auto.is_(False), Task.state == "pending",
                                                      Task.due_at < now))
            for task in late:
                task.state, task.closed_at, task.outcome = "overdue", now, "its time passed without being done"
                log.info("task overdue", extra={"fields": _fields(task)})
            for task in session.scalars(select(Task).where(Task.state == "placing")):
                self._follow(session, task, now)

    def _follow(self, session: Session, task: Task, now: datetime) -> None:
        """An automatic callback in flight: done once the client is reached, else retried."""
        call = session.get(Call, task.call_id) if task.call_id is not None else None
        if call is None:
            return  # place() has not written it yet
        if call.bridged_at is not None:
            who = task.placed_to.extension if task.placed_to is not None else "?"
            task.state, task.closed_at, task.outcome = "done", now, f"client reached by {who} (call {call.id})"
            log.info("task done", extra={"fields": _fields(task)})
        elif call.state == "ended":
            self._attempt_failed(task, now, f"call {call.id} ended: {call.hangup_cause}")

    def _attempt_failed(self, task: Task, now: datetime, why: str) -> None:
        if task.attempts >= self.settings.tasks.attempts:
            task.state, task.closed_at = "overdue", now
            task.outcome = f"not reached after {task.attempts} attempts; last: {why}"[:300]
            log.warning("task overdue", extra={"fields": _fields(task)})
        else:
            task.state, task.due_at = "pending", now + timedelta(seconds=self.settings.tasks.retry_seconds)
            task.outcome = f"attempt {task.attempts} failed: {why}"[:300]
            log.info("task attempt failed; will retry", extra={"fields": _fields(task)})

    def claim_due(self, now: datetime) -> list[tuple[int, int]]:
        """Automatic tasks whose time has come, each with who to ring, claimed so that no
        other controller sharing the store dials it too."""
        claimed: list[tuple[int, int]] = []
        taken: set[int] = set()
        with self.store.transaction() as session:
            due = list(session.scalars(select(Task).where(Task.auto.is_(True), Task.state == "pending",
                                                          Task.due_at <= now).order_by(Task.due_at, Task.id)))
            for task in due:
                person = self._pick(session, task, taken)
                if person is None:
                    if task.id not in self._waiting_logged:
                        self._waiting_logged.add(task.id)
                        log.info("task waits for an available operator", extra={"fields": _fields(task)})
                    continue
                result = session.execute(update(Task).where(Task.id == task.id, Task.state == "pending")
                                         .values(state="placing", attempts=Task.attempts + 1,
                                                 placed_to_id=person.id, call_id=None)
                                         .execution_options(synchronize_session=False))
                if getattr(result, "rowcount", 0) == 1:
                    session.refresh(task)
                    task_placed(session, task)  # an UPDATE statement: the flush hook does not see it
                    taken.add(person.id)
                    claimed.append((task.id, person.id))
                    self._waiting_logged.discard(task.id)
        return claimed

    @staticmethod
    def _pick(session: Session, task: Task, taken: set[int]) -> Operator | None:
        """The assignee if available, else the project member available the longest."""
        assignee = task.assignee
        if assignee is not None and assignee.status == "available" and assignee.id not in taken:
            return assignee
        if task.project_id is None:
            return None
        project = session.get(Project, task.project_id)
        candidates = [m for m in (project.members if project else [])
                      if m.status == "available" and m.id not in taken]
        return min(candidates, key=lambda m: (m.status_changed_at, m.extension), default=None)

    # -- the PBX (event loop) ---------------------------------------------------------------
    def _switch_of(self, person: Operator) -> Switch:
        if len(self.switches) == 1:
            return self.switch
        from ctl.errors import ConfigError
        from ctl.pbx import node_of_dial_string

        try:
            node = node_of_dial_string(self.settings, person.dial_string)
        except ConfigError as error:
            raise DomainError(str(error)) from None
        return self.switches.get(node, self.switch)

    async def place(self, task_id: int, person_id: int, now: datetime) -> None:
        with self.store.transaction() as session:
            task = get_task(session, task_id)
            person = session.get(Operator, person_id)
            assert person is not None
            session.expunge(person)
            number, project_id = task.number, task.project_id
        try:
            placed = await ring_person_then_client(self.store, self._switch_of(person), self.settings, person,
                                                   number, project_id)
        except (DomainError, SwitchError) as error:
            with self.store.transaction() as session:
                task = get_task(session, task_id)
                if task.state == "placing":
                    self._attempt_failed(task, now, str(error))
            return
        with self.store.transaction() as session:
            task = get_task(session, task_id)
            task.call_id = placed.id
            log.info("task callback placed", extra={"fields": {**_fields(task), "call": placed.id,
                                                               "operator": person.extension}})


def _fields(task: Task) -> dict[str, object]:
    return {"task": task.id, "number": task.number, "due_at": task.due_at.isoformat(timespec="seconds"),
            "auto": task.auto, "state": task.state, "attempts": task.attempts,
            "assignee": task.assignee.extension if task.assignee is not None else None}
