"""The live event stream's reads: the outbox rows after a given id that a viewer may see,
the PBX link's comings and goings, and the retention of old rows."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from ctl.services.directory import get_operator
from ctl.services.visibility import sees_team
from ctl.store.engine import Store
from ctl.store.models import EventRecord
from ctl.store.outbox import record_event

# Kinds only the team sees, whoever they are about.
TEAM_ONLY = ("monitor.", "pbx.")


@dataclass(frozen=True)
class Event:
    id: int
    at: datetime
    kind: str
    node: str | None
    call: int | None
    data: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "at": self.at.isoformat(), "kind": self.kind, "node": self.node,
                "call": self.call, **self.data}


def events_after(session: Session, last_id: int, viewer_role: str | None, viewer_extension: str | None,
                 limit: int = 500) -> list[Event]:
    """Oldest first, after `last_id`: every event for the team, an operator's own otherwise."""
    query = select(EventRecord).where(EventRecord.id > last_id).order_by(EventRecord.id).limit(limit)
    if not sees_team(viewer_role):
        me = get_operator(session, viewer_extension or "")
        query = query.where(EventRecord.operator_id == me.id)
        for prefix in TEAM_ONLY:
            query = query.where(EventRecord.kind.not_like(f"{prefix}%"))
    return [Event(row.id, row.at, row.kind, row.node, row.call_id, json.loads(row.data))
            for row in session.scalars(query)]


def last_event_id(session: Session) -> int:
    return session.scalar(select(EventRecord.id).order_by(EventRecord.id.desc()).limit(1)) or 0


def pbx_link(store: Store, node: str, connected: bool, reason: str | None = None) -> None:
    with store.transaction() as session:
        record_event(session, "pbx.connected" if connected else "pbx.disconnected", node, reason=reason)


def purge_events(session: Session, now: datetime, retention_days: int) -> int:
    result = session.execute(delete(EventRecord).where(EventRecord.at < now - timedelta(days=retention_days)))
    return int(getattr(result, "rowcount", 0) or 0)


def committed_ids(session: Session, last_id: int, limit: int = 500) -> list[tuple[int, datetime]]:
    """(id, at) of every event after `last_id`, whoever sees it: to tell a gap in the ids (a
    transaction that took its id and has not committed yet) from the end of the stream."""
    query = select(EventRecord.id, EventRecord.at).where(EventRecord.id > last_id).order_by(EventRecord.id)
    return [(row.id, row.at) for row in session.execute(query.limit(limit))]


def safe_point(last_id: int, ids: list[tuple[int, datetime]], now: datetime, hole_wait: timedelta) -> int:
    """The highest id up to which nothing can still appear. Ids are given in insertion order
    but committed in any order (PostgreSQL, several writers): a missing id is waited for, unless
    the row after it is older than `hole_wait` (then it was rolled back or purged)."""
    safe = last_id
    for event_id, at in ids:
        if event_id != safe + 1 and now - at < hole_wait:
            break
        safe = event_id
    return safe
