"""Every refusal of a monitor request, from the CLI and from a feature code, and the one-monitor race."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from sip_peers import make_tone

from ctl.store.engine import Store
from ctl.store.models import MonitorSession
from tests.conftest import wait_for
from tests.e2e.conftest import CTL, CtlRunner, Phones, Sandbox, Serve


@pytest.fixture
def bridged(ctl: CtlRunner, serve: Serve, phones: Phones) -> int:
    """Operator 101 talking to a client; supervisor 200 and admin 201 have phones that answer."""
    phones.phone("101", "answer", hold_ms=120_000)
    phones.clients("answer", hold_ms=120_000)
    phones.phone("200", "answer", hold_ms=120_000)
    phones.phone("201", "answer", hold_ms=120_000)
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567")["id"])
    ctl.wait_state(call_id, "bridged")
    return call_id


def _sessions(ctl: CtlRunner) -> list[dict[str, Any]]:
    return list(ctl.json("monitor", "list"))


def _spy_legs(asterisk: Sandbox) -> int:
    return sum(1 for line in asterisk.rx("core show channels concise").splitlines() if "!ChanSpy!" in line)


def _refused(ctl: CtlRunner, *args: str) -> tuple[int, dict[str, Any], str]:
    result = ctl.run("monitor", *args, "--json", check=False)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return result.returncode, json.loads(result.stdout), lines[0]


CLI_REFUSALS = [
    (["barge", "101", "--by", "200"], 6, "forbidden",
     "supervisor 200 may not barge (the role allows: listen, whisper)"),
    (["listen", "101", "--by", "102"], 6, "forbidden", "operator 102 may not listen"),
    (["listen", "102", "--by", "200"], 7, "no_call", "operator 102 has no call in progress"),
    (["listen", "109", "--by", "200"], 4, "not_found", "no operator with extension 109"),
    (["listen", "101", "--by", "209"], 4, "not_found", "no operator with extension 209"),
    (["mode", "99", "whisper"], 4, "not_found", "no monitor session with id 99"),
    (["mode", "1", "shout"], 6, "refused", "unknown mode 'shout'"),
    (["stop", "99"], 4, "not_found", "no monitor session with id 99"),
    (["stop"], 2, "invalid", "give a SESSION or --by EXT"),
    (["spy", "101", "--by", "200"], 2, None, "No such command"),
]


def test_cli_refusals(bridged: int, ctl: CtlRunner, asterisk: Sandbox) -> None:
    """Each refusal on one live call (one set-up for all: the call is what they share)."""
    for args, code, kind, message in CLI_REFUSALS:
        result = ctl.run("monitor", *args, "--json", check=False)
        assert result.returncode == code, (args, result.stderr)
        assert message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1, (args, result.stderr)
        if kind is not None:
            assert json.loads(result.stdout)["error"] == kind, (args, result.stdout)
        assert _sessions(ctl) == [] and _spy_legs(asterisk) == 0, args


def test_cli_refuses_ones_own_call(bridged: int, ctl: CtlRunner, asterisk: Sandbox) -> None:
    ctl.env["CTL_MONITOR_OPERATOR"] = "listen"  # let operators listen, to reach the own-call rule
    ctl.env["CTL_NO_SERVE"] = "1"  # this CLI's own rules, not serve's (its settings differ from serve's)
    code, error, line = _refused(ctl, "listen", "101", "--by", "101")
    assert (code, error["error"]) == (6, "forbidden")
    assert line == "ctl: 101 cannot monitor their own call"
    assert _sessions(ctl) == []


def test_cli_second_monitor_is_refused_with_who_and_since(bridged: int, ctl: CtlRunner, asterisk: Sandbox) -> None:
    first = int(ctl.json("monitor", "listen", "101", "--by", "201")["session"])
    code, error, line = _refused(ctl, "listen", "101", "--by", "200")
    assert (code, error["error"]) == (8, "already_monitored")
    assert f"call {bridged} is already monitored by 201 (Ada Admin) since " in line
    assert f"(session {first}, listen)" in line
    assert [s["id"] for s in _sessions(ctl)] == [first]


def test_cli_refuses_a_call_that_ended_meanwhile(bridged: int, ctl: CtlRunner, serve: Serve,
                                                 asterisk: Sandbox) -> None:
    serve.stop()  # the store will not hear of the hangup
    asterisk.hangup_endpoint("clients")
    wait_for(lambda: asterisk.live_channels() == 0, message="the call gone from Asterisk")
    assert ctl.call(bridged)["state"] == "bridged"
    code, error, line = _refused(ctl, "listen", "101", "--by", "200")
    assert (code, error["error"]) == (7, "call_ended")
    assert line == f"ctl: call {bridged} of operator 101 has ended"
    assert _sessions(ctl) == []


def test_cli_with_the_pbx_down_is_exit_3(bridged: int, ctl: CtlRunner) -> None:
    ctl.env["CTL_ASTERISK_PORT"] = "1"
    ctl.env["CTL_NO_SERVE"] = "1"  # the CLI on its own, reaching for a PBX that is down
    code, error, line = _refused(ctl, "listen", "101", "--by", "200")
    assert (code, error["error"]) == (3, "unreachable")
    assert line.startswith("ctl: cannot reach Asterisk AMI at 127.0.0.1:1:")
    assert _sessions(ctl) == []


FEATURE_CODE_REFUSALS = [
    ("200", "*224101", "forbidden"),  # a supervisor may not barge
    ("102", "*222101", "forbidden"),  # operators never monitor
    ("101", "*222101", "forbidden"),  # one's own call (and operators never monitor)
    ("200", "*222102", "no_call"),
    ("200", "*222109", "not_found"),
]


def test_feature_code_refusals_are_audible_and_logged(bridged: int, ctl: CtlRunner, serve: Serve, phones: Phones,
                                                      asterisk: Sandbox, tmp_path: Path) -> None:
    tone = make_tone(tmp_path / "t.ulaw", 1900)
    for number, (caller, code, reason) in enumerate(FEATURE_CODE_REFUSALS, start=1):
        dialer = phones.call(caller, code, tone, hold_ms=20_000)
        # Asterisk answers, plays the refusal and hangs up: the phone gets a BYE long before 20 s.
        assert dialer.wait(15) == 0, code
        refusals = [e for e in serve.lines() if e.get("msg") == "monitor refused"]
        assert len(refusals) == number and (refusals[-1]["by"], refusals[-1]["reason"]) == (caller, reason), refusals
        assert _sessions(ctl) == [] and _spy_legs(asterisk) == 0, code


def test_feature_code_refuses_a_second_monitor(bridged: int, ctl: CtlRunner, serve: Serve, phones: Phones,
                                               asterisk: Sandbox, tmp_path: Path) -> None:
    first = int(ctl.json("monitor", "listen", "101", "--by", "201")["session"])
    wait_for(lambda: _spy_legs(asterisk) == 1, message="the first spy")
    dialer = phones.call("200", "*222101", make_tone(tmp_path / "t.ulaw", 1900), hold_ms=20_000)
    assert dialer.wait(15) == 0
    [refusal] = [e for e in serve.lines() if e.get("msg") == "monitor refused"]
    assert refusal["reason"] == "already_monitored" and "201 (Ada Admin)" in refusal["detail"]
    assert [s["id"] for s in _sessions(ctl)] == [first] and _spy_legs(asterisk) == 1


def test_feature_code_fails_closed_when_ctl_is_down(bridged: int, ctl: CtlRunner, serve: Serve, phones: Phones,
                                                    asterisk: Sandbox, tmp_path: Path) -> None:
    assert serve.stop() == 0
    dialer = phones.call("200", "*222101", make_tone(tmp_path / "t.ulaw", 1900), hold_ms=20_000)
    assert dialer.wait(15) == 0
    assert _spy_legs(asterisk) == 0 and _sessions(ctl) == []
    console = (asterisk.instance.state / "console.log").read_text(errors="replace")
    assert "ctl: listen on 101 refused: ctl did not answer" in console


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_twenty_concurrent_requests_make_exactly_one_session(backend: str, request: pytest.FixtureRequest,
                                                             asterisk: Sandbox, phones: Phones,
                                                             tmp_path: Path) -> None:
    from tests.e2e.conftest import make_ctl

    url = request.getfixturevalue("postgres_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'race.db'}"
    ctl = make_ctl(asterisk, url)
    daemon = Serve(ctl, tmp_path / "serve.log")
    try:
        daemon.wait_log("reconciled with the PBX")
        phones.phone("101", "answer", hold_ms=120_000)
        phones.clients("answer", hold_ms=120_000)
        phones.phone("201", "answer", hold_ms=120_000)
        call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567")["id"])
        ctl.wait_state(call_id, "bridged")

        racers = [subprocess.Popen([CTL, "monitor", "listen", "101", "--by", "201", "--json"], env=ctl.env,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(20)]
        results = [(r.wait(60), r.stdout.read(), r.stderr.read()) for r in racers]  # type: ignore[union-attr]
        winners = [json.loads(out) for code, out, _ in results if code == 0]
        losers = [(code, json.loads(out)["error"], err) for code, out, err in results if code != 0]
        assert len(winners) == 1, results
        assert len(losers) == 19
        assert {(code, kind) for code, kind, _ in losers} == {(8, "already_monitored")}
        assert all("already monitored by 201 (Ada Admin)" in err for _, _, err in losers)

        # One spy on the PBX, one active row in the store.
        wait_for(lambda: _spy_legs(asterisk) == 1, message="the winner's spy attached")
        store = Store(url)
        try:
            with store.transaction() as session:
                rows = session.query(MonitorSession).all()
                assert [(r.id, r.ended_at) for r in rows] == [(winners[0]["session"], None)]
        finally:
            store.dispose()
        assert _spy_legs(asterisk) == 1
    finally:
        asterisk.hangup_endpoint("clients")
        assert daemon.stop() == 0


def test_feature_code_refuses_ones_own_call(bridged: int, ctl: CtlRunner, serve: Serve, phones: Phones,
                                            asterisk: Sandbox, tmp_path: Path) -> None:
    assert serve.stop() == 0
    ctl.env["CTL_MONITOR_OPERATOR"] = "listen"  # operators may listen: the own-call rule must still refuse
    permissive = Serve(ctl, tmp_path / "serve-permissive.log")
    try:
        permissive.wait_log("reconciled with the PBX")
        dialer = phones.call("101", "*222101", make_tone(tmp_path / "t.ulaw", 1900), hold_ms=20_000)
        assert dialer.wait(15) == 0
        [refusal] = [e for e in permissive.lines() if e.get("msg") == "monitor refused"]
        assert refusal["reason"] == "forbidden" and refusal["detail"] == "101 cannot monitor their own call"
        assert _sessions(ctl) == [] and _spy_legs(asterisk) == 0
    finally:
        assert permissive.stop() == 0


def test_feature_code_refuses_a_call_the_pbx_no_longer_has(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                           asterisk: Sandbox, tmp_path: Path) -> None:
    """The store lags the PBX (a row another controller left open): refused as call_ended."""
    from datetime import UTC, datetime

    from ctl.store.models import Call, Operator

    store = Store(ctl.url)
    try:
        with store.transaction() as session:
            operator = session.query(Operator).filter_by(extension="101").one()
            stale = Call(node="e2e", pbx_call_id="ctl-gone", direction="outbound", state="bridged",
                         operator_id=operator.id, created_at=datetime.now(UTC))
            session.add(stale)
            session.flush()
            stale_id = stale.id
    finally:
        store.dispose()
    dialer = phones.call("200", "*222101", make_tone(tmp_path / "t.ulaw", 1900), hold_ms=20_000)
    assert dialer.wait(15) == 0
    [refusal] = [e for e in serve.lines() if e.get("msg") == "monitor refused"]
    assert refusal["reason"] == "call_ended"
    assert refusal["detail"] == f"call {stale_id} of operator 101 has ended"
    assert _sessions(ctl) == [] and _spy_legs(asterisk) == 0
