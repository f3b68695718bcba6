"""Callback tasks run by `ctl serve` on the real Asterisk: the phone that rings is the
assignee's, or an available colleague's when the assignee is on a break."""

from __future__ import annotations

from typing import Any

from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Serve


def _wait_task(ctl: CtlRunner, task_id: int, state: str, timeout: float = 20) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        found = [t for t in ctl.json("task", "list") if t["id"] == task_id]
        return found[0] if found and found[0]["state"] == state else None

    return wait_for(reached, timeout, interval=0.2, message=f"task {task_id} {state}")  # type: ignore[return-value]


def test_an_automatic_callback_rings_the_assignee_or_a_colleague_when_on_a_break(
        ctl: CtlRunner, serve: Serve, phones: Phones) -> None:
    phones.phone("101", "answer", hold_ms=60_000)
    phones.phone("102", "answer", hold_ms=60_000)
    phones.clients("answer", hold_ms=1500)
    for extension in ("101", "102"):
        ctl.run("operator", "status", extension, "available")
    first = ctl.json("task", "add", "--number", "+79993334455", "--at", "+1s", "--assignee", "101", "--auto",
                     "--project", "Sales")
    done = _wait_task(ctl, first["id"], "done")
    assert (done["placed_to"], done["attempts"]) == ("101", 1)
    call = ctl.call(done["call"])
    assert (call["operator"], call["client"], call["project"], call["direction"]) == \
        ("101", "+79993334455", "Sales", "outbound")
    assert call["bridged_at"] is not None
    ctl.wait_state(done["call"], "ended")
    ctl.run("operator", "status", "101", "break", "--reason", "lunch")
    second = ctl.json("task", "add", "--number", "+79993334466", "--at", "+1s", "--assignee", "101", "--auto",
                      "--project", "Sales")
    done = _wait_task(ctl, second["id"], "done")
    assert done["placed_to"] == "102"
    assert ctl.call(done["call"])["operator"] == "102"
    assert ctl.json("operator", "status", "101")["status"] == "break"  # nobody rang the person on a break
    assert serve.count("task callback placed") == 2 and serve.count("task done") == 2


def test_a_manual_task_raises_its_reminder(ctl: CtlRunner, serve: Serve) -> None:
    task = ctl.json("task", "add", "--number", "+79993334477", "--at", "+3m", "--assignee", "102",
                    "--note", "asked for a call after lunch")
    serve.wait_log("task reminder", timeout=5)  # due within [tasks] remind_minutes (5)
    due = ctl.json("task", "due", "--assignee", "102")
    assert [t["id"] for t in due] == [task["id"]] and due[0]["reminded_at"] is not None
    assert ctl.json("task", "done", str(task["id"]))["state"] == "done"
    assert ctl.json("task", "due") == []
