"""Listen, whisper and barge on the real Asterisk, proven by what each party really hears.

Client, operator and supervisor are sipp phones, each streaming its own tone;
tcpdump on lo captures the RTP Asterisk sends to each of them, and an FFT says
which tones each one hears. The table under test (DOMAIN.md §1):

| mode    | supervisor hears  | operator hears      | client hears         |
| listen  | operator + client | client              | operator             |
| whisper | operator + client | supervisor + client | operator             |
| barge   | operator + client | supervisor + client | supervisor + operator|
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sip_peers import SippPhone, make_tone

from tests.conftest import wait_for
from tests.e2e.audio import RtpCapture, hears
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve

TONES = {"client": 500.0, "operator": 1100.0, "supervisor": 1900.0}
HEARD_DBFS = -25.0  # heard tones measure about -6…-13 dBFS
ABSENT_DBFS = -40.0  # absent ones sit at the μ-law noise floor, below -45
TABLE = {
    "listen": {"supervisor": {"operator", "client"}, "operator": {"client"}, "client": {"operator"}},
    "whisper": {"supervisor": {"operator", "client"}, "operator": {"supervisor", "client"}, "client": {"operator"}},
    "barge": {"supervisor": {"operator", "client"}, "operator": {"supervisor", "client"},
              "client": {"supervisor", "operator"}},
}


@dataclass
class MonitoredCall:
    ctl: CtlRunner
    phones: dict[str, SippPhone]
    capture: RtpCapture
    call_id: int

    def check(self, mode: str, since: float, deadline: float = 10.0) -> dict[str, dict[str, float]]:
        """Check the table's row for `mode` in a second of audio after `since`: the window
        [since+0.4, since+1.4], then windows sliding by 0.5 s until one matches or `deadline`
        seconds have passed (a busy machine can take longer than 0.4 s to switch)."""
        end = since + 1.4
        while True:
            wait_for(lambda until=end: time.time() > until + 0.1, timeout=deadline + 5,
                     message="audio to accumulate")
            packets = self.capture_so_far()
            try:
                levels = {party: hears(packets, phone.media_port, end - 1.0, end, TONES)
                          for party, phone in self.phones.items()}
                problem = _mismatch(mode, levels)
            except AssertionError as starved:  # too little audio in this window (a starved phone)
                problem = str(starved)
            if problem is None:
                print(mode, {p: {t: round(v) for t, v in heard.items()} for p, heard in levels.items()})  # with -s
                return levels
            if end - since > deadline:
                raise AssertionError(problem)
            end += 0.5

    def add_party(self, name: str, phone: Any, tmp_path: Path) -> None:
        """A party joining later (a supervisor dialing a feature code): capture its port too."""
        self.phones[name] = phone
        self.capture.stop()
        self.capture = RtpCapture(tmp_path / f"rtp-{name}.pcap", [p.media_port for p in self.phones.values()])

    def capture_so_far(self) -> Any:
        from tests.e2e.audio import read_rtp

        return read_rtp(self.capture.path)


def _mismatch(mode: str, levels: dict[str, dict[str, float]]) -> str | None:
    """What in `levels` breaks the table's row for `mode`, or None."""
    for party, heard in TABLE[mode].items():
        if party not in levels:
            continue
        for tone, level in levels[party].items():
            if tone == party:
                continue  # a party's own tone is never sent back to it; checked below as absent anyway
            if tone in heard and level <= HEARD_DBFS:
                return f"{mode}: {party} should hear {tone}: {levels}"
            if tone not in heard and level >= ABSENT_DBFS:
                return f"{mode}: {party} should not hear {tone}: {levels}"
        if levels[party][party] >= ABSENT_DBFS:
            return f"{mode}: {party} hears itself: {levels}"
    return None


@pytest.fixture
def supervisor_ext() -> str:
    return "200"


@pytest.fixture
def monitored_call(ctl: CtlRunner, serve: Serve, phones: Phones, tmp_path: Path, supervisor_ext: str) -> Any:
    """Operator 101 bridged to a client, and the supervisor's phone registered; all streaming tones."""
    tone = {name: make_tone(tmp_path / f"{name}.ulaw", frequency) for name, frequency in TONES.items()}
    parties = {
        "operator": phones.phone("101", "answer", hold_ms=120_000, tone=tone["operator"]),
        "client": phones.clients("answer", hold_ms=120_000, tone=tone["client"]),
    }
    if supervisor_ext:  # rung by `ctl monitor`; a feature-code test brings its own calling phone
        parties["supervisor"] = phones.phone(supervisor_ext, "answer", hold_ms=120_000, tone=tone["supervisor"])
    capture = RtpCapture(tmp_path / "rtp.pcap", [p.media_port for p in parties.values()])
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567")["id"])
    ctl.wait_state(call_id, "bridged")
    monitored = MonitoredCall(ctl, parties, capture, call_id)
    yield monitored
    monitored.capture.stop()  # add_party may have replaced the first capture


def _session(ctl: CtlRunner, session_id: int) -> dict[str, Any]:
    [row] = [r for r in ctl.json("monitor", "list") if r["id"] == session_id]
    return dict(row)


def _attached(ctl: CtlRunner, session_id: int) -> float:
    wait_for(lambda: _session(ctl, session_id)["attached_at"], timeout=10, message="the spy to attach")
    return time.time()


def test_cli_listen_whisper_and_switches_follow_the_table(monitored_call: MonitoredCall, ctl: CtlRunner) -> None:
    started = ctl.json("monitor", "listen", "101", "--by", "200")
    session_id = int(started["session"])
    monitored_call.check("listen", _attached(ctl, session_id))

    ctl.run("monitor", "mode", str(session_id), "whisper")
    monitored_call.check("whisper", time.time())
    ctl.run("monitor", "mode", str(session_id), "listen")
    monitored_call.check("listen", time.time())

    # Supervisors may not barge (default roles): refused, and the session stays in listen.
    refused = ctl.run("monitor", "mode", str(session_id), "barge", "--json", check=False)
    assert refused.returncode == 6 and '"forbidden"' in refused.stdout
    monitored_call.check("listen", time.time())

    log = ctl.json("monitor", "log", "--by", "200")
    assert [m["mode"] for m in log[0]["modes"]] == ["listen", "whisper", "listen"]
    assert {m["source"] for m in log[0]["modes"]} == {"cli"}

    ctl.run("monitor", "stop", str(session_id))
    ended = _session(ctl, session_id)
    assert ended["end_reason"] == "stopped" and ended["ended_at"] is not None
    assert ctl.json("monitor", "list", "--active") == []
    # The client and the operator are still talking.
    assert ctl.call(monitored_call.call_id)["state"] == "bridged"


@pytest.mark.parametrize("supervisor_ext", ["201"])
def test_admin_barges_then_whispers_and_the_session_ends_with_the_call(monitored_call: MonitoredCall,
                                                                       ctl: CtlRunner, asterisk: Sandbox) -> None:
    session_id = int(ctl.json("monitor", "barge", "101", "--by", "201")["session"])
    monitored_call.check("barge", _attached(ctl, session_id))
    ctl.run("monitor", "mode", str(session_id), "whisper")
    monitored_call.check("whisper", time.time())

    # The client hangs up: the spy leg follows (ChanSpy option E) and the session closes.
    asterisk.hangup_endpoint("clients")
    ctl.wait_state(monitored_call.call_id, "ended", timeout=40)
    ended = wait_for(lambda: (s := _session(ctl, session_id))["ended_at"] and s, timeout=10,
                     message="the session to end")
    assert ended["end_reason"] == "call_ended"  # type: ignore[index]


def _modes(ctl: CtlRunner, by: str) -> list[tuple[str, str]]:
    log = ctl.json("monitor", "log", "--by", by)
    return [(m["mode"], m["source"]) for m in log[-1]["modes"]] if log else []


@pytest.mark.parametrize("supervisor_ext", [""])
def test_feature_code_listen_then_dtmf_whisper_and_a_refused_barge(monitored_call: MonitoredCall, ctl: CtlRunner,
                                                                   phones: Phones, serve: Serve,
                                                                   tmp_path: Path) -> None:
    tone = make_tone(tmp_path / "supervisor.ulaw", TONES["supervisor"])
    # Digits late enough that the listen check (attach + 1.4 s, found by polling ctl on a busy
    # machine) is over before the supervisor presses 5.
    caller = phones.call("200", "*222101", tone, digits=[(6000, "5"), (9000, "6")], hold_ms=18_000)
    monitored_call.add_party("supervisor", caller, tmp_path)
    session_id = int(wait_for(lambda: ctl.json("monitor", "list", "--active"), message="a session")[0]["id"])  # type: ignore[index]
    monitored_call.check("listen", _attached(ctl, session_id))

    wait_for(lambda: _modes(ctl, "200") == [("listen", "feature_code"), ("whisper", "dtmf")], timeout=10,
             message="DTMF 5 to switch to whisper")
    monitored_call.check("whisper", time.time())

    # DTMF 6 asks for barge, which a supervisor's role does not allow: refused, still whisper.
    serve.wait_log("monitor mode refused", timeout=10)
    monitored_call.check("whisper", time.time())
    assert _modes(ctl, "200") == [("listen", "feature_code"), ("whisper", "dtmf")]

    # The supervisor hangs up: the session ends, the call goes on.
    caller.wait(20)
    ended = wait_for(lambda: (s := _session(ctl, session_id))["ended_at"] and s, timeout=10, message="the end")
    assert ended["end_reason"] == "supervisor_hangup"  # type: ignore[index]
    assert ctl.call(monitored_call.call_id)["state"] == "bridged"


def test_follow_stays_on_and_joins_the_operators_next_call(monitored_call: MonitoredCall, ctl: CtlRunner,
                                                           asterisk: Sandbox) -> None:
    session_id = int(ctl.json("monitor", "listen", "101", "--by", "200", "--follow")["session"])
    monitored_call.check("listen", _attached(ctl, session_id))

    # The first call ends: the supervisor stays on, the session holds no call.
    asterisk.hangup_endpoint("clients")
    ctl.wait_state(monitored_call.call_id, "ended")
    waiting = wait_for(lambda: (s := _session(ctl, session_id))["call"] is None and s, timeout=10,
                       message="the session to wait for the next call")
    assert waiting["ended_at"] is None  # type: ignore[index]
    assert "!ctl-monitor-spy!" in asterisk.rx("core show channels concise")  # the supervisor's leg waits

    # The operator's next call: the session claims it and the supervisor hears it.
    second = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79990000002")["id"])
    ctl.wait_state(second, "bridged")
    wait_for(lambda: _session(ctl, session_id)["call"] == second, timeout=10, message="the session to follow")
    monitored_call.check("listen", time.time())

    ctl.run("monitor", "stop", str(session_id))
    assert _session(ctl, session_id)["end_reason"] == "stopped"
