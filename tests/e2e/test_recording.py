"""Call recording on the real Asterisk, checked by listening to the files.

Client and operator are sipp phones streaming their own tones; the recording
ctl asks Asterisk for (MixMonitor on the client's leg) is read back and an FFT
says whose voice is in it, second by second.
"""

from __future__ import annotations

import subprocess
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sip_peers import make_tone

from tests.conftest import wait_for
from tests.e2e.audio import track_levels, wav_tracks
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve

TONES = {"client": 500.0, "operator": 1100.0, "other": 1900.0}
HEARD_DBFS = -25.0
ABSENT_DBFS = -40.0

# The row's times are when ctl read the PBX's events: on a busy machine (CI, a CPU hog beside the
# suite) they lag the audio by up to about a second.
EVENT_LAG = 1.5


def recording(ctl: CtlRunner, call_id: int) -> dict[str, Any] | None:
    rows = [r for r in ctl.json("record", "list") if r["call"] == call_id]
    return rows[0] if rows else None


def wait_recording(ctl: CtlRunner, call_id: int, state: str, timeout: float = 15) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = recording(ctl, call_id)
        return row if row is not None and row["state"] == state else None

    return wait_for(reached, timeout, interval=0.1, message=f"call {call_id}'s recording {state}")  # type: ignore[return-value]


def at(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


def offsets(row: dict[str, Any], key: str) -> list[float]:
    return [at(p[key]) - at(row["started_at"]) for p in row["pauses"]]


@pytest.fixture
def tones(tmp_path: Path) -> dict[str, Path]:
    return {name: make_tone(tmp_path / f"{name}.ulaw", frequency) for name, frequency in TONES.items()}


def bridged_call(ctl: CtlRunner, phones: Phones, tones: dict[str, Path], project: str | None = "Sales") -> int:
    phones.phone("101", "answer", hold_ms=120_000, tone=tones["operator"])
    phones.clients("answer", hold_ms=120_000, tone=tones["client"])
    args = ["call", "bridge", "--operator", "101", "--to", "79991234567"]
    call_id = int(ctl.json(*args, *(["--project", project] if project else []))["id"])
    ctl.wait_state(call_id, "bridged")
    return call_id


def test_policy_records_both_parties_and_a_pause_is_silence(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                            tones: dict[str, Path], asterisk: Sandbox) -> None:
    call_id = bridged_call(ctl, phones, tones)
    row = wait_recording(ctl, call_id, "recording")
    assert row["source"] == "policy" and row["stereo"] is False
    time.sleep(2.5)
    assert ctl.json("record", "pause", str(call_id))["changed"] is True
    again = ctl.run("record", "pause", str(call_id))  # idempotent: reported, nothing sent
    assert "already paused" in again.stdout
    time.sleep(2.0)
    ctl.run("record", "resume", str(call_id))
    time.sleep(2.5)
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True, row
    assert row["stop_reason"] == "call_ended" and row["problem"] is None
    path = Path(row["path"])
    assert path.stat().st_size == row["size_bytes"]
    wall = at(row["stopped_at"]) - at(row["started_at"])
    # stopped_at is when ctl handled the stop event: on a busy 2-core CI it came 0.8 s late.
    # A pause left out of the file's timeline would still be off by its 2 s or more.
    assert abs(row["duration_s"] - wall) < EVENT_LAG, (row["duration_s"], wall)

    [track] = wav_tracks(path)
    [(paused, resumed)] = zip(offsets(row, "paused_at"), offsets(row, "resumed_at"), strict=True)
    # Each ctl command takes about a second: the spans are long enough to measure, not exact.
    assert 2.0 < paused < 8 and 1.5 < resumed - paused < 8, (paused, resumed)
    for start, end in ((0.3, paused - 0.3), (resumed + 0.3, row["duration_s"] - 0.3)):
        levels = track_levels(track, start, end, TONES)
        assert levels["client"] > HEARD_DBFS and levels["operator"] > HEARD_DBFS, (start, end, levels)
    silent = track_levels(track, paused + 0.1, resumed - 0.1, TONES)
    assert max(silent.values()) < -60, silent


def levels_between(track: Any, start: float, end: float) -> dict[str, float]:
    return track_levels(track, start, end, TONES)


def test_stereo_puts_the_client_left_and_the_operator_right(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                             tones: dict[str, Path], asterisk: Sandbox) -> None:
    ctl.run("project", "set", "Sales", "--stereo")
    call_id = bridged_call(ctl, phones, tones)
    wait_recording(ctl, call_id, "recording")
    time.sleep(3)
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True and row["stereo"] is True, row
    left, right = wav_tracks(Path(row["path"]))
    end = row["duration_s"] - 0.3
    assert abs(row["duration_s"] - (at(row["stopped_at"]) - at(row["started_at"]))) < EVENT_LAG
    client_side, operator_side = levels_between(left, 0.3, end), levels_between(right, 0.3, end)
    assert client_side["client"] > HEARD_DBFS and client_side["operator"] < ABSENT_DBFS, client_side
    assert operator_side["operator"] > HEARD_DBFS and operator_side["client"] < ABSENT_DBFS, operator_side


def test_a_whispering_supervisor_is_not_in_the_recording(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                         tones: dict[str, Path], asterisk: Sandbox,
                                                         tmp_path: Path) -> None:
    from tests.e2e.audio import RtpCapture, hears

    call_id = bridged_call(ctl, phones, tones)
    operator_phone = phones.started[0]
    phones.phone("200", "answer", hold_ms=120_000, tone=tones["other"])
    row = wait_recording(ctl, call_id, "recording")
    capture = RtpCapture(tmp_path / "operator.pcap", [operator_phone.media_port])  # type: ignore[union-attr]
    session_id = int(ctl.json("monitor", "whisper", "101", "--by", "200")["session"])
    wait_for(lambda: [s for s in ctl.json("monitor", "list", "--active") if s["id"] == session_id
                      and s["attached_at"]], timeout=10, message="the whisper to attach")
    attached = time.time()
    time.sleep(3)
    packets = capture.stop()
    # The whisper is live: the operator hears the supervisor…
    heard = hears(packets, operator_phone.media_port, attached + 0.5, attached + 2.5, TONES)  # type: ignore[union-attr]
    assert heard["other"] > HEARD_DBFS, heard
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True, row
    # …and the recording holds the client and the operator only.
    [track] = wav_tracks(Path(row["path"]))
    offset = attached - at(row["started_at"])
    levels = levels_between(track, offset + 0.5, offset + 2.5)
    assert levels["client"] > HEARD_DBFS and levels["operator"] > HEARD_DBFS, levels
    assert levels["other"] < ABSENT_DBFS, levels


def test_a_blind_transfer_keeps_one_recording(ctl: CtlRunner, serve: Serve, phones: Phones,
                                              tones: dict[str, Path], asterisk: Sandbox) -> None:
    from tests.e2e.ami import action

    call_id = bridged_call(ctl, phones, tones)
    phones.phone("102", "answer", hold_ms=120_000, tone=tones["other"])
    row = wait_recording(ctl, call_id, "recording")
    time.sleep(2)
    [operator_channel] = [line.split("!")[0] for line in asterisk.rx("core show channels concise").splitlines()
                          if line.startswith("PJSIP/101-")]
    reply = action(asterisk.ami_port, asterisk.secret("ami"), Action="BlindTransfer", Channel=operator_channel,
                   Context="ctl-phones", Exten="102")
    assert reply["Response"] == "Success", reply
    transferred = time.time()
    wait_for(lambda: any(line.startswith("PJSIP/102-") and "!Up!" in line
                         for line in asterisk.rx("core show channels concise").splitlines()),
             timeout=10, message="102 to answer the transferred client")
    answered = time.time()
    time.sleep(3)
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True and row["stop_reason"] == "call_ended", (row["problem"], row["duration_s"], row)
    assert [r["call"] for r in ctl.json("record", "list")].count(call_id) == 1
    assert serve.count("recording restarted on a fresh audiohook") == 1
    [track] = wav_tracks(Path(row["path"]))
    started = at(row["started_at"])
    before = levels_between(track, 0.3, transferred - started - 0.3)
    after = levels_between(track, answered - started + 0.5, row["duration_s"] - 0.3)
    assert before["operator"] > HEARD_DBFS and before["other"] < ABSENT_DBFS, before
    assert after["other"] > HEARD_DBFS and after["operator"] < ABSENT_DBFS, after
    assert before["client"] > HEARD_DBFS and after["client"] > HEARD_DBFS
    assert abs(row["duration_s"] - (at(row["stopped_at"]) - started)) < EVENT_LAG


def recorded_call_then_serve_killed(ctl: CtlRunner, phones: Phones, tones: dict[str, Path], log: Path,
                                    talk: float = 0) -> int:
    """A recorded call under a `ctl serve` that is then killed (SIGKILL) while the call goes on."""
    first = Serve(ctl, log)
    first.wait_log("reconciled with the PBX")
    try:
        call_id = bridged_call(ctl, phones, tones)
        wait_recording(ctl, call_id, "recording")
        time.sleep(talk)
    finally:
        first.process.kill()
        first.process.wait(10)
    return call_id


def test_serve_killed_and_restarted_mid_call_still_completes_the_row(ctl: CtlRunner, phones: Phones,
                                                                     tones: dict[str, Path], asterisk: Sandbox,
                                                                     tmp_path: Path) -> None:
    call_id = recorded_call_then_serve_killed(ctl, phones, tones, tmp_path / "serve-1.log")
    time.sleep(1.5)
    second = Serve(ctl, tmp_path / "serve-2.log")
    try:
        second.wait_log("recordings reconciled")
        assert recording(ctl, call_id)["state"] == "recording"  # type: ignore[index]
        time.sleep(1.5)
        asterisk.hangup_endpoint("clients")
        row = wait_recording(ctl, call_id, "stopped")
    finally:
        assert second.stop() == 0
    assert row["complete"] is True and row["stop_reason"] == "call_ended", row
    assert abs(row["duration_s"] - (at(row["stopped_at"]) - at(row["started_at"]))) < EVENT_LAG
    [track] = wav_tracks(Path(row["path"]))
    levels = levels_between(track, 0.3, row["duration_s"] - 0.3)
    assert levels["client"] > HEARD_DBFS and levels["operator"] > HEARD_DBFS, levels


@pytest.fixture
def tiny_fs(tmp_path: Path) -> Any:
    """A mounted 1 MB tmpfs, taken down after the test: a disk that fills up for real."""
    mounted: list[Path] = []

    def mount(name: str, options: str = "size=1m") -> Path:
        target = tmp_path / name
        target.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], check=True)
        mounted.append(target)
        return target

    yield mount
    for target in mounted:
        subprocess.run(["umount", "-l", str(target)], check=False)


def test_record_commands_refuse_with_one_line_and_write_nothing(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                                tones: dict[str, Path], asterisk: Sandbox,
                                                                tiny_fs: Any) -> None:
    ctl.run("project", "set", "Sales", "--recording", "on-demand")
    call_id = bridged_call(ctl, phones, tones)
    assert recording(ctl, call_id) is None  # on demand: nothing until asked

    def refused(code: int, kind: str, *args: str, env: dict[str, str] | None = None) -> str:
        runner = CtlRunner({**ctl.env, **(env or {})}, ctl.url)
        result = runner.run("record", *args, "--json", check=False)
        assert result.returncode == code, (args, result.returncode, result.stderr)
        assert f'"error": "{kind}"' in result.stdout, result.stdout
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("ctl: "), line
        assert recording(ctl, call_id) is None, "a refused start left a row"
        return line

    refused(4, "not_found", "start", "99999")
    refused(4, "not_found", "pause", str(call_id))  # no recording yet
    read_only = tiny_fs("ro", "size=1m,ro")
    assert "not writable" in refused(5, "storage", "start", str(call_id),
                                     env={"CTL_RECORDING_DIRECTORY": str(read_only)})
    full = tiny_fs("full", "size=256k")
    subprocess.run(["dd", "if=/dev/zero", f"of={full / 'filler'}", "bs=64k", "count=8"], capture_output=True)
    assert "disk full" in refused(5, "storage", "start", str(call_id),
                                  env={"CTL_RECORDING_DIRECTORY": str(full), "CTL_RECORDING_MIN_FREE_MB": "1"})
    # ctl's directory is fine, but Asterisk cannot create files where it is told to.
    (asterisk.recordings / "blocked").write_text("a file where a directory should be")
    assert "did not create" in refused(5, "storage", "start", str(call_id),
                                       env={"CTL_RECORDING_PBX_DIRECTORY": "/var/spool/asterisk/recordings/blocked"})
    # The dialplan records only in its own recordings directory (CTL_RECORDINGS).
    assert "records only below /var/spool/asterisk/recordings" in refused(
        3, "action_failed", "start", str(call_id), env={"CTL_RECORDING_PBX_DIRECTORY": "/proc/ctl-recordings"})

    started = ctl.json("record", "start", str(call_id))
    assert started["already"] is False and started["state"] == "recording"
    again = ctl.run("record", "start", str(call_id))
    assert again.returncode == 0 and "already being recorded" in again.stdout
    time.sleep(2)
    stopped = ctl.json("record", "stop", str(call_id))
    assert stopped["state"] == "stopped"
    row = recording(ctl, call_id)
    assert row is not None and row["complete"] is True and row["stop_reason"] == "stopped", row
    # One writer only: a second MixMonitor on the same file would double the audio.
    assert abs(row["duration_s"] - (at(row["stopped_at"]) - at(row["started_at"]))) < EVENT_LAG
    assert ctl.run("record", "stop", str(call_id)).stdout.strip().endswith("nothing done")
    conflict = ctl.run("record", "start", str(call_id), check=False)
    assert conflict.returncode == 8 and "one recording" in conflict.stderr

    exported = Path(ctl.env.get("TMPDIR", "/tmp")) / f"ctl-e2e-export-{call_id}.wav"
    exported.unlink(missing_ok=True)
    ctl.run("call", "recording", str(call_id), "-o", str(exported))
    assert exported.read_bytes() == Path(row["path"]).read_bytes()
    exported.unlink()

    asterisk.hangup_endpoint("clients")
    ctl.wait_state(call_id, "ended")
    ended = ctl.run("record", "start", str(call_id), "--json", check=False)
    assert ended.returncode == 7 and '"call_ended"' in ended.stdout


def test_the_operators_feature_code_pauses_and_resumes(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                       tones: dict[str, Path], asterisk: Sandbox) -> None:
    code = asterisk.settings["CODE_RECORD_PAUSE"]  # *1 by default
    keys = [(3000, code[0]), (3450, code[1]), (6500, code[0]), (6950, code[1])]
    phones.phone("101", "answer", hold_ms=120_000, tone=tones["operator"], digits=keys)
    phones.clients("answer", hold_ms=120_000, tone=tones["client"])
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567", "--project", "Sales")["id"])
    wait_recording(ctl, call_id, "recording")
    wait_for(lambda: (r := recording(ctl, call_id)) and r["pauses"] and r["pauses"][0]["resumed_at"],
             timeout=15, message="the operator's code to pause and resume")
    time.sleep(2)
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True, row
    [pause] = row["pauses"]
    assert pause["source"] == "feature_code", pause
    paused, resumed = offsets(row, "paused_at")[0], offsets(row, "resumed_at")[0]
    assert 2.0 < resumed - paused < 4.5, (paused, resumed)
    [track] = wav_tracks(Path(row["path"]))
    silent = levels_between(track, paused + 0.2, resumed - 0.2)
    assert max(silent.values()) < -60, silent
    for start, end in ((0.3, paused - 0.7), (resumed + 0.7, row["duration_s"] - 0.3)):
        levels = levels_between(track, start, end)
        assert levels["client"] > HEARD_DBFS and levels["operator"] > HEARD_DBFS, (start, end, levels)
    # Nothing was refused on the way.
    assert serve.count("recording pause refused") == 0


def test_an_inbound_call_to_an_operator_is_recorded(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                    tones: dict[str, Path]) -> None:
    phones.phone("101", "answer", hold_ms=120_000, tone=tones["operator"])
    caller = phones.inbound("79997654321", "5550000", tones["client"], hold_ms=5000)
    call = wait_for(lambda: [c for c in ctl.calls() if c["direction"] == "inbound"], timeout=10,
                    message="the inbound call")[0]  # type: ignore[index]
    row = wait_recording(ctl, call["id"], "recording")
    assert row["source"] == "policy"  # no project: the [recording] policy, always by default
    caller.wait(20)
    row = wait_recording(ctl, call["id"], "stopped")
    assert row["complete"] is True, row
    shown = ctl.call(call["id"])
    assert shown["client"] == "79997654321" and shown["operator"] == "101" and shown["recording_complete"]
    [track] = wav_tracks(Path(row["path"]))
    levels = levels_between(track, 0.3, row["duration_s"] - 0.3)
    assert levels["client"] > HEARD_DBFS and levels["operator"] > HEARD_DBFS, levels


def test_the_pbx_disk_filling_up_mid_call_leaves_an_incomplete_row(tmp_path: Path, tiny_fs: Any,
                                                                    tones: dict[str, Path]) -> None:
    from tests.e2e.conftest import make_ctl, start_sandbox

    small = tiny_fs("pbx-recordings", "size=40k")  # about 2.5 s of 8 kHz 16-bit audio
    sandbox = start_sandbox(tmp_path / "asterisk-small", recordings=small)
    phones = Phones(sandbox, tmp_path / "phones-small")
    daemon = None
    try:
        runner = make_ctl(sandbox, f"sqlite:///{tmp_path / 'small.db'}")
        runner = CtlRunner({**runner.env, "CTL_RECORDING_MIN_FREE_MB": "0"}, runner.url)
        daemon = Serve(runner, tmp_path / "serve-small.log")
        daemon.wait_log("reconciled with the PBX")
        call_id = bridged_call(runner, phones, tones)
        wait_recording(runner, call_id, "recording")
        time.sleep(5)
        sandbox.hangup_endpoint("clients")
        row = wait_recording(runner, call_id, "stopped")
        assert row["complete"] is False and "disk full" in row["problem"], row
        assert row["duration_s"] < 3 and row["size_bytes"] <= 40 * 1024, row
        assert daemon.count("recording incomplete: " + row["problem"]) == 1
        refused = runner.run("call", "recording", str(call_id), "-o", str(tmp_path / "x.wav"), check=False)
        assert refused.returncode == 5 and "incomplete" in refused.stderr and not (tmp_path / "x.wav").exists()
    finally:
        if daemon is not None:
            assert daemon.stop() == 0
        phones.stop()
        sandbox.instance.stop()


def test_a_project_may_mix_the_whispering_supervisor_in(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                        tones: dict[str, Path], asterisk: Sandbox) -> None:
    ctl.run("project", "set", "Sales", "--record-supervisor")
    call_id = bridged_call(ctl, phones, tones)
    phones.phone("200", "answer", hold_ms=120_000, tone=tones["other"])
    wait_recording(ctl, call_id, "recording")
    session_id = int(ctl.json("monitor", "whisper", "101", "--by", "200")["session"])
    wait_for(lambda: [s for s in ctl.json("monitor", "list", "--active") if s["id"] == session_id
                      and s["attached_at"]], timeout=10, message="the whisper to attach")
    time.sleep(3)
    ctl.run("monitor", "mode", str(session_id), "listen")
    time.sleep(3)
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True, row
    [session] = ctl.json("monitor", "log", "--by", "200")
    whisper_from = at(session["attached_at"]) - at(row["started_at"])
    listen_from = at(session["modes"][-1]["at"]) - at(row["started_at"])
    [track] = wav_tracks(Path(row["path"]))
    whispering = levels_between(track, whisper_from + 0.3, listen_from - 0.3)
    listening = levels_between(track, listen_from + 0.3, row["duration_s"] - 0.3)
    assert min(whispering.values()) > HEARD_DBFS, whispering  # client, operator and the supervisor
    assert listening["other"] < ABSENT_DBFS and listening["client"] > HEARD_DBFS, listening
    assert not list(Path(row["path"]).parent.glob("*.supervisor-*.wav"))  # mixed in, side file gone
    assert serve.count("supervisor mixed into the recording") == 1


def test_a_call_that_ends_while_serve_is_down_is_closed_from_the_file(ctl: CtlRunner, phones: Phones,
                                                                     tones: dict[str, Path], asterisk: Sandbox,
                                                                     tmp_path: Path) -> None:
    call_id = recorded_call_then_serve_killed(ctl, phones, tones, tmp_path / "serve-1.log", talk=2)
    asterisk.hangup_endpoint("clients")
    wait_for(lambda: asterisk.live_channels() == 0, message="the call to end on the PBX")
    hung_up = time.time()
    second = Serve(ctl, tmp_path / "serve-2.log")
    try:
        second.wait_log("recordings reconciled")
        row = wait_recording(ctl, call_id, "stopped")
    finally:
        assert second.stop() == 0
    assert row["stop_reason"] == "lost" and row["complete"] is True, row
    assert abs(at(row["stopped_at"]) - hung_up) < 1.5  # the file's last write, not the restart
    assert abs(row["duration_s"] - (at(row["stopped_at"]) - at(row["started_at"]))) < 1.0
    assert ctl.call(call_id)["cause"] == "lost"


def test_an_attended_transfer_keeps_one_recording(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                  tones: dict[str, Path], asterisk: Sandbox) -> None:
    # The operator presses *2 (Asterisk's attended transfer), then 102; talks to 102; hangs up.
    keys = [(2500, "*"), (2950, "2"), (4500, "1"), (4950, "0"), (5400, "2")]
    phones.phone("101", "answer", hold_ms=120_000, tone=tones["operator"], digits=keys)
    phones.clients("answer", hold_ms=120_000, tone=tones["client"])
    phones.phone("102", "answer", hold_ms=120_000, tone=tones["other"])
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567", "--project", "Sales")["id"])
    wait_recording(ctl, call_id, "recording")

    def channels() -> list[list[str]]:
        return [line.split("!") for line in asterisk.rx("core show channels concise").splitlines() if "!" in line]

    wait_for(lambda: any(c[0].startswith("PJSIP/102-") and c[4] == "Up" for c in channels()), timeout=20,
             message="the colleague to answer the consultation call")
    time.sleep(1.5)
    asterisk.hangup_endpoint("101")  # the operator hangs up: the transfer completes
    handed_over = time.time()

    def client_with_colleague() -> bool:
        bridges = {c[0].split("-")[0]: c[12] for c in channels() if c[12]}
        return bridges.get("PJSIP/clients") is not None and bridges.get("PJSIP/clients") == bridges.get("PJSIP/102")

    wait_for(client_with_colleague, timeout=10, message="the client to be bridged with 102")
    time.sleep(3)
    asterisk.hangup_endpoint("clients")
    row = wait_recording(ctl, call_id, "stopped")
    assert row["complete"] is True and row["stop_reason"] == "call_ended", (row["problem"], row)
    assert [r["call"] for r in ctl.json("record", "list")].count(call_id) == 1
    restarts = [e for e in serve.lines() if e.get("msg") == "recording restarted on a fresh audiohook"]
    assert [e["why"] for e in restarts] == ["a new party joined the recorded leg's bridge"]
    [track] = wav_tracks(Path(row["path"]))
    before = levels_between(track, 0.3, 2.0)
    after = levels_between(track, handed_over - at(row["started_at"]) + 0.8, row["duration_s"] - 0.3)
    assert before["operator"] > HEARD_DBFS and before["client"] > HEARD_DBFS, before
    assert after["other"] > HEARD_DBFS and after["client"] > HEARD_DBFS and after["operator"] < ABSENT_DBFS, after
    assert abs(row["duration_s"] - (at(row["stopped_at"]) - at(row["started_at"]))) < EVENT_LAG
