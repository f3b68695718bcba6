"""Recording rules on the FakeSwitch, SQLite and PostgreSQL: claims, the PBX's file, export and purge."""

from __future__ import annotations

import struct
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ctl import events as ev
from ctl import wavfile
from ctl.config import RecordingSettings, Settings
from ctl.errors import CallEnded, Conflict, Forbidden, NotFound, StorageError
from ctl.model import ChannelInfo, ChannelState, HangupCause, RecordingOptions
from ctl.services import recording
from ctl.services.calls import CallTracker
from ctl.services.directory import add_project, set_project_recording
from ctl.store.engine import Store
from ctl.store.models import Call, Recording, RecordingPause
from ctl.testing import FakeSwitch

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
RATE = 8000


def wav_bytes(seconds: float, channels: int = 1, closed: bool = True) -> bytes:
    """A WAV as Asterisk writes it: sizes zero while open, filled in at close; always declared mono."""
    data = b"\x00\x10" * int(seconds * RATE * channels)
    sizes = (36 + len(data), len(data)) if closed else (0, 0)
    header = struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", sizes[0], b"WAVE", b"fmt ", 16, 1, 1, RATE, RATE * 2, 2, 16,
                         b"data", sizes[1])
    return header + data


def settings_for(directory: Path, **changes: object) -> Settings:
    return replace(Settings(), recording=replace(RecordingSettings(directory=str(directory), min_free_mb=0,
                                                                   finalize_timeout=0.3), **changes))


def legs(pbx_id: str) -> list[ChannelInfo]:
    return [ChannelInfo(pbx_id, pbx_id, "PJSIP/101-00000001", "101", ChannelState.UP, "101", "b"),
            ChannelInfo(pbx_id, f"{pbx_id}-c", "PJSIP/clients-00000002", "clients", ChannelState.UP, None, "b")]


def make_call(store: Store, pbx_id: str = "one", state: str = "bridged", project: str | None = None) -> int:
    with store.transaction() as session:
        project_id = None
        if project is not None:
            project_id = add_project(session, project, "", [], []).id
        call = Call(node="fake", pbx_call_id=pbx_id, direction="outbound", state=state, created_at=NOW,
                    project_id=project_id)
        session.add(call)
        session.flush()
        return call.id


def writes_open_file(channel_id: str, options: RecordingOptions) -> None:
    path = Path(options.path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(wav_bytes(0, closed=False))


def row_of(store: Store, call_id: int) -> Recording:
    with store.transaction() as session:
        row = session.query(Recording).filter_by(call_id=call_id).one()
        session.expunge(row)
        return row


def count(store: Store, model: type) -> int:
    with store.transaction() as session:
        return int(session.query(model).count())


# ---------------------------------------------------------------------------
def test_wav_header_open_closed_and_stereo(tmp_path: Path) -> None:
    path = tmp_path / "a.wav"
    path.write_bytes(wav_bytes(0, closed=False) + b"\x00" * 1600)
    assert not wavfile.read_info(path).closed
    path.write_bytes(wav_bytes(0, closed=False))  # just opened: empty, sizes still zero
    assert not wavfile.read_info(path).closed
    path.write_bytes(wav_bytes(0, closed=True))  # closed with no audio at all
    assert wavfile.read_info(path).closed
    path.write_bytes(wav_bytes(2.0, channels=2))
    info = wavfile.read_info(path)
    assert info.closed and info.channels == 1 and info.duration == pytest.approx(4.0)
    assert wavfile.declare_channels(path, 2) is True
    info = wavfile.read_info(path)
    assert info.channels == 2 and info.duration == pytest.approx(2.0)
    assert wavfile.declare_channels(path, 2) is False
    (tmp_path / "b.wav").write_bytes(b"not a wav at all")
    with pytest.raises(wavfile.NotWav):
        wavfile.read_info(tmp_path / "b.wav")


async def test_start_checks_everything_first_and_leaves_nothing_on_failure(store: Store, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    settings = settings_for(tmp_path)
    switch = FakeSwitch(snapshot=legs("one"))
    with pytest.raises(NotFound, match="no call with id 99"):
        await recording.start_recording(store, switch, settings, 99)
    ended = make_call(store, "gone", state="ended")
    with pytest.raises(CallEnded, match="not in progress"):
        await recording.start_recording(store, switch, settings, ended)
    never = make_call(store, "never", project="Quiet")
    with store.transaction() as session:
        set_project_recording(session, "Quiet", "never", None)
    with pytest.raises(Forbidden, match="never records"):
        await recording.start_recording(store, switch, settings, never)
    call_id = make_call(store)
    with pytest.raises(StorageError, match="does not exist"):
        await recording.start_recording(store, switch, settings_for(tmp_path / "missing"), call_id)
    with pytest.raises(StorageError, match="disk full"):
        await recording.start_recording(store, switch, settings_for(tmp_path, min_free_mb=10**9), call_id)
    assert switch.calls == []
    # The PBX accepts MixMonitor but never creates the file (e.g. its directory is not writable).
    monkeypatch.setattr(recording, "FILE_APPEAR_TIMEOUT", 0.2)
    with pytest.raises(StorageError, match="did not create"):
        await recording.start_recording(store, switch, settings, call_id)
    assert [name for name, _ in switch.calls] == ["record_start", "record_stop"]
    assert count(store, Recording) == 0


async def test_start_records_the_client_leg_once(store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    switch = FakeSwitch(snapshot=legs("one"), recorder=writes_open_file)
    call_id = make_call(store)
    first = await recording.start_recording(store, switch, settings, call_id)
    assert not first.already and first.state == "recording"
    assert first.path == str(tmp_path / f"2026/03/01/call-{call_id}.wav")
    [(name, (channel_id, options))] = switch.calls
    assert channel_id == "one-c" and options == RecordingOptions(path=first.path, stereo=False)
    second = await recording.start_recording(store, switch, settings, call_id)
    assert second.already and len(switch.calls) == 1  # nothing more asked of the PBX


async def test_an_existing_file_of_the_same_name_is_never_overwritten(store: Store, tmp_path: Path) -> None:
    call_id = make_call(store)
    older = tmp_path / f"2026/03/01/call-{call_id}.wav"  # e.g. from a store that was reset
    older.parent.mkdir(parents=True)
    older.write_bytes(b"an older call")
    switch = FakeSwitch(snapshot=legs("one"), recorder=writes_open_file)
    started = await recording.start_recording(store, switch, settings_for(tmp_path), call_id)
    assert started.path == str(tmp_path / f"2026/03/01/call-{call_id}.1.wav")
    assert older.read_bytes() == b"an older call"


async def test_pause_resume_and_the_pbx_event_apply_once(store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    switch = FakeSwitch(snapshot=legs("one"), recorder=writes_open_file)
    call_id = make_call(store)
    await recording.start_recording(store, switch, settings, call_id)
    assert (await recording.set_recording_paused(store, switch, call_id, True)).changed
    # ctl serve then sees Asterisk's MixMonitorMute for the same change: no second pause.
    with store.transaction() as session:
        row = session.query(Recording).filter_by(call_id=call_id).one()
        assert recording.mark_paused(session, row, True, NOW, "pbx") is False
    assert not (await recording.set_recording_paused(store, switch, call_id, True)).changed
    assert (await recording.set_recording_paused(store, switch, call_id, False)).changed
    assert [c[0] for c in switch.calls] == ["record_start", "record_mute", "record_mute"]
    assert count(store, RecordingPause) == 1
    assert row_of(store, call_id).state == "recording"


def test_finalize_reads_the_closed_file(store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path).recording

    def recorded(pbx_id: str, seconds: float | None, stereo: bool = False, closed: bool = True) -> int:
        call_id = make_call(store, pbx_id)
        path = tmp_path / f"{pbx_id}.wav"
        if seconds is not None:
            path.write_bytes(wav_bytes(seconds, 2 if stereo else 1, closed))
        with store.transaction() as session:
            session.add(Recording(call_id=call_id, node="fake", channel_id=f"{pbx_id}-c", channel_name="x",
                                  path=str(path), pbx_path=str(path), stereo=stereo, state="recording",
                                  source="cli", started_at=NOW))
        return call_id

    whole = recorded("whole", 10.0)
    recording.finalize(store, settings, row_of(store, whole).id, NOW + timedelta(seconds=10.2), "call_ended")
    row = row_of(store, whole)
    assert (row.state, row.complete, row.duration_ms, row.problem) == ("stopped", True, 10_000, None)
    # The PBX ran out of disk after 3 s of a 10 s call: kept, but not complete.
    short = recorded("short", 3.0)
    recording.finalize(store, settings, row_of(store, short).id, NOW + timedelta(seconds=10), "call_ended")
    row = row_of(store, short)
    assert row.state == "stopped" and not row.complete and "3.0 s of a 10.0 s" in (row.problem or "")
    missing = recorded("missing", None)
    recording.finalize(store, settings, row_of(store, missing).id, NOW, "call_ended")
    assert row_of(store, missing).state == "failed"
    unfinished = recorded("open", 2.0, closed=False)
    recording.finalize(store, settings, row_of(store, unfinished).id, NOW + timedelta(seconds=2), "lost")
    assert "did not finish" in (row_of(store, unfinished).problem or "")
    stereo = recorded("stereo", 4.0, stereo=True)
    recording.finalize(store, settings, row_of(store, stereo).id, NOW + timedelta(seconds=4), "stopped")
    row = row_of(store, stereo)
    assert row.complete and wavfile.read_info(Path(row.path)).channels == 2 and row.duration_ms == 4000
    # A second finalize (the CLI and ctl serve both saw the end) changes nothing.
    recording.finalize(store, settings, row.id, NOW + timedelta(hours=1), "lost")
    assert row_of(store, stereo).stop_reason == "stopped"


def _stopped(store: Store, tmp_path: Path, pbx_id: str, age_days: float, call_state: str = "ended") -> int:
    call_id = make_call(store, pbx_id, state=call_state)
    path = tmp_path / f"{pbx_id}.wav"
    path.write_bytes(wav_bytes(1.0))
    stopped = datetime.now(UTC) - timedelta(days=age_days)
    with store.transaction() as session:
        session.add(Recording(call_id=call_id, node="fake", channel_id="c", channel_name="x", path=str(path),
                              pbx_path=str(path), state="stopped", source="policy", started_at=stopped,
                              stopped_at=stopped, size_bytes=path.stat().st_size, duration_ms=1000, complete=True))
    return call_id


def test_export_checks_the_file_against_the_store(store: Store, tmp_path: Path) -> None:
    call_id = _stopped(store, tmp_path, "one", 0)
    out = tmp_path / "out.wav"
    assert recording.export(store, call_id, str(out), force=False) == out.stat().st_size
    assert out.read_bytes() == (tmp_path / "one.wav").read_bytes()
    with pytest.raises(Conflict, match="already exists"):
        recording.export(store, call_id, str(out), force=False)
    recording.export(store, call_id, str(out), force=True)
    with (tmp_path / "one.wav").open("ab") as grown:
        grown.write(b"\x00\x00")
    with pytest.raises(StorageError, match="changed since the call"):
        recording.export(store, call_id, str(tmp_path / "other.wav"), force=False)
    (tmp_path / "one.wav").unlink()
    with pytest.raises(StorageError, match="missing"):
        recording.export(store, call_id, str(tmp_path / "other.wav"), force=False)
    assert not (tmp_path / "other.wav").exists()
    with pytest.raises(NotFound, match="has no recording"):
        recording.export(store, make_call(store, "bare"), str(tmp_path / "x.wav"), force=False)


def test_purge_spares_recent_recordings_and_calls_in_progress(store: Store, tmp_path: Path) -> None:
    old = _stopped(store, tmp_path, "old", 40)
    recent = _stopped(store, tmp_path, "recent", 5)
    live = _stopped(store, tmp_path, "live", 40, call_state="bridged")  # stopped by hand, call still on
    settings = settings_for(tmp_path).recording
    planned = recording.purge(store, settings, ["fake"], 30, dry_run=True).purged
    assert [p.call_id for p in planned] == [old]
    assert (tmp_path / "old.wav").exists()
    done = recording.purge(store, settings, ["fake"], 30, dry_run=False).purged
    assert [p.call_id for p in done] == [old] and not (tmp_path / "old.wav").exists()
    assert row_of(store, old).purged_at is not None
    assert (tmp_path / "recent.wav").exists() and (tmp_path / "live.wav").exists()
    assert row_of(store, recent).purged_at is None and row_of(store, live).purged_at is None
    with pytest.raises(NotFound, match="purged"):
        recording.export(store, old, str(tmp_path / "x.wav"), force=False)
    assert recording.purge(store, settings, ["fake"], 30, dry_run=False) == recording.PurgeReport([], [], [])


async def test_serve_applies_the_policy_on_bridge_and_closes_on_hangup(store: Store, tmp_path: Path) -> None:
    settings = settings_for(tmp_path)
    switch = FakeSwitch(recorder=writes_open_file)
    calls = CallTracker(store, switch, settings)
    tracker = recording.RecordingTracker(store, switch, settings, calls.leg_ids, calls.state_of,
                                         calls.bridge_of)
    switch.subscribe(calls.handle)
    switch.subscribe(tracker.handle)
    await switch.run()

    async def bridged_call(pbx_id: str) -> None:
        for channel_id, name, endpoint in ((pbx_id, "PJSIP/101-1", "101"), (f"{pbx_id}-c", "PJSIP/clients-2",
                                                                          "clients")):
            await switch.emit(ev.ChannelCreated(node="fake", at=NOW, call_id=pbx_id, channel_id=channel_id,
                                                name=name, endpoint=endpoint, caller_number=None, caller_name=None,
                                                dialed=None))
        for channel_id in (pbx_id, f"{pbx_id}-c"):
            await switch.emit(ev.ChannelEnteredBridge(node="fake", at=NOW, call_id=pbx_id, channel_id=channel_id,
                                                      bridge_id=f"bridge-{pbx_id}"))

    await bridged_call("one")
    [(name, (channel_id, options))] = switch.calls
    assert channel_id == "one-c"
    await switch.emit(ev.RecordingStarted(node="fake", at=NOW, call_id="one", channel_id="one-c"))
    with store.transaction() as session:
        [row] = session.query(Recording).all()
        assert (row.state, row.source, row.started_at) == ("recording", "policy", NOW)
        call = session.query(Call).filter_by(pbx_call_id="one").one()
    # A project on demand: no recording until someone asks.
    make_call(store, "two", state="created", project="Later")
    with store.transaction() as session:
        set_project_recording(session, "Later", "on-demand", None)
    await bridged_call("two")
    assert len(switch.calls) == 1
    # The recorded channel hangs up (Asterisk sends no MixMonitorStop then): the file is read.
    Path(options.path).write_bytes(wav_bytes(0.1))
    await switch.emit(ev.ChannelHungUp(node="fake", at=NOW + timedelta(seconds=0.1), call_id="one",
                                       channel_id="one-c", cause=HangupCause.NORMAL_CLEARING,
                                       cause_code=16, cause_text="Normal Clearing"))
    await tracker.wait_idle()
    row = row_of(store, call.id)
    assert (row.state, row.stop_reason, row.complete) == ("stopped", "call_ended", True)


def _tone_wav(path: Path, seconds: float, value: int, channels: int = 1) -> None:
    frames = int(seconds * RATE)
    data = struct.pack(f"<{frames * channels}h", *([value] * frames * channels))
    path.write_bytes(struct.pack("<4sI4s4sIHHIIHH4sI", b"RIFF", 36 + len(data), b"WAVE", b"fmt ", 16, 1, channels,
                                 RATE, RATE * 2 * channels, 2 * channels, 16, b"data", len(data)) + data)


def _samples(path: Path) -> list[int]:
    raw = path.read_bytes()[44:]
    return list(struct.unpack(f"<{len(raw) // 2}h", raw))


def test_mix_into_adds_the_track_over_the_spans_only(tmp_path: Path) -> None:
    main, track = tmp_path / "main.wav", tmp_path / "track.wav"
    _tone_wav(main, 4.0, 1000)
    _tone_wav(track, 2.0, 30000)  # starts 1 s into main
    frames = wavfile.mix_into(main, track, [(0.5, 1.5), (2.5, 3.5)], track_start=1.0)
    samples = _samples(main)
    assert frames == int(0.5 * RATE) * 2  # [1.0, 1.5) and [2.5, 3.0): where the track exists
    assert samples[int(0.9 * RATE)] == 1000 and samples[int(1.2 * RATE)] == 31000
    assert samples[int(2.0 * RATE)] == 1000 and samples[int(2.7 * RATE)] == 31000
    assert samples[int(3.2 * RATE)] == 1000  # the track ended at 3.0 s
    _tone_wav(main, 2.0, 10000, channels=2)
    wavfile.mix_into(main, track, [(0.0, 2.0)], track_start=0.0)
    assert set(_samples(main)) == {32767}  # clipped, on both channels


def test_supervisor_spans_are_whisper_and_barge_minus_pauses() -> None:
    from ctl.store.models import MonitorModeChange, MonitorSession

    at = [NOW + timedelta(seconds=n) for n in range(20)]
    session = MonitorSession(attached_at=at[1], ended_at=at[15])
    session.mode_changes = [MonitorModeChange(mode="listen", changed_at=at[0]),
                            MonitorModeChange(mode="whisper", changed_at=at[4]),
                            MonitorModeChange(mode="listen", changed_at=at[8]),
                            MonitorModeChange(mode="barge", changed_at=at[10])]
    spans = recording.speaking_spans(session, until=at[12])
    assert spans == [(at[4], at[8]), (at[10], at[12])]
    assert recording.without(spans, [(at[5], at[6]), (at[11], at[19])]) == [(at[4], at[5]), (at[6], at[8]),
                                                                          (at[10], at[11])]


def test_recording_order_for_one_direction_and_unsafe_paths() -> None:
    from ctl.asterisk import actions
    from ctl.errors import ValidationError

    order = actions.recording_order(RecordingOptions(path="/r/a.wav", direction="rx"))
    assert order == (("CTL_REC_FILE", "/r/a.wav"), ("CTL_REC_HOW", "r"))
    both = actions.recording_order(RecordingOptions(path="/r/b.wav", stereo=True, append=True))
    assert both[1] == ("CTL_REC_HOW", "mDa")
    for bad in ("/r/a).wav", "/r/a\r\nAction: Command.wav", "r/a.wav", "/r/../etc/x.wav", "/r/a,b.wav",
                "/r/a b.wav", "/r/./a.wav", "/r/a$x.wav"):
        with pytest.raises(ValidationError):
            actions.recording_order(RecordingOptions(path=bad, direction="rx"))
    with pytest.raises(ValidationError):
        actions.recording_order(RecordingOptions(path="/r/a.wav", direction="x"))
    assert actions.RECORD_TRIGGER_DIGIT not in actions.PHONE_DTMF  # no phone can press it
    assert actions.receive_digit("PJSIP/c-1", "R") == {"Action": "PlayDTMF", "Channel": "PJSIP/c-1", "Digit": "R",
                                                        "Duration": "100", "Receive": "yes"}
    with pytest.raises(ValidationError):
        actions.receive_digit("PJSIP/c-1", "RR")


async def test_a_recorded_leg_moved_to_another_bridge_is_recorded_afresh(store: Store, tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recording, "RESTART_PAUSE", 0)
    monkeypatch.setattr(recording, "RESTART_DEBOUNCE", 0)
    settings = settings_for(tmp_path)
    switch = FakeSwitch(recorder=writes_open_file)
    calls = CallTracker(store, switch, settings)
    tracker = recording.RecordingTracker(store, switch, settings, calls.leg_ids, calls.state_of, calls.bridge_of)
    switch.subscribe(calls.handle)
    switch.subscribe(tracker.handle)
    await switch.run()
    for channel_id, endpoint in (("one", "101"), ("one-c", "clients")):
        await switch.emit(ev.ChannelCreated(node="fake", at=NOW, call_id="one", channel_id=channel_id,
                                            name=f"PJSIP/{endpoint}-1", endpoint=endpoint, caller_number=None,
                                            caller_name=None, dialed=None))
    for channel_id in ("one", "one-c"):
        await switch.emit(ev.ChannelEnteredBridge(node="fake", at=NOW, call_id="one", channel_id=channel_id,
                                                  bridge_id="first"))
    await switch.emit(ev.RecordingStarted(node="fake", at=NOW, call_id="one", channel_id="one-c"))
    with store.transaction() as session:
        row = session.query(Recording).one()
        recording.mark_paused(session, row, True, NOW, "cli")
    # A transfer: the operator leaves, the client's leg joins a new bridge with a colleague.
    await switch.emit(ev.ChannelLeftBridge(node="fake", at=NOW, call_id="one", channel_id="one-c", bridge_id="first"))
    await switch.emit(ev.ChannelEnteredBridge(node="fake", at=NOW, call_id="one", channel_id="one-c",
                                              bridge_id="second"))
    [start, stop, again, mute] = switch.calls
    assert start[0] == "record_start" and stop == ("record_stop", ("one-c",))
    assert again[0] == "record_start" and again[1][1].append is True and again[1][1].path == start[1][1].path
    assert mute == ("record_mute", ("one-c", True))  # paused before the transfer, paused after
    # An attended transfer instead moves the colleague into the client's bridge: also afresh.
    await switch.emit(ev.ChannelEnteredBridge(node="fake", at=NOW, call_id="two", channel_id="colleague",
                                              bridge_id="second"))
    assert [name for name, _ in switch.calls[4:]] == ["record_stop", "record_start", "record_mute"]
    # Our own MixMonitorStop does not close the row.
    await switch.emit(ev.RecordingStopped(node="fake", at=NOW, call_id="one", channel_id="one-c"))
    await tracker.wait_idle()
    assert row_of(store, row.call_id).state == "paused"
