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
