"""Nobody spies around ctl, on the real Asterisk: the dialed injection that ended in ChanSpy,
a spy started by an AMI user, the spy context without a target, forged FastAGI requests."""

from __future__ import annotations

import socket
import time
from pathlib import Path
from typing import Any

import pytest
from sip_peers import make_tone

from tests.conftest import wait_for
from tests.e2e.ami import action
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve

# The reported injection: '^' sent URL-encoded, as a phone can.
INJECTION = "0000&PJSIP/clients,30,G(ctl-monitor-spy%5Es%5E1),"


@pytest.fixture
def bridged(ctl: CtlRunner, serve: Serve, phones: Phones) -> int:
    """Operator 101 talking to a client; the phones of 102 and supervisor 200 answer."""
    phones.phone("101", "answer", hold_ms=120_000)
    phones.clients("answer", hold_ms=120_000)
    phones.phone("200", "answer", hold_ms=120_000)
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567")["id"])
    ctl.wait_state(call_id, "bridged")
    return call_id


def _channels(asterisk: Sandbox) -> list[str]:
    return asterisk.rx("core show channels concise").splitlines()


def _spies(asterisk: Sandbox) -> list[str]:
    return [line for line in _channels(asterisk) if "!ChanSpy!" in line]


def _alerts(ctl: CtlRunner) -> list[dict[str, Any]]:
    return [entry for entry in ctl.json("monitor", "log") if entry["event"] == "unauthorised_monitor"]


def _channel_of(asterisk: Sandbox, prefix: str) -> str:
    found: list[str] = []

    def present() -> bool:
        found[:] = [line.split("!")[0] for line in _channels(asterisk) if line.startswith(prefix)]
        return bool(found)
    wait_for(present, message=f"a channel {prefix}…")
    return found[0]


def test_a_dialed_injection_never_reaches_chanspy(bridged: int, ctl: CtlRunner, asterisk: Sandbox,
                                                  phones: Phones, tmp_path: Path) -> None:
    """Finding 1: an operator phone dialing `0000&PJSIP/clients,30,G(ctl-monitor-spy^s^1),`
    ended up in ChanSpy on another operator's call. Now the dialplan dials digits only."""
    tone = make_tone(tmp_path / "tone.ulaw", 700)
    caller = phones.call("102", INJECTION, tone, hold_ms=10_000)
    assert caller.process is not None
    # The refusal ends the attempt (an error answer): sipp exits on its own.
    wait_for(lambda: caller.process is not None and caller.process.poll() is not None, timeout=20,
             message="the injected call to be refused")
    assert _spies(asterisk) == []
    assert not [line for line in _channels(asterisk) if line.startswith("PJSIP/102-")]
    assert [s for s in ctl.json("monitor", "list") if s["ended_at"] is None] == []
    assert _alerts(ctl) == []
    assert ctl.call(bridged)["state"] == "bridged"  # the operator's call is untouched


def test_a_spy_started_by_an_ami_user_is_hung_up_and_kept(bridged: int, ctl: CtlRunner, asterisk: Sandbox,
                                                          serve: Serve) -> None:
    """ctl saw a ChanSpyStart that was none of its sessions and dropped it without a word."""
    operator_channel = _channel_of(asterisk, "PJSIP/101-")
    reply = action(asterisk.ami_port, asterisk.secret("ami"), Action="Originate", Channel="PJSIP/200",
                   Application="ChanSpy", Data=f"{operator_channel},q", Async="true")
    assert reply["Response"] == "Success", reply
    wait_for(lambda: _alerts(ctl), timeout=20, message="the unauthorised spy to be reported")
    [alert] = _alerts(ctl)
    assert alert["action"] == "hung_up" and alert["call"] == bridged
    assert alert["channel"].startswith("PJSIP/200-")
    wait_for(lambda: not _spies(asterisk), timeout=10, message="the unauthorised spy to be hung up")
    assert any("unauthorised monitor" in str(entry.get("msg")) and entry.get("level") in ("error", "ERROR")
               for entry in serve.lines()), serve.lines()[-5:]
    text = ctl.run("monitor", "log").stdout
    assert "ALERT unauthorised_monitor" in text and "hung up" in text
    assert ctl.call(bridged)["state"] == "bridged"


def test_the_spy_context_without_a_target_hangs_up(bridged: int, ctl: CtlRunner, asterisk: Sandbox) -> None:
    """ChanSpy() with an empty first argument spies on anything it finds."""
    reply = action(asterisk.ami_port, asterisk.secret("ami"), Action="Originate", Channel="PJSIP/200",
                   Context="ctl-monitor-spy", Exten="s", Priority="1", Async="true")
    assert reply["Response"] == "Success", reply
    seen_200 = False
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:  # over the time the leg rings, answers and would spy
        lines = _channels(asterisk)
        seen_200 = seen_200 or any(line.startswith("PJSIP/200-") for line in lines)
        assert not [line for line in lines if "!ChanSpy!" in line], lines
        if seen_200 and not any(line.startswith("PJSIP/200-") for line in lines):
            break
        time.sleep(0.1)
    assert seen_200, "the supervisor's leg was never created"
    assert not any(line.startswith("PJSIP/200-") for line in _channels(asterisk)), "the leg was not hung up"
    assert _alerts(ctl) == []


def test_forged_fastagi_requests_open_no_session(bridged: int, ctl: CtlRunner, asterisk: Sandbox,
                                                 serve: Serve) -> None:
    """Finding 2: a header block with `agi_channel: IAX2/200-0000abcd` opened a listen session
    as supervisor 200 that then blocked the real one and outlived the call."""
    port = int(asterisk.settings["AGI_PORT"])
    secret = asterisk.secret("agi")
    for script in ("monitor", f"{secret}/monitor"):
        block = (f"agi_network: yes\nagi_network_script: {script}\nagi_channel: IAX2/200-0000abcd\n"
                 "agi_uniqueid: 1764680000.99\nagi_arg_1: listen\nagi_arg_2: 101\n\n")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(block.encode())
            try:
                assert sock.recv(4096) == b""  # closed, not a word
            except ConnectionResetError:
                pass
    serve.wait_log("FastAGI connection refused: wrong or missing secret in the AGI path")
    wait_for(lambda: any("is not a live channel" in str(e.get("msg")) for e in serve.lines()),
             message="the forged channel to be refused")
    assert ctl.json("monitor", "list") == []
    # The real supervisor is not blocked.
    session = ctl.json("monitor", "listen", "101", "--by", "200")
    assert int(session["session"]) > 0


def test_ctls_ami_user_runs_no_shell_and_reads_no_secret(asterisk: Sandbox) -> None:
    """Finding 3: with `system`, ctl's AMI user ran /bin/sh through Originate and read every
    secret with GetConfig. Recordings start from the dialplan now, and the right is gone."""
    marker = asterisk.recordings / "pwned"
    shell = "touch /var/spool/asterisk/recordings/pwned"
    attempts = [
        {"Action": "Originate", "Channel": "Local/s@ctl-refuse-number", "Application": "AGI",
         "Data": f"/bin/sh,-c,{shell}"},
        {"Action": "Originate", "Channel": "Local/s@ctl-refuse-number", "Application": "System", "Data": shell},
        {"Action": "Originate", "Channel": "Local/s@ctl-refuse-number", "Application": "Exec",
         "Data": f"System({shell})"},
        {"Action": "Originate", "Channel": "Local/s@ctl-refuse-number", "Application": "MixMonitor",
         "Data": f"/var/spool/asterisk/recordings/m.wav,,{shell}"},
        {"Action": "MixMonitor", "Channel": "Local/s@ctl-refuse-number", "File": "/tmp/m.wav", "Command": shell},
        {"Action": "GetConfig", "Filename": "manager.conf"},
        {"Action": "GetConfigJSON", "Filename": "pjsip.conf"},
        {"Action": "Command", "Command": "core show version"},
    ]
    for attempt in attempts:
        reply = action(asterisk.ami_port, asterisk.secret("ami"), **attempt)
        assert reply["Response"] == "Error", (attempt, reply)
        assert asterisk.secret("ami") not in str(reply)
    time.sleep(1)
    assert not marker.exists()


def _refused_orders(asterisk: Sandbox) -> int:
    log = asterisk.instance.state / "log" / "messages.log"
    return log.read_text(errors="replace").count("ctl: refused a recording order")


def test_a_leg_pressing_the_record_digit_records_only_what_ctl_ordered(ctl: CtlRunner, serve: Serve,
                                                                       phones: Phones, asterisk: Sandbox) -> None:
    """The "digit" R (no phone can send it) starts the recording ctl ordered on a leg: R without
    an order starts nothing, a phone's D is plain DTMF, and the dialplan runs no order whose
    path leaves the recordings directory or whose options are not ctl's."""
    ctl.run("project", "set", "Sales", "--recording", "on-demand")
    phones.phone("101", "answer", hold_ms=120_000)
    phones.clients("answer", hold_ms=120_000)
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567", "--project", "Sales")["id"])
    ctl.wait_state(call_id, "bridged")
    client, operator = _channel_of(asterisk, "PJSIP/clients-"), _channel_of(asterisk, "PJSIP/101-")

    def send(**fields: str) -> None:
        reply = action(asterisk.ami_port, asterisk.secret("ami"), **fields)
        assert reply["Response"] == "Success", (fields, reply)

    for leg in (client, operator):
        for digit in ("R", "D", "A"):
            send(Action="PlayDTMF", Channel=leg, Digit=digit, Receive="yes")
    root = "/var/spool/asterisk/recordings"
    files_before = set(asterisk.recordings.rglob("*"))
    bad_orders = [("/etc/asterisk/x.wav", "m"), (f"{root}/a.wav,,/bin/sh", "m"), (f"{root}/../x.wav", "m"),
                  (f"{root}/a.wav", "mb"), (f"{root}/a.wav", "x"), (f"{root}-other/a.wav", "m")]
    before = _refused_orders(asterisk)
    for file, how in bad_orders:
        send(Action="Setvar", Channel=client, Variable="CTL_REC_FILE", Value=file)
        send(Action="Setvar", Channel=client, Variable="CTL_REC_HOW", Value=how)
        send(Action="PlayDTMF", Channel=client, Digit="R", Receive="yes")
        wait_for(lambda count=before: _refused_orders(asterisk) > count,
                 message=f"the order {file!r} {how!r} to be refused")
        before = _refused_orders(asterisk)
    time.sleep(1)
    assert _alerts(ctl) == []  # no MixMonitor started: ctl would report one it did not start
    assert set(asterisk.recordings.rglob("*")) == files_before
    assert ctl.call(call_id)["state"] == "bridged"
    # What ctl orders runs.
    assert ctl.json("record", "start", str(call_id))["state"] == "recording"
