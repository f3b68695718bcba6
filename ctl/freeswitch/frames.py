"""The FreeSWITCH event socket's framing, pure: no I/O.

A message is header lines (`Key: value`, LF-terminated) closed by an empty line,
then, when there is a `Content-Length`, exactly that many bytes of body. TCP may cut
anywhere and one read may hold a reply and an event (FreeSWITCH sends them so), so
the stream is split on bytes and each message decoded once whole. An event's body
(`text/event-plain`) is itself URL-encoded headers, a blank line and possibly a body
of its own (BACKGROUND_JOB carries the job's result there).

Used by the fake server of the tests and by ctl's outbound-socket handler; the
inbound connection reads through greenswitch (ctl.freeswitch.bridge).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import unquote

from ctl.errors import ValidationError

HEADER_END = b"\n\n"
# A message larger than this is a broken or hostile peer, not FreeSWITCH.
MAX_MESSAGE = 16 * 1024 * 1024


class FrameError(Exception):
    pass


@dataclass(frozen=True)
class Message:
    headers: dict[str, str]
    body: bytes = b""

    @property
    def content_type(self) -> str:
        return self.headers.get("Content-Type", "")

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")


def parse_headers(block: str, decode: bool = False) -> dict[str, str]:
    headers: dict[str, str] = {}
    for line in block.split("\n"):
        if not line:
            continue
        key, sep, value = line.partition(": ")
        if not sep:
            key, sep, value = line.partition(":")
        if not sep:
            raise FrameError(f"not a header line: {line[:80]!r}")
        headers[key.strip()] = unquote(value) if decode else value
    return headers


def _length(text: str) -> int | None:
    """A Content-Length: a few ASCII digits ("²".isdigit() is true and int() refuses it;
    int() of more than 4300 digits raises too)."""
    text = text.strip()
    return int(text) if text.isascii() and text.isdigit() and len(text) <= 18 else None


@dataclass
class MessageReader:
    """Feed bytes as they arrive; get back every message they complete.

    A header block (with its blank line) longer than `limit`, or a body announced longer,
    is FrameError, however the stream was cut: what waits for its end stays under `limit`."""

    limit: int = MAX_MESSAGE
    _buffer: bytearray = field(default_factory=bytearray)
    _pending: dict[str, str] | None = None  # headers read, body still arriving
    _needed: int = 0

    def feed(self, data: bytes) -> list[Message]:
        self._buffer += data
        messages: list[Message] = []
        while True:
            if self._pending is None:
                # FreeSWITCH never sends a blank line between messages, but tolerate one.
                while self._buffer[:1] == b"\n":
                    del self._buffer[:1]
                end = self._buffer.find(HEADER_END)
                if end < 0 and len(self._buffer) < self.limit:
                    return messages
                if end < 0 or end + len(HEADER_END) > self.limit:
                    self._buffer.clear()  # the framing is lost: nothing after this can be trusted
                    raise FrameError("header block too large")
                block = bytes(self._buffer[:end]).decode("utf-8", "replace")
                del self._buffer[:end + len(HEADER_END)]
                headers = parse_headers(block)
                text = headers.get("Content-Length", "0")
                length = _length(text) if text.strip() else 0
                if length is None or length > self.limit:
                    raise FrameError(f"bad Content-Length {text[:40]!r}")
                self._pending, self._needed = headers, length
            if len(self._buffer) < self._needed:
                return messages
            body = bytes(self._buffer[:self._needed])
            del self._buffer[:self._needed]
            messages.append(Message(self._pending, body))
            self._pending, self._needed = None, 0

    @property
    def pending(self) -> int:
        """Bytes read and not yet part of a message."""
        return len(self._buffer)


@dataclass(frozen=True)
class EventData:
    """An event's own headers (URL-decoded) and its body, if it has one."""

    headers: dict[str, str]
    body: str | None = None

    @property
    def name(self) -> str:
        return self.headers.get("Event-Name", "")


def parse_plain_event(body: bytes) -> EventData:
    text = body.decode("utf-8", "replace")
    block, _sep, rest = text.partition("\n\n")
    headers = parse_headers(block, decode=True)
    length = _length(headers.get("Content-Length") or "")
    if length is not None:
        payload = rest.encode("utf-8")[:length].decode("utf-8", "replace")
        return EventData(headers, payload)
    return EventData(headers)


def encode_command(command: str, headers: dict[str, str] | None = None) -> bytes:
    """A command (and the headers of e.g. sendevent) as the wire wants it; nothing unchecked
    goes out: a CR, LF or NUL would end the command and start another."""
    lines = [command, *(f"{key}: {value}" for key, value in (headers or {}).items())]
    for line in lines:
        if any(ch in line for ch in "\r\n\x00"):
            raise ValidationError("control characters (CR, LF, NUL) are not allowed in an ESL command")
    return ("\n".join(lines) + "\n\n").encode("utf-8")
