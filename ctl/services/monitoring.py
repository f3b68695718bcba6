"""Listen, whisper and barge: who may, on which call, and the session rows.

The rules: only roles configured for a mode may use it; nobody
monitors their own call; the operator must be in a call the PBX still has; at
most one monitor per call. The last rule is the store's: a partial unique index
on active sessions per call, so it holds across every controller sharing the
store, whatever races them. The checks before it only make the refusal clear.

Both entry points share this module: `ctl monitor …` (the CLI originates the
supervisor's leg into the spy context) and the feature codes (the dialplan asks
`ctl serve` over FastAGI, see ctl.asterisk.agi). `MonitorTracker` follows the
PBX's ChanSpy events and the spy leg's hangup to close sessions.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctl import events as ev
from ctl.config import MonitorSettings, Settings
from ctl.errors import (
    AlreadyMonitored,
    CallEnded,
    DomainError,
    Forbidden,
    NoActiveCall,
    NotFound,
    SwitchError,
)
from ctl.model import ChannelInfo, MonitorMode, SpyRequest
from ctl.services.calls import CallTracker
from ctl.services.directory import get_operator
from ctl.services.security import Foreign, record_unauthorised, unauthorised_events
from ctl.store import queries
from ctl.store.engine import Store
from ctl.store.models import Call, MonitorModeChange, MonitorSession, Operator
from ctl.switch import Switch
from ctl.validation import parse_since

log = logging.getLogger("ctl.monitor")
# A session whose spy has not attached this long after the supervisor's ring time is over.
ATTACH_GRACE_SECONDS = 15


def _now() -> datetime:
    return datetime.now(UTC)


def parse_mode(text: str) -> MonitorMode:
    try:
        return MonitorMode(text.strip().lower())
    except ValueError:
        raise DomainError(f"unknown mode {text!r}: listen, whisper or barge") from None


@dataclass(frozen=True)
class Approved:
    """A request that passed every rule: what to spy on, and for whom."""

    supervisor_id: int
    supervisor: str
    supervisor_dial: str
    operator_id: int
    operator: str
    call_id: int
    call_pbx_id: str
    mode: MonitorMode


def check_role(settings: MonitorSettings, person: Operator, mode: MonitorMode) -> None:
    if not settings.allowed(person.role, mode.value):
        allowed = ", ".join(getattr(settings, person.role)) or "no mode"
        raise Forbidden(f"{person.role} {person.extension} may not {mode.value} (the role allows: {allowed})")


def open_call_of(session: Session, operator: Operator) -> Call | None:
    return session.scalar(select(Call).where(Call.operator_id == operator.id, Call.state != "ended")
                          .order_by(Call.created_at.desc(), Call.id.desc()).limit(1))


def _monitored_error(session: Session, call: Call) -> AlreadyMonitored:
    active = session.scalar(select(MonitorSession).where(MonitorSession.call_id == call.id,
                                                         MonitorSession.ended_at.is_(None)))
    if active is None:  # ended between the insert and this read
        return AlreadyMonitored(f"call {call.id} was being monitored; try again")
    who = session.get(Operator, active.supervisor_id)
    name = f"{who.extension} ({who.name})" if who else "someone"
    since = active.started_at.astimezone().strftime("%H:%M:%S")
    return AlreadyMonitored(f"call {call.id} is already monitored by {name} since {since} "
                            f"(session {active.id}, {active.mode})")


def approve(session: Session, settings: MonitorSettings, supervisor_ext: str, operator_ext: str,
            mode: MonitorMode) -> Approved:
    """Every rule the store can check. The PBX-side ones (the call's legs) come after."""
    supervisor = get_operator(session, supervisor_ext)
    operator = get_operator(session, operator_ext)
    check_role(settings, supervisor, mode)
    if supervisor.id == operator.id:
        raise Forbidden(f"{supervisor.extension} cannot monitor their own call")
    call = open_call_of(session, operator)
    if call is None:
        raise NoActiveCall(f"operator {operator.extension} has no call in progress")
    if session.scalar(select(MonitorSession.id).where(MonitorSession.call_id == call.id,
                                                      MonitorSession.ended_at.is_(None))) is not None:
        raise _monitored_error(session, call)
    return Approved(supervisor.id, supervisor.extension, supervisor.dial_string, operator.id, operator.extension,
                    call.id, call.pbx_call_id, mode)


def target_channel(approved: Approved, legs: Iterable[tuple[str, str | None]]) -> str:
    """The exact channel of the operator's leg among the call's (name, endpoint) legs on the PBX."""
    legs = list(legs)
    if any(endpoint == approved.supervisor for _, endpoint in legs):
        raise Forbidden(f"{approved.supervisor} is a party to call {approved.call_id}: nobody monitors their own call")
    for name, endpoint in legs:
        if endpoint == approved.operator:
            return name
    raise CallEnded(f"call {approved.call_id} of operator {approved.operator} has ended")


def legs_in_snapshot(snapshot: list[ChannelInfo], call_pbx_id: str) -> list[tuple[str, str | None]]:
    return [(info.name, info.endpoint) for info in snapshot if info.call_id == call_pbx_id]


def open_session(store: Store, node: str, approved: Approved, spy_channel_id: str, follow: bool,
                 source: str) -> int:
    """Insert the active session; the unique index refuses a second one for the call."""
    started = _now()
    try:
        with store.transaction() as session:
            row = MonitorSession(node=node, call_id=approved.call_id, supervisor_id=approved.supervisor_id,
                                 operator_id=approved.operator_id, mode=approved.mode.value, follow=follow,
                                 spy_channel_id=spy_channel_id, started_at=started)
            row.mode_changes.append(MonitorModeChange(mode=approved.mode.value, changed_at=started, source=source))
            session.add(row)
            session.flush()
            session_id = row.id
    except IntegrityError:
        with store.transaction() as session:
            call = session.get(Call, approved.call_id)
            assert call is not None
            raise _monitored_error(session, call) from None
    log.info("monitor session started", extra={"fields": {
        "session": session_id, "call": approved.call_id, "operator": approved.operator,
        "supervisor": approved.supervisor, "mode": approved.mode.value, "follow": follow, "source": source}})
    return session_id


def end_session(session: Session, row: MonitorSession, at: datetime, reason: str) -> bool:
    if row.ended_at is not None:
        return False
    row.ended_at = at
    row.end_reason = row.end_reason or reason  # a reason set by whoever asked for the end wins
    log.info("monitor session ended", extra={"fields": {"session": row.id, "reason": row.end_reason}})
    return True


def abandon_session(store: Store, session_id: int, reason: str) -> None:
    """End a session that never got going (its spy leg was never told where to go)."""
    with store.transaction() as session:
        row = session.get(MonitorSession, session_id)
        if row is not None and row.ended_at is None:
            end_session(session, row, _now(), reason)


def record_mode(session: Session, row: MonitorSession, mode: MonitorMode, source: str) -> None:
    row.mode = mode.value
    row.mode_changes.append(MonitorModeChange(mode=mode.value, changed_at=_now(), source=source))
    log.info("monitor mode changed", extra={"fields": {"session": row.id, "mode": mode.value, "source": source}})


def accept_mode_change(session: Session, settings: MonitorSettings, node: str, spy_channel_id: str,
                       mode: MonitorMode) -> bool:
    """A digit the supervisor pressed (4 listen, 5 whisper, 6 barge): record the new mode if their
    role allows it; False when nothing changes (no session, same mode, or refused)."""
    row = session.query(MonitorSession).filter_by(node=node, spy_channel_id=spy_channel_id,
                                                  ended_at=None).one_or_none()
    if row is None or row.mode == mode.value:
        return False
    supervisor = session.get(Operator, row.supervisor_id)
    assert supervisor is not None
    try:
        check_role(settings, supervisor, mode)
    except Forbidden as error:
        log.warning("monitor mode refused", extra={"fields": {"session": row.id, "mode": mode.value,
                                                              "detail": str(error), "source": "dtmf"}})
        return False
    record_mode(session, row, mode, "dtmf")
    return True


def get_session(session: Session, session_id: int) -> MonitorSession:
    row = session.get(MonitorSession, session_id)
    if row is None:
        raise NotFound(f"no monitor session with id {session_id}")
    return row


def active_session_by(session: Session, supervisor_ext: str) -> MonitorSession:
    supervisor = get_operator(session, supervisor_ext)
    row = session.scalar(select(MonitorSession).where(MonitorSession.supervisor_id == supervisor.id,
                                                      MonitorSession.ended_at.is_(None))
                         .order_by(MonitorSession.started_at.desc()).limit(1))
    if row is None:
        raise NotFound(f"{supervisor_ext} has no active monitor session")
    return row


# ---------------------------------------------------------------------------
# Asked for on a connected switch (ctl monitor …); each check_* is the part that
# needs no PBX, so a refusal never waits for one
# ---------------------------------------------------------------------------
def check_monitoring(store: Store, settings: Settings, mode: MonitorMode, operator_ext: str,
                     supervisor_ext: str) -> Approved:
    with store.transaction() as session:
        return approve(session, settings.monitor, supervisor_ext, operator_ext, mode)


async def start_monitoring(store: Store, switch: Switch, settings: Settings, mode: MonitorMode, operator_ext: str,
                           supervisor_ext: str, follow: bool, source: str = "cli") -> int:
    """Ring the supervisor; on answer the spy context attaches to the operator's leg.
    `source`: the door the request came through (cli, api), kept with the session."""
    approved = check_monitoring(store, settings, mode, operator_ext, supervisor_ext)
    target = target_channel(approved, legs_in_snapshot(await switch.channels(), approved.call_pbx_id))
    if await switch.device_available(approved.supervisor_dial) is False:
        raise DomainError(f"{approved.supervisor}'s phone ({approved.supervisor_dial}) is not reachable: "
                          "not registered or unavailable")
    # 36 characters at most: FreeSWITCH keeps a channel uuid in 36 (and would cut a longer one).
    spy_channel_id = f"ctl-spy-{uuid.uuid4().hex[:28]}"
    session_id = open_session(store, switch.node, approved, spy_channel_id, follow, source)
    try:
        await switch.spy(SpyRequest(supervisor_dial=approved.supervisor_dial, target_channel=target, mode=mode,
                                    spy_channel_id=spy_channel_id, session_id=session_id, follow=follow,
                                    caller_id=f'"{mode.value} {approved.operator}" <{approved.operator}>',
                                    timeout=settings.monitor.ring_timeout))
    except SwitchError:
        with store.transaction() as session:
            end_session(session, get_session(session, session_id), _now(), "failed")
        raise
    return session_id


def check_mode_change(store: Store, settings: Settings, session_id: int, mode: MonitorMode) -> str | None:
    """The session's spy leg, or None when it is in that mode already (nothing to do)."""
    with store.transaction() as session:
        row = get_session(session, session_id)
        if row.ended_at is not None:
            raise NoActiveCall(f"monitor session {session_id} has ended ({row.end_reason})")
        supervisor = session.get(Operator, row.supervisor_id)
        assert supervisor is not None
        check_role(settings.monitor, supervisor, mode)
        spy_channel_id, current = row.spy_channel_id, row.mode
    if current == mode.value:
        return None
    assert spy_channel_id is not None
    return spy_channel_id


async def change_monitor_mode(store: Store, switch: Switch, settings: Settings, session_id: int,
                              mode: MonitorMode, source: str = "cli") -> None:
    spy_channel_id = check_mode_change(store, settings, session_id, mode)
    if spy_channel_id is None:
        return
    await switch.channels()  # learn the spy leg's name
    await switch.set_spy_mode(spy_channel_id, mode)
    with store.transaction() as session:
        record_mode(session, get_session(session, session_id), mode, source)


def _session_to_stop(session: Session, session_id: int | None, supervisor_ext: str | None) -> MonitorSession:
    row = get_session(session, session_id) if session_id is not None else \
        active_session_by(session, supervisor_ext or "")
    if row.ended_at is not None:
        raise NoActiveCall(f"monitor session {row.id} has already ended ({row.end_reason})")
    return row


def check_monitor_stop(store: Store, session_id: int | None, supervisor_ext: str | None) -> int:
    with store.transaction() as session:
        return _session_to_stop(session, session_id, supervisor_ext).id


async def stop_monitoring(store: Store, switch: Switch, session_id: int | None, supervisor_ext: str | None) -> int:
    with store.transaction() as session:
        row = _session_to_stop(session, session_id, supervisor_ext)
        row.end_reason = "stopped"  # ctl serve keeps it when the spy leg's hangup arrives
        found_id, spy_channel_id = row.id, row.spy_channel_id
    assert spy_channel_id is not None
    try:
        live = {info.channel_id for info in await switch.channels()}
        if spy_channel_id in live:
            await switch.hangup(spy_channel_id)
    except SwitchError:
        with store.transaction() as session:
            get_session(session, found_id).end_reason = None
        raise
    with store.transaction() as session:
        end_session(session, get_session(session, found_id), _now(), "stopped")
    return found_id


def monitor_log(session: Session, operator_ext: str | None, supervisor_ext: str | None,
                since_text: str | None) -> tuple[list[MonitorSession], list[dict[str, object]]]:
    """`ctl monitor log`: the sessions (oldest first, with their mode changes) and the alerts
    of spies or recordings ctl did not start. Nobody is "by" such a spy: no alerts with a supervisor."""
    operator_id = get_operator(session, operator_ext).id if operator_ext is not None else None
    supervisor_id = get_operator(session, supervisor_ext).id if supervisor_ext is not None else None
    since = parse_since(since_text) if since_text is not None else None
    rows = queries.monitor_sessions_since(session, operator_id, supervisor_id, since)
    alerts = [] if supervisor_ext is not None else unauthorised_events(session, since, operator_id)
    return rows, alerts


# ---------------------------------------------------------------------------
# Following the PBX (ctl serve)
# ---------------------------------------------------------------------------
Legs = Callable[[str], list[tuple[str, str | None]]]


@dataclass(frozen=True)
class _Claim:
    session_id: int
    spy_channel_id: str
    target: str
    mode: MonitorMode


class MonitorTracker:
    """Follows sessions from the PBX's own events; runs after CallTracker on each event.

    A following session (`--follow`) outlives the operator's call: its spy leg waits in
    the dialplan, the session lets go of the ended call, and when the operator's next
    call is bridged the session claims it — through the same unique index as any other
    request, so a call someone else already monitors is left alone — and the spy leg
    is pointed at the operator's new channel.

    Most events concern no session at all, so the store is asked only about channels
    known to be spy legs, calls a spy attached to, and bridges while a session waits.
    """

    def __init__(self, store: Store, switch: Switch, legs: Legs, settings: MonitorSettings | None = None,
                 names: Callable[[str], str | None] | None = None) -> None:
        self.store = store
        self.switch = switch
        self.node = switch.node
        self.legs = legs
        self.settings = settings or MonitorSettings()
        self.names = names or (lambda channel_id: None)  # a live channel's name, for the alerts
        self.spy_legs: set[str] = set()  # live supervisor legs (ctl-spy-… or a dialed feature code)
        self.spied_calls: set[str] = set()  # PBX ids of calls a spy attached to, until they end
        self.waiting: set[int] = set()  # following sessions between two calls

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.SwitchConnected):
            try:
                snapshot = await self.switch.channels()
            except SwitchError as error:
                log.warning("monitor reconciliation skipped: %s", error)
                return
            await asyncio.to_thread(self.reconcile, {info.channel_id for info in snapshot})
        elif isinstance(event, ev.ChannelCreated):
            if not CallTracker.is_call(event.call_id, event.dialed):
                self.spy_legs.add(event.channel_id)
        elif isinstance(event, ev.SpyStarted):
            if await asyncio.to_thread(self.attached, event):
                self.spy_legs.add(event.spy_channel_id)
                self.spied_calls.add(event.call_id)
            else:
                await self._foreign(event)
        elif isinstance(event, ev.OriginateFailed):
            if not CallTracker.is_call(event.channel_id, None):
                await asyncio.to_thread(self.apply, event)
        elif isinstance(event, ev.ChannelHungUp):
            if event.channel_id in self.spy_legs:
                self.spy_legs.discard(event.channel_id)
                ended = await asyncio.to_thread(self.apply, event)
                self.waiting.discard(ended or 0)
            if event.call_id in self.spied_calls:
                await asyncio.to_thread(self.release_ended_call, event.call_id)
        elif isinstance(event, ev.ChannelEnteredBridge) and self.waiting:
            claim = await asyncio.to_thread(self.claim_next_call, event.call_id)
            if claim is not None:
                self.waiting.discard(claim.session_id)
                await self._attach(claim)

    def release_ended_call(self, call_pbx_id: str) -> None:
        """The call of a following session ended: the session waits, holding no call."""
        with self.store.transaction() as session:
            call = session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == call_pbx_id))
            if call is None or call.state != "ended":
                return
            self.spied_calls.discard(call_pbx_id)
            rows = session.scalars(select(MonitorSession).where(MonitorSession.call_id == call.id,
                                                                MonitorSession.follow.is_(True),
                                                                MonitorSession.ended_at.is_(None)))
            for row in rows:
                row.call_id = None
                self.waiting.add(row.id)
                log.info("monitor waiting for the operator's next call", extra={"fields": {"session": row.id}})

    def claim_next_call(self, call_pbx_id: str) -> _Claim | None:
        with self.store.transaction() as session:
            call = session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == call_pbx_id))
            if call is None or call.operator_id is None or call.state != "bridged":
                return None
            row = session.scalar(select(MonitorSession).where(MonitorSession.node == self.node,
                                                              MonitorSession.operator_id == call.operator_id,
                                                              MonitorSession.follow.is_(True),
                                                              MonitorSession.call_id.is_(None),
                                                              MonitorSession.ended_at.is_(None)))
            if row is None:
                return None
            operator = session.get(Operator, call.operator_id)
            supervisor = session.get(Operator, row.supervisor_id)
            assert operator is not None and supervisor is not None
            legs = self.legs(call_pbx_id)
            target = next((name for name, endpoint in legs if endpoint == operator.extension), None)
            if target is None or any(endpoint == supervisor.extension for _, endpoint in legs):
                return None
            row.call_id = call.id
            try:
                session.flush()
            except IntegrityError:
                session.rollback()
                log.info("monitor: the operator's next call is already monitored; still waiting",
                         extra={"fields": {"session": row.id, "call": call.id}})
                return None
            assert row.spy_channel_id is not None
            log.info("monitor following to the next call", extra={"fields": {"session": row.id, "call": call.id}})
            return _Claim(row.id, row.spy_channel_id, target, MonitorMode(row.mode))

    async def _attach(self, claim: _Claim) -> None:
        try:
            await self.switch.spy_attach(claim.spy_channel_id, claim.target, claim.mode)
        except SwitchError as error:
            log.warning("monitor could not follow: %s", error, extra={"fields": {"session": claim.session_id}})
            with self.store.transaction() as session:
                row = session.get(MonitorSession, claim.session_id)
                if row is not None and row.ended_at is None:
                    row.call_id = None
                    self.waiting.add(row.id)

    def attached(self, event: ev.SpyStarted) -> bool:
        """Mark the session of this spy leg attached; False when the spy is none of ctl's sessions."""
        with self.store.transaction() as session:
            row = self._active(session, event.spy_channel_id)
            if row is None:
                return False
            if row.attached_at is None:
                row.attached_at = event.at
                log.info("monitor attached", extra={"fields": {"session": row.id}})
            return True

    async def _foreign(self, event: ev.SpyStarted) -> None:
        """A spy ctl did not start (an AMI user, a dialplan edit, an injection): alert, and end it."""
        hang_up = self.settings.foreign_spy == "hangup"
        foreign = Foreign(self.node, event.at, "spy", event.call_id, event.spy_channel_id,
                          self.names(event.spy_channel_id), event.target_channel_id)
        action = "logged"
        if hang_up:
            try:
                await self.switch.hangup(event.spy_channel_id)
                action = "hung_up"
            except SwitchError as error:
                log.error("could not hang up an unauthorised spy: %s", error)
        await asyncio.to_thread(record_unauthorised, self.store, foreign, action)

    def tick(self, now: datetime) -> list[int]:
        """End sessions whose spy never attached in time (a supervisor's phone that never
        answered and no hangup seen, a dialplan that never ran ChanSpy); return their ids."""
        deadline = self.settings.ring_timeout + ATTACH_GRACE_SECONDS
        ended = []
        with self.store.transaction() as session:
            rows = session.scalars(select(MonitorSession).where(MonitorSession.node == self.node,
                                                                MonitorSession.ended_at.is_(None),
                                                                MonitorSession.attached_at.is_(None)))
            for row in rows:
                if (now - row.started_at).total_seconds() > deadline:
                    end_session(session, row, now, "never_attached")
                    ended.append(row.id)
                    if row.spy_channel_id is not None:
                        self.spy_legs.discard(row.spy_channel_id)
        return ended

    def _active(self, session: Session, spy_channel_id: str) -> MonitorSession | None:
        return session.scalar(select(MonitorSession).where(MonitorSession.node == self.node,
                                                           MonitorSession.spy_channel_id == spy_channel_id,
                                                           MonitorSession.ended_at.is_(None)))

    def apply(self, event: ev.Event) -> int | None:
        """Apply a spy event; return the id of a session it ended."""
        if isinstance(event, ev.SpyStarted):
            self.attached(event)
        elif isinstance(event, ev.ChannelHungUp):
            with self.store.transaction() as session:
                row = self._active(session, event.channel_id)
                if row is None:
                    return None
                call = session.get(Call, row.call_id) if row.call_id is not None else None
                if row.attached_at is None:
                    reason = "supervisor_no_answer"
                elif call is not None and call.state == "ended":
                    reason = "call_ended"
                else:
                    reason = "supervisor_hangup"
                end_session(session, row, event.at, reason)
                return row.id
        elif isinstance(event, ev.OriginateFailed):
            with self.store.transaction() as session:
                row = self._active(session, event.channel_id)
                if row is not None:
                    end_session(session, row, event.at, "supervisor_unreachable")
                    return row.id
        return None

    def reconcile(self, live_channel_ids: set[str]) -> None:
        """After a (re)connect: sessions whose spy leg is gone end; the rest are watched again."""
        self.spy_legs, self.spied_calls, self.waiting = set(), set(), set()
        with self.store.transaction() as session:
            rows = session.scalars(select(MonitorSession).where(MonitorSession.node == self.node,
                                                                MonitorSession.ended_at.is_(None)))
            for row in rows:
                if row.spy_channel_id not in live_channel_ids:
                    end_session(session, row, _now(), "lost")
                    continue
                assert row.spy_channel_id is not None
                self.spy_legs.add(row.spy_channel_id)
                call = session.get(Call, row.call_id) if row.call_id is not None else None
                if call is not None:
                    self.spied_calls.add(call.pbx_call_id)
                elif row.follow:
                    self.waiting.add(row.id)
