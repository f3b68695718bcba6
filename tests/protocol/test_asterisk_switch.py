"""AsteriskSwitch against a fake AMI server replaying traffic recorded from Asterisk 22."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator

import pytest

from ctl import events as ev
from ctl.asterisk import AsteriskSwitch
from ctl.asterisk import switch as switch_module
from ctl.config import AsteriskSettings, Settings
from ctl.errors import ActionTimeout, AuthenticationFailed, SwitchUnreachable, ValidationError
from ctl.model import ChannelState, HangupCause, OriginateRequest
from ctl.services.calls import CallTracker
from ctl.store.engine import Store
from ctl.store.models import Call
from tests.protocol.fake_ami import FakeAmiServer

# The action the recordings answered (scripts/record_ami.py sent the same).
ORIGINATE = OriginateRequest(channel="PJSIP/101", channel_id="ctl-0001", context="ctl-click-to-call",
                             caller_id='"Анна Петрова" <79991234567>', timeout=5,
                             variables=(("CTL_CLIENT_DIAL", "PJSIP/79991234567@clients"), ("CTL_RING_TIMEOUT", "5")))

# The actions each recording answers, in order (scripts/record_ami.py sent them).
ANSWERED = ["Login", "Originate", "CoreShowChannels"]



def STALLING() -> FakeAmiServer:  # noqa: N802 - reads as a constant at the call sites
    """A server that never answers Originate."""
    return FakeAmiServer("bridge-answered.ami", ANSWERED, stall=frozenset({"Originate"}))


def settings_for(port: int, **overrides: object) -> AsteriskSettings:
    values: dict[str, object] = {"host": "127.0.0.1", "port": port, "secret": "ami-secret-for-tests", "node": "test",
                                 "connect_timeout": 2.0, "action_timeout": 1.0, "reconnect_min": 0.05,
                                 "reconnect_max": 0.2}
    values.update(overrides)
    return AsteriskSettings(**values)  # type: ignore[arg-type]


class Collector:
    def __init__(self) -> None:
        self.events: list[ev.Event] = []

    def __call__(self, event: ev.Event) -> None:
        self.events.append(event)

    def of(self, kind: type[ev.Event]) -> list[ev.Event]:
        return [e for e in self.events if isinstance(e, kind)]

    async def wait(self, kind: type[ev.Event], count: int = 1, timeout: float = 5) -> None:
        async def reached() -> None:
            while len(self.of(kind)) < count:
                await asyncio.sleep(0.01)

        await asyncio.wait_for(reached(), timeout)


@pytest.fixture
async def server_factory() -> AsyncIterator[list[FakeAmiServer]]:
    servers: list[FakeAmiServer] = []
    yield servers
    for server in servers:
        await server.stop()


async def started(servers: list[FakeAmiServer], server: FakeAmiServer) -> tuple[FakeAmiServer, int]:
    servers.append(server)
    return server, await server.start()


@pytest.mark.parametrize("chunks", [None, [1], [7, 3, 1, 13], [2, 5]], ids=["whole", "bytewise", "mixed", "small"])
async def test_recorded_click_to_call_becomes_neutral_events(server_factory: list[FakeAmiServer],
                                                             chunks: list[int] | None,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Count the reads that end inside a UTF-8 character (the caller name is Cyrillic).
    split_reads: list[bytes] = []
    original = switch_module._Protocol.data_received

    def counting(protocol: switch_module._Protocol, data: bytes) -> None:
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            split_reads.append(data)
        original(protocol, data)

    monkeypatch.setattr(switch_module._Protocol, "data_received", counting)
    server, port = await started(server_factory, FakeAmiServer("bridge-answered.ami", ANSWERED, chunk_sizes=chunks))
    switch = AsteriskSwitch(settings_for(port, action_timeout=30.0))
    seen = Collector()
    switch.subscribe(seen)
    await switch.connect()
    assert await switch.originate(ORIGINATE) == "ctl-0001"
    snapshot = await switch.channels()
    await seen.wait(ev.ChannelHungUp, 2, timeout=60)
    await switch.close()

    assert [a.name for a in server.received[:3]] == ["Login", "Originate", "CoreShowChannels"]
    originate = server.received[1].fields
    assert originate["Channel"] == "PJSIP/101" and originate["ChannelId"] == "ctl-0001"
    assert originate["CallerID"] == '"Анна Петрова" <79991234567>'

    assert isinstance(seen.events[0], ev.SwitchConnected)
    created = seen.of(ev.ChannelCreated)
    assert [(c.endpoint, c.call_id) for c in created] == [("101", "ctl-0001"), ("clients", "ctl-0001")]  # type: ignore[attr-defined]
    assert {e.call_id for e in seen.events if hasattr(e, "call_id")} == {"ctl-0001"}
    states = [(e.channel_id == "ctl-0001", e.state) for e in seen.of(ev.ChannelStateChanged)]  # type: ignore[attr-defined]
    assert (True, ChannelState.UP) in states and (False, ChannelState.UP) in states
    assert len(seen.of(ev.ChannelEnteredBridge)) == 2
    assert {e.cause for e in seen.of(ev.ChannelHungUp)} == {HangupCause.NORMAL_CLEARING}  # type: ignore[attr-defined]
    assert [(c.endpoint, c.call_id) for c in snapshot] == [("101", "ctl-0001"), ("clients", "ctl-0001")]
    # Both legs show the caller id ctl set: the UTF-8 name survived every split.
    assert [c.caller_name for c in snapshot] == ["Анна Петрова", "Анна Петрова"]
    assert (len(split_reads) > 10) == (chunks is not None)


async def test_login_refused_is_authentication_failed(server_factory: list[FakeAmiServer]) -> None:
    _, port = await started(server_factory, FakeAmiServer("login-failed.ami", ["Login"]))
    switch = AsteriskSwitch(settings_for(port))
    with pytest.raises(AuthenticationFailed) as raised:
        await switch.connect()
    assert str(raised.value) == (f"Asterisk at 127.0.0.1:{port} refused the AMI login of user 'ctl': "
                                 "Authentication failed")
    assert not switch.connected
    await switch.close()


async def test_unreachable_port_is_one_clear_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connection refused
        switch = AsteriskSwitch(settings_for(port))
        refused = f"cannot reach Asterisk AMI at 127.0.0.1:{port}: connection refused"
        with pytest.raises(SwitchUnreachable, match=refused):
            await switch.connect()
    await switch.close()


async def test_a_server_that_is_not_ami_times_out_at_login(server_factory: list[FakeAmiServer]) -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    switch = AsteriskSwitch(settings_for(port, connect_timeout=0.3))
    with pytest.raises(SwitchUnreachable, match="did not answer the AMI login within 0.3 s"):
        await switch.connect()
    await switch.close()
    server.close()


async def test_every_action_has_a_timeout(server_factory: list[FakeAmiServer]) -> None:
    _, port = await started(server_factory, STALLING())
    switch = AsteriskSwitch(settings_for(port, action_timeout=0.3))
    await switch.connect()
    with pytest.raises(ActionTimeout, match="Asterisk did not answer Originate within 0.3 s"):
        await switch.originate(ORIGINATE)
    assert switch.connected  # a slow reply is not a dead link
    await switch.close()


async def test_originate_to_an_unregistered_phone_reports_the_failure(server_factory: list[FakeAmiServer]) -> None:
    _, port = await started(server_factory, FakeAmiServer("originate-unregistered.ami", ["Login", "Originate"]))
    switch = AsteriskSwitch(settings_for(port))
    seen = Collector()
    switch.subscribe(seen)
    await switch.connect()
    await switch.originate(OriginateRequest(channel="PJSIP/103", channel_id="ctl-0003", context="ctl-click-to-call"))
    await seen.wait(ev.OriginateFailed)
    [failed] = seen.of(ev.OriginateFailed)
    assert failed.channel_id == "ctl-0003" and failed.cause is HangupCause.FAILED  # type: ignore[attr-defined]
    await switch.close()


async def test_injected_line_breaks_never_reach_the_wire(server_factory: list[FakeAmiServer]) -> None:
    server, port = await started(server_factory, FakeAmiServer("bridge-answered.ami", ANSWERED))
    switch = AsteriskSwitch(settings_for(port))
    await switch.connect()
    INJECTION = "PJSIP/1@c\r\n\r\nAction: Originate\r\nChannel: PJSIP/666"  # noqa: N806
    evil = OriginateRequest(channel="PJSIP/101", channel_id="ctl-x", context="ctl-click-to-call",
                            variables=(("CTL_CLIENT_DIAL", INJECTION),))
    with pytest.raises(ValidationError):
        await switch.originate(evil)
    await asyncio.sleep(0.05)
    assert [a.name for a in server.received] == ["Login"]
    await switch.close()


async def test_reconnects_with_backoff_and_fails_pending_actions(server_factory: list[FakeAmiServer]) -> None:
    server, port = await started(server_factory, STALLING())
    switch = AsteriskSwitch(settings_for(port, action_timeout=10.0))
    seen = Collector()
    switch.subscribe(seen)
    await switch.connect()
    runner = asyncio.create_task(switch.run())
    pending = asyncio.create_task(switch.originate(ORIGINATE))
    await asyncio.sleep(0.1)
    await server.drop_connections()  # Asterisk restarts
    with pytest.raises(SwitchUnreachable):
        await asyncio.wait_for(pending, 2)
    await seen.wait(ev.SwitchConnected, 2)
    assert server.connections == 2
    links = [type(e).__name__ for e in seen.events if isinstance(e, (ev.SwitchConnected, ev.SwitchDisconnected))]
    assert links == ["SwitchConnected", "SwitchDisconnected", "SwitchConnected"]
    # The Originate pending at the drop was not sent again on the new connection.
    assert [a.name for a in server.received].count("Originate") == 1
    await switch.close()
    await runner


async def test_a_failing_handler_does_not_stop_the_event_flow(server_factory: list[FakeAmiServer]) -> None:
    _, port = await started(server_factory, FakeAmiServer("bridge-busy.ami", ["Login", "Originate"]))
    switch = AsteriskSwitch(settings_for(port))

    def broken(event: ev.Event) -> None:
        raise RuntimeError("handler bug")

    seen = Collector()
    switch.subscribe(broken)
    switch.subscribe(seen)
    await switch.connect()
    await switch.originate(ORIGINATE)
    await seen.wait(ev.ChannelHungUp, 2)
    await switch.close()


async def test_tracker_stores_the_recorded_busy_call(server_factory: list[FakeAmiServer], store: Store) -> None:
    _, port = await started(server_factory, FakeAmiServer("bridge-busy.ami", ["Login", "Originate"]))
    switch = AsteriskSwitch(settings_for(port))
    tracker = CallTracker(store, switch, Settings())
    seen = Collector()
    switch.subscribe(tracker.handle)
    switch.subscribe(seen)
    await switch.connect()
    await switch.originate(ORIGINATE)
    await seen.wait(ev.ChannelHungUp, 2)
    await switch.drain()
    await switch.close()
    with store.transaction() as session:
        [call] = session.query(Call).all()
        assert (call.pbx_call_id, call.node, call.direction) == ("ctl-0002", "test", "outbound")
        assert (call.state, call.hangup_cause, call.hangup_cause_code) == ("ended", "user_busy", 17)
        assert call.client_number == "79991234567" and call.answered_at is None


# scripts/record_ami.py on a bridged click-to-call: a recording (stereo) started on the client's
# leg, mute, unmute, StopMixMonitor, hangup. The capture was taken when ctl sent AMI's
# MixMonitor action; ctl now orders the recording (two Setvar) and triggers the dialplan
# (PlayDTMF): the captured reply answers the PlayDTMF (a bare Success, as PlayDTMF's is), the
# Setvars and the Getvar get the fake's generic Success, and the MixMonitorStart that follows
# is the same either way.
RECORDED = ["Login", "Originate", "PlayDTMF", "MixMonitorMute", "MixMonitorMute", "StopMixMonitor", "Hangup"]
SENT = ["Login", "Originate", "Getvar", "Setvar", "Setvar", "PlayDTMF", "MixMonitorMute", "MixMonitorMute",
        "StopMixMonitor", "Hangup"]


@pytest.mark.parametrize("chunks", [None, [3, 11]], ids=["whole", "split"])
async def test_recording_actions_and_the_mixmonitor_events(server_factory: list[FakeAmiServer],
                                                           chunks: list[int] | None) -> None:
    from dataclasses import replace

    from ctl.model import RecordingOptions

    server, port = await started(server_factory, FakeAmiServer("recording.ami", RECORDED, chunk_sizes=chunks))
    switch = AsteriskSwitch(settings_for(port, action_timeout=30.0))
    seen = Collector()
    switch.subscribe(seen)
    await switch.connect()
    await switch.originate(replace(ORIGINATE, channel_id="ctl-0002"))
    await seen.wait(ev.ChannelEnteredBridge, 2, timeout=30)
    [client] = [c for c in seen.of(ev.ChannelCreated) if c.endpoint == "clients"]  # type: ignore[attr-defined]
    path = "/var/spool/asterisk/recordings/2026/11/22/call-7.wav"
    await switch.record_start(client.channel_id, RecordingOptions(path=path, stereo=True))
    await seen.wait(ev.RecordingStarted)
    await switch.record_mute(client.channel_id, True)
    await switch.record_mute(client.channel_id, False)
    await seen.wait(ev.RecordingMuted, 2)
    await switch.record_stop(client.channel_id)
    await seen.wait(ev.RecordingStopped)
    await switch.hangup(client.channel_id)
    await seen.wait(ev.ChannelHungUp, 2, timeout=30)
    await switch.close()

    sent = {a.name: a.fields for a in server.received}
    assert [a.name for a in server.received if a.name != "Ping"][:10] == SENT
    assert sent["Getvar"]["Variable"] == "CTL_RECORDINGS" and "Channel" not in sent["Getvar"]
    order = [(a.fields["Channel"], a.fields["Variable"], a.fields["Value"]) for a in server.received
             if a.name == "Setvar"]
    assert order == [("PJSIP/clients-00000001", "CTL_REC_FILE", path), ("PJSIP/clients-00000001", "CTL_REC_HOW", "mD")]
    assert {k: v for k, v in sent["PlayDTMF"].items() if k != "ActionID"} == {
        "Action": "PlayDTMF", "Channel": "PJSIP/clients-00000001", "Digit": "R", "Duration": "100", "Receive": "yes"}
    mutes = [(a.fields["Direction"], a.fields["State"]) for a in server.received if a.name == "MixMonitorMute"]
    assert mutes == [("both", "1"), ("both", "0")]
    assert sent["StopMixMonitor"]["Channel"] == "PJSIP/clients-00000001"
    [started_event] = seen.of(ev.RecordingStarted)
    assert (started_event.call_id, started_event.channel_id) == ("ctl-0002", client.channel_id)  # type: ignore[attr-defined]
    assert [e.muted for e in seen.of(ev.RecordingMuted)] == [True, False]  # type: ignore[attr-defined]
    assert [e.channel_id for e in seen.of(ev.RecordingStopped)] == [client.channel_id]  # type: ignore[attr-defined]


async def test_a_recording_order_is_checked_and_withdrawn_when_it_does_not_run(
        server_factory: list[FakeAmiServer]) -> None:
    from dataclasses import replace

    from ctl.errors import ActionFailed, SwitchError
    from ctl.model import RecordingOptions

    server, port = await started(server_factory, FakeAmiServer("recording.ami", RECORDED,
                                                               stall=frozenset({"PlayDTMF"})))
    switch = AsteriskSwitch(settings_for(port, action_timeout=1.0))
    seen = Collector()
    switch.subscribe(seen)
    await switch.connect()
    await switch.originate(replace(ORIGINATE, channel_id="ctl-0002"))
    await seen.wait(ev.ChannelEnteredBridge, 2, timeout=30)
    [client] = [c for c in seen.of(ev.ChannelCreated) if c.endpoint == "clients"]  # type: ignore[attr-defined]
    # Outside the dialplan's recordings directory: refused before anything is set on the leg.
    with pytest.raises(ActionFailed, match="records only below /var/spool/asterisk/recordings"):
        await switch.record_start(client.channel_id, RecordingOptions(path="/srv/elsewhere/call-7.wav"))
    assert not [a for a in server.received if a.name == "Setvar"]
    # The trigger is never answered: the order is withdrawn, so a later trigger starts nothing.
    with pytest.raises(SwitchError):
        await switch.record_start(client.channel_id,
                                  RecordingOptions(path="/var/spool/asterisk/recordings/2026/11/22/call-7.wav"))
    setvars = [(a.fields["Variable"], a.fields["Value"]) for a in server.received if a.name == "Setvar"]
    assert setvars[-1] == ("CTL_REC_FILE", "")
    await switch.close()
