"""FreeswitchSwitch against a fake event socket answering with FreeSWITCH 1.10.12's framing and texts."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import pytest

from ctl import events as ev
from ctl.config import FreeswitchSettings
from ctl.errors import ActionFailed, AuthenticationFailed, SwitchUnreachable, ValidationError
from ctl.freeswitch.switch import EVENTS, FreeswitchSwitch
from ctl.model import HangupCause, MonitorMode, OriginateRequest, RecordingOptions, SpyRequest
from tests.protocol.fake_esl import RespondingEsl, captured_event

OPERATOR_LEG = "7e1b5c3a-0000-4000-8000-000000000101"
SPY_LEG = "ctl-spy-9f6c"


class Recorder:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    async def wait_for(self, kind: type[ev.Event], timeout: float = 5.0) -> ev.Event:
        async def seen() -> ev.Event:
            while True:
                for event in self.events:
                    if isinstance(event, kind):
                        return event
                await asyncio.sleep(0.01)
        return await asyncio.wait_for(seen(), timeout)


@pytest.fixture
async def fs() -> AsyncIterator[tuple[RespondingEsl, FreeswitchSwitch, Recorder]]:
    fake = RespondingEsl()
    port = await fake.start()
    switch = FreeswitchSwitch(FreeswitchSettings(host="127.0.0.1", port=port, password="s3cret-for-tests", node="fs1",
                                                 connect_timeout=2.0, action_timeout=2.0, reconnect_min=0.1,
                                                 reconnect_max=0.2))
    recorder = Recorder()
    switch.subscribe(recorder)
    await switch.connect()
    yield fake, switch, recorder
    await switch.close()
    await fake.stop()


async def test_connect_subscribes_to_the_events_ctl_reads(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    assert fake.commands[0] == f"event plain {EVENTS}"
    assert switch.connected
    assert isinstance(await recorder.wait_for(ev.SwitchConnected), ev.SwitchConnected)


async def test_a_wrong_password_and_no_freeswitch() -> None:
    fake = RespondingEsl(password="right-password")
    port = await fake.start()
    switch = FreeswitchSwitch(FreeswitchSettings(host="127.0.0.1", port=port, password="wrong-password",
                                                 connect_timeout=2))
    with pytest.raises(AuthenticationFailed, match="refused the event socket password"):
        await switch.connect()
    await fake.stop()
    with pytest.raises(SwitchUnreachable, match="cannot reach FreeSWITCH"):
        await switch.connect()
    with pytest.raises(SwitchUnreachable, match="no FreeSWITCH configured"):
        await FreeswitchSwitch(FreeswitchSettings()).connect()


async def test_originate_is_a_background_job_and_its_failure_an_event(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    fake.jobs["originate"] = "-ERR USER_NOT_REGISTERED"
    request = OriginateRequest(channel="user/101", channel_id="ctl-0f1e2d", context="ctl-click-to-call",
                               caller_id='"+79991234567" <+79991234567>', timeout=30,
                               variables=(("CTL_CLIENT_DIAL", "sofia/gateway/clients/79991234567"),
                                          ("CTL_CALL_ID", "42")))
    assert await switch.originate(request) == "ctl-0f1e2d"
    sent = await fake.wait_for_command("bgapi originate")
    command, _, header = sent.partition("\n")
    assert command == ("bgapi originate {origination_uuid=ctl-0f1e2d,originate_timeout=30,"
                       "origination_caller_id_number=+79991234567,origination_caller_id_name=+79991234567,"
                       "ctl_client_dial=sofia/gateway/clients/79991234567,ctl_call_id=42}user/101 "
                       "s XML ctl-click-to-call")
    assert header.startswith("Job-UUID: ")
    failed = await recorder.wait_for(ev.OriginateFailed)
    assert isinstance(failed, ev.OriginateFailed)
    assert (failed.channel_id, failed.reason, failed.cause) == ("ctl-0f1e2d", "user_not_registered",
                                                                 HangupCause.SUBSCRIBER_ABSENT)


async def test_a_successful_originate_raises_no_event(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    await switch.originate(OriginateRequest(channel="user/102", channel_id="ctl-aa", application="park"))
    assert (await fake.wait_for_command("bgapi originate")).split("\n")[0].endswith("user/102 &park()")
    await asyncio.sleep(0.2)
    assert not any(isinstance(e, ev.OriginateFailed) for e in recorder.events)


@pytest.mark.parametrize("bad", [
    OriginateRequest(channel="user/101,user/102", channel_id="ctl-1"),
    OriginateRequest(channel="user/101", channel_id="ctl-1", variables=(("CTL_X", "a,b"),)),
    OriginateRequest(channel="user/101", channel_id="ctl-1", variables=(("CTL_X", "a}b{c"),)),
    OriginateRequest(channel="user/101", channel_id="ctl-1\napi uuid_kill all"),
    OriginateRequest(channel="user/101", channel_id="ctl-1", context="ctx\nexit"),
    # ${…} in a variable is expanded when read, and can run an API command.
    OriginateRequest(channel="user/101", channel_id="ctl-1", variables=(("CTL_X", "${system id}"),)),
    OriginateRequest(channel="user/101", channel_id="ctl-1", caller_id='"$${ctl_esl_password}" <101>'),
])
async def test_values_that_would_change_the_command_are_refused(fs, bad: OriginateRequest) -> None:  # type: ignore[no-untyped-def]
    fake, switch, _ = fs
    with pytest.raises(ValidationError):
        await switch.originate(bad)
    await asyncio.sleep(0.1)
    assert not any(c.startswith("bgapi") for c in fake.commands)


async def test_hangup_and_bridge_and_their_errors(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, _ = fs
    await switch.hangup(OPERATOR_LEG, 17)
    assert fake.commands[-1] == f"api uuid_kill {OPERATOR_LEG} USER_BUSY"
    fake.api["uuid_kill"] = "-ERR No such channel!\n"  # as captured
    with pytest.raises(ActionFailed, match="No such channel"):
        await switch.hangup(OPERATOR_LEG)
    fake.api["uuid_bridge"] = "-ERR Invalid uuid\n"
    with pytest.raises(ActionFailed, match="Invalid uuid"):
        await switch.bridge(OPERATOR_LEG, "ctl-x")
    assert fake.commands[-1] == f"api uuid_bridge {OPERATOR_LEG} ctl-x"


async def test_channels_snapshot_and_device_state(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, _ = fs
    assert await switch.channels() == []
    row = {"uuid": OPERATOR_LEG, "call_uuid": OPERATOR_LEG, "name": "sofia/internal/101@127.0.0.1",
           "callstate": "ACTIVE", "cid_num": "101"}
    fake.api["show channels as json"] = json.dumps({"row_count": 1, "rows": [row]})
    (channel,) = await switch.channels()
    assert (channel.channel_id, channel.endpoint) == (OPERATOR_LEG, "101")
    fake.api["sofia_contact 101"] = "sofia/internal/sip:101@127.0.0.1:5062"
    fake.api["sofia_contact 102"] = "error/user_not_registered"
    assert await switch.device_available("user/101") is True
    assert await switch.device_available("user/102") is False
    assert await switch.device_available("sofia/gateway/clients/7999") is None


@pytest.mark.parametrize(("mode", "variables"), [
    (MonitorMode.LISTEN, "eavesdrop_enable_dtmf=false"),
    (MonitorMode.WHISPER, "eavesdrop_enable_dtmf=false,eavesdrop_whisper_bleg=true"),
    (MonitorMode.BARGE, "eavesdrop_enable_dtmf=false,eavesdrop_whisper_bleg=true,eavesdrop_whisper_aleg=true"),
])
async def test_spy_eavesdrops_on_the_operators_leg_in_each_mode(fs, mode: MonitorMode, variables: str) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    create = captured_event("8", "CHANNEL_CREATE", Unique_ID=OPERATOR_LEG, Channel_Call_UUID=OPERATOR_LEG,
                            Channel_Name="sofia/internal/101@127.0.0.1")
    await fake.push(create)
    await recorder.wait_for(ev.ChannelCreated)
    request = SpyRequest(supervisor_dial="user/200", target_channel="sofia/internal/101@127.0.0.1", mode=mode,
                         spy_channel_id=SPY_LEG, session_id=7, caller_id='"Monitor" <101>', timeout=20)
    assert await switch.spy(request) == SPY_LEG
    command = (await fake.wait_for_command("bgapi originate")).split("\n")[0]
    assert command == (f"bgapi originate {{origination_uuid={SPY_LEG},originate_timeout=20,"
                       f"origination_caller_id_number=101,origination_caller_id_name=Monitor,"
                       f"ctl_monitor_session=7,{variables}}}user/200 &eavesdrop({OPERATOR_LEG})")
    assert "eavesdrop_whisper_aleg=true" not in command or mode is MonitorMode.BARGE


async def test_a_spy_on_an_unknown_channel_is_refused(fs) -> None:  # type: ignore[no-untyped-def]
    _fake, switch, _ = fs
    request = SpyRequest(supervisor_dial="user/200", target_channel="sofia/internal/109@127.0.0.1",
                         mode=MonitorMode.LISTEN, spy_channel_id=SPY_LEG, session_id=1)
    with pytest.raises(ActionFailed, match="no live channel"):
        await switch.spy(request)


async def test_mode_switch_is_an_eavesdrop_command_event(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    for mode, digit in ((MonitorMode.WHISPER, "2"), (MonitorMode.BARGE, "3"), (MonitorMode.LISTEN, "0")):
        await switch.set_spy_mode(SPY_LEG, mode)
        assert fake.commands[-1] == (f"sendevent CUSTOM\nEvent-Subclass: esl::eavesdrop\nunique-id: {SPY_LEG}\n"
                                     f"eavesdrop-command: {digit}")
    changed = await recorder.wait_for(ev.SpyModeChanged)
    assert isinstance(changed, ev.SpyModeChanged) and changed.mode is MonitorMode.WHISPER


async def test_recording_start_mask_stop(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    path = "/var/spool/ctl/2026/11/22/call-7.wav"
    await switch.record_start(OPERATOR_LEG, RecordingOptions(path=path, stereo=True))
    assert fake.commands[-6:] == [
        f"api uuid_setvar {OPERATOR_LEG} RECORD_STEREO true", f"api uuid_setvar {OPERATOR_LEG} RECORD_APPEND false",
        f"api uuid_setvar {OPERATOR_LEG} RECORD_READ_ONLY false",
        f"api uuid_setvar {OPERATOR_LEG} RECORD_WRITE_ONLY false",
        f"api uuid_setvar {OPERATOR_LEG} ctl_record_path {path}",
        f"api uuid_record {OPERATOR_LEG} start {path}"]
    await fake.push(captured_event("8", "RECORD_START", Unique_ID=OPERATOR_LEG, Channel_Call_UUID="call-7"))
    started = await recorder.wait_for(ev.RecordingStarted)
    assert isinstance(started, ev.RecordingStarted) and started.channel_id == OPERATOR_LEG
    await switch.record_mute(OPERATOR_LEG, True)
    await switch.record_mute(OPERATOR_LEG, False)
    await switch.record_stop(OPERATOR_LEG)
    assert fake.commands[-3:] == [f"api uuid_record {OPERATOR_LEG} mask {path}",
                                  f"api uuid_record {OPERATOR_LEG} unmask {path}",
                                  f"api uuid_record {OPERATOR_LEG} stop {path}"]
    muted = await recorder.wait_for(ev.RecordingMuted)
    assert isinstance(muted, ev.RecordingMuted) and muted.muted
    fake.api["uuid_record"] = "-ERR Cannot locate session!\n"  # as captured
    with pytest.raises(ActionFailed, match="Cannot locate session"):
        await switch.record_start("0000", RecordingOptions(path=path))
    with pytest.raises(ValidationError):
        await switch.record_start(OPERATOR_LEG, RecordingOptions(path="/tmp/a b.wav"))


async def test_another_process_pauses_and_stops_by_the_path_the_channel_keeps(fs) -> None:  # type: ignore[no-untyped-def]
    """`ctl record pause` runs in its own process: the path comes back from the channel
    (seen on a real FreeSWITCH, where the CLI once could not pause what ctl serve started)."""
    fake, _, _ = fs
    path = "/var/spool/ctl/2026/11/22/call-8.wav"
    port = int(fake._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]
    other = FreeswitchSwitch(FreeswitchSettings(host="127.0.0.1", port=port, password="s3cret-for-tests", node="fs1",
                                                connect_timeout=2.0, action_timeout=2.0))
    await other.connect()
    try:
        fake.api[f"uuid_getvar {OPERATOR_LEG} ctl_record_path"] = f"{path}"
        await other.record_mute(OPERATOR_LEG, True)
        await other.record_stop(OPERATOR_LEG)
        assert fake.commands[-4:] == [f"api uuid_getvar {OPERATOR_LEG} ctl_record_path",
                                      f"api uuid_record {OPERATOR_LEG} mask {path}",
                                      f"api uuid_getvar {OPERATOR_LEG} ctl_record_path",
                                      f"api uuid_record {OPERATOR_LEG} stop {path}"]
        fake.api[f"uuid_getvar {OPERATOR_LEG} ctl_record_path"] = "_undef_"  # never recorded by ctl
        with pytest.raises(ActionFailed, match="no recording of ctl's"):
            await other.record_mute(OPERATOR_LEG, False)
    finally:
        await other.close()


async def test_queue_pause_is_the_callcenter_agent_status(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, _ = fs
    assert await switch.queue_pause("user/101", True, "lunch") is True
    assert fake.commands[-1] == "api callcenter_config agent set status 101 'On Break'"
    fake.api["callcenter_config"] = "-ERR Agent not found!\n"  # a real 1.10.12, for an unknown agent
    assert await switch.queue_pause("user/105", False) is False
    assert fake.commands[-1] == "api callcenter_config agent set status 105 'Available'"


async def test_run_reconnects_after_a_drop(fs) -> None:  # type: ignore[no-untyped-def]
    fake, switch, recorder = fs
    runner = asyncio.ensure_future(switch.run())
    await asyncio.sleep(0.1)
    await fake.drop()
    await recorder.wait_for(ev.SwitchDisconnected)

    async def reconnected() -> None:
        while fake.connections < 2 or not switch.connected:
            await asyncio.sleep(0.02)
    await asyncio.wait_for(reconnected(), 5)
    await switch.drain()
    assert sum(isinstance(e, ev.SwitchConnected) for e in recorder.events) == 2
    assert fake.commands.count(f"event plain {EVENTS}") == 2
    await switch.hangup(OPERATOR_LEG)  # the new connection works
    await switch.close()
    await asyncio.wait_for(runner, 5)
