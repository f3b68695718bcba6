"""The services, unchanged, on the FreeSWITCH adapter: ctl monitor and ctl call bridge as the CLI runs them."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from ctl.cli.pbx import connected
from ctl.config import Settings, load_settings
from ctl.errors import DomainError
from ctl.freeswitch.switch import FreeswitchSwitch
from ctl.model import MonitorMode
from ctl.services.calls import place_bridge_call
from ctl.services.directory import add_operator
from ctl.services.monitoring import change_monitor_mode, start_monitoring
from ctl.store.engine import Store, upgrade
from ctl.store.models import Call, MonitorSession, Operator
from tests.protocol.fake_esl import RespondingEsl

OPERATOR_LEG = "0f5e1a7e-0000-4000-8000-000000000101"


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[tuple[RespondingEsl, Store, Settings]]:
    fake = RespondingEsl()
    port = await fake.start()
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    settings = load_settings(environ={
        "CTL_DATABASE_URL": url, "CTL_ASTERISK_HOST": "", "CTL_FREESWITCH_HOST": "127.0.0.1",
        "CTL_FREESWITCH_PORT": str(port), "CTL_FREESWITCH_PASSWORD": "s3cret-for-tests", "CTL_FREESWITCH_NODE": "fs1",
        "CTL_CALLS_OPERATOR_DIAL": "user/{extension}"})
    store = Store(url)
    with store.transaction() as session:
        add_operator(session, settings.calls, "101", "Anna", "operator", None)
        add_operator(session, settings.calls, "200", "Sam", "supervisor", None)
    yield fake, store, settings
    store.dispose()
    await fake.stop()


def switch_for(settings: Settings) -> FreeswitchSwitch:
    return FreeswitchSwitch(settings.freeswitch)


async def test_monitor_listen_then_whisper_on_freeswitch(world) -> None:  # type: ignore[no-untyped-def]
    fake, store, settings = world
    with store.transaction() as session:
        anna = session.scalar(select(Operator).where(Operator.extension == "101"))
        assert anna is not None
        session.add(Call(node="fs1", pbx_call_id=OPERATOR_LEG, direction="outbound", state="bridged",
                         operator_id=anna.id, client_number="+79991234567"))
    fake.api["show channels as json"] = json.dumps({"row_count": 2, "rows": [
        {"uuid": OPERATOR_LEG, "call_uuid": OPERATOR_LEG, "name": "sofia/internal/101@127.0.0.1",
         "callstate": "ACTIVE"},
        {"uuid": "0f5e1a7e-0000-4000-8000-0000000c11e7", "call_uuid": OPERATOR_LEG,
         "name": "sofia/gateway/clients/79991234567", "callstate": "ACTIVE"}]})
    async with connected(switch_for(settings)) as switch:
        session_id = await start_monitoring(store, switch, settings, MonitorMode.LISTEN, "101", "200", follow=False)
    originate = next(c for c in fake.commands if c.startswith("bgapi originate")).split("\n")[0]
    spy = originate.split("origination_uuid=", 1)[1].split(",", 1)[0]
    assert spy.startswith("ctl-spy-") and len(spy) == 36
    assert originate.endswith(f"eavesdrop_enable_dtmf=false}}user/200 &eavesdrop({OPERATOR_LEG})")
    assert "sofia_contact 200" in " ".join(fake.commands)  # the supervisor's phone is checked first
    with store.transaction() as session:
        row = session.get(MonitorSession, session_id)
        assert row is not None and (row.node, row.spy_channel_id, row.mode) == ("fs1", spy, "listen")

    async with connected(switch_for(settings)) as switch:
        await change_monitor_mode(store, switch, settings, session_id, MonitorMode.WHISPER)
    assert fake.commands[-2] == (f"sendevent CUSTOM\nEvent-Subclass: esl::eavesdrop\nunique-id: {spy}\n"
                                 "eavesdrop-command: 2")


async def test_monitor_refused_when_the_supervisors_phone_is_not_registered(world) -> None:  # type: ignore[no-untyped-def]
    fake, store, settings = world
    with store.transaction() as session:
        anna = session.scalar(select(Operator).where(Operator.extension == "101"))
        assert anna is not None
        session.add(Call(node="fs1", pbx_call_id=OPERATOR_LEG, direction="outbound", state="bridged",
                         operator_id=anna.id))
    fake.api["show channels as json"] = json.dumps({"row_count": 1, "rows": [
        {"uuid": OPERATOR_LEG, "call_uuid": OPERATOR_LEG, "name": "sofia/internal/101@127.0.0.1",
         "callstate": "ACTIVE"}]})
    fake.api["sofia_contact 200"] = "error/user_not_registered"
    with pytest.raises(DomainError, match="not reachable"):
        async with connected(switch_for(settings)) as switch:
            await start_monitoring(store, switch, settings, MonitorMode.LISTEN, "101", "200", follow=False)
    assert not any(c.startswith("bgapi") for c in fake.commands)
    with store.transaction() as session:
        assert session.scalars(select(MonitorSession)).all() == []


async def test_click_to_call_on_freeswitch(world) -> None:  # type: ignore[no-untyped-def]
    fake, store, settings = world
    async with connected(switch_for(settings)) as switch:
        placed = await place_bridge_call(store, switch, settings, "101", "+7 999 123-45-67", None)
    originate = next(c for c in fake.commands if c.startswith("bgapi originate")).split("\n")[0]
    assert originate.startswith(f"bgapi originate {{origination_uuid={placed.pbx_call_id},originate_timeout=30,")
    assert "ctl_client_dial=sofia/gateway/clients/+79991234567" in originate
    assert originate.endswith("}user/101 s XML ctl-click-to-call")
    with store.transaction() as session:
        row = session.get(Call, placed.id)
        assert row is not None and (row.node, row.pbx_call_id, row.state) == ("fs1", placed.pbx_call_id, "created")
