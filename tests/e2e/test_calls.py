"""Click-to-call on the real Asterisk: every state reaches the store, with the PBX's causes."""

from __future__ import annotations

from pathlib import Path

from ctl.store.engine import upgrade
from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve, ctl_environment


def _placed_call_id(ctl: CtlRunner, *args: str) -> int:
    placed = ctl.json("call", "bridge", *args)
    assert placed["state"] == "created"
    return int(placed["id"])


def test_bridge_call_lifecycle_is_stored(ctl: CtlRunner, serve: Serve, phones: Phones, asterisk: Sandbox) -> None:
    phones.phone("101", "answer", ring_ms=400, hold_ms=30_000)
    # The client hangs up after 6 s: time for two ctl commands while the call is up, even on a busy CI machine.
    phones.clients("answer", ring_ms=400, hold_ms=6000)

    call_id = _placed_call_id(ctl, "--operator", "101", "--to", "+7 (999) 123-45-67", "--project", "Sales")

    bridged = ctl.wait_state(call_id, "bridged")
    active = ctl.json("call", "list", "--active")
    assert [c["id"] for c in active] == [call_id]
    assert bridged["answered_at"] and bridged["bridged_at"] and bridged["ended_at"] is None

    ended = ctl.wait_state(call_id, "ended")
    assert ended["direction"] == "outbound"
    assert ended["operator"] == "101"
    assert ended["client"] == "+79991234567"
    assert ended["project"] == "Sales"
    assert ended["node"] == "e2e"
    assert ended["cause"] == "normal_clearing" and ended["cause_code"] == 16
    assert ended["created_at"] < ended["answered_at"] <= ended["bridged_at"] < ended["ended_at"]
    assert 5.5 <= ended["duration_s"] <= 7.5
    assert ctl.json("call", "list", "--active") == []
    assert serve.count("call ringing") >= 1 and serve.count("call bridged") == 1
    wait_for(lambda: asterisk.live_channels() == 0, message="no channel left on Asterisk")


def test_a_call_is_hung_up_from_the_cli(ctl: CtlRunner, serve: Serve, phones: Phones, asterisk: Sandbox) -> None:
    phones.phone("101", "answer", hold_ms=60_000)
    phones.clients("answer", hold_ms=60_000)
    call_id = _placed_call_id(ctl, "--operator", "101", "--to", "79991234567")
    ctl.wait_state(call_id, "bridged")
    hung = ctl.json("call", "hangup", str(call_id))
    assert hung == {"id": call_id, "legs": 2}
    ended = ctl.wait_state(call_id, "ended")
    assert ended["cause"] == "normal_clearing"
    wait_for(lambda: asterisk.live_channels() == 0, message="no channel left on Asterisk")
    again = ctl.run("call", "hangup", str(call_id), check=False)
    assert again.returncode == 7 and "not in progress" in again.stderr


def test_client_busy_is_stored_with_its_cause(ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    phones.phone("101", "answer", hold_ms=30_000)
    phones.clients("busy")

    call_id = _placed_call_id(ctl, "--operator", "101", "--to", "79990000017")

    ended = ctl.wait_state(call_id, "ended")
    assert ended["cause"] == "user_busy" and ended["cause_code"] == 17
    assert ended["answered_at"] is None and ended["bridged_at"] is None
    assert ended["client"] == "79990000017"


def test_client_not_answering_is_stored_as_no_answer(ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    phones.phone("101", "answer", hold_ms=30_000)
    phones.clients("noanswer")
    # The fixture sets CTL_CALLS_RING_TIMEOUT=5: the client rings 5 s, then Dial gives up.

    call_id = _placed_call_id(ctl, "--operator", "101", "--to", "79990000019")

    ringing = ctl.wait_state(call_id, "ringing")
    assert ringing["ended_at"] is None
    ended = ctl.wait_state(call_id, "ended", timeout=20)
    assert ended["cause"] == "no_answer" and ended["cause_code"] == 19
    assert ended["answered_at"] is None


def test_operator_not_answering_ends_the_call_without_dialing_the_client(
        ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    phones.phone("102", "noanswer")
    phones.clients("answer")

    call_id = _placed_call_id(ctl, "--operator", "102", "--to", "79990000001")

    ended = ctl.wait_state(call_id, "ended", timeout=20)
    assert ended["cause"] in ("no_answer", "originator_cancel", "normal_clearing")
    assert ended["answered_at"] is None
    assert ended["operator"] == "102"


def test_bridge_call_with_a_postgresql_store(asterisk: Sandbox, phones: Phones, postgres_url: str,
                                             tmp_path: Path) -> None:
    """The multi-controller store: `ctl serve` and the CLI share one PostgreSQL database."""
    upgrade(postgres_url)
    ctl = CtlRunner(ctl_environment(asterisk, postgres_url), postgres_url)
    ctl.run("operator", "add", "104", "--name", "Dana Operator")
    daemon = Serve(ctl, tmp_path / "serve.log")
    try:
        daemon.wait_log("reconciled with the PBX")
        phones.phone("104", "answer", hold_ms=30_000)
        phones.clients("answer", hold_ms=8000)  # long enough to see it bridged on a busy machine
        call_id = _placed_call_id(ctl, "--operator", "104", "--to", "79995550104")
        ctl.wait_state(call_id, "bridged")
        ended = ctl.wait_state(call_id, "ended")
        assert ended["cause"] == "normal_clearing" and ended["operator"] == "104"
        assert ended["created_at"] < ended["answered_at"] < ended["ended_at"]
    finally:
        assert daemon.stop() == 0
