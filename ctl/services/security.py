"""What went around ctl's rules: spies and recordings on the PBX that ctl did not start.

Every monitor is meant to pass ctl's rules and be one per call. A ChanSpy / eavesdrop or
a MixMonitor / uuid_record that matches no session or recording of ctl's own was started
by someone else — an AMI or ESL user, a dialplan edit, an injection — so it is logged at
error level, kept as an `unauthorised_monitor` event (shown by `ctl monitor log`), and by
default ended: the spy leg hung up, the recording stopped ([monitor] foreign_spy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl.store.engine import Store
from ctl.store.models import Call, SecurityEvent

log = logging.getLogger("ctl.security")


@dataclass(frozen=True)
class Foreign:
    """A spy or a recording nobody asked ctl for."""

    node: str
    at: datetime
    what: str  # "spy" or "recording"
    call_pbx_id: str | None
    channel_id: str
    channel_name: str | None
    target_channel_id: str | None


def record_unauthorised(store: Store, foreign: Foreign, action: str) -> int:
    """Log the event at error level and keep it; return its row id."""
    detail = (f"a {foreign.what} ctl did not start, on {foreign.channel_name or foreign.channel_id}"
              + (f" spying on {foreign.target_channel_id}" if foreign.target_channel_id else ""))
    with store.transaction() as session:
        call_id = None
        if foreign.call_pbx_id:
            call_id = session.scalar(select(Call.id).where(Call.node == foreign.node,
                                                           Call.pbx_call_id == foreign.call_pbx_id))
        row = SecurityEvent(node=foreign.node, kind="unauthorised_monitor", at=foreign.at, call_id=call_id,
                            channel_id=foreign.channel_id[:128], channel_name=(foreign.channel_name or None),
                            target_channel_id=foreign.target_channel_id, action=action, detail=detail[:300])
        session.add(row)
        session.flush()
        event_id = row.id
    log.error("unauthorised monitor: %s", detail, extra={"fields": {
        "event": "unauthorised_monitor", "id": event_id, "call": call_id, "channel_id": foreign.channel_id,
        "target_channel_id": foreign.target_channel_id, "action": action}})
    return event_id


def unauthorised_events(session: Session, since: datetime | None = None,
                        operator_id: int | None = None) -> list[dict[str, object]]:
    """The monitoring log's alerts, oldest first (optionally about one operator's calls)."""
    query = select(SecurityEvent, Call).outerjoin(Call, Call.id == SecurityEvent.call_id)
    if since is not None:
        query = query.where(SecurityEvent.at >= since)
    if operator_id is not None:
        query = query.where(Call.operator_id == operator_id)
    return [{"event": event.kind, "id": event.id, "at": event.at, "node": event.node, "call": event.call_id,
             "channel": event.channel_name or event.channel_id, "target_channel_id": event.target_channel_id,
             "action": event.action, "detail": event.detail}
            for event, _call in session.execute(query.order_by(SecurityEvent.at, SecurityEvent.id))]
