"""Security hardening: purge confined to the recordings directory and this node, private
exports and store, CSV cells that no spreadsheet runs as formulas, ids range-checked."""

from __future__ import annotations

import csv
import io
import json
import os
import stat
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from ctl.cli import cli, main
from ctl.errors import Conflict
from ctl.report_output import render
from ctl.services import recording
from ctl.services.reports import Column, Report, make_period
from ctl.store.engine import Store, make_engine, upgrade
from ctl.store.models import Call, Recording
from tests.unit.test_recording_service import make_call, row_of, settings_for, wav_bytes


@pytest.fixture
def umask() -> Iterator[None]:
    """A permissive umask for the test (CLI tests leave 077 behind), the process's own after it."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def _mode(path: Path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


def _old_recording(store: Store, pbx_id: str, path: Path, node: str = "fake", write: bool = True) -> int:
    """A recording of an ended call, stopped 40 days ago, whose row says `path`."""
    call_id = make_call(store, pbx_id, state="ended")
    if write:
        path.write_bytes(wav_bytes(0.1))
    stopped = datetime.now(UTC) - timedelta(days=40)
    with store.transaction() as session:
        session.query(Call).filter_by(id=call_id).update({"node": node})
        session.add(Recording(call_id=call_id, node=node, channel_id="c", channel_name="x", path=str(path),
                              pbx_path=str(path), state="stopped", source="policy", started_at=stopped,
                              stopped_at=stopped, size_bytes=100, duration_ms=100, complete=True))
    return call_id


# ---------------------------------------------------------------------------
# 1. ctl record purge
# ---------------------------------------------------------------------------
def test_purge_deletes_only_this_nodes_regular_files_inside_the_recordings_directory(store: Store,
                                                                                      tmp_path: Path) -> None:
    directory, outside = tmp_path / "recordings", tmp_path / "outside"
    directory.mkdir()
    outside.mkdir()
    victims = {name: outside / name for name in ("edited.txt", "linked.txt", "under-link.wav", "dotdot.wav")}
    for victim in victims.values():
        victim.write_text("precious")
    (directory / "link.wav").symlink_to(victims["linked.txt"])
    (directory / "2026").symlink_to(outside, target_is_directory=True)
    kept = _old_recording(store, "kept", directory / "kept.wav")
    edited = _old_recording(store, "edited", victims["edited.txt"], write=False)
    linked = _old_recording(store, "linked", directory / "link.wav", write=False)
    under_link = _old_recording(store, "under", directory / "2026" / "under-link.wav", write=False)
    dotdot = _old_recording(store, "dotdot", directory / ".." / "outside" / "dotdot.wav", write=False)
    other_node = _old_recording(store, "other", directory / "other-node.wav", node="elsewhere")
    missing = _old_recording(store, "missing", directory / "missing.wav", write=False)
    settings = settings_for(directory).recording

    planned = recording.purge(store, settings, ["fake"], 30, dry_run=True)
    assert [p.call_id for p in planned.purged] == [kept] and (directory / "kept.wav").exists()
    report = recording.purge(store, settings, ["fake"], 30, dry_run=False)

    assert [p.call_id for p in report.purged] == [kept] and not (directory / "kept.wav").exists()
    assert sorted(p.call_id for p in report.refused) == sorted([edited, linked, under_link, dotdot])
    assert all(victim.read_text() == "precious" for victim in victims.values())
    assert (directory / "link.wav").is_symlink()
    assert [p.call_id for p in report.missing] == [missing]
    assert (directory / "other-node.wav").exists()
    assert row_of(store, kept).purged_at is not None
    for left in (edited, linked, under_link, dotdot, other_node, missing):
        assert row_of(store, left).purged_at is None
    # Nothing marked purged by mistake: the same files are found again, the deleted one is not.
    again = recording.purge(store, settings, ["fake"], 30, dry_run=False)
    assert again.purged == [] and [p.call_id for p in again.missing] == [missing]
    assert [p.call_id for p in recording.purge(store, settings, ["elsewhere"], 30, dry_run=False).purged] == \
        [other_node]


def test_purge_does_not_follow_a_directory_swapped_for_a_symlink_after_the_check(tmp_path: Path,
                                                                                 monkeypatch: pytest.MonkeyPatch
                                                                                 ) -> None:
    root, outside = tmp_path / "recordings", tmp_path / "outside"
    (root / "2026").mkdir(parents=True)
    outside.mkdir()
    (root / "2026" / "a.wav").write_bytes(b"audio")
    (outside / "a.wav").write_text("precious")
    checked = recording._parts_below

    def check_then_swap(resolved_root: str, path: str) -> tuple[str, ...]:
        parts = checked(resolved_root, path)
        (root / "2026" / "a.wav").unlink()
        (root / "2026").rmdir()
        (root / "2026").symlink_to(outside, target_is_directory=True)  # the PBX's user races the purge
        return parts

    monkeypatch.setattr(recording, "_parts_below", check_then_swap)
    with pytest.raises(recording._Refused, match="symbolic link"):
        recording._delete_below(os.path.realpath(root), str(root / "2026" / "a.wav"), dry_run=False)
    assert (outside / "a.wav").read_text() == "precious"


def _cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    for key in [k for k in os.environ if k.startswith("CTL_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CTL_DATABASE_URL", f"sqlite:///{tmp_path / 'ctl.db'}")
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def test_purge_from_the_command_line_touches_only_this_controllers_nodes(tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch,
                                                                         umask: None) -> None:
    runner = _cli(tmp_path, monkeypatch)
    directory = tmp_path / "recordings"
    directory.mkdir()
    monkeypatch.setenv("CTL_RECORDING_DIRECTORY", str(directory))
    upgrade(f"sqlite:///{tmp_path / 'ctl.db'}")
    store = Store(f"sqlite:///{tmp_path / 'ctl.db'}")
    _old_recording(store, "mine", directory / "mine.wav", node="asterisk")
    _old_recording(store, "fs", directory / "fs.wav", node="freeswitch")  # no [freeswitch] host here
    missing = _old_recording(store, "gone", directory / "gone.wav", node="asterisk", write=False)
    outside = _old_recording(store, "outside", tmp_path / "ctl.db", node="asterisk", write=False)
    store.dispose()

    result = runner.invoke(cli, ["record", "purge", "--older-than", "30"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert not (directory / "mine.wav").exists() and (directory / "fs.wav").exists()
    assert (tmp_path / "ctl.db").exists()
    assert f"ctl: warning: {directory / 'gone.wav'} (call {missing}) is missing: not marked purged" in result.stderr
    assert f"(call {outside}) refused: outside the recordings directory" in result.stderr
    assert "1 recordings, 100 bytes purged; 1 missing, 1 refused left alone" in result.stdout
    shown = json.loads(runner.invoke(cli, ["record", "purge", "--older-than", "30", "--json"]).stdout)
    assert [r["call"] for r in shown["missing"]] == [missing] and [r["call"] for r in shown["refused"]] == [outside]
    assert shown["recordings"] == []


# ---------------------------------------------------------------------------
# 2. ctl call recording -o FILE
# ---------------------------------------------------------------------------
def _exportable(store: Store, tmp_path: Path) -> int:
    source = tmp_path / "recordings" / "call.wav"
    source.parent.mkdir(exist_ok=True)
    call_id = _old_recording(store, "export", source)
    with store.transaction() as session:
        session.query(Recording).filter_by(call_id=call_id).update({"size_bytes": source.stat().st_size})
    return call_id


def test_export_does_not_follow_a_planted_part_symlink_and_is_private(store: Store, tmp_path: Path,
                                                                      umask: None) -> None:
    call_id = _exportable(store, tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (out_dir / ".call.wav.part").symlink_to(victim)  # the name the old code wrote through
    assert recording.export(store, call_id, str(out_dir / "call.wav"), force=False) > 0
    assert victim.read_text() == "precious"
    assert (out_dir / "call.wav").read_bytes() == (tmp_path / "recordings" / "call.wav").read_bytes()
    assert _mode(out_dir / "call.wav") == 0o600
    assert sorted(p.name for p in out_dir.iterdir()) == [".call.wav.part", "call.wav"]  # no temporary left
    # --force replaces a symlink at the target itself, never the file it points to.
    (out_dir / "call.wav").unlink()
    (out_dir / "call.wav").symlink_to(victim)
    recording.export(store, call_id, str(out_dir / "call.wav"), force=True)
    assert victim.read_text() == "precious" and not (out_dir / "call.wav").is_symlink()
    assert _mode(out_dir / "call.wav") == 0o600


def test_export_without_force_never_clobbers_a_file_that_appears_meanwhile(store: Store, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    call_id = _exportable(store, tmp_path)
    target = tmp_path / "out.wav"
    copy = recording.shutil.copyfileobj

    def copy_while_someone_writes(source: io.BufferedReader, destination: io.BufferedWriter) -> None:
        target.write_text("someone else's")
        copy(source, destination)

    monkeypatch.setattr(recording.shutil, "copyfileobj", copy_while_someone_writes)
    with pytest.raises(Conflict, match="already exists"):
        recording.export(store, call_id, str(target), force=False)
    assert target.read_text() == "someone else's"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".part")] == []


# ---------------------------------------------------------------------------
# 3. Private files: the SQLite store, the CLI's umask
# ---------------------------------------------------------------------------
def test_a_new_sqlite_store_is_private_whatever_the_umask(tmp_path: Path, umask: None) -> None:
    os.umask(0)
    upgrade(f"sqlite:///{tmp_path / 'migrated.db'}")
    assert _mode(tmp_path / "migrated.db") == 0o600
    engine = make_engine(f"sqlite:///{tmp_path / 'opened.db'}")
    with engine.connect() as connection:
        connection.exec_driver_sql("CREATE TABLE t (x INTEGER)")
        connection.commit()
        assert _mode(tmp_path / "opened.db") == 0o600
        assert _mode(tmp_path / "opened.db-wal") == 0o600
    engine.dispose()
    (tmp_path / "existing.db").touch(mode=0o640)
    make_engine(f"sqlite:///{tmp_path / 'existing.db'}").dispose()
    assert _mode(tmp_path / "existing.db") == 0o640  # an existing store keeps its mode


def test_the_command_line_runs_under_umask_077(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                               umask: None) -> None:
    runner = _cli(tmp_path, monkeypatch)
    assert runner.invoke(cli, ["db", "upgrade"], catch_exceptions=False).exit_code == 0
    assert os.umask(0o022) == 0o077
    assert _mode(tmp_path / "ctl.db") == 0o600


# ---------------------------------------------------------------------------
# 4. CSV reports
# ---------------------------------------------------------------------------
def test_csv_cells_that_would_be_formulas_are_quoted_and_numbers_stay_numbers() -> None:
    period = make_period("2026-03-01", None, "UTC", datetime(2026, 3, 2, tzinfo=UTC))
    names = ['=HYPERLINK("http://x","y")', "@SUM(A1)", "+1", "-2+3", "\tx", "\rx", "Anna", "O'Brien"]
    report = Report("test", period, [Column("name"), Column("calls", "int"), Column("talk", "seconds"),
                                     Column("share", "percent")],
                    [{"name": name, "calls": -5, "talk": -60, "share": -2.5} for name in names])
    rows = list(csv.reader(io.StringIO(render(report, "csv"), newline="")))
    assert rows[0] == ["name", "calls", "talk", "share"]
    assert [row[0] for row in rows[1:]] == ['\'=HYPERLINK("http://x","y")', "'@SUM(A1)", "'+1", "'-2+3", "'\tx",
                                           "'\rx", "Anna", "O'Brien"]
    assert all(row[1:] == ["-5", "-60", "-2.5"] for row in rows[1:])
    # JSON is data, not a spreadsheet: unchanged.
    assert [row["name"] for row in json.loads(render(report, "json"))["rows"]] == names


# ---------------------------------------------------------------------------
# 5. Integer arguments
# ---------------------------------------------------------------------------
# Each command taking an id: the words before the id, and the arguments after it.
ID_COMMANDS = [
    (["call", "show"], []), (["call", "recording", "-o", "x.wav"], []), (["call", "result"], ["ok"]),
    (["call", "comment"], ["x"]), (["call", "flag"], []), (["call", "dial-client", "--from", "101"], []),
    (["call", "dial-operator", "--from", "101"], []), (["record", "start"], []), (["record", "pause"], []),
    (["record", "resume"], []), (["record", "stop"], []), (["monitor", "mode"], ["listen"]),
    (["monitor", "stop"], []), (["task", "done"], []), (["task", "cancel"], []),
]


@pytest.mark.parametrize("value", ["99999999999999999999999", "2147483648", "-1", "0"])
@pytest.mark.parametrize(("before", "after"), ID_COMMANDS, ids=[" ".join(c[0][:2]) for c in ID_COMMANDS])
def test_every_id_argument_is_range_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: None,
                                            before: list[str], after: list[str], value: str) -> None:
    runner = _cli(tmp_path, monkeypatch)
    # '--' so that '-1' is read as the id, not as an unknown option (also a usage error).
    result: Result = runner.invoke(cli, [*before, "--", value, *after], catch_exceptions=False)
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "is not in the range 1<=x<=2147483647" in errors[0]


@pytest.mark.parametrize("args", [
    ["call", "show", "99999999999999999999999"], ["call", "show", "-1"], ["call", "show", "0"],
    ["task", "add", "--call", "99999999999999999999999", "--at", "+1h"],
    ["project", "add", "P", "--wrapup-seconds", "99999999999999999999999"],
])
def test_an_out_of_range_integer_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        umask: None, capsys: pytest.CaptureFixture[str],
                                                        args: list[str]) -> None:
    _cli(tmp_path, monkeypatch)
    upgrade(f"sqlite:///{tmp_path / 'ctl.db'}")
    with pytest.raises(SystemExit) as exited:
        main(args)
    captured = capsys.readouterr()
    assert exited.value.code == 2
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("ctl: "), captured.err
    assert captured.out == ""


def test_the_largest_id_is_looked_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask: None) -> None:
    runner = _cli(tmp_path, monkeypatch)
    assert runner.invoke(cli, ["db", "upgrade"]).exit_code == 0
    result = runner.invoke(cli, ["call", "show", str(2**31 - 1)], catch_exceptions=False)
    assert result.exit_code == 4 and "no call with id 2147483647" in result.output
