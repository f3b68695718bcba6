"""The monitoring rules on the FakeSwitch, SQLite and PostgreSQL: following sessions and the one-monitor rule."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ctl import events as ev
from ctl.config import Settings
from ctl.errors import AlreadyMonitored, CallEnded, Forbidden, NoActiveCall
from ctl.model import ChannelInfo, ChannelState, HangupCause, MonitorMode
from ctl.services.directory import add_operator
from ctl.services.monitoring import MonitorTracker, start_monitoring
from ctl.store.engine import Store
from ctl.store.models import Call, MonitorSession, Operator
from ctl.testing import FakeSwitch

SETTINGS = Settings()
NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def staff(store: Store) -> Store:
    with store.transaction() as session:
        for extension, role in (("101", "operator"), ("200", "supervisor"), ("201", "admin")):
            add_operator(session, SETTINGS.calls, extension, f"P{extension}", role, None)
    return store


def _call(store: Store, pbx_id: str, state: str = "bridged") -> int:
    with store.transaction() as session:
        op = session.query(Operator).filter_by(extension="101").one()
        call = Call(node="fake", pbx_call_id=pbx_id, direction="outbound", state=state, operator_id=op.id,
                    created_at=NOW)
        session.add(call)
        session.flush()
        return call.id


def _legs(pbx_id: str) -> list[ChannelInfo]:
    return [ChannelInfo(pbx_id, pbx_id, "PJSIP/101-00000001", "101", ChannelState.UP, "101", "b"),
            ChannelInfo(pbx_id, "c", "PJSIP/clients-00000002", "clients", ChannelState.UP, None, "b")]


async def test_rules_before_anything_reaches_the_pbx(staff: Store) -> None:
    switch = FakeSwitch()
    with pytest.raises(NoActiveCall, match="operator 101 has no call in progress"):
        await start_monitoring(staff, switch, SETTINGS, MonitorMode.LISTEN, "101", "200", follow=False)
    _call(staff, "one")
    with pytest.raises(Forbidden, match="may not barge"):
        await start_monitoring(staff, switch, SETTINGS, MonitorMode.BARGE, "101", "200", follow=False)
    with pytest.raises(CallEnded, match="has ended"):  # the store says bridged, the PBX has no such call
        await start_monitoring(staff, switch, SETTINGS, MonitorMode.LISTEN, "101", "200", follow=False)
    assert switch.spied == []


async def test_second_request_refused_and_following_session_skips_a_monitored_call(staff: Store) -> None:
    switch = FakeSwitch(snapshot=_legs("one"))
    first_call = _call(staff, "one")
    following = await start_monitoring(staff, switch, SETTINGS, MonitorMode.LISTEN, "101", "200", follow=True)
    with pytest.raises(AlreadyMonitored, match="already monitored by 200 .P200. since"):
        await start_monitoring(staff, switch, SETTINGS, MonitorMode.LISTEN, "101", "201", follow=False)

    live: dict[str, list[tuple[str, str | None]]] = {"one": [(i.name, i.endpoint) for i in _legs("one")]}
    tracker = MonitorTracker(staff, switch, lambda pbx_id: live.get(pbx_id, []))
    [spy] = switch.spied
    await tracker.handle(ev.SpyStarted(node="fake", at=NOW, call_id="one", spy_channel_id=spy.spy_channel_id,
                                       target_channel_id="one"))
    with staff.transaction() as session:
        session.get(Call, first_call).state = "ended"  # type: ignore[union-attr]
    await tracker.handle(ev.ChannelHungUp(node="fake", at=NOW, call_id="one", channel_id="one",
                                          cause=HangupCause.NORMAL_CLEARING, cause_code=16, cause_text=""))
    with staff.transaction() as session:
        assert session.get(MonitorSession, following).call_id is None  # type: ignore[union-attr]

    # The operator's next call is already monitored by 201: the following session keeps waiting.
    second_call = _call(staff, "two")
    live["two"] = [(i.name, i.endpoint) for i in _legs("two")]
    switch.snapshot = _legs("two")
    other = await start_monitoring(staff, switch, SETTINGS, MonitorMode.LISTEN, "101", "201", follow=False)
    await tracker.handle(ev.ChannelEnteredBridge(node="fake", at=NOW, call_id="two", channel_id="two",
                                                 bridge_id="b"))
    with staff.transaction() as session:
        assert session.get(MonitorSession, following).call_id is None  # type: ignore[union-attr]
        assert session.get(MonitorSession, other).call_id == second_call  # type: ignore[union-attr]
    assert not [c for c in switch.calls if c[0] == "spy_attach"]

    # A third call nobody monitors: the following session claims it and the spy leg moves.
    _call(staff, "three")
    live["three"] = [("PJSIP/101-00000009", "101"), ("PJSIP/clients-0000000a", "clients")]
    await tracker.handle(ev.ChannelEnteredBridge(node="fake", at=NOW, call_id="three", channel_id="three",
                                                 bridge_id="b3"))
    [(_, (spy_id, target, mode))] = [c for c in switch.calls if c[0] == "spy_attach"]
    assert (target, mode) == ("PJSIP/101-00000009", MonitorMode.LISTEN)
