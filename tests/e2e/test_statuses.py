"""Operator statuses that follow the real PBX: registrations and calls move them, queues follow them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sip_peers import SippPhone, make_tone

from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve, make_ctl, start_sandbox


def test_an_unregistered_phone_takes_its_operator_offline(ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    phone = phones.phone("101", "answer")
    assert ctl.json("operator", "status", "101", "available")["status"] == "available"
    phones.unregister("101", phone.port)
    wait_for(lambda: ctl.json("operator", "status", "101")["status"] == "offline", timeout=10,
             message="101 to go offline")
    latest = ctl.json("operator", "history", "101")[0]
    assert (latest["from"], latest["to"], latest["reason"], latest["source"]) == \
        ("available", "offline", "unregistered", "pbx")
    assert serve.count("status follows the phone") == 1


def test_an_unreachable_phone_suspends_its_operator_until_it_answers_again(tmp_path: Path) -> None:
    """An Asterisk of its own that qualifies every 2 s: the phone's sipp stops (its registration
    stays), the OPTIONS go unanswered, ContactStatus Unreachable → suspended; a phone answering on
    the same contact again (no new REGISTER) → Reachable → the status before, with its reason."""
    asterisk = start_sandbox(tmp_path / "asterisk", QUALIFY_FREQUENCY="2")
    ctl = make_ctl(asterisk, f"sqlite:///{tmp_path / 'ctl.db'}")
    phones = Phones(asterisk, tmp_path / "phones")
    serve = Serve(ctl, tmp_path / "serve.log")
    try:
        serve.wait_log("reconciled with the PBX")
        phone = phones.phone("101", "answer")
        ctl.run("operator", "status", "101", "break", "--reason", "lunch")
        phone.stop()
        _wait_status(ctl, "101", "suspended", timeout=30)
        suspended = ctl.json("operator", "history", "101")[0]
        assert (suspended["from"], suspended["to"], suspended["reason"], suspended["source"]) == \
            ("break", "suspended", "unreachable", "pbx"), suspended
        back = SippPhone("answer", phone.port, phone.media_port, tmp_path / "again").start()
        phones.started.append(back)
        # The first answered qualify restores the break and its reason (looked up in the history:
        # CI saw a later qualify miss the fresh sipp and suspend again before this read).
        wait_for(lambda: any((h["from"], h["to"], h["reason"], h["source"]) == ("suspended", "break", "lunch", "pbx")
                             for h in ctl.json("operator", "history", "101")), 30, interval=0.5,
                 message="101 back on its break, reason lunch")
    finally:
        phones.stop()
        assert serve.stop() == 0
        asterisk.instance.stop()


def _status(ctl: CtlRunner, extension: str) -> dict[str, Any]:
    return dict(ctl.json("operator", "status", extension))


def _wait_status(ctl: CtlRunner, extension: str, status: str, timeout: float = 15) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        row = _status(ctl, extension)
        return row if row["status"] == status else None

    return wait_for(reached, timeout, interval=0.2, message=f"{extension} {status}")  # type: ignore[return-value]


def _went(ctl: CtlRunner, extension: str, status: str, call_id: int, timeout: float = 15) -> None:
    """The person's history holds a change to `status` about `call_id` (however short it was:
    a 3-second call can be over before a poll of the current status sees it)."""
    def found() -> bool:
        return any(row["to"] == status and row["call"] == call_id for row in ctl.json("operator", "history", extension))

    wait_for(found, timeout, interval=0.3, message=f"{extension} {status} on call {call_id}")


def test_a_project_call_makes_the_operator_talking_then_wrap_up_until_the_result(
        ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    phones.phone("101", "answer", hold_ms=60_000)
    phones.clients("answer", hold_ms=2500)  # the client hangs up after 2.5 s
    ctl.run("operator", "status", "101", "available")
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "+79991112233", "--project", "Sales")["id"])
    _went(ctl, "101", "talking", call_id)
    ctl.wait_state(call_id, "ended", timeout=20)
    _wait_status(ctl, "101", "wrap_up", timeout=5)
    saved = ctl.json("call", "result", str(call_id), "sale")
    assert (saved["operator"], saved["operator_status"]) == ("101", "available")
    assert _status(ctl, "101")["status"] == "available"
    history = [(h["from"], h["to"], h["source"], h["call"]) for h in reversed(ctl.json("operator", "history", "101"))]
    assert history == [("offline", "available", "cli", None), ("available", "talking", "pbx", call_id),
                       ("talking", "wrap_up", "pbx", call_id), ("wrap_up", "available", "cli", call_id)]


def test_a_wrap_up_ends_by_itself_at_the_projects_maximum(ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    ctl.run("project", "set", "Sales", "--wrapup-seconds", "2")
    phones.phone("101", "answer", hold_ms=60_000)
    phones.clients("answer", hold_ms=1500)
    ctl.run("operator", "status", "101", "available")
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "+79991112233", "--project", "Sales")["id"])
    ctl.wait_state(call_id, "ended", timeout=20)
    _went(ctl, "101", "wrap_up", call_id)  # 2 s of wrap-up can be over before a status poll
    _wait_status(ctl, "101", "available", timeout=6)
    latest = ctl.json("operator", "history", "101")[0]
    assert (latest["from"], latest["to"], latest["source"], latest["call"]) == \
        ("wrap_up", "available", "system", call_id)
    assert ctl.call(call_id)["result"] is None  # no result was invented


def _queue_line(asterisk: Sandbox, interface: str) -> str:
    for line in asterisk.rx("queue show sales").splitlines():
        if interface in line:
            return line
    raise AssertionError(f"{interface} is not a member of queue sales")


def _wait_paused(asterisk: Sandbox, interface: str, reason: str | None) -> None:
    """reason None: not paused."""
    def done() -> bool:
        line = _queue_line(asterisk, interface)
        return f"paused:{reason}" in line if reason else "paused" not in line

    wait_for(done, timeout=5, interval=0.2, message=f"{interface} paused={reason}")


def test_a_paused_operator_gets_no_queue_call_and_an_available_one_does(
        ctl: CtlRunner, serve: Serve, phones: Phones, asterisk: Sandbox, tmp_path: Path) -> None:
    tone = make_tone(tmp_path / "client.ulaw", 700)
    ctl.run("project", "set", "Sales", "--queue", "sales")
    phones.phone("101", "answer", hold_ms=60_000)
    phones.phone("102", "answer", hold_ms=60_000)
    ctl.run("operator", "status", "101", "break", "--reason", "lunch")
    ctl.run("operator", "status", "102", "available")
    _wait_paused(asterisk, "PJSIP/101", "lunch")
    _wait_paused(asterisk, "PJSIP/102", None)
    # 101 is first in the linear queue: only its pause sends the call to 102.
    # Calls of 8 s: long enough to be seen bridged by polling the CLI on a busy machine.
    first = phones.inbound("79990000001", "5001", tone, hold_ms=8000)
    call = wait_for(lambda: [c for c in ctl.calls() if c["state"] == "bridged"], timeout=15,
                    message="the first queue call answered")[0]  # type: ignore[index]
    assert (call["operator"], call["project"]) == ("102", "Sales")
    assert _status(ctl, "101")["status"] == "break"
    first.wait(20)
    _wait_status(ctl, "102", "wrap_up")  # a project call: 102 is now paused in the queue too
    _wait_paused(asterisk, "PJSIP/102", "wrap_up")
    ctl.run("operator", "status", "101", "available")
    _wait_paused(asterisk, "PJSIP/101", None)
    phones.inbound("79990000002", "5001", tone, hold_ms=8000)
    second = wait_for(lambda: [c for c in ctl.calls() if c["state"] == "bridged" and c["id"] != call["id"]],
                      timeout=15, message="the second queue call answered")[0]  # type: ignore[index]
    assert (second["operator"], second["project"]) == ("101", "Sales")
    _went(ctl, "101", "talking", second["id"])


def test_a_forced_logout_pauses_the_phone_in_every_queue(ctl: CtlRunner, serve: Serve, asterisk: Sandbox) -> None:
    ctl.run("operator", "status", "102", "available")
    _wait_paused(asterisk, "PJSIP/102", None)
    refused = ctl.run("operator", "logout", "102", "--force", "--by", "101", check=False)
    assert refused.returncode != 0 and "may not log another person out" in refused.stderr
    assert _status(ctl, "102")["status"] == "available"
    out = ctl.json("operator", "logout", "102", "--force", "--by", "201")
    assert (out["status"], out["reason"]) == ("offline", "forced logout")
    _wait_paused(asterisk, "PJSIP/102", "forced logout")
    latest = ctl.json("operator", "history", "102")[0]
    assert (latest["to"], latest["reason"], latest["by"]) == ("offline", "forced logout", "201")
