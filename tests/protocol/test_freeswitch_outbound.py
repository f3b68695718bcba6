"""Feature codes on FreeSWITCH: the outbound-socket handler of ctl serve against a fake FreeSWITCH
that connects like the `socket` application does (channel data as URL-encoded headers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from urllib.parse import quote

import pytest
from sqlalchemy import select

from ctl.config import FreeswitchSettings, Settings
from ctl.freeswitch.outbound import OutboundFeatureCodes
from ctl.freeswitch.switch import FreeswitchSwitch
from ctl.live import LiveChannels
from ctl.services.directory import add_operator
from ctl.store.engine import Store, upgrade
from ctl.store.models import Call, MonitorSession, Operator
from tests.protocol.fake_esl import RespondingEsl, captured_event, encode_event, reply

OPERATOR_LEG = "5a1c0000-0000-4000-8000-000000000101"
CLIENT_LEG = "5a1c0000-0000-4000-8000-0000000c11e7"
SPY_LEG = "5a1c0000-0000-4000-8000-0000000005b1"
SECOND_SPY_LEG = "5a1c0000-0000-4000-8000-0000000005b2"
OPERATOR_PHONE_LEG = "5a1c0000-0000-4000-8000-0000000005b3"
TOKEN = "fs-outbound-secret-for-tests"
SETTINGS = replace(Settings(), freeswitch=FreeswitchSettings(outbound_secret=TOKEN))


@dataclass
class FakeSocketApp:
    """FreeSWITCH's side of `socket 127.0.0.1:<port> async full` for one supervisor's call."""

    port: int
    channel: dict[str, str]
    commands: list[str] = field(default_factory=list)
    reader: asyncio.StreamReader | None = None
    writer: asyncio.StreamWriter | None = None

    async def connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        assert await self.reader.readuntil(b"\n\n") == b"connect\n\n"
        data = {**self.channel, "Content-Type": "command/reply", "Reply-Text": "+OK\n", "Socket-Mode": "async",
                "Control": "full"}
        self.writer.write(("".join(f"{k}: {quote(v, safe='/')}\n" for k, v in data.items()) + "\n").encode())
        await self.writer.drain()

    async def answer_commands(self, until_closed: bool = True) -> None:
        """Reply +OK to every command, as FreeSWITCH does in async mode, until ctl closes."""
        assert self.reader is not None and self.writer is not None
        while True:
            try:
                raw = await asyncio.wait_for(self.reader.readuntil(b"\n\n"), 5)
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            self.commands.append(raw.decode()[:-2])
            try:
                self.writer.write(reply("+OK"))
                await self.writer.drain()
            except ConnectionError:  # the test closed its end meanwhile
                return

    async def send_event(self, headers: dict[str, str]) -> None:
        assert self.writer is not None
        self.writer.write(encode_event(headers))
        await self.writer.drain()


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[tuple[Store, RespondingEsl, FreeswitchSwitch, OutboundFeatureCodes]]:
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    store = Store(url)
    with store.transaction() as session:
        add_operator(session, SETTINGS.calls, "101", "Anna", "operator", "user/101")
        add_operator(session, SETTINGS.calls, "200", "Sam", "supervisor", "user/200")
        add_operator(session, SETTINGS.calls, "102", "Bob", "operator", "user/102")
    with store.transaction() as session:
        anna = session.scalar(select(Operator).where(Operator.extension == "101"))
        assert anna is not None
        session.add(Call(node="fs1", pbx_call_id=OPERATOR_LEG, direction="outbound", state="bridged",
                         operator_id=anna.id, client_number="+79991234567"))
    fake = RespondingEsl()
    port = await fake.start()
    switch = FreeswitchSwitch(FreeswitchSettings(host="127.0.0.1", port=port, password="s3cret-for-tests", node="fs1",
                                                 connect_timeout=2.0, action_timeout=2.0))
    live = LiveChannels(switch)
    switch.subscribe(live.handle)
    await switch.connect()
    await fake.push(captured_event("8", "CHANNEL_CREATE", Unique_ID=OPERATOR_LEG, Channel_Call_UUID=OPERATOR_LEG,
                                   Channel_Name="sofia/internal/101@127.0.0.1"))
    # The supervisors' own legs, as the inbound event socket announces them.
    for uuid, name in ((SPY_LEG, "sofia/internal/200@127.0.0.1"), (SECOND_SPY_LEG, "sofia/internal/201@127.0.0.1"),
                       (OPERATOR_PHONE_LEG, "sofia/internal/101@10.0.0.5")):
        await fake.push(captured_event("8", "CHANNEL_CREATE", Unique_ID=uuid, Channel_Call_UUID=uuid,
                                       Channel_Name=name))
    legs = {OPERATOR_LEG: [("sofia/internal/101@127.0.0.1", "101"), ("sofia/gateway/clients/79991234567",
                                                                       "clients")]}
    handler = OutboundFeatureCodes(store, SETTINGS, switch, lambda call: legs.get(call, []), live)
    await handler.start(port=0)

    async def known() -> None:
        while True:
            try:
                switch.channel_uuid("sofia/internal/101@127.0.0.1")
                return
            except Exception:
                await asyncio.sleep(0.01)
    await asyncio.wait_for(known(), 3)
    assert await live.wait_for(OPERATOR_PHONE_LEG, 3) is not None
    yield store, fake, switch, handler
    await handler.close()
    await switch.close()
    await fake.stop()
    store.dispose()


def channel(user: str | None, mode: str, operator: str, uuid: str = SPY_LEG,
            name: str = "sofia/internal/200@127.0.0.1", token: str | None = TOKEN) -> dict[str, str]:
    data = captured_event("8", "CHANNEL_CREATE", Unique_ID=uuid, Channel_Call_UUID=uuid, Channel_Name=name)
    data.pop("Event-Name", None)
    data.update({"variable_ctl_monitor_mode": mode, "variable_ctl_monitor_operator": operator,
                 "Caller-Caller-ID-Number": "101"})  # a caller id that lies: never trusted
    if token is not None:
        data["variable_ctl_token"] = token
    if user is not None:
        data["variable_user_name"] = user
    return data


def sessions(store: Store) -> list[tuple[str, str | None, str | None]]:
    with store.transaction() as session:
        return [(r.mode, r.spy_channel_id, r.end_reason) for r in session.scalars(select(MonitorSession))]


async def test_a_supervisor_listens_then_whispers_and_barge_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    store, fake, _switch, handler = setup
    app = FakeSocketApp(handler.port, channel("200", "listen", "101"))
    await app.connect()
    answering = asyncio.ensure_future(app.answer_commands())

    async def attached() -> None:
        while not any("execute-app-name: eavesdrop" in c for c in app.commands):
            await asyncio.sleep(0.01)
    await asyncio.wait_for(attached(), 5)
    assert app.commands[:2] == ["myevents", "event plain DTMF"]
    executes = [c for c in app.commands if c.startswith("sendmsg")]
    assert executes == [
        "sendmsg\ncall-command: execute\nexecute-app-name: set\nexecute-app-arg: eavesdrop_enable_dtmf=false",
        *(f"sendmsg\ncall-command: execute\nexecute-app-name: bind_digit_action\n"
          f"execute-app-arg: ctl,{d},exec[i]:set,ctl_monitor_digit={d}" for d in "456"),
        "sendmsg\ncall-command: execute\nexecute-app-name: answer",
        f"sendmsg\ncall-command: execute\nexecute-app-name: eavesdrop\nexecute-app-arg: {OPERATOR_LEG}"]
    assert sessions(store) == [("listen", SPY_LEG, None)]

    # The bound digits run `set ctl_monitor_digit=N` inline: its CHANNEL_EXECUTE tells ctl.
    pressed = captured_event("8", "CHANNEL_EXECUTE", Unique_ID=SPY_LEG)
    await app.send_event({**pressed, "Application": "set", "Application-Data": "ctl_monitor_digit=5"})
    sent = await fake.wait_for_command("sendevent CUSTOM")
    assert sent == f"sendevent CUSTOM\nEvent-Subclass: esl::eavesdrop\nunique-id: {SPY_LEG}\neavesdrop-command: 2"
    # A supervisor may not barge: nothing sent. Other `set`s are not digits.
    await app.send_event({**pressed, "Application": "set", "Application-Data": "ctl_monitor_digit=6"})
    await app.send_event({**pressed, "Application": "set", "Application-Data": "other=4"})
    dtmf = captured_event("8", "DTMF", Unique_ID=SPY_LEG)  # a DTMF event, should FreeSWITCH send one
    await app.send_event({**dtmf, "DTMF-Digit": "4"})

    async def back_to_listen() -> None:
        while sum(c.endswith("eavesdrop-command: 0") for c in fake.commands) < 1:
            await asyncio.sleep(0.01)
    await asyncio.wait_for(back_to_listen(), 5)
    assert not any(c.endswith("eavesdrop-command: 3") for c in fake.commands)
    with store.transaction() as session:
        row = session.scalar(select(MonitorSession))
        assert row is not None
        assert [(c.mode, c.source) for c in row.mode_changes] == [("listen", "feature_code"), ("whisper", "dtmf"),
                                                                   ("listen", "dtmf")]
    # The operator's call ends: eavesdrop returns, ctl closes the socket and the dialplan hangs up.
    done = captured_event("8", "CHANNEL_EXECUTE", Unique_ID=SPY_LEG)
    await app.send_event({**done, "Event-Name": "CHANNEL_EXECUTE_COMPLETE"})
    await asyncio.wait_for(answering, 5)


@pytest.mark.parametrize(("user", "mode", "operator", "why"), [
    (None, "listen", "101", "not an authenticated phone"),
    ("200", "barge", "101", "may not barge"),
    ("200", "listen", "102", "no call in progress"),
    ("101", "listen", "102", "operator 101 may not listen"),
    ("200", "spy", "101", "unknown mode"),
    ("20 0", "listen", "101", "not an authenticated phone"),
    ("201", "listen", "101", "not an authenticated phone"),  # the user does not own the leg
])
async def test_refusals_hang_up_and_open_no_session(setup, user: str | None, mode: str, operator: str,  # type: ignore[no-untyped-def]
                                                     why: str, caplog: pytest.LogCaptureFixture) -> None:
    store, _fake, _switch, handler = setup
    leg = (OPERATOR_PHONE_LEG, "sofia/internal/101@10.0.0.5") if user == "101" else \
        (SPY_LEG, "sofia/internal/200@127.0.0.1")
    app = FakeSocketApp(handler.port, channel(user, mode, operator, *leg))
    await app.connect()
    await asyncio.wait_for(app.answer_commands(), 5)
    assert app.commands == ["sendmsg\ncall-command: hangup\nhangup-cause: CALL_REJECTED"]
    assert sessions(store) == []
    assert any(why in str(getattr(r, "fields", {}).get("detail")) for r in caplog.records), caplog.records


async def test_a_second_monitor_on_the_same_call_is_refused(setup) -> None:  # type: ignore[no-untyped-def]
    store, _fake, _switch, handler = setup
    first = FakeSocketApp(handler.port, channel("200", "listen", "101"))
    await first.connect()
    answering = asyncio.ensure_future(first.answer_commands())
    while not sessions(store):
        await asyncio.sleep(0.01)
    with store.transaction() as session:
        add_operator(session, SETTINGS.calls, "201", "Ann", "admin", "user/201")
    second_channel = channel("201", "listen", "101", SECOND_SPY_LEG, "sofia/internal/201@127.0.0.1")
    second = FakeSocketApp(handler.port, second_channel)
    await second.connect()
    await asyncio.wait_for(second.answer_commands(), 5)
    assert second.commands == ["sendmsg\ncall-command: hangup\nhangup-cause: CALL_REJECTED"]
    assert len(sessions(store)) == 1
    assert first.writer is not None
    first.writer.close()
    await asyncio.wait_for(answering, 5)


async def test_garbage_instead_of_channel_data_fails_closed(setup) -> None:  # type: ignore[no-untyped-def]
    store, _fake, _switch, handler = setup
    reader, writer = await asyncio.open_connection("127.0.0.1", handler.port)
    assert await reader.readuntil(b"\n\n") == b"connect\n\n"
    writer.write(b"Content-Type: command/reply\nContent-Length: nonsense\n\n")
    await writer.drain()
    rest = await asyncio.wait_for(reader.read(), 5)  # ctl hangs up the call and closes
    assert b"call-command: hangup" in rest
    assert sessions(store) == []


@pytest.mark.parametrize(("change", "why"), [
    ({"token": None}, "wrong or missing ctl_token"),
    ({"token": "fs-outbound-secret-for-test"}, "wrong or missing ctl_token"),
    ({"uuid": "5a1c0000-0000-4000-8000-00000000dead"}, "is not a live channel"),
    ({"name": "sofia/internal/200@evil"}, "is not a live channel"),  # a live uuid under another name
    ({"uuid": OPERATOR_LEG, "name": "sofia/internal/101@127.0.0.1"}, "not an authenticated phone"),
])
async def test_forged_connections_are_refused(setup, change: dict[str, str | None], why: str,  # type: ignore[no-untyped-def]
                                              caplog: pytest.LogCaptureFixture) -> None:
    """A process that connects like the socket application but lacks the secret, or names a
    channel the PBX never announced (or under another name), or someone else's leg: refused,
    hung up, no session, one warning line and no traceback."""
    store, _fake, _switch, handler = setup
    arguments: dict[str, str | None] = {"uuid": SPY_LEG, "name": "sofia/internal/200@127.0.0.1", "token": TOKEN}
    arguments.update(change)
    data = channel("200", "listen", "101", arguments["uuid"] or SPY_LEG, arguments["name"] or "",
                   arguments["token"])
    app = FakeSocketApp(handler.port, data)
    await app.connect()
    await asyncio.wait_for(app.answer_commands(), 5)
    assert app.commands == ["sendmsg\ncall-command: hangup\nhangup-cause: CALL_REJECTED"]
    assert sessions(store) == []
    messages = [r.getMessage() + str(getattr(r, "fields", {})) for r in caplog.records]
    assert any(why in m for m in messages), messages
    assert not any(r.exc_info for r in caplog.records)


async def test_peers_outside_the_allowlist_and_over_the_cap_are_closed_at_once(setup) -> None:  # type: ignore[no-untyped-def]
    store, _fake, _switch, handler = setup
    handler.settings = replace(SETTINGS, freeswitch=replace(SETTINGS.freeswitch, outbound_allow=("10.0.0.0/8",)))
    reader, writer = await asyncio.open_connection("127.0.0.1", handler.port)
    assert b"hangup" in await asyncio.wait_for(reader.read(), 5)  # refused before `connect`: hung up
    writer.close()
    assert handler.refused == 1
    handler.settings = replace(SETTINGS, monitor=replace(SETTINGS.monitor, max_connections=1))
    first = FakeSocketApp(handler.port, channel("200", "listen", "101"))
    await first.connect()
    answering = asyncio.ensure_future(first.answer_commands())
    while not sessions(store):
        await asyncio.sleep(0.01)
    reader, writer = await asyncio.open_connection("127.0.0.1", handler.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed before even `connect`
    writer.close()
    assert handler.refused == 2
    assert first.writer is not None
    first.writer.close()
    await asyncio.wait_for(answering, 5)
