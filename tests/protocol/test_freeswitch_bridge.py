"""EslBridge (greenswitch on its own thread) against the replayed FreeSWITCH 1.10.12 capture."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable

import pytest

from ctl.errors import ActionTimeout, AuthenticationFailed, SwitchUnreachable, ValidationError
from ctl.freeswitch.bridge import EslBridge, split_event_body
from ctl.freeswitch.frames import EventData, MessageReader, parse_plain_event
from tests.protocol.fake_esl import FakeEsl, Section, Step, authenticated, load_sections

SECTIONS = load_sections()


class Collected:
    def __init__(self) -> None:
        self.events: list[EventData] = []
        self.threads: set[str] = set()
        self.arrived = asyncio.Event()

    def __call__(self, event: EventData) -> None:
        self.events.append(event)
        self.threads.add(threading.current_thread().name)
        self.arrived.set()

    async def wait_for(self, count: int, timeout: float = 5.0) -> list[EventData]:
        async def enough() -> None:
            while len(self.events) < count:
                self.arrived.clear()
                await self.arrived.wait()
        await asyncio.wait_for(enough(), timeout)
        return self.events


@pytest.fixture
async def replay() -> AsyncIterator[Callable[..., asyncio.Future[tuple[FakeEsl, EslBridge, Collected]]]]:
    made: list[tuple[FakeEsl, EslBridge]] = []

    async def start(steps: list[Step], piece: int | None = None, password: str = "ClueCon",
                    connect: bool = True, **kwargs: object) -> tuple[FakeEsl, EslBridge, Collected]:
        fake = FakeEsl(steps, piece, **kwargs)  # type: ignore[arg-type]
        port = await fake.start()
        events = Collected()
        bridge = EslBridge("127.0.0.1", port, password, events, connect_timeout=3.0, command_timeout=3.0)
        made.append((fake, bridge))
        if connect:
            await bridge.connect()
        return fake, bridge, events

    yield start  # type: ignore[misc]
    for fake, bridge in made:
        await bridge.close()
        await fake.stop()


def commands(section: Section) -> list[bytes]:
    return [c for c in section.client_chunks() if not c.startswith(b"auth ")]


@pytest.mark.parametrize("piece", [None, 7, 1])
async def test_api_replies_as_captured(replay, piece: int | None) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, _events = await replay(authenticated(SECTIONS["2"]), piece)
    status = await bridge.api("status")
    assert status.content_type == "api/response" and status.text.startswith("UP 0 years")
    assert "FreeSWITCH (Version 1.10.12-release" in status.text
    assert (await bridge.api("nosuchcommand foo")).text == "-ERR nosuchcommand Command not found!"
    missing = await bridge.api("uuid_getvar 00000000-0000-0000-0000-000000000000 foo")
    assert (missing.text, missing.ok) == ("-ERR No such channel!", False)
    assert (await bridge.api("global_getvar hostname")).text == "vm"  # a body without a final newline
    assert (await bridge.api("show channels")).text == "\n0 total."  # headers and body in two reads
    assert json.loads((await bridge.api("show channels as json")).text) == {"row_count": 0}
    unknown = await bridge.send("nosuchcmd")
    assert (unknown.content_type, unknown.text) == ("command/reply", "-ERR command not found")
    await asyncio.wait_for(fake.finished.wait(), 3)
    assert fake.mismatch is None


async def test_a_refused_password_is_authentication_failed(replay) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, _ = await replay(SECTIONS["1"].steps, password="WrongPassword", connect=False)
    with pytest.raises(AuthenticationFailed):
        await bridge.connect()
    assert fake.received == [b"auth WrongPassword\n\n"] and fake.mismatch is None


async def test_nothing_listening_is_unreachable() -> None:
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    bridge = EslBridge("127.0.0.1", port, "x", lambda e: None, connect_timeout=2.0)
    with pytest.raises(SwitchUnreachable, match="cannot reach FreeSWITCH"):
        await bridge.connect()


async def test_a_silent_server_times_out_at_connect(replay) -> None:  # type: ignore[no-untyped-def]
    _fake, bridge, _ = await replay([], connect=False, answer_after=False)
    bridge.connect_timeout = 0.5
    with pytest.raises(SwitchUnreachable, match="timed out"):
        await bridge.connect()


@pytest.mark.parametrize("piece", [None, 5])
async def test_bgapi_job_results_arrive_as_events_with_their_body(replay, piece: int | None) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, events = await replay(authenticated(SECTIONS["3"]), piece)
    assert (await bridge.send("event plain BACKGROUND_JOB")).text == "+OK event listener enabled plain"
    status = await bridge.send("bgapi status")
    assert status.job_uuid == "e872cc08-a2b4-4a6d-8fdb-6eb1141a5fb4"
    failed = await bridge.send("bgapi originate loopback/nonexistent_ext/esltest &park()")
    assert failed.job_uuid == "1d379bcb-173a-48d1-a370-7d97616d0ff9"
    version = await bridge.send("bgapi version", {"Job-UUID": "3dc891f1-bd64-4520-84ad-593b1c40cfef"})
    assert version.job_uuid == "3dc891f1-bd64-4520-84ad-593b1c40cfef"  # ours, kept
    jobs = {e.headers["Job-UUID"]: e for e in await events.wait_for(3)}
    assert all(e.name == "BACKGROUND_JOB" for e in jobs.values())
    status_job = jobs["e872cc08-a2b4-4a6d-8fdb-6eb1141a5fb4"]
    assert status_job.body is not None and status_job.body.startswith("UP 0 years")
    assert status_job.headers["Content-Length"] == "368" and status_job.headers["Job-Command"] == "status"
    assert jobs["1d379bcb-173a-48d1-a370-7d97616d0ff9"].body == "-ERR NO_ROUTE_DESTINATION"
    assert jobs["1d379bcb-173a-48d1-a370-7d97616d0ff9"].headers["Job-Command-Arg"] == \
        "loopback/nonexistent_ext/esltest &park()"  # URL-decoded
    assert jobs["3dc891f1-bd64-4520-84ad-593b1c40cfef"].body.startswith("FreeSWITCH Version 1.10.12")
    assert (await bridge.send("noevents")).text == "+OK no longer listening for events"
    assert events.threads == {threading.current_thread().name}  # delivered on the asyncio thread
    assert fake.mismatch is None


async def test_channel_events_arrive_in_order_decoded(replay) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, events = await replay(authenticated(SECTIONS["4"]))
    for command in commands(SECTIONS["4"]):
        await bridge.send(command.decode().rstrip("\n"))
    got = await events.wait_for(6)
    names = [e.name for e in got]
    assert names[:2] == ["CHANNEL_CREATE", "CHANNEL_CREATE"] and "CHANNEL_BRIDGE" in names
    assert names.count("CHANNEL_HANGUP_COMPLETE") >= 2
    first = got[0]
    assert first.headers["Unique-ID"] == "b7f44b01-646b-434c-9c57-54d5ffda9b7e"
    assert first.headers["Caller-Callee-ID-Name"] == "Outbound Call" and first.body is None
    assert "Content-Length" not in first.headers  # the frame's, not the event's
    bridged = next(e for e in got if e.name == "CHANNEL_BRIDGE")
    assert (bridged.headers["Bridge-A-Unique-ID"], bridged.headers["Bridge-B-Unique-ID"]) == (
        "b7f44b01-646b-434c-9c57-54d5ffda9b7e", "d27c55ce-f5d3-4744-985c-d1f170b5f73c")
    assert fake.mismatch is None


async def test_sendevent_with_headers_and_the_custom_event_back(replay) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, events = await replay(authenticated(SECTIONS["6"]))
    await bridge.send("event plain CUSTOM esl::test")
    reply = await bridge.send("sendevent CUSTOM", {"Event-Subclass": "esl::test", "X-Foo": "bar baz"})
    assert reply.text == "+OK 85ff21e4-0198-4e55-a47e-efe2376e1d2e"
    (custom,) = await events.wait_for(1)
    assert (custom.name, custom.headers["Event-Subclass"], custom.headers["X-Foo"]) == ("CUSTOM", "esl::test",
                                                                                        "bar baz")
    assert fake.mismatch is None


async def test_the_eavesdrop_and_recording_session_replays(replay) -> None:  # type: ignore[no-untyped-def]
    section = SECTIONS["8"]
    fake, bridge, events = await replay(section.steps)
    for command in commands(section):
        head, _, rest = command.decode().rstrip("\n").partition("\n")
        headers = dict(line.split(": ", 1) for line in rest.split("\n")) if rest else None
        reply = await bridge.send(head, headers)
        assert reply.content_type in ("command/reply", "api/response")
    await asyncio.wait_for(fake.finished.wait(), 3)
    assert fake.mismatch is None
    # The Unique-ID filters let through only the two legs' events (no BACKGROUND_JOB).
    names = [e.name for e in await events.wait_for(7)]
    assert names == ["CHANNEL_CREATE", "CHANNEL_ANSWER", "CHANNEL_EXECUTE", "DTMF", "RECORD_START", "RECORD_STOP",
                     "CHANNEL_HANGUP_COMPLETE"]
    dtmf = next(e for e in events.events if e.name == "DTMF")
    assert dtmf.headers["DTMF-Digit"] == "2"
    started = next(e for e in events.events if e.name == "RECORD_START")
    assert started.headers["Record-File-Path"] == "/tmp/fs/rec/transcript-op.wav"


async def test_a_dropped_connection_fails_waiting_commands_and_reports_the_loss(replay) -> None:  # type: ignore[no-untyped-def]
    steps = authenticated(Section("x", "silent", []))
    fake, bridge, _ = await replay(steps, answer_after=False)
    waiting = asyncio.ensure_future(bridge.api("status"))
    await asyncio.sleep(0.2)
    await fake.drop()
    with pytest.raises(SwitchUnreachable):
        await asyncio.wait_for(waiting, 3)
    assert bridge.lost is not None
    assert "lost" in await asyncio.wait_for(bridge.lost, 3)
    assert not bridge.connected
    with pytest.raises(SwitchUnreachable):
        await bridge.api("status")


async def test_an_unanswered_command_times_out(replay) -> None:  # type: ignore[no-untyped-def]
    steps = authenticated(Section("x", "silent", []))
    _fake, bridge, _ = await replay(steps, answer_after=False)
    with pytest.raises(ActionTimeout):
        await bridge.api("status", timeout=0.3)


async def test_control_characters_never_reach_the_wire(replay) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, _ = await replay(authenticated(Section("x", "nothing", [])))
    for command, headers in [("api status\nexit", None), ("api uuid_kill x\r", None),
                             ("sendevent CUSTOM", {"Event-Subclass": "a\nb"}), ("api x\x00", None)]:
        with pytest.raises(ValidationError):
            await bridge.send(command, headers)
    await asyncio.sleep(0.1)
    assert fake.received == [b"auth ClueCon\n\n"]


async def test_close_says_exit(replay) -> None:  # type: ignore[no-untyped-def]
    fake, bridge, _ = await replay(authenticated(Section("x", "nothing", [])))
    await bridge.close()
    assert fake.received[-1] == b"exit\n\n"
    assert bridge.lost is not None and bridge.lost.done()


def test_greenswitch_puts_an_event_body_in_content_length() -> None:
    """The quirk, shown on greenswitch itself with the captured BACKGROUND_JOB bytes."""
    from greenswitch.esl import ESLEvent

    reply_chunk = next(s.data for s in SECTIONS["3"].steps if s.data.startswith(b"Content-Type: command/reply\n"
                                                                                 b"Reply-Text: +OK Job-UUID: e87"))
    frame_head = reply_chunk.split(b"\n\n")[1].decode()
    body = next(s.data for s in SECTIONS["3"].steps if s.data.startswith(b"Event-Name: BACKGROUND_JOB"))
    event = ESLEvent(frame_head)
    event.parse_data(body.decode())
    assert event.headers["Content-Length"].startswith("368\n\nUP 0 years")  # the quirk
    fixed = split_event_body(event.headers)
    assert fixed.headers["Content-Length"] == "368" and fixed.body is not None
    assert fixed.body.startswith("UP 0 years") and fixed.body.endswith("240K/8192K")


def test_the_pure_reader_splits_the_capture_like_the_wire() -> None:
    """MessageReader (used by the outbound socket) on every server byte of section 4, cut anywhere."""
    stream = b"".join(s.data for s in SECTIONS["4"].steps if s.sender == "server")
    whole = MessageReader().feed(stream)
    for size in (1, 3, 64, 1000):
        reader, cut = MessageReader(), []
        for i in range(0, len(stream), size):
            cut.extend(reader.feed(stream[i:i + size]))
        assert cut == whole
    kinds = [m.content_type for m in whole]
    assert kinds.count("text/event-plain") >= 6 and "api/response" in kinds
    events = [parse_plain_event(m.body) for m in whole if m.content_type == "text/event-plain"]
    assert events[0].name == "CHANNEL_CREATE" and events[0].headers["Caller-Callee-ID-Name"] == "Outbound Call"
