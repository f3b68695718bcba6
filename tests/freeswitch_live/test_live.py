"""The FreeSWITCH adapter against a real FreeSWITCH: freeswitch_conf/ loads, ctl serve follows
calls into the store, and listen/whisper/barge follow the who-hears-whom table by what each
sipp party really receives (DOMAIN.md §1), from `ctl monitor` and from the feature codes."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sip_peers import SippPhone, make_tone

from tests.conftest import wait_for
from tests.e2e.audio import RtpCapture, track_levels, wav_tracks
from tests.e2e.conftest import CtlRunner, Serve
from tests.e2e.test_monitor import TONES, MonitoredCall, _attached, _modes, _session
from tests.freeswitch_live.conftest import NODE, FsPhones, Live

CLIENT = "79991234567"


def test_the_configuration_loads_with_ctls_pieces(freeswitch: Live) -> None:
    status = freeswitch.api("sofia status")
    assert "ctl-phones" in status and "ctl-clients" in status and "clients" in status, status
    assert freeswitch.api("module_exists mod_callcenter").strip() == "true"
    agents = freeswitch.api("callcenter_config agent list")
    assert "101" in agents and "Available" in agents, agents
    # ctl's feature codes and click-to-call context are in the dialplan FreeSWITCH loaded.
    found = freeswitch.api("xml_locate dialplan context name ctl-phones")
    assert "*222" in found.replace("\\*", "*") or "222" in found, found


@pytest.fixture
def monitored_call(ctl: CtlRunner, serve: Serve, phones: FsPhones, tmp_path: Path, supervisor_ext: str) -> Any:
    tone = {name: make_tone(tmp_path / f"{name}.ulaw", frequency) for name, frequency in TONES.items()}
    parties = {
        "operator": phones.phone("101", "answer", hold_ms=120_000, tone=tone["operator"]),
        "client": phones.clients("answer", hold_ms=120_000, tone=tone["client"]),
    }
    if supervisor_ext:
        parties["supervisor"] = phones.phone(supervisor_ext, "answer", hold_ms=120_000, tone=tone["supervisor"])
    capture = RtpCapture(tmp_path / "rtp.pcap", [p.media_port for p in parties.values()])
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", CLIENT)["id"])
    ctl.wait_state(call_id, "bridged", timeout=20)
    monitored = MonitoredCall(ctl, parties, capture, call_id)
    yield monitored
    monitored.capture.stop()


@pytest.fixture
def supervisor_ext() -> str:
    return "201"  # an admin: every mode is allowed


def test_click_to_call_is_followed_into_the_store(monitored_call: MonitoredCall, ctl: CtlRunner,
                                                  freeswitch: Live) -> None:
    call = ctl.call(monitored_call.call_id)
    assert call["node"] == NODE and call["operator"] == "101", call
    assert CLIENT in str(call.get("client") or call.get("number") or call), call
    freeswitch.api("hupall NORMAL_CLEARING")
    ended = ctl.wait_state(monitored_call.call_id, "ended", timeout=15)
    assert ended["cause"] in ("normal_clearing", "NORMAL_CLEARING"), ended


def test_cli_listen_whisper_barge_follow_the_table(monitored_call: MonitoredCall, ctl: CtlRunner) -> None:
    session_id = int(ctl.json("monitor", "listen", "101", "--by", "201")["session"])
    monitored_call.check("listen", _attached(ctl, session_id))
    for mode in ("whisper", "barge", "listen"):
        ctl.run("monitor", "mode", str(session_id), mode)
        monitored_call.check(mode, time.time())
    ctl.run("monitor", "stop", str(session_id))
    wait_for(lambda: ctl.json("monitor", "list", "--active") == [], message="the session to end")
    assert ctl.call(monitored_call.call_id)["state"] == "bridged"


@pytest.mark.parametrize("supervisor_ext", [""])
def test_feature_code_listen_then_digit_whisper_and_a_refused_barge(monitored_call: MonitoredCall, ctl: CtlRunner,
                                                                    phones: FsPhones, serve: Serve,
                                                                    tmp_path: Path) -> None:
    tone = make_tone(tmp_path / "supervisor.ulaw", TONES["supervisor"])
    caller = phones.call("200", "*222101", tone, digits=[(6000, "5"), (9000, "6")], hold_ms=18_000)
    monitored_call.add_party("supervisor", caller, tmp_path)
    session_id = int(wait_for(lambda: ctl.json("monitor", "list", "--active"), message="a session")[0]["id"])  # type: ignore[index]
    monitored_call.check("listen", _attached(ctl, session_id))
    wait_for(lambda: _modes(ctl, "200") == [("listen", "feature_code"), ("whisper", "dtmf")], timeout=10,
             message="digit 5 to switch to whisper")
    monitored_call.check("whisper", time.time())
    serve.wait_log("monitor mode refused", timeout=10)  # 6 = barge, beyond a supervisor's role
    monitored_call.check("whisper", time.time())
    caller.wait(20)
    ended = wait_for(lambda: (s := _session(ctl, session_id))["ended_at"] and s, timeout=10, message="the end")
    assert ended["end_reason"] == "supervisor_hangup"  # type: ignore[index]
    assert ctl.call(monitored_call.call_id)["state"] == "bridged"


@pytest.mark.parametrize("supervisor_ext", [""])
def test_a_feature_code_for_an_idle_operator_is_rejected(monitored_call: MonitoredCall, ctl: CtlRunner,
                                                         phones: FsPhones, serve: Serve, tmp_path: Path) -> None:
    tone = make_tone(tmp_path / "supervisor.ulaw", TONES["supervisor"])
    caller = phones.call("200", "*222102", tone, hold_ms=8_000)  # 102 is in no call
    assert caller.wait(20) != 0  # never answered: the sipp scenario failed on the final response
    errors = "".join(path.read_text() for path in (tmp_path / "phones").glob(f"uac_200_{caller.port}_*errors.log"))
    assert "SIP/2.0 603 Decline" in errors, errors  # hangup CALL_REJECTED, before any answer
    serve.wait_log("monitor refused")
    [refusal] = [line for line in serve.lines() if line.get("msg") == "monitor refused"]
    assert (refusal["reason"], refusal["by"], refusal["operator"]) == ("no_call", "200", "102"), refusal
    assert ctl.json("monitor", "list", "--active") == []


@pytest.mark.parametrize("supervisor_ext", [""])
def test_recording_by_hand_holds_both_parties_and_a_pause_is_silence(monitored_call: MonitoredCall,
                                                                     ctl: CtlRunner) -> None:
    call_id = monitored_call.call_id
    ctl.run("record", "start", str(call_id))
    wait_for(lambda: [r for r in ctl.json("record", "list") if r["call"] == call_id and r["state"] == "recording"],
             message="recording")
    time.sleep(2.5)
    ctl.run("record", "pause", str(call_id))
    time.sleep(2.0)
    ctl.run("record", "resume", str(call_id))
    time.sleep(2.5)
    ctl.run("record", "stop", str(call_id))
    [row] = wait_for(lambda: [r for r in ctl.json("record", "list") if r["call"] == call_id  # type: ignore[misc]
                              and r["state"] == "stopped"], message="stopped")
    path = Path(row["path"])
    assert path.stat().st_size == row["size_bytes"], row
    [track] = wav_tracks(path)
    pause, resume = (at - _t(row["started_at"]) for at in (_t(row["pauses"][0]["paused_at"]),
                                                           _t(row["pauses"][0]["resumed_at"])))
    both = {"client": TONES["client"], "operator": TONES["operator"]}
    for start, end in ((0.3, pause - 0.3), (resume + 0.3, row["duration_s"] - 0.3)):
        levels = track_levels(track, start, end, both)
        assert min(levels.values()) > -25, (start, end, levels)
    silent = track_levels(track, pause + 0.1, resume - 0.1, both)
    assert max(silent.values()) < -60, silent


def _t(text: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(text).timestamp()


def test_an_unregistered_phone_takes_its_operator_offline(ctl: CtlRunner, serve: Serve, phones: FsPhones) -> None:
    phone = phones.phone("101", "answer")
    assert ctl.json("operator", "status", "101", "available")["status"] == "available"
    phones.unregister("101", phone.port)
    wait_for(lambda: ctl.json("operator", "status", "101")["status"] == "offline", timeout=10,
             message="101 to go offline")
    latest = ctl.json("operator", "history", "101")[0]
    assert (latest["from"], latest["to"], latest["reason"], latest["source"]) == \
        ("available", "offline", "unregistered", "pbx")


def test_an_unreachable_phone_suspends_its_operator_until_it_answers_again(
        ctl: CtlRunner, serve: Serve, phones: FsPhones, tmp_path: Path) -> None:
    """all-reg-options-ping: the phone's sipp stops (its registration stays), FreeSWITCH's
    OPTIONS go unanswered, sofia::sip_user_state UNREACHABLE → suspended; a phone answering on
    the same contact again (no new REGISTER) → REACHABLE → the status before, with its reason."""
    phone = phones.phone("101", "answer")
    ctl.run("operator", "status", "101", "break", "--reason", "lunch")
    phone.stop()
    wait_for(lambda: ctl.json("operator", "status", "101")["status"] == "suspended", timeout=60, interval=0.5,
             message="101 suspended once its phone stops answering")
    suspended = ctl.json("operator", "history", "101")[0]
    assert (suspended["from"], suspended["to"], suspended["reason"], suspended["source"]) == \
        ("break", "suspended", "unreachable", "pbx"), suspended
    back = SippPhone("answer", phone.port, phone.media_port, tmp_path / "again").start()
    phones.started.append(back)
    wait_for(lambda: ctl.json("operator", "status", "101")["status"] == "break", timeout=30, interval=0.5,
             message="101 back on its break once the phone answers the pings again")
    latest = ctl.json("operator", "history", "101")[0]
    assert (latest["from"], latest["to"], latest["reason"], latest["source"]) == \
        ("suspended", "break", "lunch", "pbx"), latest


def _agent_status(freeswitch: Live, agent: str) -> str:
    for line in freeswitch.api("callcenter_config agent list").splitlines():
        fields = line.split("|")
        if fields and fields[0] == agent:
            return fields[5]  # name|instance_id|uuid|type|contact|status|state|...
    return ""


def test_a_paused_operator_gets_no_queue_call_and_an_available_one_does(
        ctl: CtlRunner, serve: Serve, phones: FsPhones, freeswitch: Live, tmp_path: Path) -> None:
    tone = make_tone(tmp_path / "client.ulaw", 700)
    ctl.run("project", "set", "Sales", "--queue", "sales")
    phones.phone("101", "answer", hold_ms=60_000)
    phones.phone("102", "answer", hold_ms=60_000)
    ctl.run("operator", "status", "101", "break", "--reason", "lunch")
    ctl.run("operator", "status", "102", "available")
    wait_for(lambda: _agent_status(freeswitch, "101") == "On Break", message="101 On Break in mod_callcenter")
    wait_for(lambda: _agent_status(freeswitch, "102") == "Available", message="102 Available in mod_callcenter")
    first = phones.inbound("79990000001", "5001", tone, hold_ms=8000)
    call = wait_for(lambda: [c for c in ctl.calls() if c["state"] == "bridged"], timeout=20,
                    message="the first queue call answered")[0]  # type: ignore[index]
    assert (call["operator"], call["project"], call["direction"]) == ("102", "Sales", "inbound"), call
    assert call["client"] == "79990000001", call
    first.wait(20)
    ctl.run("operator", "status", "101", "available")
    wait_for(lambda: _agent_status(freeswitch, "101") == "Available", message="101 Available again")
    phones.inbound("79990000002", "5001", tone, hold_ms=8000)
    second = wait_for(lambda: [c for c in ctl.calls() if c["state"] == "bridged" and c["id"] != call["id"]],
                      timeout=20, message="the second queue call answered")[0]  # type: ignore[index]
    assert (second["operator"], second["project"]) == ("101", "Sales"), second


@pytest.mark.parametrize("supervisor_ext", [""])
def test_a_restarted_serve_finds_the_bridged_call_and_its_end(monitored_call: MonitoredCall, ctl: CtlRunner,
                                                              serve: Serve, freeswitch: Live, tmp_path: Path) -> None:
    """`show channels` + `show calls` after the (re)connect: the call is still bridged, and its
    end, which happens while no serve runs, is found by the next one."""
    assert serve.stop() == 0
    again = Serve(ctl, tmp_path / "serve-again.log")
    try:
        again.wait_log("reconciled with the PBX", timeout=30)
        [reconciled] = [line for line in again.lines() if line.get("msg") == "reconciled with the PBX"]
        assert (reconciled["live_calls"], reconciled["ended"]) == (1, 0), reconciled
        call = ctl.call(monitored_call.call_id)
        assert (call["state"], call["client"], call["operator"]) == ("bridged", CLIENT, "101"), call
    finally:
        assert again.stop() == 0
    freeswitch.api("hupall NORMAL_CLEARING")
    third = Serve(ctl, tmp_path / "serve-third.log")
    try:
        third.wait_log("reconciled with the PBX", timeout=30)
        assert ctl.call(monitored_call.call_id)["state"] == "ended"
    finally:
        assert third.stop() == 0


def test_a_call_bridged_while_no_serve_ran_is_found_bridged(ctl: CtlRunner, phones: FsPhones, freeswitch: Live,
                                                            tmp_path: Path) -> None:
    phones.phone("101", "answer", hold_ms=60_000)
    phones.clients("answer", hold_ms=60_000)
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", CLIENT)["id"])
    wait_for(lambda: '"b_uuid":"' in freeswitch.api("show calls as json").replace(" ", ""), timeout=20,
             message="FreeSWITCH to bridge the two legs")
    assert ctl.call(call_id)["state"] == "created"  # nobody followed the events
    daemon = Serve(ctl, tmp_path / "serve.log")
    try:
        daemon.wait_log("reconciled with the PBX", timeout=30)
        call = ctl.call(call_id)
        assert (call["state"], call["operator"], call["client"]) == ("bridged", "101", CLIENT), call
    finally:
        assert daemon.stop() == 0


def test_stereo_puts_the_client_left_and_the_operator_right(ctl: CtlRunner, phones: FsPhones, serve: Serve,
                                                            freeswitch: Live, tmp_path: Path) -> None:
    ctl.run("project", "set", "Sales", "--stereo")
    tone = {name: make_tone(tmp_path / f"{name}.ulaw", frequency) for name, frequency in TONES.items()}
    phones.phone("101", "answer", hold_ms=60_000, tone=tone["operator"])
    phones.clients("answer", hold_ms=60_000, tone=tone["client"])
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", CLIENT, "--project", "Sales")["id"])
    ctl.wait_state(call_id, "bridged", timeout=20)
    wait_for(lambda: [r for r in ctl.json("record", "list") if r["call"] == call_id and r["state"] == "recording"],
             message="recording")
    time.sleep(3)
    freeswitch.api("hupall NORMAL_CLEARING")
    [row] = wait_for(lambda: [r for r in ctl.json("record", "list") if r["call"] == call_id  # type: ignore[misc]
                              and r["state"] == "stopped"], message="stopped")
    assert row["complete"] is True and row["stereo"] is True, row
    left, right = wav_tracks(Path(row["path"]))
    both = {"client": TONES["client"], "operator": TONES["operator"]}
    client_side = track_levels(left, 0.3, row["duration_s"] - 0.3, both)
    operator_side = track_levels(right, 0.3, row["duration_s"] - 0.3, both)
    assert client_side["client"] > -25 and client_side["operator"] < -40, client_side
    assert operator_side["operator"] > -25 and operator_side["client"] < -40, operator_side


def test_a_whispering_supervisor_is_not_in_the_recording(monitored_call: MonitoredCall, ctl: CtlRunner) -> None:
    """Policy recording of the call while 201 whispers to the operator: the file holds client
    and operator, never the supervisor (DOMAIN.md: a whisper is not the client's to hear)."""
    call_id = monitored_call.call_id
    wait_for(lambda: [r for r in ctl.json("record", "list") if r["call"] == call_id and r["state"] == "recording"],
             message="recording")
    session_id = int(ctl.json("monitor", "whisper", "101", "--by", "201")["session"])
    monitored_call.check("whisper", _attached(ctl, session_id))
    ctl.run("record", "stop", str(call_id))
    [row] = wait_for(lambda: [r for r in ctl.json("record", "list") if r["call"] == call_id  # type: ignore[misc]
                              and r["state"] == "stopped"], message="stopped")
    [track] = wav_tracks(Path(row["path"]))
    levels = track_levels(track, 0.3, row["duration_s"] - 0.3, TONES)
    assert levels["client"] > -25 and levels["operator"] > -25 and levels["supervisor"] < -40, levels
