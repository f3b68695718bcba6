"""Operator statuses set by hand, their history, and the number blacklist.

Every change of status is a row (who, from, to, reason, when, by whom and how): the
occupancy report is computed from those rows. By hand an operator is available, on a
break or do-not-disturb; talking, wrap-up, offline and suspended follow the PBX.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctl import events as ev
from ctl.config import OperatorSettings
from ctl.errors import Conflict, Forbidden, NotFound, SwitchError, ValidationError
from ctl.model import ChannelInfo, ChannelState
from ctl.services.directory import get_operator
from ctl.store.engine import Store
from ctl.store.models import OPERATOR_STATUSES, BlacklistedNumber, Call, Operator, OperatorStatusChange, Project
from ctl.switch import Switch
from ctl.validation import check_text, normalise_number

log = logging.getLogger("ctl.operators")

MANUAL_STATUSES = ("available", "break", "dnd")
PAUSED_STATUSES = ("break", "dnd")
# Who may set someone else's status by hand.
STATUS_SETTERS = ("owner", "admin", "supervisor")


def _now() -> datetime:
    return datetime.now(UTC)


def record_status(session: Session, operator: Operator, status: str, reason: str | None, source: str,
                  set_by: str | None = None, at: datetime | None = None,
                  call_id: int | None = None) -> OperatorStatusChange | None:
    """Move `operator` to `status` and keep the change; None when nothing changes."""
    if status not in OPERATOR_STATUSES:
        raise ValidationError(f"status: {status!r} is not one of {', '.join(OPERATOR_STATUSES)}")
    if operator.status == status and operator.status_reason == reason:
        return None
    when = at or _now()
    change = OperatorStatusChange(operator_id=operator.id, from_status=operator.status, to_status=status,
                                  reason=reason, changed_at=when, source=source, set_by=set_by, call_id=call_id)
    session.add(change)
    operator.status, operator.status_reason, operator.status_changed_at = status, reason, when
    return change


def latest_change(session: Session, operator_id: int, to_status: str | None = None) -> OperatorStatusChange | None:
    """The operator's most recent change (into `to_status`, when given)."""
    query = select(OperatorStatusChange).where(OperatorStatusChange.operator_id == operator_id)
    if to_status is not None:
        query = query.where(OperatorStatusChange.to_status == to_status)
    return session.scalar(query.order_by(OperatorStatusChange.changed_at.desc(),
                                         OperatorStatusChange.id.desc()).limit(1))


def set_status_by_hand(session: Session, settings: OperatorSettings, extension: str, status: str,
                       reason: str | None, by: str | None, source: str = "cli") -> tuple[Operator, bool]:
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
    changed = record_status(session, operator, status, reason, source, by or extension)
    return operator, changed is not None


def status_history(session: Session, extension: str, since: datetime | None = None,
                   limit: int = 100) -> list[OperatorStatusChange]:
    operator = get_operator(session, extension)
    query = select(OperatorStatusChange).where(OperatorStatusChange.operator_id == operator.id)
    if since is not None:
        query = query.where(OperatorStatusChange.changed_at >= since)
    query = query.order_by(OperatorStatusChange.changed_at.desc(), OperatorStatusChange.id.desc()).limit(limit)
    return list(session.scalars(query))


def logout(session: Session, extension: str, force: bool, reason: str | None,
           by: str | None) -> tuple[Operator, bool]:
    """`ctl operator logout`: offline. A person in a call needs `--force` (an admin's act);
    a forced logout keeps its reason, and `ctl serve` pauses the phone in every queue."""
    if reason is not None:
        reason = check_text(reason, "--reason", 200)
    operator = get_operator(session, extension)
    if by is not None and by != extension:
        setter = get_operator(session, by)
        if setter.role not in ("owner", "admin"):
            raise Forbidden(f"{by} ({setter.role}) may not log another person out (admins and owners may)")
    if operator.status == "talking" and not force:
        raise Conflict(f"{extension} is in a call; --force logs them out anyway (the call goes on)")
    reason = reason or ("forced logout" if force else None)
    changed = record_status(session, operator, "offline", reason, "cli", by or extension)
    return operator, changed is not None


def wrapup_limit(session: Session, settings: OperatorSettings, call: Call | None) -> int:
    """Seconds of wrap-up a call's operator gets (0: none)."""
    project = None if call is None or call.project_id is None else session.get(Project, call.project_id)
    if project is not None and project.wrapup_seconds is not None:
        return project.wrapup_seconds
    return settings.wrapup_seconds


def release_wrapup(session: Session, call: Call, source: str = "cli") -> str | None:
    """The result of the call an operator is wrapping up is saved: they are available again.
    Returns the operator's status afterwards (None: the call has no operator)."""
    operator = session.get(Operator, call.operator_id) if call.operator_id is not None else None
    if operator is None:
        return None
    if operator.status == "wrap_up":
        wrapping = latest_change(session, operator.id, "wrap_up")
        if wrapping is not None and wrapping.call_id == call.id:
            record_status(session, operator, "available", None, source, call_id=call.id)
    return operator.status


def expire_wrapups(session: Session, settings: OperatorSettings, now: datetime) -> list[Operator]:
    """Wrap-ups past their project's maximum end: the operator is available again."""
    released = []
    for operator in session.scalars(select(Operator).where(Operator.status == "wrap_up")):
        wrapping = latest_change(session, operator.id, "wrap_up")
        call = session.get(Call, wrapping.call_id) if wrapping is not None and wrapping.call_id else None
        if operator.status_changed_at + timedelta(seconds=wrapup_limit(session, settings, call)) <= now:
            record_status(session, operator, "available", None, "system", at=now,
                          call_id=call.id if call is not None else None)
            released.append(operator)
    return released


# ---------------------------------------------------------------------------
# Statuses that follow the PBX (ctl serve)
# ---------------------------------------------------------------------------
class StatusTracker:
    """Moves people's statuses with their phones: registrations and calls.

    Registration: unregistered → offline; unreachable (qualify failed) → suspended;
    reachable again after a suspension → the status before it. A phone that registers
    again stays offline until its operator says `available`: registering is not logging in.

    Calls: a person whose phone dials, or whose leg of a call is answered, is talking.
    When their last leg hangs up they go to wrap-up if the call was a project's and has
    no result yet (until `ctl call result`, or the project's maximum), else back to the
    status they had before the call (a break stays a break).
    """

    def __init__(self, store: Store, switch: Switch, trunks: tuple[str, ...], settings: OperatorSettings) -> None:
        self.store = store
        self.switch = switch
        self.node = switch.node
        self.trunks = set(trunks)
        self.settings = settings
        self._legs: dict[str, tuple[str, str]] = {}  # channel id → (endpoint, call id): people's legs of calls
        self._talking: dict[str, dict[str, str]] = {}  # endpoint → {channel id: call id} of legs in conversation
        self._not_calls: set[str] = set()  # call ids of feature-code dials (monitor sessions)

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.SwitchConnected):
            try:
                snapshot = await self.switch.channels()
            except SwitchError as error:
                log.warning("status reconciliation skipped: %s", error)
                return
            await self.reconcile(snapshot, event.at)
        elif isinstance(event, ev.ContactChanged):
            if event.endpoint not in self.trunks:
                await asyncio.to_thread(self.apply_contact, event)
        elif isinstance(event, ev.ChannelCreated):
            await self._created(event)
        elif isinstance(event, ev.ChannelStateChanged):
            if event.state is ChannelState.UP and event.channel_id in self._legs:
                await self._talk(event.channel_id, event.at)
        elif isinstance(event, ev.ChannelHungUp):
            await self._hung_up(event)

    def _is_call(self, call_id: str, channel_id: str, dialed: str | None) -> bool:
        if call_id.startswith("ctl-spy-") or call_id in self._not_calls:
            return False
        if channel_id == call_id and (dialed or "").startswith("*"):
            self._not_calls.add(call_id)
            return False
        return True

    async def _created(self, event: ev.ChannelCreated) -> None:
        if event.endpoint is None or event.endpoint in self.trunks:
            return
        if not self._is_call(event.call_id, event.channel_id, event.dialed):
            return
        self._legs[event.channel_id] = (event.endpoint, event.call_id)
        if event.channel_id == event.call_id and event.dialed is not None:
            await self._talk(event.channel_id, event.at)  # dialing from the phone is talking

    async def _talk(self, channel_id: str, at: datetime) -> None:
        endpoint, call_id = self._legs[channel_id]
        legs = self._talking.setdefault(endpoint, {})
        first = not legs
        legs[channel_id] = call_id
        if first:
            await asyncio.to_thread(self.start_talking, endpoint, call_id, at)

    async def _hung_up(self, event: ev.ChannelHungUp) -> None:
        self._not_calls.discard(event.channel_id)
        leg = self._legs.pop(event.channel_id, None)
        if leg is None:
            return
        endpoint, call_id = leg
        legs = self._talking.get(endpoint)
        if legs is None or legs.pop(event.channel_id, None) is None:
            return
        if not legs:
            del self._talking[endpoint]
            await asyncio.to_thread(self.stop_talking, endpoint, call_id, event.at)

    def _call_row(self, session: Session, pbx_call_id: str) -> Call | None:
        return session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == pbx_call_id))

    def _person(self, session: Session, endpoint: str) -> Operator | None:
        return session.scalar(select(Operator).where(Operator.extension == endpoint))

    def start_talking(self, endpoint: str, pbx_call_id: str, at: datetime) -> None:
        with self.store.transaction() as session:
            operator = self._person(session, endpoint)
            if operator is None or operator.status == "talking":
                return
            call = self._call_row(session, pbx_call_id)
            change = record_status(session, operator, "talking", None, "pbx", at=at,
                                   call_id=call.id if call is not None else None)
            if change is not None:
                _log_change(operator, change, "call")

    def stop_talking(self, endpoint: str, pbx_call_id: str | None, at: datetime) -> None:
        with self.store.transaction() as session:
            operator = self._person(session, endpoint)
            if operator is None or operator.status != "talking":
                return  # e.g. logged out by force during the call: that stands
            talking = latest_change(session, operator.id, "talking")
            call = self._call_row(session, pbx_call_id) if pbx_call_id is not None else None
            if call is None and talking is not None and talking.call_id is not None:
                call = session.get(Call, talking.call_id)
            if call is not None and call.project_id is not None and call.result is None \
                    and wrapup_limit(session, self.settings, call) > 0:
                change = record_status(session, operator, "wrap_up", None, "pbx", at=at, call_id=call.id)
            else:
                before = (talking.from_status, _reason_before(session, operator.id, talking)) \
                    if talking is not None else ("available", None)
                if before[0] == "talking":
                    before = ("available", None)
                change = record_status(session, operator, before[0], before[1], "pbx", at=at,
                                       call_id=call.id if call is not None else None)
            if change is not None:
                _log_change(operator, change, "call")

    async def reconcile(self, snapshot: list[ChannelInfo], at: datetime) -> None:
        """After a (re)connect: who is in a call now, from the PBX's live channels."""
        self._legs.clear()
        self._talking.clear()
        self._not_calls.clear()
        by_call: dict[str, list[ChannelInfo]] = {}
        for info in snapshot:
            by_call.setdefault(info.call_id, []).append(info)
        for call_id, infos in by_call.items():
            first = next((i for i in infos if i.channel_id == call_id), None)
            if first is not None and not self._is_call(call_id, first.channel_id, first.dialed):
                continue
            if call_id.startswith("ctl-spy-"):
                continue
            for info in infos:
                if info.endpoint is None or info.endpoint in self.trunks:
                    continue
                self._legs[info.channel_id] = (info.endpoint, call_id)
                if info.state is ChannelState.UP or (info.channel_id == call_id and info.dialed is not None):
                    self._talking.setdefault(info.endpoint, {})[info.channel_id] = call_id
        talking = {endpoint: next(iter(legs.values())) for endpoint, legs in self._talking.items()}
        await asyncio.to_thread(self._apply_snapshot, talking, at)

    def _apply_snapshot(self, talking: dict[str, str], at: datetime) -> None:
        with self.store.transaction() as session:
            stale = [o.extension for o in session.scalars(select(Operator).where(Operator.status == "talking"))
                     if o.extension not in talking]
        for endpoint, call_id in talking.items():
            self.start_talking(endpoint, call_id, at)
        for endpoint in stale:
            self.stop_talking(endpoint, None, at)

    def tick(self, now: datetime) -> None:
        """Every second in `ctl serve`: wrap-ups past their maximum end."""
        with self.store.transaction() as session:
            for operator in expire_wrapups(session, self.settings, now):
                log.info("wrap-up time is over", extra={"fields": {"operator": operator.extension}})

    def apply_contact(self, event: ev.ContactChanged) -> None:
        with self.store.transaction() as session:
            operator = self._person(session, event.endpoint)
            if operator is None:
                return
            if event.state == "removed":
                change = record_status(session, operator, "offline", "unregistered", "pbx", at=event.at)
            elif event.state == "unreachable" and operator.status != "offline":
                change = record_status(session, operator, "suspended", "unreachable", "pbx", at=event.at)
            elif event.state == "reachable" and operator.status == "suspended":
                before = latest_change(session, operator.id, "suspended")
                status, reason = ("available", None) if before is None else \
                    (before.from_status, _reason_before(session, operator.id, before))
                change = record_status(session, operator, status, reason, "pbx", at=event.at)
            else:
                return
            if change is not None:
                _log_change(operator, change, event.state)


def _log_change(operator: Operator, change: OperatorStatusChange, cause: str) -> None:
    log.info("status follows the phone", extra={"fields": {
        "operator": operator.extension, "from": change.from_status, "to": change.to_status,
        "cause": cause, "call": change.call_id}})


def _reason_before(session: Session, operator_id: int, suspension: OperatorStatusChange) -> str | None:
    """The reason the status had before `suspension` (or a call): e.g. a break's."""
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
