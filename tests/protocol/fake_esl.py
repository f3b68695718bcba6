"""A fake FreeSWITCH event socket that replays the capture from a real FreeSWITCH 1.10.12.

tests/protocol/fixtures/freeswitch-1.10.12.esl.txt (a copy of
../shared/fixtures/freeswitch/) holds, per section, every send() of the client and
every recv() of the server as exact bytes. Replay walks a section: the server's
chunks go out one write at a time, with a pause between writes so each arrives as a
read of its own (a reply and an event sharing a chunk, headers and body arriving
apart, as FreeSWITCH sent them); a client chunk is awaited and compared byte for
byte. `piece` re-cuts every server chunk into pieces of that many bytes, to cut
inside headers, inside the blank line and inside UTF-8. After the script, `exit`
gets FreeSWITCH's recorded goodbye and anything else `-ERR command not found`.
"""

from __future__ import annotations

import ast
import asyncio
import re
from dataclasses import dataclass, field
from pathlib import Path

CAPTURE = Path(__file__).resolve().parent / "fixtures" / "freeswitch-1.10.12.esl.txt"
_LINE = re.compile(r"^\[(?P<label>\w+)[^\]]*\] (?P<dir><<<|>>>) (?P<data>.*)$")
_SECTION = re.compile(r"^# (?P<number>\d+b?)\. (?P<title>.*)$")
EXIT_REPLY = (b"Content-Type: command/reply\nReply-Text: +OK bye\n\n"
              b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
              b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")
NOT_FOUND = b"Content-Type: command/reply\nReply-Text: -ERR command not found\n\n"


@dataclass(frozen=True)
class Step:
    sender: str  # "server", "client" or "eof" (the server closed the socket)
    data: bytes = b""


@dataclass
class Section:
    number: str
    title: str
    steps: list[Step] = field(default_factory=list)

    def client_chunks(self) -> list[bytes]:
        return [s.data for s in self.steps if s.sender == "client"]


def load_sections() -> dict[str, Section]:
    sections: dict[str, Section] = {}
    current: Section | None = None
    for line in CAPTURE.read_text().splitlines():
        heading = _SECTION.match(line)
        if heading:
            current = sections[heading["number"]] = Section(heading["number"], heading["title"])
            continue
        step = _LINE.match(line)
        if step is None or current is None:
            continue
        if step["dir"] == "<<<" and step["data"].startswith("EOF"):
            current.steps.append(Step("eof"))
        else:
            data = ast.literal_eval(step["data"])
            assert isinstance(data, bytes)
            current.steps.append(Step("server" if step["dir"] == "<<<" else "client", data))
    return sections


def authenticated(section: Section, password: str = "ClueCon") -> list[Step]:
    """The greeting and a good login, for sections captured on an already logged-in connection."""
    if section.steps and section.steps[0].data == b"Content-Type: auth/request\n\n":
        return list(section.steps)
    return [Step("server", b"Content-Type: auth/request\n\n"), Step("client", f"auth {password}\n\n".encode()),
            Step("server", b"Content-Type: command/reply\nReply-Text: +OK accepted\n\n"), *section.steps]


class FakeEsl:
    def __init__(self, steps: list[Step], piece: int | None = None, answer_after: bool = True) -> None:
        self.steps = steps
        self.piece = piece
        self.answer_after = answer_after
        self.received: list[bytes] = []
        self.mismatch: str | None = None
        self.finished = asyncio.Event()
        self.connections = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        for writer in self._writers:
            writer.close()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop(self) -> None:
        """Close every client connection, as a crashing FreeSWITCH would."""
        for writer in self._writers:
            writer.transport.abort()

    async def _write(self, writer: asyncio.StreamWriter, data: bytes) -> None:
        pieces = [data] if not self.piece else [data[i:i + self.piece] for i in range(0, len(data), self.piece)]
        for chunk in pieces:
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.003)  # let the client read this chunk on its own

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        try:
            for step in self.steps:
                if step.sender == "server":
                    await self._write(writer, step.data)
                elif step.sender == "eof":
                    writer.close()
                    return
                else:
                    got = await reader.readexactly(len(step.data))
                    self.received.append(got)
                    if got != step.data:
                        self.mismatch = f"expected {step.data!r}, got {got!r}"
                        writer.close()
                        return
            self.finished.set()
            while self.answer_after:
                command = await reader.readuntil(b"\n\n")
                self.received.append(command)
                if command.startswith(b"exit"):
                    await self._write(writer, EXIT_REPLY)
                    writer.close()
                    return
                await self._write(writer, NOT_FOUND)
            await reader.read()  # answer nothing more: keep the line open until the client goes
        except (asyncio.IncompleteReadError, ConnectionError):
            return
        finally:
            self.finished.set()


# -- a responding fake, for the adapter ------------------------------------------------------
def encode_event(headers: dict[str, str], body: str | None = None) -> bytes:
    """An event as FreeSWITCH frames it: URL-encoded headers (and a body) inside text/event-plain."""
    from urllib.parse import quote

    lines = [f"{key}: {quote(value, safe='')}" for key, value in headers.items()]
    payload = body.encode() if body is not None else b""
    if body is not None:
        lines.append(f"Content-Length: {len(payload)}")
    inner = ("\n".join(lines) + "\n\n").encode() + payload
    return f"Content-Length: {len(inner)}\nContent-Type: text/event-plain\n\n".encode() + inner


def captured_event(section: str, name: str, **changes: str) -> dict[str, str]:
    """A real event of the capture, with some headers changed (the uuids of a test's call)."""
    from ctl.freeswitch.frames import MessageReader, parse_plain_event

    stream = b"".join(s.data for s in load_sections()[section].steps if s.sender == "server")
    for message in MessageReader().feed(stream):
        if message.content_type == "text/event-plain":
            event = parse_plain_event(message.body)
            if event.name == name:
                headers = dict(event.headers)
                headers.pop("Content-Length", None)
                headers.update({key.replace("_", "-"): value for key, value in changes.items()})
                return headers
    raise KeyError(name)


def reply(text: str) -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n\n".encode()


def api_response(body: str) -> bytes:
    data = body.encode()
    return f"Content-Type: api/response\nContent-Length: {len(data)}\n\n".encode() + data


class RespondingEsl:
    """Answers like FreeSWITCH 1.10.12 (the capture's framing and texts), by rules a test sets."""

    def __init__(self, password: str = "s3cret-for-tests") -> None:
        self.password = password
        self.commands: list[str] = []  # every command received after auth, with its headers
        self.api: dict[str, str] = {"show channels as json": '{"row_count": 0}',
                                    "show calls as json": '{"row_count": 0}', "status": "UP 0 years"}
        self.jobs: dict[str, str] = {}  # a bgapi command's first word(s) → the job's result body
        self.silent = False  # answer nothing (a hung FreeSWITCH)
        self.connections = 0
        self._writers: list[asyncio.StreamWriter] = []
        self._server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self.drop()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop(self) -> None:
        for writer in self._writers:
            writer.transport.abort()
        self._writers.clear()

    async def push(self, headers: dict[str, str], body: str | None = None) -> None:
        for writer in self._writers:
            writer.write(encode_event(headers, body))
            await writer.drain()

    async def wait_for_command(self, prefix: str, timeout: float = 5.0) -> str:
        async def seen() -> str:
            while True:
                for command in self.commands:
                    if command.startswith(prefix):
                        return command
                await asyncio.sleep(0.01)
        return await asyncio.wait_for(seen(), timeout)

    def _api_answer(self, command: str) -> str:
        for prefix in sorted(self.api, key=len, reverse=True):
            if command.startswith(prefix):
                return self.api[prefix]
        return "+OK"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        writer.write(b"Content-Type: auth/request\n\n")
        try:
            authed = False
            while True:
                raw = (await reader.readuntil(b"\n\n")).decode()
                command, _, rest = raw[:-2].partition("\n")
                headers = dict(line.split(": ", 1) for line in rest.split("\n")) if rest else {}
                if not authed:
                    if command == f"auth {self.password}":
                        authed = True
                        writer.write(reply("+OK accepted"))
                    else:
                        writer.write(reply("-ERR invalid") + EXIT_REPLY[len(reply("+OK bye")):])
                        await writer.drain()
                        writer.close()
                        return
                    continue
                self.commands.append(raw[:-2])
                if self.silent:
                    continue
                if command == "exit":
                    writer.write(EXIT_REPLY)
                    await writer.drain()
                    writer.close()
                    return
                if command.startswith("event "):
                    writer.write(reply(f"+OK event listener enabled {command.split()[1]}"))
                elif command.startswith("api "):
                    writer.write(api_response(self._api_answer(command[4:])))
                elif command.startswith("bgapi "):
                    job = headers.get("Job-UUID", "00000000-0000-0000-0000-00000000j0b5")
                    writer.write(reply(f"+OK Job-UUID: {job}")[:-1] + f"Job-UUID: {job}\n\n".encode())
                    word = command[6:].split(" ", 1)[0]
                    result = self.jobs.get(word, "+OK")
                    await writer.drain()
                    writer.write(encode_event({"Event-Name": "BACKGROUND_JOB", "Job-UUID": job,
                                               "Job-Command": word}, result + "\n"))
                elif command.startswith("sendevent "):
                    writer.write(reply("+OK 85ff21e4-0198-4e55-a47e-efe2376e1d2e"))
                else:
                    writer.write(NOT_FOUND)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            return
