"""`ctl serve` with a FreeSWITCH node only: the same services follow calls told by ESL events.

The fake event socket speaks FreeSWITCH 1.10.12's framing; the events are the capture's,
with the uuids, names and numbers of a click-to-call (operator 101 on user/101, the client
through the `clients` gateway).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from ctl.config import load_settings
from ctl.daemon import serve
from ctl.services.directory import add_operator
from ctl.store.engine import Store, upgrade
from ctl.store.models import Call, Operator
from tests.protocol.fake_esl import RespondingEsl, captured_event

OPERATOR_LEG = "0be1a7e5-0000-4000-8000-000000000101"
CLIENT_LEG = "0be1a7e5-0000-4000-8000-0000000c11e7"
CLIENT = "79991234567"


def _free_port() -> int:
    from sip_peers import free_port  # scripts/, on the path through tests/conftest.py

    return free_port(socket.SOCK_STREAM)


async def wait_until(condition: Callable[[], object], timeout: float = 20.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.02)
    await asyncio.wait_for(poll(), timeout)


@pytest.fixture
async def running(tmp_path: Path) -> AsyncIterator[tuple[RespondingEsl, Store]]:
    fake = RespondingEsl()
    port = await fake.start()
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    settings = load_settings(environ={
        "CTL_DATABASE_URL": url, "CTL_ASTERISK_HOST": "", "CTL_FREESWITCH_HOST": "127.0.0.1",
        "CTL_FREESWITCH_PORT": str(port), "CTL_FREESWITCH_PASSWORD": "s3cret-for-tests", "CTL_FREESWITCH_NODE": "fs1",
        "CTL_FREESWITCH_OUTBOUND_SECRET": "outbound-secret-for-tests",
        "CTL_FREESWITCH_OUTBOUND_PORT": str(_free_port()), "CTL_CALLS_OPERATOR_DIAL": "user/{extension}",
        "CTL_API_PORT": str(_free_port()), "CTL_API_SOCKET": str(tmp_path / "ctl.sock"),
        "CTL_CALLS_CLIENT_DIAL": "sofia/gateway/clients/{number}", "CTL_RECORDING_POLICY": "never",
        "CTL_RECORDING_DIRECTORY": str(tmp_path / "rec")})
    store = Store(url)
    with store.transaction() as session:
        add_operator(session, settings.calls, "101", "Anna", "operator", None)
    task = asyncio.ensure_future(serve(settings))
    await fake.wait_for_command("event plain")
    yield fake, store
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.dispose()
    await fake.stop()


def call_rows(store: Store) -> list[Call]:
    with store.transaction() as session:
        rows = list(session.scalars(select(Call).order_by(Call.id)))
        session.expunge_all()
        return rows


def status_of(store: Store, extension: str) -> str:
    with store.transaction() as session:
        person = session.scalar(select(Operator).where(Operator.extension == extension))
        assert person is not None
        return person.status


async def test_an_outbound_call_from_an_operators_phone_is_followed_to_its_end(running) -> None:  # type: ignore[no-untyped-def]
    fake, store = running
    await wait_until(lambda: len(fake.commands) >= 2)  # the reconcile's snapshot follows the subscription
    assert "CHANNEL_HANGUP_COMPLETE" in fake.commands[0] and fake.commands[1] == "api show channels as json"
    operator = {"Unique-ID": OPERATOR_LEG, "Channel-Call-UUID": OPERATOR_LEG,
                "Channel-Name": "sofia/internal/101@127.0.0.1", "Call-Direction": "inbound",
                "Caller-Caller-ID-Number": "101", "Caller-Destination-Number": CLIENT}
    client = {"Unique-ID": CLIENT_LEG, "Channel-Call-UUID": OPERATOR_LEG,
              "Channel-Name": f"sofia/gateway/clients/{CLIENT}", "Call-Direction": "outbound",
              "Caller-Caller-ID-Number": "101", "Caller-Destination-Number": CLIENT}
    await fake.push(captured_event("4", "CHANNEL_CREATE", **_keys(operator)))
    await wait_until(lambda: call_rows(store))
    await fake.push(captured_event("4", "CHANNEL_CREATE", **_keys(client)))
    await fake.push(captured_event("4", "CHANNEL_ANSWER", **_keys(client)))
    await fake.push(captured_event("4", "CHANNEL_ANSWER", **_keys(operator)))
    await fake.push(captured_event("4", "CHANNEL_BRIDGE", **_keys(operator), Bridge_A_Unique_ID=OPERATOR_LEG,
                                   Bridge_B_Unique_ID=CLIENT_LEG))
    await wait_until(lambda: call_rows(store)[0].state == "bridged")
    await wait_until(lambda: status_of(store, "101") == "talking")
    (row,) = call_rows(store)
    assert (row.node, row.pbx_call_id, row.direction, row.client_number) == ("fs1", OPERATOR_LEG, "outbound",
                                                                             CLIENT)
    assert row.operator_id is not None
    for headers in (client, operator):
        await fake.push(captured_event("4", "CHANNEL_HANGUP_COMPLETE", **_keys(headers),
                                       Hangup_Cause="NORMAL_CLEARING"))
    await wait_until(lambda: call_rows(store)[0].state == "ended")
    (row,) = call_rows(store)
    assert (row.hangup_cause, row.hangup_cause_code) == ("normal_clearing", 16)
    assert row.answered_at is not None and row.bridged_at is not None
    await wait_until(lambda: status_of(store, "101") != "talking")


def _keys(headers: dict[str, str]) -> dict[str, str]:
    """captured_event takes header names with _ for - (keyword arguments)."""
    return {key.replace("-", "_"): value for key, value in headers.items()}


async def test_an_unregistered_phone_takes_its_operator_offline(running) -> None:  # type: ignore[no-untyped-def]
    fake, store = running
    from ctl.config import OperatorSettings
    from ctl.services.operators import set_status_by_hand

    with store.transaction() as session:
        set_status_by_hand(session, OperatorSettings(), "101", "available", None, None)
    await fake.push({"Event-Name": "CUSTOM", "Event-Subclass": "sofia::unregister", "username": "101",
                     "profile-name": "internal", "Event-Date-Timestamp": "1795335914938579"})
    await wait_until(lambda: status_of(store, "101") == "offline")


# sofia::sip_user_state as FreeSWITCH 1.10.12 sent it (all-reg-options-ping) when a registered
# phone's sipp stopped: its OPTIONS got an ICMP error, so 503; then 200 from a phone there again.
def _ping_state(status: str, code: str, phrase: str, timestamp: str) -> dict[str, str]:
    return {"Event-Name": "CUSTOM", "Event-Subclass": "sofia::sip_user_state", "Event-Calling-File": "sofia_reg.c",
            "Event-Date-Timestamp": timestamp, "sip_contact": '"" <sip:101@127.0.0.1:20582>',
            "profile-name": "ctl-phones", "sip_user": "101@127.0.0.1", "from-user": "101",
            "from-host": "127.0.0.1", "call-id": "80925c6ca1b5cc7d", "Ping-Status": status, "Status": code,
            "Phrase": phrase}


async def test_an_unreachable_phone_suspends_its_operator_until_it_answers(running) -> None:  # type: ignore[no-untyped-def]
    fake, store = running
    from ctl.config import OperatorSettings
    from ctl.services.operators import set_status_by_hand

    with store.transaction() as session:
        set_status_by_hand(session, OperatorSettings(), "101", "break", "lunch", None)
    await fake.push(_ping_state("UNREACHABLE", "503", "Service Unavailable", "1795401239382165"))
    await wait_until(lambda: status_of(store, "101") == "suspended")
    await fake.push(_ping_state("REACHABLE", "200", "OK", "1795401241382149"))
    await wait_until(lambda: status_of(store, "101") == "break")


@pytest.fixture
async def recording(tmp_path: Path) -> AsyncIterator[tuple[RespondingEsl, Store, Path]]:
    fake = RespondingEsl()
    port = await fake.start()
    url = f"sqlite:///{tmp_path / 'ctl.db'}"
    upgrade(url)
    directory = tmp_path / "rec"
    directory.mkdir()
    settings = load_settings(environ={
        "CTL_DATABASE_URL": url, "CTL_ASTERISK_HOST": "", "CTL_FREESWITCH_HOST": "127.0.0.1",
        "CTL_FREESWITCH_PORT": str(port), "CTL_FREESWITCH_PASSWORD": "s3cret-for-tests", "CTL_FREESWITCH_NODE": "fs1",
        "CTL_FREESWITCH_OUTBOUND_SECRET": "outbound-secret-for-tests",
        "CTL_FREESWITCH_OUTBOUND_PORT": str(_free_port()), "CTL_CALLS_OPERATOR_DIAL": "user/{extension}",
        "CTL_API_PORT": str(_free_port()), "CTL_API_SOCKET": str(tmp_path / "ctl.sock"),
        "CTL_RECORDING_POLICY": "always", "CTL_RECORDING_STEREO": "true", "CTL_RECORDING_DIRECTORY": str(directory),
        "CTL_RECORDING_MIN_FREE_MB": "0", "CTL_RECORDING_FINALIZE_TIMEOUT": "3"})
    store = Store(url)
    with store.transaction() as session:
        add_operator(session, settings.calls, "101", "Anna", "operator", None)
    task = asyncio.ensure_future(serve(settings))
    await fake.wait_for_command("event plain")
    yield fake, store, directory
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    store.dispose()
    await fake.stop()


async def test_a_bridged_call_is_recorded_on_the_clients_leg_by_policy(recording) -> None:  # type: ignore[no-untyped-def]
    import time
    import wave

    from ctl.store.models import Recording

    fake, store, directory = recording
    t0 = int(time.time() * 1_000_000) - 10_000_000

    def at(seconds: float) -> str:
        return str(t0 + int(seconds * 1_000_000))

    operator = {"Unique-ID": OPERATOR_LEG, "Channel-Call-UUID": OPERATOR_LEG,
                "Channel-Name": "sofia/internal/101@127.0.0.1", "Call-Direction": "inbound",
                "Caller-Destination-Number": CLIENT}
    client = {"Unique-ID": CLIENT_LEG, "Channel-Call-UUID": OPERATOR_LEG,
              "Channel-Name": f"sofia/gateway/clients/{CLIENT}", "Call-Direction": "outbound",
              "Caller-Destination-Number": CLIENT}
    for name, headers, when in (("CHANNEL_CREATE", operator, 0), ("CHANNEL_CREATE", client, 0.1),
                                ("CHANNEL_ANSWER", client, 1), ("CHANNEL_ANSWER", operator, 1)):
        await fake.push(captured_event("4", name, **_keys(headers), Event_Date_Timestamp=at(when)))
    await fake.push(captured_event("4", "CHANNEL_BRIDGE", **_keys(operator), Bridge_A_Unique_ID=OPERATOR_LEG,
                                   Bridge_B_Unique_ID=CLIENT_LEG, Event_Date_Timestamp=at(1)))
    started = await fake.wait_for_command(f"api uuid_record {CLIENT_LEG} start ")
    path = Path(started.rsplit(" ", 1)[1])
    assert path.is_relative_to(directory) and path.name == "call-1.wav"
    assert f"api uuid_setvar {CLIENT_LEG} RECORD_STEREO true" in fake.commands
    # FreeSWITCH makes the day's directory and writes the file (2 s, stereo: the client left,
    # what the client hears right).
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as out:
        out.setnchannels(2)
        out.setsampwidth(2)
        out.setframerate(8000)
        out.writeframes(b"\x00\x00" * 2 * 8000 * 2)
    await fake.push(captured_event("8", "RECORD_START", Unique_ID=CLIENT_LEG, Channel_Call_UUID=OPERATOR_LEG,
                                   Record_File_Path=str(path), Event_Date_Timestamp=at(1)))
    await wait_until(lambda: _recording_state(store) == "recording")
    await fake.push(captured_event("8", "RECORD_STOP", Unique_ID=CLIENT_LEG, Channel_Call_UUID=OPERATOR_LEG,
                                   Record_File_Path=str(path), Event_Date_Timestamp=at(3)))
    for headers in (client, operator):
        await fake.push(captured_event("4", "CHANNEL_HANGUP_COMPLETE", **_keys(headers),
                                       Hangup_Cause="NORMAL_CLEARING", Event_Date_Timestamp=at(3)))
    await wait_until(lambda: _recording_state(store) == "stopped", timeout=10)
    with store.transaction() as session:
        row = session.scalar(select(Recording))
        assert row is not None
        assert (row.node, row.channel_id, row.stereo, row.complete, row.problem) == ("fs1", CLIENT_LEG, True, True,
                                                                                    None)
        assert row.duration_ms == 2000


def _recording_state(store: Store) -> str | None:
    from ctl.store.models import Recording

    with store.transaction() as session:
        row = session.scalar(select(Recording))
        return row.state if row is not None else None
