"""What a person, a call, a recording or a monitor session looks like to the outside: the
field names the CLI's --json and the HTTP API share (one vocabulary)."""

from __future__ import annotations

from typing import Any

from ctl.store.models import Call, MonitorSession, Operator, Project, Recording, Task


def operator_row(operator: Operator) -> dict[str, Any]:
    return {"extension": operator.extension, "name": operator.name, "role": operator.role,
            "dial_string": operator.dial_string, "status": operator.status}


def call_row(call: Call, full: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "id": call.id,
        "state": call.state,
        "direction": call.direction,
        "operator": call.operator.extension if call.operator else None,
        "client": call.client_number,
        "project": call.project.name if call.project else None,
        "created_at": call.created_at,
        "answered_at": call.answered_at,
        "ended_at": call.ended_at,
        "cause": call.hangup_cause,
    }
    if full:
        row.update({
            "node": call.node,
            "pbx_call_id": call.pbx_call_id,
            "bridged_at": call.bridged_at,
            "cause_code": call.hangup_cause_code,
            "duration_s": round((call.ended_at - call.answered_at).total_seconds(), 1)
            if call.ended_at and call.answered_at else None,
            "result": call.result,
            "comment": call.comment,
            "review": call.review,
            "recording": None,  # the recording's path, filled in by `call show` from its row
        })
    return row


def recording_row(rec: Recording) -> dict[str, Any]:
    return {
        "call": rec.call_id,
        "state": rec.state,
        "path": rec.path,
        "stereo": rec.stereo,
        "source": rec.source,
        "started_at": rec.started_at,
        "stopped_at": rec.stopped_at,
        "stop_reason": rec.stop_reason,
        "size_bytes": rec.size_bytes,
        "duration_s": None if rec.duration_ms is None else rec.duration_ms / 1000,
        "complete": rec.complete,
        "problem": rec.problem,
        "purged_at": rec.purged_at,
        "pauses": [{"paused_at": p.paused_at, "resumed_at": p.resumed_at, "source": p.source} for p in rec.pauses],
    }


def session_row(row: MonitorSession) -> dict[str, Any]:
    return {
        "id": row.id,
        "call": row.call_id,
        "operator": row.operator.extension if row.operator else None,
        "supervisor": row.supervisor.extension if row.supervisor else None,
        "mode": row.mode,
        "follow": row.follow,
        "started_at": row.started_at,
        "attached_at": row.attached_at,
        "ended_at": row.ended_at,
        "end_reason": row.end_reason,
    }


def call_card_row(call: Call, recording: Recording | None) -> dict[str, Any]:
    """`call show` and GET /calls/{id}: the call in full, with its recording's summary."""
    row = call_row(call, full=True)
    if recording is not None:
        details = recording_row(recording)
        row.update({"recording": details["path"], "recording_state": details["state"],
                    "recording_complete": details["complete"], "recording_duration_s": details["duration_s"],
                    "recording_pauses": len(details["pauses"])})
    return row


def project_row(project: Project, full: bool = False) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": project.name,
        "members": [m.extension for m in project.members],
        "result_codes": [r.code for r in project.result_codes],
        "recording": project.recording_policy,
        "stereo": project.recording_stereo,
        "record_supervisor": project.recording_supervisor,
        "queue": project.queue,
        "wrapup_seconds": project.wrapup_seconds,
    }
    if full:
        row["result_codes"] = [{"code": r.code, "label": r.label, "successful": r.successful}
                               for r in project.result_codes]
        row["script"] = project.script
        row["created_at"] = project.created_at
    return row


def task_row(task: Task) -> dict[str, Any]:
    return {"id": task.id, "number": task.number, "due_at": task.due_at, "auto": task.auto, "state": task.state,
            "project": task.project.name if task.project else None,
            "assignee": task.assignee.extension if task.assignee else None,
            "source_call": task.source_call_id, "call": task.call_id,
            "placed_to": task.placed_to.extension if task.placed_to else None, "attempts": task.attempts,
            "reminded_at": task.reminded_at, "note": task.note, "outcome": task.outcome}


def monitor_log_rows(sessions: list[MonitorSession], alerts: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """`monitor log`: each session with its mode changes, and each unauthorised spy or
    recording, oldest first."""
    rows: list[dict[str, Any]] = []
    for row in sessions:
        entry = {"event": "session", **session_row(row)}
        entry["modes"] = [{"mode": c.mode, "at": c.changed_at, "source": c.source} for c in row.mode_changes]
        rows.append(entry)
    return sorted(rows + alerts, key=lambda entry: entry.get("started_at") or entry["at"])
