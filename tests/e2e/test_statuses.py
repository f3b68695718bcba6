"""Operator statuses that follow the real PBX: a phone's registration moves its operator."""

from __future__ import annotations

from tests.conftest import wait_for
from tests.e2e.conftest import CtlRunner, Phones, Serve


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
