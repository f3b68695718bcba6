"""`ctl serve` against a real Asterisk that restarts, and calls it did not see start."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve, make_ctl, start_sandbox


@pytest.fixture
def own_asterisk(tmp_path: Path) -> Iterator[Sandbox]:
    """An Asterisk of this test's own: it gets restarted."""
    sandbox = start_sandbox(tmp_path / "asterisk")
    yield sandbox
    sandbox.instance.stop()


@pytest.fixture
def own_ctl(own_asterisk: Sandbox, tmp_path: Path) -> CtlRunner:
    return make_ctl(own_asterisk, f"sqlite:///{tmp_path / 'ctl.db'}")


def test_serve_survives_an_asterisk_restart_and_reconciles(own_asterisk: Sandbox, own_ctl: CtlRunner,
                                                           tmp_path: Path) -> None:
    phones = Phones(own_asterisk, tmp_path / "phones")
    serve = Serve(own_ctl, tmp_path / "serve.log")
    try:
        serve.wait_log("reconciled with the PBX")
        phones.phone("101", "answer", hold_ms=120_000)
        phones.clients("answer", hold_ms=120_000)
        first = int(own_ctl.json("call", "bridge", "--operator", "101", "--to", "79991110001")["id"])
        own_ctl.wait_state(first, "bridged")

        # Asterisk dies mid-call (as a crash does) and comes back on the same ports.
        own_asterisk.instance.kill()
        own_asterisk.instance.start(own_asterisk.settings)
        serve.wait_log("reconciled with the PBX", times=2, timeout=20)
        assert serve.process.poll() is None

        # The call died with Asterisk: the store learns it from the reconciliation.
        lost = own_ctl.wait_state(first, "ended")
        assert lost["cause"] == "lost" and lost["ended_at"] is not None
        assert any(e.get("msg") == "lost the AMI connection; reconnecting" for e in serve.lines())

        # And serve follows new calls on the restarted Asterisk.
        phones.stop()
        phones.started.clear()
        phones.phone("101", "answer", hold_ms=120_000)  # registrations do not survive the restart
        phones.clients("answer", hold_ms=1500)
        second = int(own_ctl.json("call", "bridge", "--operator", "101", "--to", "79991110002")["id"])
        ended = own_ctl.wait_state(second, "ended")
        assert ended["cause"] == "normal_clearing" and ended["bridged_at"] is not None
    finally:
        phones.stop()
        assert serve.stop() == 0


def test_serve_started_mid_call_discovers_it_and_follows_it_to_the_end(own_asterisk: Sandbox, own_ctl: CtlRunner,
                                                                       tmp_path: Path) -> None:
    phones = Phones(own_asterisk, tmp_path / "phones")
    phones.phone("101", "answer", hold_ms=120_000)
    client = phones.clients("answer", hold_ms=6000)
    try:
        call_id = int(own_ctl.json("call", "bridge", "--operator", "101", "--to", "79991110003")["id"])
        wait_for(lambda: own_asterisk.live_channels() == 2, message="both legs up")
        # No serve yet: the row is still as the CLI wrote it.
        assert own_ctl.call(call_id)["state"] == "created"

        serve = Serve(own_ctl, tmp_path / "serve.log")
        try:
            serve.wait_log("reconciled with the PBX")
            bridged = own_ctl.wait_state(call_id, "bridged", timeout=5)
            assert bridged["answered_at"] is not None
            reconciled = [e for e in serve.lines() if e.get("msg") == "reconciled with the PBX"]
            assert reconciled[0]["live_calls"] == 1 and reconciled[0]["discovered"] == 0
            ended = own_ctl.wait_state(call_id, "ended", timeout=15)
            assert ended["cause"] == "normal_clearing"
        finally:
            assert serve.stop() == 0
        assert client.process is not None
    finally:
        phones.stop()


def test_serve_fails_fast_on_a_wrong_secret(own_asterisk: Sandbox, own_ctl: CtlRunner, tmp_path: Path) -> None:
    own_ctl.env["CTL_ASTERISK_SECRET"] = "not-the-secret"
    result = own_ctl.run("serve", check=False)
    assert result.returncode == 3
    last = result.stderr.strip().splitlines()[-1]
    assert last == (f"ctl: Asterisk at 127.0.0.1:{own_asterisk.ami_port} refused the AMI login of user 'ctl': "
                    "Authentication failed")


def test_serve_waits_for_an_asterisk_that_is_down(own_asterisk: Sandbox, own_ctl: CtlRunner, tmp_path: Path) -> None:
    own_asterisk.instance.stop()
    serve = Serve(own_ctl, tmp_path / "serve.log")
    try:
        serve.wait_log("ctl serve starting")
        wait_for(lambda: any("retrying in" in str(e.get("msg")) for e in serve.lines()), 10,
                 message="a retry with back-off")
        own_asterisk.instance.start(own_asterisk.settings)
        serve.wait_log("reconciled with the PBX", timeout=20)
        starts = [json.dumps(e) for e in serve.lines() if "cannot reach Asterisk" in str(e.get("msg"))]
        assert starts, "the first failure is logged"
    finally:
        assert serve.stop() == 0
