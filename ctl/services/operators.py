"""Operator statuses set by hand, their history, and the number blacklist.

Every change of status is a row (who, from, to, reason, when, by whom and how): the
occupancy report is computed from those rows. By hand an operator is available, on a
break or do-not-disturb; talking, wrap-up, offline and suspended follow the PBX.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctl import events as ev
from ctl.config import OperatorSettings
from ctl.errors import Conflict, Forbidden, NotFound, ValidationError
from ctl.services.directory import get_operator
from ctl.store.engine import Store
from ctl.store.models import OPERATOR_STATUSES, BlacklistedNumber, Operator, OperatorStatusChange
from ctl.validation import check_text, normalise_number

log = logging.getLogger("ctl.operators")

MANUAL_STATUSES = ("available", "break", "dnd")
PAUSED_STATUSES = ("break", "dnd")
# Who may set someone else's status by hand.
STATUS_SETTERS = ("owner", "admin", "supervisor")


def _now() -> datetime:
    return datetime.now(UTC)


def record_status(session: Session, operator: Operator, status: str, reason: str | None, source: str,
                  set_by: str | None = None, at: datetime | None = None) -> OperatorStatusChange | None:
    """Move `operator` to `status` and keep the change; None when nothing changes."""
    if status not in OPERATOR_STATUSES:
        raise ValidationError(f"status: {status!r} is not one of {', '.join(OPERATOR_STATUSES)}")
    if operator.status == status and operator.status_reason == reason:
        return None
    when = at or _now()
    change = OperatorStatusChange(operator_id=operator.id, from_status=operator.status, to_status=status,
                                  reason=reason, changed_at=when, source=source, set_by=set_by)
    session.add(change)
    operator.status, operator.status_reason, operator.status_changed_at = status, reason, when
    return change


def set_status_by_hand(session: Session, settings: OperatorSettings, extension: str, status: str,
                       reason: str | None, by: str | None) -> tuple[Operator, bool]:
    """`ctl operator status`: available, break or dnd, with a reason from the configured list."""
    status = status.lower().replace("-", "_")
    if status not in MANUAL_STATUSES:
        raise ValidationError(f"status: expected available, break or dnd, got {status!r} "
                              "(talking, wrap-up, offline and suspended follow the PBX)")
    if reason is not None:
        reason = check_text(reason, "--reason", 200)
        if status not in PAUSED_STATUSES:
            raise ValidationError("--reason: only a break or do-not-disturb has a reason")
        if reason not in settings.pause_reasons:
            raise ValidationError(f"--reason: {reason!r} is not a pause reason "
                                  f"({', '.join(settings.pause_reasons)}; see [operators] pause_reasons)")
    operator = get_operator(session, extension)
    if by is not None and by != extension:
        setter = get_operator(session, by)
        if setter.role not in STATUS_SETTERS:
            raise Forbidden(f"{by} ({setter.role}) may not set another person's status")
    changed = record_status(session, operator, status, reason, "cli", by or extension)
    return operator, changed is not None


def status_history(session: Session, extension: str, since: datetime | None = None,
                   limit: int = 100) -> list[OperatorStatusChange]:
    operator = get_operator(session, extension)
    query = select(OperatorStatusChange).where(OperatorStatusChange.operator_id == operator.id)
    if since is not None:
        query = query.where(OperatorStatusChange.changed_at >= since)
    query = query.order_by(OperatorStatusChange.changed_at.desc(), OperatorStatusChange.id.desc()).limit(limit)
    return list(session.scalars(query))


# ---------------------------------------------------------------------------
# Statuses that follow the PBX (ctl serve)
# ---------------------------------------------------------------------------
class StatusTracker:
    """Moves people's statuses with their phones' registrations.

    Unregistered (the contact removed) → offline; unreachable (qualify failed) →
    suspended; reachable again after a suspension → the status before it. A phone that
    registers again stays offline until its operator says `available`: registering is
    not logging in.
    """

    def __init__(self, store: Store, trunks: tuple[str, ...]) -> None:
        self.store = store
        self.trunks = set(trunks)

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.ContactChanged) and event.endpoint not in self.trunks:
            await asyncio.to_thread(self.apply, event)

    def apply(self, event: ev.ContactChanged) -> None:
        with self.store.transaction() as session:
            operator = session.scalar(select(Operator).where(Operator.extension == event.endpoint))
            if operator is None:
                return
            if event.state == "removed":
                change = record_status(session, operator, "offline", "unregistered", "pbx", at=event.at)
            elif event.state == "unreachable" and operator.status != "offline":
                change = record_status(session, operator, "suspended", "unreachable", "pbx", at=event.at)
            elif event.state == "reachable" and operator.status == "suspended":
                before = session.scalar(select(OperatorStatusChange)
                                        .where(OperatorStatusChange.operator_id == operator.id,
                                               OperatorStatusChange.to_status == "suspended")
                                        .order_by(OperatorStatusChange.changed_at.desc(),
                                                  OperatorStatusChange.id.desc()).limit(1))
                status, reason = ("available", None) if before is None else \
                    (before.from_status, _reason_before(session, operator.id, before))
                change = record_status(session, operator, status, reason, "pbx", at=event.at)
            else:
                return
            if change is not None:
                log.info("status follows the phone", extra={"fields": {
                    "operator": operator.extension, "from": change.from_status, "to": change.to_status,
                    "contact": event.state}})


def _reason_before(session: Session, operator_id: int, suspension: OperatorStatusChange) -> str | None:
    """The reason the status had before `suspension` (e.g. a break's)."""
    earlier = session.scalar(select(OperatorStatusChange)
                             .where(OperatorStatusChange.operator_id == operator_id,
                                    OperatorStatusChange.changed_at <= suspension.changed_at,
                                    OperatorStatusChange.id < suspension.id)
                             .order_by(OperatorStatusChange.changed_at.desc(), OperatorStatusChange.id.desc())
                             .limit(1))
    return earlier.reason if earlier is not None and earlier.to_status == suspension.from_status else None


# ---------------------------------------------------------------------------
# Blacklist
# ---------------------------------------------------------------------------
def _digits(number: str) -> str:
    """The blacklist matches on digits: +79991234567 and 79991234567 are one number."""
    return normalise_number(number).lstrip("+")


def blacklist_add(session: Session, number: str, reason: str | None) -> BlacklistedNumber:
    number = _digits(number)
    reason = check_text(reason, "--reason", 200) if reason is not None else None
    if session.scalar(select(BlacklistedNumber.id).where(BlacklistedNumber.number == number)) is not None:
        raise Conflict(f"{number} is already blacklisted")
    row = BlacklistedNumber(number=number, reason=reason, added_at=_now())
    session.add(row)
    try:
        session.flush()
    except IntegrityError:  # added by someone else meanwhile
        raise Conflict(f"{number} is already blacklisted") from None
    return row


def blacklist_remove(session: Session, number: str) -> BlacklistedNumber:
    number = _digits(number)
    row = session.scalar(select(BlacklistedNumber).where(BlacklistedNumber.number == number))
    if row is None:
        raise NotFound(f"{number} is not blacklisted")
    session.delete(row)
    return row


def blacklist_list(session: Session) -> list[BlacklistedNumber]:
    return list(session.scalars(select(BlacklistedNumber).order_by(BlacklistedNumber.number)))


def check_dialable(session: Session, number: str) -> None:
    """Every originate path asks this before it dials a client."""
    row = session.scalar(select(BlacklistedNumber).where(BlacklistedNumber.number == _digits(number)))
    if row is not None:
        raise Forbidden(f"{number} is blacklisted{': ' + row.reason if row.reason else ''}; not dialed")
