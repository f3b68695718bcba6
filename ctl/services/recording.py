"""Call recording: one WAV file per call, written by the PBX, described by the store.

A recording runs on the call's **client leg** (the trunk channel) when the call has
one: that channel survives a blind or attended transfer by the operator, so the
file goes on across it. Internal calls are recorded on their first leg.

The store is the source of truth and the PBX's events drive it: a row is claimed
(`starting`, unique per call, so a second start is a no-op whoever races), the PBX
is asked to record, and its MixMonitorStart marks the row `recording`. Pause is a
mute of the same recording (MixMonitorMute): the file keeps its timeline, with
silence where the pause was. When the channel hangs up (Asterisk sends no
MixMonitorStop then) or the recording is stopped, ctl waits for the PBX to close
the file, reads its header and stores size, duration and whether it is complete.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import os
import shutil
import stat
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ctl import events as ev
from ctl import wavfile
from ctl.config import RecordingSettings, Settings
from ctl.errors import CallEnded, Conflict, DomainError, Forbidden, NotFound, StorageError, SwitchError
from ctl.model import ChannelInfo, RecordingOptions
from ctl.pbx import trunks_of
from ctl.services.calls import get_call
from ctl.services.security import Foreign, record_unauthorised
from ctl.store import queries
from ctl.store.engine import Store
from ctl.store.models import Call, MonitorSession, Project, Recording, RecordingPause
from ctl.store.outbox import recording_state_changed
from ctl.switch import Switch

log = logging.getLogger("ctl.recording")

ACTIVE_STATES = queries.ACTIVE_RECORDING_STATES
# How long the PBX may take to create the file after MixMonitor is accepted.
FILE_APPEAR_TIMEOUT = 3.0
# A closed file may be this much shorter than the wall-clock span and still count
# as whole: the first frames arrive a little after MixMonitorStart.
DURATION_SLACK = 1.5

Leg = tuple[str, str, str | None]  # channel id, channel name, endpoint


def _now() -> datetime:
    return datetime.now(UTC)


def relative_name(call: Call, directory: Path) -> str:
    """`YYYY/MM/DD/call-<id>.wav`, from the call's creation date (UTC).

    A file of that name may exist already (a store that was reset, another store on the
    same PBX): it is never overwritten, the new one gets `call-<id>.<n>.wav`.
    """
    stem = f"{call.created_at:%Y/%m/%d}/call-{call.id}"
    name, n = f"{stem}.wav", 1
    while (directory / name).exists():
        name, n = f"{stem}.{n}.wav", n + 1
    return name


def policy_of(project: Project | None, settings: RecordingSettings) -> str:
    return project.recording_policy if project is not None else settings.policy


def stereo_of(project: Project | None, settings: RecordingSettings) -> bool:
    if project is not None and project.recording_stereo is not None:
        return project.recording_stereo
    return settings.stereo


def choose_leg(legs: Iterable[Leg], call_pbx_id: str, trunks: set[str]) -> Leg | None:
    """The client's leg if the call has one, else its first leg."""
    legs = list(legs)
    for leg in legs:
        if leg[2] in trunks:
            return leg
    for leg in legs:
        if leg[0] == call_pbx_id:
            return leg
    return legs[0] if legs else None


def legs_of(snapshot: list[ChannelInfo], call_pbx_id: str) -> list[Leg]:
    return [(info.channel_id, info.name, info.endpoint) for info in snapshot if info.call_id == call_pbx_id]


def check_directory(settings: RecordingSettings) -> Path:
    """The recording directory exists, takes a new file, and has room: else one clear line."""
    directory = Path(settings.directory)
    if not directory.is_dir():
        raise StorageError(f"recording directory {directory} does not exist")
    try:
        probe, name = tempfile.mkstemp(prefix=".ctl-probe-", dir=directory)
        os.close(probe)
        os.unlink(name)
    except OSError as error:
        raise StorageError(f"recording directory {directory} is not writable: "
                           f"{os.strerror(error.errno or 0).lower()}") from None
    stats = os.statvfs(directory)
    free_mb = stats.f_bavail * stats.f_frsize / 1024 / 1024
    if free_mb < settings.min_free_mb:
        raise StorageError(f"disk full: recording directory {directory} has {free_mb:.1f} MB free, "
                           f"below [recording] min_free_mb = {settings.min_free_mb}")
    return directory


# ---------------------------------------------------------------------------
# Starting
# ---------------------------------------------------------------------------
@dataclass(frozen=True)
class StartResult:
    call_id: int
    recording_id: int
    already: bool  # a recording existed: nothing was asked of the PBX
    state: str
    path: str
    since: datetime | None


@dataclass(frozen=True)
class _Claimed:
    recording_id: int
    channel_id: str
    path: str
    options: RecordingOptions


def _existing(session: Session, call_id: int) -> Recording | None:
    return session.scalar(select(Recording).where(Recording.call_id == call_id))


def _already(call_id: int, row: Recording) -> StartResult:
    if row.state in ("stopped", "failed"):
        raise Conflict(f"call {call_id} was already recorded ({row.state} at "
                       f"{_time(row.stopped_at or row.requested_at)}); a call has one recording — "
                       "use pause and resume instead of stop and start")
    return StartResult(call_id, row.id, True, row.state, row.path, row.started_at or row.requested_at)


def _time(at: datetime | None) -> str:
    return at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if at else "?"


def claim(session: Session, settings: Settings, call: Call, leg: Leg, source: str) -> _Claimed | StartResult:
    """Insert the call's recording row, or return the one that exists (a no-op start)."""
    existing = _existing(session, call.id)
    if existing is not None:
        return _already(call.id, existing)
    project = session.get(Project, call.project_id) if call.project_id is not None else None
    stereo = stereo_of(project, settings.recording)
    relative = relative_name(call, Path(settings.recording.directory))
    path = str(Path(settings.recording.directory) / relative)
    pbx_path = f"{settings.recording.pbx_root.rstrip('/')}/{relative}"
    row = Recording(call_id=call.id, node=call.node, channel_id=leg[0], channel_name=leg[1], path=path,
                    pbx_path=pbx_path, stereo=stereo, state="starting", source=source, requested_at=_now())
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # someone else claimed it between our read and insert
        existing = _existing(session, call.id)
        if existing is None:
            raise
        return _already(call.id, existing)
    return _Claimed(row.id, leg[0], path, RecordingOptions(path=pbx_path, stereo=stereo))


def _drop_claim(store: Store, recording_id: int) -> None:
    """The PBX refused: leave nothing half-written."""
    with store.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is not None:
            session.delete(row)


async def _wait_file(path: Path, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return True
        await asyncio.sleep(0.05)
    return path.exists()


def _check_start(store: Store, settings: Settings, node: str, call_id: int) -> StartResult | str:
    """The call's PBX id once every check passed, or the recording it has already."""
    with store.transaction() as session:
        call = get_call(session, call_id)
        if call.state == "ended":
            raise CallEnded(f"call {call_id} is not in progress (ended {_time(call.ended_at)})")
        if call.node != node:
            raise DomainError(f"call {call_id} is on node {call.node!r}, not {node!r}")
        existing = _existing(session, call_id)
        if existing is not None:
            return _already(call_id, existing)
        project = session.get(Project, call.project_id) if call.project_id is not None else None
        if project is not None and project.recording_policy == "never":
            raise Forbidden(f"project {project.name!r} never records calls (recording policy: never)")
        pbx_call_id = call.pbx_call_id
    check_directory(settings.recording)
    return pbx_call_id


def check_recording_start(store: Store, settings: Settings, node: str, call_id: int) -> StartResult | None:
    """Every refusal of `start_recording` that needs no PBX; the recording the call has
    already, if any (then there is nothing to ask the PBX)."""
    checked = _check_start(store, settings, node, call_id)
    return checked if isinstance(checked, StartResult) else None


async def start_recording(store: Store, switch: Switch, settings: Settings, call_id: int,
                          source: str = "cli") -> StartResult:
    """Record the call now (its client leg, else its first): every check first; on any failure
    the store is left as it was."""
    checked = _check_start(store, settings, switch.node, call_id)
    if isinstance(checked, StartResult):
        return checked
    pbx_call_id = checked
    started: asyncio.Future[datetime] = asyncio.get_running_loop().create_future()
    trunks = set(trunks_of(settings, switch.node))
    leg = choose_leg(legs_of(await switch.channels(), pbx_call_id), pbx_call_id, trunks)
    if leg is None:
        raise CallEnded(f"call {call_id} is not in progress: the PBX has no channel of it")
    with store.transaction() as session:
        claimed = claim(session, settings, get_call(session, call_id), leg, source)
    if isinstance(claimed, StartResult):
        return claimed

    def on_event(event: ev.Event) -> None:
        if isinstance(event, ev.RecordingStarted) and event.channel_id == leg[0] and not started.done():
            started.set_result(event.at)

    switch.subscribe(on_event)
    try:  # a long-lived switch (serve's) must not keep the handler
        try:
            await switch.record_start(claimed.channel_id, claimed.options)
        except SwitchError:
            _drop_claim(store, claimed.recording_id)
            raise
        if not await _wait_file(Path(claimed.path), FILE_APPEAR_TIMEOUT):
            try:
                await switch.record_stop(claimed.channel_id)
            except SwitchError:
                pass
            _drop_claim(store, claimed.recording_id)
            raise StorageError(f"the PBX did not create {claimed.options.path}: is "
                               f"{settings.recording.pbx_root} writable by Asterisk, and [recording] "
                               f"directory ({settings.recording.directory}) the same place?")
        try:
            at = await asyncio.wait_for(asyncio.shield(started), 2.0)
        except TimeoutError:
            at = _now()
        with store.transaction() as session:
            row = session.get(Recording, claimed.recording_id)
            assert row is not None
            mark_started(session, row, at)
            return StartResult(call_id, row.id, False, row.state, row.path, row.started_at)
    finally:
        switch.unsubscribe(on_event)


def _transition(session: Session, row: Recording, from_states: tuple[str, ...], to_state: str,
                **values: object) -> bool:
    """Compare-and-set on the row's state, so that the CLI and ctl serve reporting the same
    change at the same instant apply it once (a read-then-write would apply it twice)."""
    before = row.state
    result = session.execute(update(Recording).where(Recording.id == row.id, Recording.state.in_(from_states))
                             .values(state=to_state, **values).execution_options(synchronize_session=False))
    changed = bool(getattr(result, "rowcount", 0))
    session.refresh(row)
    if changed:
        recording_state_changed(session, row, before)  # an UPDATE statement: the flush hook does not see it
    return changed


def mark_started(session: Session, row: Recording, at: datetime) -> bool:
    if not _transition(session, row, ("starting",), "recording", started_at=at):
        return False
    log.info("recording started", extra={"fields": {"call": row.call_id, "recording": row.id, "path": row.path}})
    return True


# ---------------------------------------------------------------------------
# Stop, pause, resume
# ---------------------------------------------------------------------------
def recording_of(session: Session, call_id: int) -> Recording:
    get_call(session, call_id)
    row = _existing(session, call_id)
    if row is None:
        raise NotFound(f"call {call_id} has no recording")
    return row


def mark_paused(session: Session, row: Recording, muted: bool, at: datetime, source: str) -> bool:
    """Apply a pause or resume once, whoever reports it first (the CLI or the PBX's event).

    The pause's source is the request's: when the PBX's own MixMonitorMute event was read
    before the request that caused it wrote its row, the request still names itself."""
    if muted and _transition(session, row, ("recording",), "paused"):
        session.add(RecordingPause(recording_id=row.id, paused_at=at, source=source))
    elif muted and source != "pbx" and row.state == "paused":
        claimed = session.execute(update(RecordingPause).where(RecordingPause.recording_id == row.id,
                                                               RecordingPause.resumed_at.is_(None),
                                                               RecordingPause.source == "pbx")
                                  .values(source=source).execution_options(synchronize_session=False))
        return bool(getattr(claimed, "rowcount", 0))
    elif not muted and _transition(session, row, ("paused",), "recording"):
        session.execute(update(RecordingPause).where(RecordingPause.recording_id == row.id,
                                                     RecordingPause.resumed_at.is_(None))
                        .values(resumed_at=at).execution_options(synchronize_session=False))
    else:
        return False
    log.info("recording %s", "paused" if muted else "resumed",
             extra={"fields": {"call": row.call_id, "recording": row.id, "source": source}})
    return True


@dataclass(frozen=True)
class ChangeResult:
    call_id: int
    state: str
    changed: bool


def _check_pause(store: Store, call_id: int, paused: bool) -> ChangeResult | str:
    """The recorded channel, or the result when the recording is in that state already."""
    with store.transaction() as session:
        row = recording_of(session, call_id)
        wanted = "paused" if paused else "recording"
        if row.state == wanted:
            return ChangeResult(call_id, row.state, False)
        if row.state not in ACTIVE_STATES or row.state == "starting":
            raise Conflict(f"call {call_id}'s recording is {row.state}: it cannot be "
                           f"{'paused' if paused else 'resumed'}")
        return row.channel_id


def check_recording_pause(store: Store, call_id: int, paused: bool) -> ChangeResult | None:
    """Every refusal of `set_recording_paused` that needs no PBX; the result when nothing is to change."""
    checked = _check_pause(store, call_id, paused)
    return checked if isinstance(checked, ChangeResult) else None


async def set_recording_paused(store: Store, switch: Switch, call_id: int, paused: bool,
                               source: str = "cli") -> ChangeResult:
    checked = _check_pause(store, call_id, paused)
    if isinstance(checked, ChangeResult):
        return checked
    channel_id = checked
    if channel_id not in {info.channel_id for info in await switch.channels()}:
        raise CallEnded(f"call {call_id} is not in progress: its recorded channel is gone")
    await switch.record_mute(channel_id, paused)
    with store.transaction() as session:
        row = recording_of(session, call_id)
        mark_paused(session, row, paused, _now(), source)
        session.refresh(row)
        return ChangeResult(call_id, row.state, True)


def _check_stop(store: Store, call_id: int) -> ChangeResult | tuple[str, int]:
    """The recorded channel and the row, or the result when the recording is over already."""
    with store.transaction() as session:
        row = recording_of(session, call_id)
        if row.state not in ACTIVE_STATES:
            return ChangeResult(call_id, row.state, False)
        return row.channel_id, row.id


def check_recording_stop(store: Store, call_id: int) -> ChangeResult | None:
    """Every refusal of `stop_recording` that needs no PBX; the result when nothing is to change."""
    checked = _check_stop(store, call_id)
    return checked if isinstance(checked, ChangeResult) else None


async def stop_recording(store: Store, switch: Switch, settings: Settings, call_id: int) -> ChangeResult:
    checked = _check_stop(store, call_id)
    if isinstance(checked, ChangeResult):
        return checked
    channel_id, recording_id = checked
    if channel_id in {info.channel_id for info in await switch.channels()}:
        await switch.record_stop(channel_id)
    await asyncio.to_thread(finalize, store, settings.recording, recording_id, _now(), "stopped")
    with store.transaction() as session:
        return ChangeResult(call_id, recording_of(session, call_id).state, True)


# ---------------------------------------------------------------------------
# Closing the row: read what the PBX wrote
# ---------------------------------------------------------------------------
def wait_closed(path: Path, timeout: float) -> wavfile.WavInfo | None:
    """The file's header once the PBX has filled its sizes in (None: no such file)."""
    deadline = time.monotonic() + timeout
    info: wavfile.WavInfo | None = None
    while True:
        try:
            info = wavfile.read_info(path)
        except FileNotFoundError:
            info = None
        except wavfile.NotWav:
            info = None
            if not path.exists():
                return None
        else:
            if info.closed:
                return info
        if time.monotonic() >= deadline:
            return info
        time.sleep(0.05)


def finalize(store: Store, settings: RecordingSettings, recording_id: int, at: datetime | None, reason: str,
             timeout: float | None = None) -> None:
    """The recording has ended (hangup, stop, or found gone at reconcile): describe the file.

    Idempotent: a row already stopped or failed is left as it is. `at` None means the
    end time is unknown (ctl was down): the file's last modification stands in.
    """
    with store.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is None or row.state not in ACTIVE_STATES:
            return
        path, stereo, started = Path(row.path), row.stereo, row.started_at or row.requested_at
        call = session.get(Call, row.call_id)
        project = session.get(Project, call.project_id) if call is not None and call.project_id else None
        mix_supervisor = project is not None and project.recording_supervisor
        pauses = [(pause.paused_at, pause.resumed_at) for pause in row.pauses]
    info = wait_closed(path, settings.finalize_timeout if timeout is None else timeout)
    problem = None
    if info is None:
        state, size, duration = "failed", None, None
        problem = f"no file: the PBX did not write {path.name}"
        ended = at or _now()
    else:
        state, size = "stopped", info.file_size
        if stereo and info.closed and info.channels == 1:
            try:
                wavfile.declare_channels(path, 2)
                info = wavfile.read_info(path)
            except (OSError, wavfile.NotWav) as error:
                problem = f"could not mark the file stereo: {error}"
        duration = round(info.duration * 1000)
        ended = at or datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if mix_supervisor and info.closed:
            muted = [(a, b or ended) for a, b in pauses]
            problem = mix_supervisor_tracks(store, path, started, ended, muted, settings.finalize_timeout) or problem
        expected = (ended - started).total_seconds()
        if not info.closed:
            problem = (f"the PBX did not finish the file: header declares {info.declared_data} bytes, "
                       f"{info.data_on_disk} on disk")
        elif info.duration + DURATION_SLACK < expected * 0.95:
            problem = (f"the file holds {info.duration:.1f} s of a {expected:.1f} s recording "
                       "(disk full or write error on the PBX?)")
    with store.transaction() as session:
        row = session.get(Recording, recording_id)
        if row is None or not _transition(session, row, ACTIVE_STATES, state, stopped_at=ended, stop_reason=reason,
                                          size_bytes=size, duration_ms=duration, problem=problem,
                                          complete=state == "stopped" and problem is None):
            return
        session.execute(update(RecordingPause).where(RecordingPause.recording_id == row.id,
                                                     RecordingPause.resumed_at.is_(None))
                        .values(resumed_at=ended).execution_options(synchronize_session=False))
        fields = {"call": row.call_id, "recording": row.id, "reason": reason, "size": size,
                  "duration_ms": duration, "complete": row.complete}
    if problem:
        log.warning("recording incomplete: %s", problem, extra={"fields": fields})
    else:
        log.info("recording stopped", extra={"fields": fields})


# ---------------------------------------------------------------------------
# A supervisor in the recording (project option)
# ---------------------------------------------------------------------------
SUPERVISOR_MODES = ("whisper", "barge")  # the modes in which someone on the call hears the supervisor


def supervisor_track(path: str, session_id: int) -> str:
    """The side file for what one monitor session's supervisor says, next to the call's file."""
    return f"{path.removesuffix('.wav')}.supervisor-{session_id}.wav"


def speaking_spans(row: MonitorSession, until: datetime) -> list[tuple[datetime, datetime]]:
    """When the session's supervisor could be heard on the call (whisper or barge)."""
    if row.attached_at is None:
        return []
    end = min(row.ended_at or until, until)
    changes = sorted(row.mode_changes, key=lambda change: change.changed_at)
    spans = []
    for i, change in enumerate(changes):
        begin = max(change.changed_at, row.attached_at)
        finish = min(changes[i + 1].changed_at, end) if i + 1 < len(changes) else end
        if change.mode in SUPERVISOR_MODES and finish > begin:
            spans.append((begin, finish))
    return spans


def without(spans: list[tuple[datetime, datetime]], holes: list[tuple[datetime, datetime]]
            ) -> list[tuple[datetime, datetime]]:
    """`spans` minus `holes` (e.g. a whisper minus the recording's pauses)."""
    for hole_start, hole_end in holes:
        cut = []
        for begin, end in spans:
            if hole_end <= begin or end <= hole_start:
                cut.append((begin, end))
                continue
            if begin < hole_start:
                cut.append((begin, hole_start))
            if hole_end < end:
                cut.append((hole_end, end))
        spans = cut
    return spans


def mix_supervisor_tracks(store: Store, path: Path, started: datetime, ended: datetime,
                          muted: list[tuple[datetime, datetime]], timeout: float) -> str | None:
    """Mix each session's supervisor track into the call's file over the spans in which
    the supervisor could be heard and the recording was not paused, then delete the
    track. Returns a problem, if any."""
    for track in sorted(path.parent.glob(f"{path.stem}.supervisor-*.wav")):
        try:
            session_id = int(track.stem.rsplit("-", 1)[1])
        except ValueError:
            continue
        if wait_closed(track, timeout) is None:
            continue
        with store.transaction() as session:
            monitor = session.get(MonitorSession, session_id)
            spans = without(speaking_spans(monitor, ended), muted) if monitor is not None else []
            attached = monitor.attached_at if monitor is not None else None
        if attached is None:
            continue
        try:
            frames = wavfile.mix_into(path, track, [((a - started).total_seconds(), (b - started).total_seconds())
                                                    for a, b in spans], (attached - started).total_seconds())
        except (OSError, wavfile.NotWav) as error:
            return f"could not mix the supervisor in: {error}"
        track.unlink(missing_ok=True)
        log.info("supervisor mixed into the recording", extra={"fields": {"path": str(path), "session": session_id,
                                                                          "seconds": frames / 8000}})
    return None


# ---------------------------------------------------------------------------
# Export and retention
# ---------------------------------------------------------------------------
def exportable(store: Store, call_id: int) -> tuple[Path, int]:
    """The file of call `call_id`'s recording and its size, once checked against the store:
    ended, complete, not purged, and unchanged since (export, and the API's download)."""
    with store.transaction() as session:
        row = recording_of(session, call_id)
        if row.purged_at is not None:
            raise NotFound(f"call {call_id}'s recording was purged at {_time(row.purged_at)}")
        if row.state in ACTIVE_STATES:
            raise Conflict(f"call {call_id} is still being recorded ({row.state}); export it once it ends")
        if row.state == "failed":
            raise StorageError(f"call {call_id}'s recording failed: {row.problem}")
        path, size, complete, problem = Path(row.path), row.size_bytes, row.complete, row.problem
    if not complete:
        raise StorageError(f"call {call_id}'s recording is incomplete: {problem}")
    try:
        info = wavfile.read_info(path)
    except FileNotFoundError:
        raise StorageError(f"recording file {path} is missing") from None
    except (OSError, wavfile.NotWav) as error:
        raise StorageError(f"recording file {path} cannot be read: {error}") from None
    if info.file_size != size or not info.closed:
        raise StorageError(f"recording file {path} changed since the call: {info.file_size} bytes, "
                           f"{size} recorded")
    return path, info.file_size


def export(store: Store, call_id: int, destination: str, force: bool) -> int:
    """Copy call `call_id`'s recording to `destination` ('-': standard output); return its size."""
    path, size = exportable(store, call_id)
    if destination == "-":
        with open(path, "rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
        sys.stdout.buffer.flush()
        return size
    target = Path(destination)
    if target.is_dir():
        target = target / path.name
    if target.exists() and not force:
        raise Conflict(f"{target} already exists (use --force to overwrite)")
    try:
        write_private_copy(path, target, force)
    except FileExistsError:
        raise Conflict(f"{target} already exists (use --force to overwrite)") from None
    except OSError as error:
        raise StorageError(f"cannot write {target}: {os.strerror(error.errno or 0).lower()}") from None
    return size


def write_private_copy(source: Path, target: Path, force: bool) -> None:
    """Copy `source` to `target`, mode 0600, never half-written.

    The copy goes to a fresh temporary file of the target's directory (mkstemp: a name
    nobody could plant a symlink at, created 0600), then takes the target's name in one
    step: os.replace when `force`, else os.link, which fails with FileExistsError when a
    file (or a symlink) of that name appeared meanwhile instead of overwriting it.
    """
    descriptor, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent)
    try:
        with os.fdopen(descriptor, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
        if force:
            os.replace(temporary, target)
            return
        try:
            os.link(temporary, target)
        except OSError as error:
            if error.errno not in (errno.EPERM, errno.EOPNOTSUPP):
                raise
            _copy_exclusive(Path(temporary), target)  # a file system without hard links (FAT)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)


def _copy_exclusive(source: Path, target: Path) -> None:
    """Create `target` (never an existing file, never through a symlink) and copy into it."""
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as out, open(source, "rb") as data:
            shutil.copyfileobj(data, out)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


@dataclass(frozen=True)
class Purged:
    call_id: int
    path: str
    size: int | None
    stopped_at: datetime | None
    problem: str | None = None  # why a file was left alone (missing, refused)


@dataclass(frozen=True)
class PurgeReport:
    purged: list[Purged]  # deleted (dry run: would be), rows marked purged
    missing: list[Purged]  # no file: the rows are left unmarked, for someone to look at
    refused: list[Purged]  # a symlink, or a path outside the recordings directory: left alone


class _Refused(Exception):
    """A recording's path that purge must not delete."""


def local_nodes(settings: Settings) -> list[str]:
    """The nodes whose recordings this process's settings describe (and so may purge)."""
    nodes = [settings.asterisk.node]
    if settings.freeswitch.host:
        nodes.append(settings.freeswitch.node)
    return nodes


def _parts_below(root: str, path: str) -> tuple[str, ...]:
    """`path`'s components below `root` (both resolved); _Refused if it is a symlink or lies outside."""
    if os.path.islink(path):
        raise _Refused("a symbolic link")
    real = os.path.realpath(path)
    if real == root or os.path.commonpath([root, real]) != root:
        raise _Refused(f"outside the recordings directory {root}")
    return Path(real).relative_to(root).parts


def _open_below(root: str, parts: tuple[str, ...]) -> int:
    """A descriptor of the directory root/parts…, opened one component at a time without
    following a symlink: the PBX's user owns the tree and could swap one in after the check."""
    descriptor = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in parts:
        try:
            child = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=descriptor)
        except OSError as error:
            if error.errno in (errno.ELOOP, errno.ENOTDIR):
                raise _Refused(f"{part} on the way is a symbolic link or not a directory") from None
            raise
        finally:
            os.close(descriptor)
        descriptor = child
    return descriptor


def _delete_below(root: str, path: str, dry_run: bool) -> bool:
    """Delete the recording file `path`, only a regular file inside `root`; False: no such file."""
    parts = _parts_below(root, path)
    try:
        directory = _open_below(root, parts[:-1])
    except FileNotFoundError:
        return False
    try:
        try:
            found = os.stat(parts[-1], dir_fd=directory, follow_symlinks=False)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(found.st_mode):
            raise _Refused("a symbolic link")
        if not stat.S_ISREG(found.st_mode):
            raise _Refused("not a regular file")
        if not dry_run:
            os.unlink(parts[-1], dir_fd=directory)  # unlink never follows a link swapped in meanwhile
        return True
    finally:
        os.close(directory)


def purge(store: Store, settings: RecordingSettings, nodes: Iterable[str], older_than_days: int, dry_run: bool,
          now: datetime | None = None) -> PurgeReport:
    """Delete the files of `nodes`' recordings that ended more than `older_than_days` ago.

    Only recordings of ended calls whose file is closed are touched; the rows stay,
    marked purged, so the call history still says a recording existed. A row's path is
    data anyone with write access to the store controls: only a regular file inside
    the recordings directory (symlinks resolved) is deleted; anything else is refused,
    and a missing file is reported, not marked purged.
    """
    root = os.path.realpath(settings.directory)
    if not os.path.isdir(root):
        raise StorageError(f"recording directory {settings.directory} does not exist")
    cutoff = (now or _now()) - timedelta(days=older_than_days)
    with store.transaction() as session:
        rows = session.execute(
            select(Recording.id, Recording.call_id, Recording.path, Recording.size_bytes, Recording.stopped_at)
            .join(Call, Call.id == Recording.call_id)
            .where(Recording.node.in_(list(nodes)), Recording.purged_at.is_(None),
                   Recording.state.in_(("stopped", "failed")), Recording.stopped_at < cutoff,
                   Call.state == "ended")
            .order_by(Recording.stopped_at)).all()
    report = PurgeReport([], [], [])
    for recording_id, call_id, path, size, stopped_at in rows:
        try:
            deleted = _delete_below(root, path, dry_run)
        except _Refused as refusal:
            # Info, not warning: the caller (the CLI) reports it to the user, once.
            log.info("recording file not purged: %s", refusal, extra={"fields": {"call": call_id, "path": path}})
            report.refused.append(Purged(call_id, path, size, stopped_at, str(refusal)))
            continue
        except OSError as error:
            raise StorageError(f"cannot delete {path}: {os.strerror(error.errno or 0).lower()} "
                               f"({len(report.purged)} recordings purged before it)") from None
        if not deleted:
            log.info("recording file missing: not marked purged", extra={"fields": {"call": call_id, "path": path}})
            report.missing.append(Purged(call_id, path, size, stopped_at, "no such file"))
            continue
        if not dry_run:
            with store.transaction() as session:
                row = session.get(Recording, recording_id)
                if row is not None:
                    row.purged_at = _now()
        report.purged.append(Purged(call_id, path, size, stopped_at))
    return report


# ---------------------------------------------------------------------------
# Following the PBX (ctl serve)
# ---------------------------------------------------------------------------
LegIds = Callable[[str], list[Leg]]
CallStateOf = Callable[[str], "str | None"]
BridgeOf = Callable[[str, str], "str | None"]
# After StopMixMonitor, Asterisk drops a channel's audiohook list on the next frame
# (20 ms); the new MixMonitor must find no list to get a fresh one.
RESTART_PAUSE = 0.1
# After a restart the file must grow within this many seconds, or the restart is made again.
RESTART_CHECK_SECONDS = 2.0
RESTART_ATTEMPTS = 3
RESTART_DEBOUNCE = 1.0
DIRECTORY_CHECK_EVERY = 5.0


class RecordingTracker:
    """Applies the recording policy when a call is bridged and follows the PBX's recording events.

    Runs after CallTracker on each event. Only channels known to carry a recording
    (kept in memory, rebuilt at every reconcile) cost a store query on hangup.

    Transfers: after a blind or an attended transfer of the call, Asterisk 22 keeps
    the client leg's MixMonitor writing what the client says but only silence for
    what the client hears (verified on the real PBX; a second MixMonitor added then
    is just as deaf, a connected-line update alone does not do it). So when the
    recorded leg enters another bridge (blind transfer), or another party joins its
    bridge (attended transfer: the colleague is moved in), ctl stops the recording
    and starts it again on a fresh audiohook, appending to the same file: one file,
    one row, a gap of about 0.1 s.
    """

    def __init__(self, store: Store, switch: Switch, settings: Settings, legs: LegIds, call_state: CallStateOf,
                 bridge_of: BridgeOf, names: Callable[[str], str | None] | None = None) -> None:
        self.names = names or (lambda channel_id: None)  # a live channel's name, for the alerts
        self.store = store
        self.switch = switch
        self.settings = settings
        self.node = switch.node
        self.legs = legs
        self.call_state = call_state
        self.trunks = set(trunks_of(settings, switch.node))
        self.bridge_of = bridge_of
        self.recording_channels: dict[str, int] = {}  # channel id → recording id
        self.recording_bridges: dict[str, str | None] = {}  # channel id → the bridge it is recorded in
        self.restarting: set[str] = set()  # channels whose MixMonitorStop is ours, for a restart
        self.supervisor_tracks: dict[str, set[str]] = {}  # PBX call id → spy legs recorded for it
        self.restarted_at: dict[str, float] = {}  # channel id → loop time of its last restart
        self.directory_checked_at = -DIRECTORY_CHECK_EVERY
        self.decided: set[str] = set()  # PBX call ids whose policy was applied
        self.finishing: set[asyncio.Task[None]] = set()

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.SwitchConnected):
            await self._reconcile()
        elif isinstance(event, ev.ChannelEnteredBridge):
            if event.channel_id in self.recording_channels:
                await self._follow_bridge(event.channel_id, event.bridge_id)
            else:
                for channel_id, bridge_id in list(self.recording_bridges.items()):
                    if bridge_id == event.bridge_id:
                        await self._restart(channel_id, "a new party joined the recorded leg's bridge")
            if event.call_id not in self.decided and self.call_state(event.call_id) == "bridged":
                self.decided.add(event.call_id)
                await self._apply_policy(event.call_id)
        elif isinstance(event, ev.SpyStarted):
            await self._record_supervisor(event)
        elif isinstance(event, ev.RecordingStarted):
            if not any(event.channel_id in legs for legs in self.supervisor_tracks.values()):
                if not await asyncio.to_thread(self._started, event):
                    await self._foreign(event)
        elif isinstance(event, ev.RecordingMuted):
            await asyncio.to_thread(self._muted, event)
        elif isinstance(event, ev.RecordingStopped):
            if event.channel_id in self.restarting:
                self.restarting.discard(event.channel_id)
            else:
                await self._finish(event.call_id, event.channel_id, event.at, "stopped")
        elif isinstance(event, ev.ChannelHungUp):
            await self._finish(event.call_id, event.channel_id, event.at, "call_ended")
            if self.call_state(event.call_id) in (None, "ended"):
                self.decided.discard(event.call_id)

    async def wait_idle(self) -> None:
        """Let the files being closed be described (shutdown, tests)."""
        while self.finishing:
            await asyncio.gather(*self.finishing, return_exceptions=True)

    # -- policy --------------------------------------------------------------------
    def _plan(self, call_pbx_id: str) -> _Claimed | None:
        leg = choose_leg(self.legs(call_pbx_id), call_pbx_id, self.trunks)
        if leg is None:
            return None
        with self.store.transaction() as session:
            call = session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == call_pbx_id))
            if call is None:
                return None
            project = session.get(Project, call.project_id) if call.project_id is not None else None
            if policy_of(project, self.settings.recording) != "always" or _existing(session, call.id) is not None:
                return None
            try:
                self._check_directory()
                claimed = claim(session, self.settings, call, leg, "policy")
            except (StorageError, Conflict) as error:
                log.error("call not recorded: %s", error, extra={"fields": {"call": call.id}})
                return None
            return claimed if isinstance(claimed, _Claimed) else None

    async def _apply_policy(self, call_pbx_id: str) -> None:
        claimed = await asyncio.to_thread(self._plan, call_pbx_id)
        if claimed is None:
            return
        self.recording_channels[claimed.channel_id] = claimed.recording_id
        self.recording_bridges[claimed.channel_id] = self.bridge_of(call_pbx_id, claimed.channel_id)
        try:
            await self.switch.record_start(claimed.channel_id, claimed.options)
        except SwitchError as error:
            self.recording_channels.pop(claimed.channel_id, None)
            log.error("call not recorded: %s", error, extra={"fields": {"recording": claimed.recording_id}})
            await asyncio.to_thread(self._fail, claimed.recording_id, f"the PBX refused to record: {error}")

    async def _follow_bridge(self, channel_id: str, bridge_id: str) -> None:
        known = self.recording_bridges.get(channel_id)
        self.recording_bridges[channel_id] = bridge_id
        if known is None or known == bridge_id:
            return
        await self._restart(channel_id, "the recorded leg moved to another bridge")

    async def _restart(self, channel_id: str, why: str) -> None:
        now = asyncio.get_running_loop().time()
        if now - self.restarted_at.get(channel_id, -RESTART_DEBOUNCE) < RESTART_DEBOUNCE:
            return  # one transfer makes several bridge events: one restart is enough
        self.restarted_at[channel_id] = now
        recording_id = self.recording_channels[channel_id]
        if await self._restart_now(channel_id, recording_id):
            log.info("recording restarted on a fresh audiohook",
                     extra={"fields": {"recording": recording_id, "why": why}})

    async def _restart_now(self, channel_id: str, recording_id: int, attempt: int = 1) -> bool:
        """Stop and start the recording again; then check, off the event path, that the file
        grows. On a busy PBX the old audiohook list can outlive RESTART_PAUSE and the new
        MixMonitor then writes nothing: seen under load, the restart is made again."""
        restart = await asyncio.to_thread(self._restart_plan, recording_id)
        if restart is None:
            return False
        options, paused = restart
        size_before = await asyncio.to_thread(self._file_size, recording_id)
        try:
            self.restarting.add(channel_id)
            await self.switch.record_stop(channel_id)
            await asyncio.sleep(RESTART_PAUSE)
            await self.switch.record_start(channel_id, options)
            if paused:
                await self.switch.record_mute(channel_id, True)
        except SwitchError as error:
            self.restarting.discard(channel_id)
            log.error("recording could not follow the transfer: %s", error,
                      extra={"fields": {"recording": recording_id}})
            return False
        task = asyncio.get_running_loop().create_task(
            self._check_restart(channel_id, recording_id, size_before, attempt))
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)
        return True

    async def _check_restart(self, channel_id: str, recording_id: int, size_before: int | None,
                             attempt: int) -> None:
        deadline = asyncio.get_running_loop().time() + RESTART_CHECK_SECONDS
        while asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.25)
            if self.recording_channels.get(channel_id) != recording_id:
                return  # the call or the recording ended meanwhile
            size = await asyncio.to_thread(self._file_size, recording_id)
            if size is None or size_before is None or size > size_before:
                return  # it writes (or there is no file ctl can see to judge by)
        if attempt >= RESTART_ATTEMPTS:
            log.error("recording does not grow after %d restarts", attempt,
                      extra={"fields": {"recording": recording_id}})
            return
        log.warning("recording restarted again: the file did not grow after the restart",
                    extra={"fields": {"recording": recording_id, "attempt": attempt + 1}})
        await self._restart_now(channel_id, recording_id, attempt + 1)

    def _file_size(self, recording_id: int) -> int | None:
        with self.store.transaction() as session:
            row = session.get(Recording, recording_id)
            path = None if row is None else row.path
        try:
            return None if path is None else os.stat(path).st_size
        except OSError:
            return None

    def _restart_plan(self, recording_id: int) -> tuple[RecordingOptions, bool] | None:
        with self.store.transaction() as session:
            row = session.get(Recording, recording_id)
            if row is None or row.state not in ("recording", "paused"):
                return None
            return RecordingOptions(path=row.pbx_path, stereo=row.stereo, append=True), row.state == "paused"

    async def _record_supervisor(self, event: ev.SpyStarted) -> None:
        if event.spy_channel_id in self.supervisor_tracks.get(event.call_id, ()):
            # ChanSpy starts again on the same leg (a mode switch, or the digit that started
            # this very track on Asterisk): one MixMonitor per track, or two would write one file.
            return
        options = await asyncio.to_thread(self._supervisor_plan, event.call_id, event.spy_channel_id)
        if options is None:
            return
        self.supervisor_tracks.setdefault(event.call_id, set()).add(event.spy_channel_id)
        try:
            await self.switch.record_start(event.spy_channel_id, options)
        except SwitchError as error:
            log.error("supervisor not recorded: %s", error, extra={"fields": {"spy_channel_id": event.spy_channel_id}})

    def _supervisor_plan(self, call_pbx_id: str, spy_channel_id: str) -> RecordingOptions | None:
        """A side file for what the supervisor says, if the call's project mixes supervisors in."""
        with self.store.transaction() as session:
            call = session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == call_pbx_id))
            project = session.get(Project, call.project_id) if call is not None and call.project_id else None
            if call is None or project is None or not project.recording_supervisor:
                return None
            row = _existing(session, call.id)
            monitor = session.scalar(select(MonitorSession).where(MonitorSession.node == self.node,
                                                                  MonitorSession.spy_channel_id == spy_channel_id,
                                                                  MonitorSession.ended_at.is_(None)))
            if row is None or row.state not in ("recording", "paused") or monitor is None:
                return None
            return RecordingOptions(path=supervisor_track(row.pbx_path, monitor.id), direction="rx")

    def _check_directory(self) -> None:
        """check_directory, at most once per DIRECTORY_CHECK_EVERY seconds while it passes:
        a probe file per bridged call would be I/O on the hot path."""
        now = time.monotonic()
        if now - self.directory_checked_at < DIRECTORY_CHECK_EVERY:
            return
        check_directory(self.settings.recording)
        self.directory_checked_at = now

    def _fail(self, recording_id: int, problem: str) -> None:
        with self.store.transaction() as session:
            row = session.get(Recording, recording_id)
            if row is not None and row.state in ACTIVE_STATES:
                row.state, row.problem, row.stopped_at, row.stop_reason = "failed", problem, _now(), "failed"

    # -- the PBX's events ----------------------------------------------------------------
    def _row_for(self, session: Session, channel_id: str) -> Recording | None:
        return session.scalar(select(Recording).where(Recording.node == self.node, Recording.channel_id == channel_id,
                                                      Recording.state.in_(ACTIVE_STATES)))

    def _started(self, event: ev.RecordingStarted) -> bool:
        """Mark the recording of this channel started; False when ctl has none on it."""
        with self.store.transaction() as session:
            row = self._row_for(session, event.channel_id)
            if row is None:
                return False
            if event.channel_id not in self.recording_channels:
                self.recording_bridges[event.channel_id] = self.bridge_of(event.call_id, event.channel_id)
            self.recording_channels[event.channel_id] = row.id
            mark_started(session, row, event.at)
            return True

    async def _foreign(self, event: ev.RecordingStarted) -> None:
        """A recording ctl did not start (an AMI user's MixMonitor, a dialplan edit): alert, stop it."""
        action = "logged"
        if self.settings.monitor.foreign_spy == "hangup":
            try:
                await self.switch.record_stop(event.channel_id)
                action = "stopped"
            except SwitchError as error:
                log.error("could not stop an unauthorised recording: %s", error)
        foreign = Foreign(self.node, event.at, "recording", event.call_id, event.channel_id,
                          self.names(event.channel_id), None)
        await asyncio.to_thread(record_unauthorised, self.store, foreign, action)

    def _muted(self, event: ev.RecordingMuted) -> None:
        with self.store.transaction() as session:
            row = self._row_for(session, event.channel_id)
            if row is not None:
                mark_paused(session, row, event.muted, event.at, "pbx")

    async def _finish(self, call_pbx_id: str, channel_id: str, at: datetime, reason: str) -> None:
        recording_id = self.recording_channels.pop(channel_id, None)
        self.recording_bridges.pop(channel_id, None)
        self.restarting.discard(channel_id)
        if recording_id is None:
            return
        for spy_channel_id in self.supervisor_tracks.pop(call_pbx_id, set()):
            try:  # a following supervisor stays on: close the track of this call now
                await self.switch.record_stop(spy_channel_id)
            except SwitchError:
                pass  # the spy leg is gone, and its track closed with it
        # Closing a file can take the PBX a moment: wait for it off the event path.
        task = asyncio.get_running_loop().create_task(
            asyncio.to_thread(finalize, self.store, self.settings.recording, recording_id, at, reason))
        self.finishing.add(task)
        task.add_done_callback(self.finishing.discard)

    # -- reconciliation ------------------------------------------------------------------
    async def _reconcile(self) -> None:
        try:
            snapshot = await self.switch.channels()
        except SwitchError as error:
            log.warning("recording reconciliation skipped: %s", error)
            return
        live = {info.channel_id for info in snapshot}
        gone = await asyncio.to_thread(self._reconcile_rows, live)
        bridges = {info.channel_id: info.bridge_id for info in snapshot}
        self.recording_bridges = {channel_id: bridges.get(channel_id) for channel_id in self.recording_channels}
        self.restarting = set()
        self.decided = set()
        for call_pbx_id in {info.call_id for info in snapshot}:
            # Calls bridged while ctl was away get their policy now (a no-op if recorded).
            if self.call_state(call_pbx_id) == "bridged":
                self.decided.add(call_pbx_id)
                await self._apply_policy(call_pbx_id)
        for recording_id in gone:
            task = asyncio.get_running_loop().create_task(
                asyncio.to_thread(finalize, self.store, self.settings.recording, recording_id, None, "lost"))
            self.finishing.add(task)
            task.add_done_callback(self.finishing.discard)

    def _reconcile_rows(self, live: set[str]) -> list[int]:
        self.recording_channels = {}
        gone = []
        with self.store.transaction() as session:
            rows = session.scalars(select(Recording).where(Recording.node == self.node,
                                                           Recording.state.in_(ACTIVE_STATES)))
            for row in rows:
                if row.channel_id in live:
                    self.recording_channels[row.channel_id] = row.id
                    if row.state == "starting":
                        mark_started(session, row, row.requested_at)
                else:
                    gone.append(row.id)
        log.info("recordings reconciled", extra={"fields": {"live": len(self.recording_channels),
                                                            "ended_meanwhile": len(gone)}})
        return gone
