"""The FastAGI feature-code server against real TCP clients: Asterisk's own requests are
served; forged ones (no secret, a channel the PBX never announced, someone else's leg),
silent clients, peers outside the allowlist and connections over the cap are not."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ctl import events as ev
from ctl.asterisk import agi
from ctl.asterisk.agi import FeatureCodeServer, peer_allowed, script_of
from ctl.config import MonitorSettings, Settings
from ctl.live import LiveChannels
from ctl.services.directory import add_operator
from ctl.store.engine import Store, upgrade
from ctl.store.models import Call, MonitorSession, Operator
from ctl.testing import FakeSwitch

SECRET = "agi-path-secret-for-tests"
SETTINGS = replace(Settings(), monitor=MonitorSettings(agi_secret=SECRET))
OPERATOR = ("e2e-1.1", "PJSIP/101-00000001")
CLIENT = ("e2e-1.2", "PJSIP/clients-00000002")
SUPERVISOR = ("e2e-1.3", "PJSIP/200-00000003")
TRUNK_CALLER = ("e2e-1.4", "PJSIP/clients-00000004")


@dataclass
class Setup:
    store: Store
    server: FeatureCodeServer
    live: LiveChannels


async def created(live: LiveChannels, channel_id: str, name: str, call_id: str) -> None:
    endpoint = name.split("/", 1)[1].rsplit("-", 1)[0]
    await live.handle(ev.ChannelCreated(node="fake", at=datetime.now(UTC), call_id=call_id, channel_id=channel_id,
                                        name=name, endpoint=endpoint, caller_number=None, caller_name=None,
                                        dialed=None))


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    store = Store(url)
    with store.transaction() as session:
        add_operator(session, SETTINGS.calls, "101", "Anna", "operator", None)
        add_operator(session, SETTINGS.calls, "200", "Sam", "supervisor", None)
    with store.transaction() as session:
        anna = session.scalar(select(Operator).where(Operator.extension == "101"))
        assert anna is not None
        session.add(Call(node="fake", pbx_call_id=OPERATOR[0], direction="outbound", state="bridged",
                         operator_id=anna.id, client_number="+79991234567"))
    switch = FakeSwitch()
    live = LiveChannels(switch)  # type: ignore[arg-type]
    for channel_id, name in (OPERATOR, CLIENT):
        await created(live, channel_id, name, OPERATOR[0])
    await created(live, *SUPERVISOR, SUPERVISOR[0])
    await created(live, *TRUNK_CALLER, TRUNK_CALLER[0])
    legs = {OPERATOR[0]: [(OPERATOR[1], "101"), (CLIENT[1], "clients")]}
    server = FeatureCodeServer(store, SETTINGS, switch, lambda call: legs.get(call, []), live)  # type: ignore[arg-type]
    await server.start(port=0)
    yield Setup(store, server, live)
    await server.close()
    store.dispose()


def headers(script: str, channel: tuple[str, str], *args: str) -> bytes:
    lines = {"agi_network": "yes", "agi_network_script": script, "agi_request": f"agi://127.0.0.1/{script}",
             "agi_channel": channel[1], "agi_uniqueid": channel[0], "agi_callerid": "101"}
    lines.update({f"agi_arg_{i}": value for i, value in enumerate(args, 1)})
    return ("".join(f"{k}: {v}\n" for k, v in lines.items()) + "\n").encode()


async def converse(port: int, block: bytes, answer: bool = True) -> list[str]:
    """Send a header block, answer every AGI command with success, return the commands."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(block)
    await writer.drain()
    commands = []
    while True:
        try:
            line = await asyncio.wait_for(reader.readline(), 5)
        except ConnectionResetError:  # closed with our headers unread: refused at once
            break
        if not line:
            break
        commands.append(line.decode().strip())
        if answer:
            writer.write(b"200 result=1\n")
            await writer.drain()
    writer.close()
    return commands


def sessions(store: Store) -> list[tuple[str, str | None, str | None]]:
    with store.transaction() as session:
        return [(r.mode, r.spy_channel_id, r.end_reason) for r in session.scalars(select(MonitorSession))]


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> None:
    assert not [r for r in caplog.records if r.exc_info], "a traceback was logged"


async def test_the_dialplans_request_is_served(setup: Setup) -> None:
    commands = await converse(setup.server.port, headers(f"{SECRET}/monitor", SUPERVISOR, "listen", "101"))
    assert commands[-1] == f'SET VARIABLE CTL_SPY_TARGET "{OPERATOR[1]}"'
    assert sessions(setup.store) == [("listen", SUPERVISOR[0], None)]


@pytest.mark.parametrize(("script", "channel", "why"), [
    ("monitor", SUPERVISOR, "wrong or missing secret"),  # no secret at all
    (f"{SECRET[:-1]}/monitor", SUPERVISOR, "wrong or missing secret"),
    (f"{SECRET}/monitor", ("e2e-1.99", "IAX2/200-0000abcd"), "not a live channel"),  # the reported forgery
    (f"{SECRET}/monitor", (SUPERVISOR[0], "PJSIP/201-00000003"), "not a live channel"),  # a live id, another name
    (f"{SECRET}/record-pause", (SUPERVISOR[0], "IAX2/200-0000abcd"), "not a live channel"),
    (f"{SECRET}/other", SUPERVISOR, "unknown script"),
])
async def test_forged_requests_are_refused_without_a_word_to_the_caller(
        setup: Setup, script: str, channel: tuple[str, str], why: str, caplog: pytest.LogCaptureFixture) -> None:
    commands = await converse(setup.server.port, headers(script, channel, "listen", "101", OPERATOR[0]))
    assert commands == []  # not even a refusal: the connection is closed
    assert sessions(setup.store) == []
    assert setup.server.refused == 1
    assert any(why in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING), caplog.records
    no_tracebacks(caplog)


async def test_a_clients_line_and_a_bad_extension_are_refused_to_the_dialplan(setup: Setup) -> None:
    commands = await converse(setup.server.port, headers(f"{SECRET}/monitor", TRUNK_CALLER, "listen", "101"))
    assert commands == ['SET VARIABLE CTL_REFUSAL "forbidden: a client\'s line cannot use feature codes"']
    commands = await converse(setup.server.port, headers(f"{SECRET}/monitor", SUPERVISOR, "listen", "1,01"))
    assert len(commands) == 1 and commands[0].startswith("SET VARIABLE CTL_REFUSAL")
    assert sessions(setup.store) == []


async def test_a_forged_record_pause_from_a_phone_not_on_the_call_is_refused(setup: Setup) -> None:
    commands = await converse(setup.server.port, headers(f"{SECRET}/record-pause", SUPERVISOR, OPERATOR[0]))
    assert commands == [f'SET VARIABLE CTL_REFUSAL "forbidden: 200 is not on call {OPERATOR[0]}"']


async def test_a_channel_announced_a_moment_late_is_waited_for(setup: Setup) -> None:
    late = ("e2e-1.7", "PJSIP/200-00000007")
    talking = asyncio.ensure_future(converse(setup.server.port, headers(f"{SECRET}/monitor", late, "listen", "101")))
    await asyncio.sleep(0.2)
    await created(setup.live, *late, late[0])
    commands = await talking
    assert commands[-1] == f'SET VARIABLE CTL_SPY_TARGET "{OPERATOR[1]}"'


async def test_silent_clients_are_dropped_on_deadlines_with_one_line(
        setup: Setup, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The reported leak: a client that sent its headers and then nothing held its connection
    (and a session) forever. Now every reply has a deadline, and the session it opened ends."""
    monkeypatch.setattr(agi, "HEADER_TIMEOUT", 0.3)
    monkeypatch.setattr(agi, "REPLY_TIMEOUT", 0.3)
    # Half a header block, then silence.
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.server.port)
    writer.write(b"agi_network: yes\nagi_network_script: ")
    await writer.drain()
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    # A whole header block, then no reply to the first command.
    commands = await asyncio.wait_for(
        converse(setup.server.port, headers(f"{SECRET}/monitor", SUPERVISOR, "listen", "101"), answer=False), 5)
    assert commands == ['SET VARIABLE CTL_SPY_OPTIONS "qES"']
    assert sessions(setup.store) == [("listen", SUPERVISOR[0], "feature_code_failed")]
    assert setup.server.active == 0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any("no complete header block" in w for w in warnings), warnings
    assert any("dropped: TimeoutError" in w for w in warnings), warnings
    no_tracebacks(caplog)


async def test_many_silent_clients_hold_nothing_once_their_deadline_passed(
        setup: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(agi, "HEADER_TIMEOUT", 0.5)
    clients = [await asyncio.open_connection("127.0.0.1", setup.server.port) for _ in range(100)]
    for reader, _writer in clients:
        assert await asyncio.wait_for(reader.read(), 5) == b""
    for _reader, writer in clients:
        writer.close()
    assert setup.server.active == 0


async def test_over_the_cap_and_outside_the_allowlist_are_closed_at_once(setup: Setup) -> None:
    setup.server.settings = replace(SETTINGS, monitor=replace(SETTINGS.monitor, max_connections=1))
    holder_reader, holder = await asyncio.open_connection("127.0.0.1", setup.server.port)
    holder.write(b"agi_network: yes\n")  # holds the one slot, sending its headers slowly
    await holder.drain()
    await asyncio.sleep(0.1)
    reader, writer = await asyncio.open_connection("127.0.0.1", setup.server.port)
    assert await asyncio.wait_for(reader.read(), 5) == b""
    writer.close()
    assert setup.server.refused == 1
    holder.close()
    setup.server.settings = replace(SETTINGS, monitor=replace(SETTINGS.monitor, agi_allow=("10.0.0.0/8",)))
    commands = await converse(setup.server.port, headers(f"{SECRET}/monitor", SUPERVISOR, "listen", "101"))
    assert commands == [] and sessions(setup.store) == []


@pytest.mark.parametrize(("peer", "allowed", "expected"), [
    (("127.0.0.1", 5000), ("127.0.0.1", "::1"), True),
    (("::1", 5000, 0, 0), ("127.0.0.1", "::1"), True),
    (("::ffff:127.0.0.1", 5000, 0, 0), ("127.0.0.1",), True),
    (("10.1.2.3", 5000), ("10.0.0.0/8",), True),
    (("192.168.1.9", 5000), ("127.0.0.1", "::1"), False),
    (None, ("127.0.0.1",), False),
    (("not an address", 1), ("127.0.0.1",), False),
])
def test_peer_allowlist(peer: object, allowed: tuple[str, ...], expected: bool) -> None:
    assert peer_allowed(peer, allowed) is expected


def test_the_script_is_served_only_behind_the_secret() -> None:
    assert script_of(f"{SECRET}/monitor", SECRET) == "monitor"
    assert script_of("monitor", SECRET) is None
    assert script_of(f"{SECRET}x/monitor", SECRET) is None
    assert script_of("/monitor", "") is None
