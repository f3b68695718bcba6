"""The outbox: every change a client of the event stream cares about becomes an `events`
row in the same transaction as the change itself, whichever door made it (serve's trackers,
the CLI, the API, the feature codes). A flush hook reads what changed, so no use case has to
remember to publish — and nothing is published for a change that was rolled back.
"""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import insert, inspect
from sqlalchemy.orm import Session, UOWTransaction

from ctl.store.models import Call, EventRecord, MonitorModeChange, MonitorSession, Operator, Recording, Task, utcnow

Row = dict[str, Any]


def _change(obj: object, attribute: str) -> tuple[bool, Any, Any]:
    """(changed, old, new) of one attribute in this flush."""
    history = inspect(obj).attrs[attribute].history
    if not history.has_changes():
        return False, None, None
    old = history.deleted[0] if history.deleted else None
    new = history.added[0] if history.added else None
    return old != new, old, new


def _extension(session: Session, operator_id: int | None) -> str | None:
    if operator_id is None:
        return None
    with session.no_autoflush:
        person = session.get(Operator, operator_id)
    return person.extension if person is not None else None


def _event(kind: str, node: str | None, call_id: int | None, operator_id: int | None, **data: Any) -> Row:
    return {"at": utcnow(), "kind": kind, "node": node, "call_id": call_id, "operator_id": operator_id,
            "data": json.dumps(data, default=str, ensure_ascii=False)}


NEW_CALLS = "ctl.new_calls"  # session.info key: calls created in this transaction


def _call_base(session: Session, call: Call) -> dict[str, Any]:
    return {"call": call.id, "direction": call.direction, "operator": _extension(session, call.operator_id),
            "client": call.client_number}


def _call(session: Session, call: Call) -> list[Row]:
    if call in session.info.get(NEW_CALLS, ()):
        return []  # its call.created, written at commit, carries what it has become
    base = _call_base(session, call)
    changed, _, state = _change(call, "state")
    if not changed or state == "created":
        return []
    extra = {"cause": call.hangup_cause, "cause_code": call.hangup_cause_code} if state == "ended" else {}
    return [_event(f"call.{state}", call.node, call.id, call.operator_id, state=state, **base, **extra)]


def _operator(person: Operator) -> list[Row]:
    changed, old, status = _change(person, "status")
    if not changed:
        return []
    return [_event("operator.status", None, None, person.id, extension=person.extension, status=status,
                   previous=old, reason=person.status_reason)]


def _monitor(session: Session, row: MonitorSession, new: bool) -> list[Row]:
    # operator_id None: who monitors whom is shown to the team only.
    base = {"session": row.id, "call": row.call_id, "operator": _extension(session, row.operator_id),
            "supervisor": _extension(session, row.supervisor_id)}
    if new:
        return [_event("monitor.started", row.node, row.call_id, None, mode=row.mode, follow=row.follow, **base)]
    events = []
    if _change(row, "attached_at")[0] and row.attached_at is not None:
        events.append(_event("monitor.attached", row.node, row.call_id, None, **base))
    if _change(row, "ended_at")[0] and row.ended_at is not None:
        events.append(_event("monitor.stopped", row.node, row.call_id, None, end_reason=row.end_reason, **base))
    return events


def _mode(session: Session, change: MonitorModeChange, new_sessions: set[int]) -> list[Row]:
    if change.session_id in new_sessions:  # a new session's first mode is its monitor.started
        return []
    with session.no_autoflush:
        row = session.get(MonitorSession, change.session_id)
    if row is None:
        return []
    return [_event("monitor.mode", row.node, row.call_id, None, session=row.id, mode=change.mode,
                   source=change.source)]


_RECORDING_KINDS: dict[tuple[str | None, str], str] = {
    ("starting", "recording"): "recording.started",
    ("recording", "paused"): "recording.paused",
    ("paused", "recording"): "recording.resumed",
}


def _recording(session: Session, row: Recording) -> list[Row]:
    changed, old, state = _change(row, "state")
    return _recording_event(session, row, old, state) if changed else []


def _recording_event(session: Session, row: Recording, old: str | None, state: str) -> list[Row]:
    if state == "stopped":
        kind = "recording.stopped" if row.complete else "recording.incomplete"
    elif state == "failed":
        kind = "recording.failed"
    else:
        kind = _RECORDING_KINDS.get((old, state), f"recording.{state}")
    with session.no_autoflush:
        call = session.get(Call, row.call_id)
    operator_id = call.operator_id if call is not None else None
    return [_event(kind, row.node, row.call_id, operator_id, recording=row.id, call=row.call_id, state=state,
                   source=row.source, stop_reason=row.stop_reason, problem=row.problem)]


_TASK_KINDS = {"placing": "task.placed", "done": "task.done", "overdue": "task.overdue",
               "cancelled": "task.cancelled"}


def _task(session: Session, task: Task, new: bool) -> list[Row]:
    base = {"task": task.id, "number": task.number, "assignee": _extension(session, task.assignee_id),
            "due_at": task.due_at.isoformat() if task.due_at else None}
    if new:
        return [_event("task.created", None, task.call_id, task.assignee_id, **base)]
    events = []
    if _change(task, "reminded_at")[0] and task.reminded_at is not None:
        events.append(_event("task.due", None, task.call_id, task.assignee_id, **base))
    changed, _, state = _change(task, "state")
    if changed and state in _TASK_KINDS:
        events.append(_event(_TASK_KINDS[state], None, task.call_id, task.assignee_id, outcome=task.outcome,
                             **base))
    return events


def record_changes(session: Session, _flush: UOWTransaction) -> None:
    """after_flush: the objects still show what this flush changed; ids are assigned."""
    rows: list[Row] = []
    new_sessions = {obj.id for obj in session.new if isinstance(obj, MonitorSession)}
    for obj in session.new:
        if isinstance(obj, Call):
            # Published at commit: the operator, direction and state a call is created with are
            # often set in the same transaction after its first flush.
            session.info.setdefault(NEW_CALLS, []).append(obj)
        elif isinstance(obj, MonitorSession):
            rows += _monitor(session, obj, new=True)
        elif isinstance(obj, MonitorModeChange):
            rows += _mode(session, obj, new_sessions)
        elif isinstance(obj, Task):
            rows += _task(session, obj, new=True)
    for obj in session.dirty:
        if isinstance(obj, Call):
            rows += _call(session, obj)
        elif isinstance(obj, Operator):
            rows += _operator(obj)
        elif isinstance(obj, MonitorSession):
            rows += _monitor(session, obj, new=False)
        elif isinstance(obj, Recording):
            rows += _recording(session, obj)
        elif isinstance(obj, Task):
            rows += _task(session, obj, new=False)
    if rows:
        session.connection().execute(insert(EventRecord), rows)


def publish_new_calls(session: Session) -> None:
    """before_commit: one call.created per call of this transaction, with its values as they are now."""
    session.flush()  # a call added and never flushed is new only from this flush on
    calls = session.info.get(NEW_CALLS, [])  # kept until after_commit: commit's own flush skips them too
    rows = [_event("call.created", call.node, call.id, call.operator_id, state=call.state,
                   **_call_base(session, call)) for call in calls if call.id is not None]
    if rows:
        session.connection().execute(insert(EventRecord), rows)


def forget_new_calls(session: Session, *_args: object) -> None:
    session.info.pop(NEW_CALLS, None)


def recording_state_changed(session: Session, row: Recording, old: str) -> None:
    """For a compare-and-set done with an UPDATE statement, which the flush hook does not see."""
    rows = _recording_event(session, row, old, row.state)
    if rows:
        session.connection().execute(insert(EventRecord), rows)


def task_placed(session: Session, task: Task) -> None:
    """For the claim of a due task done with an UPDATE statement (TaskScheduler)."""
    base = {"task": task.id, "number": task.number, "assignee": _extension(session, task.assignee_id),
            "due_at": task.due_at.isoformat() if task.due_at else None}
    session.connection().execute(insert(EventRecord), [_event("task.placed", None, task.call_id, task.assignee_id,
                                                              placed_to=_extension(session, task.placed_to_id),
                                                              **base)])


def record_event(session: Session, kind: str, node: str | None, **data: Any) -> None:
    """An event with no row of its own behind it (the PBX link coming and going)."""
    session.add(EventRecord(**_event(kind, node, None, None, **data)))
