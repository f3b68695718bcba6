"""After a session, the supervisor's call card: comment, review flag, call the client, debrief the operator."""

from __future__ import annotations

from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Sandbox, Serve


def test_after_a_session_the_supervisor_works_the_call_card(ctl: CtlRunner, serve: Serve, phones: Phones,
                                                            asterisk: Sandbox) -> None:
    phones.phone("101", "answer", hold_ms=120_000)
    phones.clients("answer", hold_ms=120_000)
    phones.phone("200", "answer", hold_ms=120_000)
    call_id = int(ctl.json("call", "bridge", "--operator", "101", "--to", "79991234567", "--project", "Sales")["id"])
    ctl.wait_state(call_id, "bridged")
    ctl.run("monitor", "listen", "101", "--by", "200")
    wait_for(lambda: ctl.json("monitor", "list", "--active")[0]["attached_at"], message="attached")
    ctl.run("monitor", "stop", "--by", "200")
    assert ctl.json("monitor", "list")[0]["end_reason"] == "stopped"
    asterisk.hangup_endpoint("clients")
    ctl.wait_state(call_id, "ended")

    ctl.run("call", "comment", str(call_id), "Client asked for a discount; escalate.")
    ctl.run("call", "flag", str(call_id), "--review")
    card = ctl.call(call_id)
    assert (card["comment"], card["review"], card["project"]) == ("Client asked for a discount; escalate.", True,
                                                                   "Sales")

    # Call the client back from the supervisor's phone: it rings 200, then the client.
    again = int(ctl.json("call", "dial-client", str(call_id), "--from", "200")["id"])
    callback = ctl.wait_state(again, "bridged")
    assert (callback["client"], callback["project"], callback["direction"]) == ("79991234567", "Sales", "outbound")
    asterisk.hangup_endpoint("clients")
    ctl.wait_state(again, "ended")

    # Debrief: ring 200, then operator 101, internally.
    debrief = int(ctl.json("call", "dial-operator", str(call_id), "--from", "200")["id"])
    talk = ctl.wait_state(debrief, "bridged")
    assert (talk["direction"], talk["operator"], talk["client"]) == ("internal", "101", None)
