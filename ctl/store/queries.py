"""Plain reads: the rows a listing or a lookup shows, with the relations it shows loaded."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from ctl.store.models import Call, MonitorSession, Operator, Recording

ACTIVE_RECORDING_STATES = ("starting", "recording", "paused")


def calls(session: Session, active: bool, limit: int, operator_id: int | None = None) -> list[Call]:
    """Newest first; `active`: only calls not yet ended; `operator_id`: only that operator's."""
    query = select(Call).options(selectinload(Call.operator), selectinload(Call.project))
    if active:
        query = query.where(Call.state != "ended")
    if operator_id is not None:
        query = query.where(Call.operator_id == operator_id)
    query = query.order_by(Call.created_at.desc(), Call.id.desc()).limit(limit)
    return list(session.scalars(query))


def call(session: Session, call_id: int) -> Call | None:
    return session.get(Call, call_id, options=[selectinload(Call.operator), selectinload(Call.project)])


def recording_of_call(session: Session, call_id: int) -> Recording | None:
    return session.scalar(select(Recording).where(Recording.call_id == call_id)
                          .options(selectinload(Recording.pauses)))


def recordings(session: Session, active: bool, limit: int) -> list[Recording]:
    """Newest first; `active`: only recordings in progress."""
    query = select(Recording).options(selectinload(Recording.pauses))
    if active:
        query = query.where(Recording.state.in_(ACTIVE_RECORDING_STATES))
    query = query.order_by(Recording.requested_at.desc(), Recording.id.desc()).limit(limit)
    return list(session.scalars(query))


def _sessions() -> Any:
    return select(MonitorSession).options(selectinload(MonitorSession.operator),
                                          selectinload(MonitorSession.supervisor),
                                          selectinload(MonitorSession.mode_changes))


def monitor_sessions(session: Session, active: bool, limit: int) -> list[MonitorSession]:
    """Newest first; `active`: only sessions in progress."""
    query = _sessions()
    if active:
        query = query.where(MonitorSession.ended_at.is_(None))
    query = query.order_by(MonitorSession.started_at.desc(), MonitorSession.id.desc()).limit(limit)
    return list(session.scalars(query))


def monitor_sessions_since(session: Session, operator_id: int | None, supervisor_id: int | None,
                           since: datetime | None) -> list[MonitorSession]:
    """Oldest first, each with its mode changes; optionally of one operator, one supervisor, from `since`."""
    query = _sessions()
    if operator_id is not None:
        query = query.where(MonitorSession.operator_id == operator_id)
    if supervisor_id is not None:
        query = query.where(MonitorSession.supervisor_id == supervisor_id)
    if since is not None:
        query = query.where(MonitorSession.started_at >= since)
    return list(session.scalars(query.order_by(MonitorSession.started_at, MonitorSession.id)))


def operator_by_extension(session: Session, extension: str) -> Operator | None:
    return session.scalar(select(Operator).where(Operator.extension == extension.strip()))


def node_of_call(session: Session, call_id: int) -> str | None:
    row = session.get(Call, call_id)
    return row.node if row is not None else None


def node_of_monitor_session(session: Session, session_id: int | None, supervisor: str | None) -> str | None:
    """The node of session `session_id`, else of `supervisor`'s active session."""
    query = select(MonitorSession.node)
    if session_id is not None:
        query = query.where(MonitorSession.id == session_id)
    else:
        query = query.join(Operator, Operator.id == MonitorSession.supervisor_id).where(
            Operator.extension == (supervisor or "").strip(), MonitorSession.ended_at.is_(None))
    return session.scalar(query.limit(1))
