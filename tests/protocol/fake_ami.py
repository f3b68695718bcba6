"""A fake Asterisk manager (AMI) server that replays traffic recorded from the real Asterisk.

A recording (tests/protocol/fixtures/*.ami, made by scripts/record_ami.py) is the
byte stream the real server sent. Replay walks it in order: events go out as they
come; a reply (a block with an ActionID) waits until the client has sent the
matching action — the n-th distinct recorded ActionID answers the n-th action
named in `answers` — and carries the client's ActionID instead of the recorded
one. Pings, and actions the recording does not answer (a reconciliation's
CoreShowChannels, say), get a generic reply at once. Bytes go out in the chunk sizes asked for, with
a loop turn between writes (server and client share the loop, TCP_NODELAY is
on) so that each chunk arrives as a read of its own.
"""

from __future__ import annotations

import asyncio
import itertools
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_ACTION_ID = re.compile(rb"^ActionID: (.*)$", re.M)


def load(name: str) -> tuple[bytes, list[bytes]]:
    data = (FIXTURES / name).read_bytes()
    greeting, _, rest = data.partition(b"\r\n")
    blocks = [block + b"\r\n\r\n" for block in rest.split(b"\r\n\r\n") if block.strip()]
    return greeting + b"\r\n", blocks


@dataclass
class ClientAction:
    fields: dict[str, str]

    @property
    def name(self) -> str:
        return self.fields.get("Action", "")


@dataclass
class FakeAmiServer:
    recording: str
    answers: list[str]  # the client actions the recording's replies answer, in order
    chunk_sizes: Iterable[int] | None = None  # cycle through these sizes; None: one write per block
    stall: frozenset[str] = frozenset()  # actions never answered (to test timeouts)
    close_after_replay: bool = False
    received: list[ClientAction] = field(default_factory=list)
    connections: int = 0
    _server: asyncio.Server | None = None
    _writers: list[asyncio.StreamWriter] = field(default_factory=list)
    replayed: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def drop_connections(self) -> None:
        """As an Asterisk restart does: every client connection closes."""
        for writer in self._writers:
            writer.close()
        self._writers.clear()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self._writers.append(writer)
        greeting, blocks = load(self.recording)
        sizes = itertools.cycle(list(self.chunk_sizes)) if self.chunk_sizes else None
        actions: asyncio.Queue[ClientAction] = asyncio.Queue()
        reading = asyncio.create_task(self._read(reader, writer, actions))
        try:
            await self._write(writer, greeting, sizes)
            id_map: dict[bytes, bytes] = {}
            expected = iter(self.answers)
            for block in blocks:
                match = _ACTION_ID.search(block)
                if match is not None:
                    recorded = match.group(1).strip()
                    if recorded not in id_map:
                        name = next(expected)
                        action = await actions.get()
                        while action.name != name or action.name in self.stall:
                            await self._generic_reply(writer, action)
                            action = await actions.get()
                        id_map[recorded] = action.fields.get("ActionID", "").encode()
                    block = block.replace(b"ActionID: " + recorded, b"ActionID: " + id_map[recorded])
                await self._write(writer, block, sizes)
            self.replayed.set()
            if self.close_after_replay:
                writer.close()
                return
            while True:
                await self._generic_reply(writer, await actions.get())
        except (ConnectionError, asyncio.CancelledError):
            pass
        finally:
            reading.cancel()

    async def _read(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                    actions: asyncio.Queue[ClientAction]) -> None:
        buffer = b""
        while True:
            data = await reader.read(65536)
            if not data:
                return
            buffer += data
            while b"\r\n\r\n" in buffer:
                raw, buffer = buffer.split(b"\r\n\r\n", 1)
                fields: dict[str, str] = {}
                for line in raw.decode().split("\r\n"):
                    key, _, value = line.partition(": ")
                    if key in fields:
                        fields[key] += "\n" + value
                    else:
                        fields[key] = value
                action = ClientAction(fields)
                self.received.append(action)
                if action.name == "Ping":
                    await self._generic_reply(writer, action)
                else:
                    await actions.put(action)
            if reader.at_eof():
                return

    async def _generic_reply(self, writer: asyncio.StreamWriter, action: ClientAction) -> None:
        if action.name in self.stall:
            return
        action_id = action.fields.get("ActionID", "")
        if action.name == "CoreShowChannels":
            reply = (f"Response: Success\r\nActionID: {action_id}\r\nEventList: start\r\n"
                     "Message: Channels will follow\r\n\r\n"
                     f"Event: CoreShowChannelsComplete\r\nActionID: {action_id}\r\nEventList: Complete\r\n"
                     "ListItems: 0\r\n\r\n")
        elif action.name == "Getvar" and action.fields.get("Variable") == "CTL_RECORDINGS":
            # The global that ctl's extensions.conf sets: where the dialplan records.
            reply = (f"Response: Success\r\nActionID: {action_id}\r\nVariable: CTL_RECORDINGS\r\n"
                     "Value: /var/spool/asterisk/recordings\r\n\r\n")
        elif action.name == "Ping":
            reply = f"Response: Success\r\nActionID: {action_id}\r\nPing: Pong\r\n\r\n"
        else:
            reply = f"Response: Success\r\nActionID: {action_id}\r\n\r\n"
        writer.write(reply.encode())
        await writer.drain()

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, data: bytes, sizes: itertools.cycle[int] | None) -> None:
        if sizes is None:
            writer.write(data)
            await writer.drain()
            return
        start = 0
        while start < len(data):
            size = next(sizes)
            writer.write(data[start:start + size])
            await writer.drain()
            await asyncio.sleep(0)  # one loop turn: the client reads this chunk on its own
            start += size
