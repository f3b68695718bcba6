"""Calls: placing click-to-call bridges, and keeping the calls table in step with the PBX.

`place_bridge_call` checks everything it can before the first row is written or
the first frame is sent. `CallTracker` follows the PBX-neutral events of one
switch: a call is the PBX's grouping of channels (Asterisk Linkedid) and moves
forward only: created → ringing → answered → bridged → ended. When the store
and the PBX disagree, the PBX wins: after every (re)connect the tracker takes a
snapshot of the live channels and ends the calls that are gone.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from ctl import events as ev
from ctl.config import Settings
from ctl.errors import ActionFailed, CallEnded, DomainError, NotFound, SwitchError, ValidationError
from ctl.model import CallState, ChannelInfo, ChannelState, Direction, HangupCause, OriginateRequest
from ctl.pbx import trunks_of
from ctl.services.directory import get_operator, get_project
from ctl.store import queries
from ctl.store.engine import Store
from ctl.store.models import Call, Operator, Project, Recording
from ctl.switch import Switch
from ctl.validation import check_text, inbound_number, normalise_number

log = logging.getLogger("ctl.calls")


def _now() -> datetime:
    return datetime.now(UTC)


def new_call_id() -> str:
    """A PBX channel id chosen by ctl: the first leg's Uniqueid, hence the call's Linkedid."""
    return f"ctl-{uuid.uuid4().hex}"


@dataclass(frozen=True)
class PlacedCall:
    id: int
    pbx_call_id: str
    operator: str
    number: str


@dataclass(frozen=True)
class _First:
    """Who is rung first: their extension, their phone, and the operator the call row names."""

    extension: str
    dial: str
    operator_id: int


@dataclass(frozen=True)
class _ToClient:
    """A click-to-call that passed every check the store can make."""

    first: _First
    number: str
    project_id: int | None


@dataclass(frozen=True)
class _ToOperator:
    first: _First
    dial: str
    extension: str


def check_bridge_call(store: Store, operator_extension: str, number: str, project_name: str | None) -> _ToClient:
    """Every refusal of `place_bridge_call` that needs no PBX."""
    number = normalise_number(number, "--to")
    with store.transaction() as session:
        operator = get_operator(session, operator_extension)
        project_id = None
        if project_name is not None:
            project = get_project(session, project_name)
            if project.members and operator not in project.members:
                raise DomainError(f"operator {operator.extension} is not a member of project {project.name!r}")
            project_id = project.id
        first = _First(operator.extension, operator.dial_string, operator.id)
    _check_dialable(store, number)
    return _ToClient(first, number, project_id)


async def place_bridge_call(store: Store, switch: Switch, settings: Settings, operator_extension: str,
                            number: str, project_name: str | None) -> PlacedCall:
    """Ring the operator; when they answer, the dialplan dials the client and bridges them."""
    checked = check_bridge_call(store, operator_extension, number, project_name)
    return await _ring_client(store, switch, settings, checked)


def check_dial_client(store: Store, call_id: int, from_extension: str) -> _ToClient:
    """Every refusal of `dial_client_of` that needs no PBX."""
    with store.transaction() as session:
        call = get_call(session, call_id)
        if call.client_number is None:
            raise DomainError(f"call {call_id} has no client number to dial")
        person = get_operator(session, from_extension)
        first = _First(person.extension, person.dial_string, person.id)
        number, project_id = call.client_number, call.project_id
    _check_dialable(store, number)
    return _ToClient(first, number, project_id)


async def dial_client_of(store: Store, switch: Switch, settings: Settings, call_id: int,
                         from_extension: str) -> PlacedCall:
    """After a session: ring `from_extension`, then the client of call `call_id` (same project)."""
    return await _ring_client(store, switch, settings, check_dial_client(store, call_id, from_extension))


def check_dial_operator(store: Store, call_id: int, from_extension: str) -> _ToOperator:
    """Every refusal of `dial_operator_of` that needs no PBX."""
    with store.transaction() as session:
        call = get_call(session, call_id)
        operator = session.get(Operator, call.operator_id) if call.operator_id is not None else None
        if operator is None:
            raise DomainError(f"call {call_id} has no operator to dial")
        person = get_operator(session, from_extension)
        if person.id == operator.id:
            raise DomainError(f"{from_extension} is the operator of call {call_id}")
        return _ToOperator(_First(person.extension, person.dial_string, operator.id), operator.dial_string,
                           operator.extension)


async def dial_operator_of(store: Store, switch: Switch, settings: Settings, call_id: int,
                           from_extension: str) -> PlacedCall:
    """A debrief: ring `from_extension`, then the operator of call `call_id`, internally."""
    checked = check_dial_operator(store, call_id, from_extension)
    return await _ring_then_dial(store, switch, settings, checked.first, checked.dial, checked.extension, None, None,
                                 Direction.INTERNAL)


def client_dial(settings: Settings, node: str, number: str) -> str:
    """The dial string of a client number on `node`: [freeswitch] client_dial on the
    FreeSWITCH node, [calls] client_dial on Asterisk."""
    pattern = settings.freeswitch.client_dial if settings.freeswitch.host and node == settings.freeswitch.node \
        else settings.calls.client_dial
    return pattern.replace("{number}", number)


def _check_dialable(store: Store, number: str) -> None:
    from ctl.services.operators import check_dialable

    with store.transaction() as session:
        check_dialable(session, number)


async def _ring_client(store: Store, switch: Switch, settings: Settings, checked: _ToClient) -> PlacedCall:
    return await _ring_then_dial(store, switch, settings, checked.first,
                                 client_dial(settings, switch.node, checked.number), checked.number, checked.number,
                                 checked.project_id, Direction.OUTBOUND)


async def ring_person_then_client(store: Store, switch: Switch, settings: Settings, person: Operator, number: str,
                                  project_id: int | None) -> PlacedCall:
    """A click-to-call for `person` (an automatic callback task)."""
    _check_dialable(store, number)
    first = _First(person.extension, person.dial_string, person.id)
    return await _ring_client(store, switch, settings, _ToClient(first, number, project_id))


@dataclass(frozen=True)
class SavedResult:
    call_id: int
    code: str
    label: str
    successful: bool
    operator: str | None = None
    operator_status: str | None = None  # after the save: available if it ended their wrap-up


def save_result(session: Session, call_id: int, code: str, comment: str | None) -> SavedResult:
    """`ctl call result`: a result code of the call's project, and optionally a comment."""
    call = get_call(session, call_id)
    project = call.project
    if project is None:
        raise DomainError(f"call {call_id} belongs to no project: it has no result codes")
    found = next((r for r in project.result_codes if r.code == code), None)
    if found is None:
        codes = ", ".join(r.code for r in project.result_codes) or "none"
        raise DomainError(f"project {project.name!r} has no result code {code!r} (codes: {codes})")
    from ctl.services.operators import release_wrapup

    call.result = found.code
    if comment is not None:
        call.comment = check_text(comment, "comment", 4000, allow_newlines=True, required=False) or None
    status = release_wrapup(session, call)
    return SavedResult(call_id, found.code, found.label, found.successful,
                       call.operator.extension if call.operator is not None else None, status)


def get_call(session: Session, call_id: int) -> Call:
    call = session.get(Call, call_id)
    if call is None:
        raise NotFound(f"no call with id {call_id}")
    return call


def call_card(session: Session, call_id: int) -> tuple[Call, Recording | None]:
    """`ctl call show`: the call with its operator and project, and its recording (pauses loaded)."""
    call = queries.call(session, call_id)
    if call is None:
        raise NotFound(f"no call with id {call_id}")
    return call, queries.recording_of_call(session, call_id)


def set_comment(session: Session, call_id: int, comment: str | None) -> None:
    """Printable, bounded text (every door); empty clears it."""
    text = check_text(comment, "comment", 4000, allow_newlines=True, required=False) if comment else ""
    get_call(session, call_id).comment = text or None


def set_review(session: Session, call_id: int, review: bool) -> None:
    get_call(session, call_id).review = review


async def _ring_then_dial(store: Store, switch: Switch, settings: Settings, first: _First, second_dial: str,
                          shown: str, client_number: str | None, project_id: int | None,
                          direction: Direction) -> PlacedCall:
    """On a connected switch: ring `first`; on answer the dialplan dials `second_dial`."""
    if await switch.device_available(first.dial) is False:
        raise DomainError(f"{'operator ' if direction is Direction.OUTBOUND else ''}{first.extension}'s phone "
                          f"({first.dial}) is not reachable: not registered or unavailable")
    call_id = new_call_id()
    with store.transaction() as session:
        call = Call(node=switch.node, pbx_call_id=call_id, project_id=project_id, operator_id=first.operator_id,
                    client_number=client_number, direction=direction.value, state=CallState.CREATED.value)
        session.add(call)
        session.flush()
        row_id = call.id
    request = OriginateRequest(
        channel=first.dial, channel_id=call_id, context=settings.calls.bridge_context,
        caller_id=f'"{shown}" <{shown}>', timeout=settings.calls.ring_timeout,
        # CTL_RING_TIMEOUT here overrides the dialplan's global for this call.
        variables=(("CTL_CLIENT_DIAL", second_dial), ("CTL_RING_TIMEOUT", str(settings.calls.ring_timeout)),
                   ("CTL_CALL_ID", str(row_id))),
    )
    try:
        await switch.originate(request)
    except SwitchError as error:
        with store.transaction() as session:
            failed = session.get(Call, row_id)
            if failed is not None:
                _end(failed, _now(), HangupCause.FAILED, None)
        log.warning("originate failed", extra={"fields": {"call": row_id, "error": str(error)}})
        raise
    return PlacedCall(row_id, call_id, first.extension, shown)


def _end(call: Call, at: datetime, cause: HangupCause, code: int | None) -> None:
    call.state = CallState.ENDED.value
    call.ended_at = at
    call.hangup_cause = cause.value
    call.hangup_cause_code = code if code is not None else cause.q850


# ---------------------------------------------------------------------------
# Tracking
# ---------------------------------------------------------------------------
@dataclass
class _Channel:
    name: str
    endpoint: str | None
    state: ChannelState = ChannelState.DOWN
    bridge_id: str | None = None


@dataclass
class _LiveCall:
    row_id: int
    channels: dict[str, _Channel] = field(default_factory=dict)
    state: CallState = CallState.CREATED
    dial_failure: HangupCause | None = None
    first_hangup: tuple[HangupCause, int | None] | None = None


class CallTracker:
    """Applies one switch's events to the calls table. One short transaction per event."""

    def __init__(self, store: Store, switch: Switch, settings: Settings) -> None:
        self.store = store
        self.switch = switch
        self.node = switch.node
        self.trunks = set(trunks_of(settings, switch.node))
        self.live: dict[str, _LiveCall] = {}

    async def handle(self, event: ev.Event) -> None:
        """Apply one event. The store work runs in a worker thread so a slow database never
        stalls the PBX reader; the switch hands events over one at a time, so order holds."""
        if isinstance(event, ev.SwitchConnected):
            await self.reconcile()
        else:
            await asyncio.to_thread(self.apply, event)

    def apply(self, event: ev.Event) -> None:
        if isinstance(event, ev.ChannelCreated):
            self._channel_created(event)
        elif isinstance(event, ev.ChannelStateChanged):
            self._state_changed(event)
        elif isinstance(event, ev.DialStarted):
            self._dial_started(event)
        elif isinstance(event, ev.DialEnded):
            self._dial_ended(event)
        elif isinstance(event, ev.ChannelEnteredBridge):
            self._entered_bridge(event)
        elif isinstance(event, ev.ChannelLeftBridge):
            self._left_bridge(event)
        elif isinstance(event, ev.ChannelHungUp):
            self._hung_up(event)
        elif isinstance(event, ev.OriginateFailed):
            self._originate_failed(event)
        elif isinstance(event, ev.QueueJoined):
            self._queue_joined(event)

    def legs(self, call_id: str) -> list[tuple[str, str | None]]:
        """(channel name, endpoint) of every live leg of a call."""
        live = self.live.get(call_id)
        return [] if live is None else [(c.name, c.endpoint) for c in live.channels.values()]

    def leg_ids(self, call_id: str) -> list[tuple[str, str, str | None]]:
        """(channel id, channel name, endpoint) of every live leg of a call."""
        live = self.live.get(call_id)
        return [] if live is None else [(i, c.name, c.endpoint) for i, c in live.channels.items()]

    def bridge_of(self, call_id: str, channel_id: str) -> str | None:
        """The bridge a live leg is in (None: in none, or unknown)."""
        live = self.live.get(call_id)
        channel = None if live is None else live.channels.get(channel_id)
        return None if channel is None else channel.bridge_id

    def state_of(self, call_id: str) -> str | None:
        """The state of a live call (None: not a call ctl follows, or over)."""
        live = self.live.get(call_id)
        return None if live is None else live.state.value

    @staticmethod
    def is_call(call_id: str, dialed: str | None) -> bool:
        """Spy legs are monitor sessions, not calls: those ctl originates (ctl-spy-…) and
        those a supervisor dials with a feature code (*222…)."""
        return not call_id.startswith("ctl-spy-") and not (dialed or "").startswith("*")

    # -- helpers -------------------------------------------------------------------
    def _operator_by_endpoint(self, session: Session, endpoint: str | None) -> Operator | None:
        if endpoint is None or endpoint in self.trunks:
            return None
        return session.scalar(select(Operator).where(Operator.extension == endpoint))

    def _row(self, session: Session, call_id: str) -> Call | None:
        return session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == call_id))

    def _open_call(self, session: Session, call_id: str, first_endpoint: str | None,
                   caller_number: str | None, at: datetime) -> Call:
        call = self._row(session, call_id)
        if call is None:
            inbound = first_endpoint in self.trunks
            call = Call(node=self.node, pbx_call_id=call_id, created_at=at, state=CallState.CREATED.value,
                        direction=(Direction.INBOUND if inbound else Direction.INTERNAL).value,
                        client_number=inbound_number(caller_number) if inbound else None)
            session.add(call)
            session.flush()
            log.info("call created", extra={"fields": {"call": call.id, "pbx_call_id": call_id,
                                                       "direction": call.direction}})
        return call

    def _advance(self, live: _LiveCall, call: Call, state: CallState, at: datetime) -> None:
        if state.rank <= CallState(call.state).rank:
            return
        if state in (CallState.ANSWERED, CallState.BRIDGED) and call.answered_at is None:
            call.answered_at = at
        if state is CallState.BRIDGED:
            call.bridged_at = at
        call.state = state.value
        live.state = state
        log.info("call %s", state.value, extra={"fields": {"call": call.id, "pbx_call_id": call.pbx_call_id}})

    def _attach_channel(self, session: Session, call: Call, endpoint: str | None) -> None:
        """A leg joined: learn the operator, or that the call reaches a client."""
        if endpoint in self.trunks and call.direction == Direction.INTERNAL.value:
            call.direction = Direction.OUTBOUND.value
        if call.operator_id is None:
            operator = self._operator_by_endpoint(session, endpoint)
            if operator is not None:
                call.operator_id = operator.id

    # -- events --------------------------------------------------------------------
    def _channel_created(self, event: ev.ChannelCreated) -> None:
        if event.call_id not in self.live and not self.is_call(event.call_id, event.dialed):
            return
        with self.store.transaction() as session:
            live = self.live.get(event.call_id)
            if live is None:
                call = self._open_call(session, event.call_id, event.endpoint, event.caller_number, event.at)
                live = self.live[event.call_id] = _LiveCall(call.id, state=CallState(call.state))
            else:
                found = session.get(Call, live.row_id)
                if found is None:
                    return
                call = found
            live.channels[event.channel_id] = _Channel(event.name, event.endpoint)
            self._attach_channel(session, call, event.endpoint)

    def _state_changed(self, event: ev.ChannelStateChanged) -> None:
        live = self.live.get(event.call_id)
        if live is None or event.channel_id not in live.channels:
            return
        live.channels[event.channel_id].state = event.state
        target = None
        if event.state is ChannelState.RINGING:
            target = CallState.RINGING
        elif event.state is ChannelState.UP and event.channel_id != event.call_id:
            # The first leg (Uniqueid == Linkedid) going up is the caller's side or,
            # on a click-to-call, the operator picking up: not the call answered.
            target = CallState.ANSWERED
        if target is None or target.rank <= live.state.rank:
            return
        with self.store.transaction() as session:
            call = session.get(Call, live.row_id)
            if call is not None:
                self._advance(live, call, target, event.at)

    def _dial_started(self, event: ev.DialStarted) -> None:
        live = self.live.get(event.call_id)
        if live is None:
            return
        number, _, trunk = event.dial_string.partition("@")
        if trunk not in self.trunks:
            return
        with self.store.transaction() as session:
            call = session.get(Call, live.row_id)
            if call is None:
                return
            if call.direction == Direction.INTERNAL.value:
                call.direction = Direction.OUTBOUND.value
            if call.client_number is None:
                try:
                    call.client_number = normalise_number(number)
                except ValidationError:  # a dialed string that is no number: keep none
                    log.debug("dialed %r is not a client number", number)

    def _dial_ended(self, event: ev.DialEnded) -> None:
        live = self.live.get(event.call_id)
        if live is not None and event.cause is not None:
            live.dial_failure = event.cause

    def _entered_bridge(self, event: ev.ChannelEnteredBridge) -> None:
        live = self.live.get(event.call_id)
        if live is None or event.channel_id not in live.channels:
            return
        live.channels[event.channel_id].bridge_id = event.bridge_id
        together = sum(1 for channel in live.channels.values() if channel.bridge_id == event.bridge_id)
        if together >= 2 and live.state.rank < CallState.BRIDGED.rank:
            with self.store.transaction() as session:
                call = session.get(Call, live.row_id)
                if call is not None:
                    self._advance(live, call, CallState.BRIDGED, event.at)

    def _left_bridge(self, event: ev.ChannelLeftBridge) -> None:
        live = self.live.get(event.call_id)
        if live is not None and event.channel_id in live.channels:
            live.channels[event.channel_id].bridge_id = None

    def _hung_up(self, event: ev.ChannelHungUp) -> None:
        live = self.live.get(event.call_id)
        if live is None:
            return
        live.channels.pop(event.channel_id, None)
        if live.first_hangup is None:
            live.first_hangup = (event.cause, event.cause_code)
        if live.channels:
            return
        del self.live[event.call_id]
        if live.dial_failure is not None and live.state.rank < CallState.ANSWERED.rank:
            cause, code = live.dial_failure, None
        else:
            cause, code = live.first_hangup
        with self.store.transaction() as session:
            call = session.get(Call, live.row_id)
            if call is not None and call.state != CallState.ENDED.value:
                _end(call, event.at, cause, code)
                log.info("call ended", extra={"fields": {"call": call.id, "pbx_call_id": call.pbx_call_id,
                                                         "cause": cause.value, "cause_code": call.hangup_cause_code}})

    def _queue_joined(self, event: ev.QueueJoined) -> None:
        """A caller waiting in a project's queue makes the call that project's."""
        live = self.live.get(event.call_id)
        if live is None:
            return
        with self.store.transaction() as session:
            call = session.get(Call, live.row_id)
            if call is None or call.project_id is not None:
                return
            project = session.scalar(select(Project).where(Project.queue == event.queue))
            if project is not None:
                call.project_id = project.id
                log.info("call joined a project's queue", extra={"fields": {
                    "call": call.id, "queue": event.queue, "project": project.name}})

    def _originate_failed(self, event: ev.OriginateFailed) -> None:
        """No leg was ever created (e.g. the operator's phone has no contact)."""
        live = self.live.get(event.channel_id)
        if live is not None and live.channels:
            return  # legs exist: their hangups end the call
        self.live.pop(event.channel_id, None)
        with self.store.transaction() as session:
            call = self._row(session, event.channel_id)
            if call is not None and call.state != CallState.ENDED.value:
                _end(call, event.at, event.cause, None)
                log.info("call failed", extra={"fields": {"call": call.id, "reason": event.reason}})

    # -- reconciliation ------------------------------------------------------------------
    async def reconcile(self) -> None:
        """After a (re)connect: the PBX's live channels are the truth."""
        try:
            snapshot = await self.switch.channels()
        except SwitchError as error:
            log.warning("reconciliation skipped: %s", error)
            return
        await asyncio.to_thread(self.apply_snapshot, snapshot, _now())

    def apply_snapshot(self, snapshot: list[ChannelInfo], at: datetime) -> None:
        groups: dict[str, list[ChannelInfo]] = {}
        for info in snapshot:
            groups.setdefault(info.call_id, []).append(info)
        for call_id, infos in list(groups.items()):
            first = next((i for i in infos if i.channel_id == call_id), infos[0])
            if not self.is_call(call_id, first.dialed):
                del groups[call_id]
        ended = created = 0
        with self.store.transaction() as session:
            open_calls = session.scalars(select(Call).where(Call.node == self.node,
                                                            Call.state != CallState.ENDED.value))
            for call in open_calls:
                if call.pbx_call_id not in groups:
                    _end(call, at, HangupCause.LOST, None)
                    ended += 1
            self.live = {}
            for call_id, infos in groups.items():
                infos.sort(key=lambda info: info.channel_id != call_id)  # first leg first
                existed = self._row(session, call_id) is not None
                call = self._open_call(session, call_id, infos[0].endpoint, infos[0].caller_number, at)
                created += not existed
                live = self.live[call_id] = _LiveCall(call.id, state=CallState(call.state))
                for info in infos:
                    live.channels[info.channel_id] = _Channel(info.name, info.endpoint, info.state, info.bridge_id)
                    self._attach_channel(session, call, info.endpoint)
                    if info.endpoint in self.trunks and call.client_number is None and info.dialed:
                        call.client_number = info.dialed
                bridges = [c.bridge_id for c in live.channels.values() if c.bridge_id]
                if any(bridges.count(b) >= 2 for b in bridges):
                    self._advance(live, call, CallState.BRIDGED, at)
                elif any(c.state is ChannelState.UP for i, c in live.channels.items() if i != call_id):
                    self._advance(live, call, CallState.ANSWERED, at)
                elif any(c.state is ChannelState.RINGING for c in live.channels.values()):
                    self._advance(live, call, CallState.RINGING, at)
        log.info("reconciled with the PBX", extra={"fields": {"live_calls": len(groups), "ended": ended,
                                                              "discovered": created}})


def check_hang_up(store: Store, call_id: int) -> str:
    """The call's PBX id, if it is in progress."""
    with store.transaction() as session:
        call = get_call(session, call_id)
        if call.state == "ended":
            raise CallEnded(f"call {call_id} is not in progress (it ended)")
        return call.pbx_call_id


async def hang_up_call(store: Store, switch: Switch, call_id: int) -> int:
    """End every leg of the call on the PBX; ctl serve stores the end as the PBX reports it.
    Returns the number of legs hung up."""
    pbx_call_id = check_hang_up(store, call_id)
    legs = [info.channel_id for info in await switch.channels() if info.call_id == pbx_call_id]
    if not legs:
        raise CallEnded(f"call {call_id} is not in progress: the PBX has no channel of it")
    hung_up = 0
    for channel_id in legs:
        try:
            await switch.hangup(channel_id)
            hung_up += 1
        except ActionFailed:
            pass  # the PBX already ended it with the first leg (a two-party bridge ends as one)
    if hung_up == 0:
        raise CallEnded(f"call {call_id} is not in progress: its channels are gone")
    return len(legs)
