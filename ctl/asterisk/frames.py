"""Split an AMI byte stream into messages.

AMI messages are header lines ending in CRLF, closed by an empty line. TCP may
cut anywhere — inside a header, inside the CRLFCRLF, inside a multi-byte UTF-8
character — so the stream is split on bytes first and each whole message is
decoded afterwards (panoramisk decodes every read on its own and drops the
halves of a split character). The greeting line `Asterisk Call Manager/x.y.z`
ends with a single CRLF and is returned separately.

Messages are taken one at a time (`pop`), so a reader told to wait (the event
queue is full) leaves the rest where it is: in this buffer, bounded by `limit`.
"""

from __future__ import annotations

SEPARATOR = b"\r\n\r\n"
GREETING = b"Asterisk Call Manager/"
# A message larger than this is a broken or hostile peer, not AMI.
MAX_MESSAGE = 4 * 1024 * 1024


class FrameTooLarge(Exception):
    pass


class FrameSplitter:
    def __init__(self, limit: int = MAX_MESSAGE) -> None:
        self.limit = limit
        self._buffer = bytearray()
        self._scanned = 0  # bytes already searched for a separator: a slow large message is scanned once
        self.greeting: str | None = None
        self._greeting_pending = True
        self._broken = False

    def push(self, data: bytes) -> None:
        """Add bytes as they arrive; `pop` takes the messages they complete."""
        if self._broken:
            raise FrameTooLarge(f"an AMI message exceeds {self.limit} bytes")
        self._buffer += data

    def pop(self) -> str | None:
        """The next whole message, as text without the closing blank line; None until more bytes arrive."""
        if self._greeting_pending and not self._take_greeting():
            self._check_waiting()
            return None
        while True:
            end = self._buffer.find(SEPARATOR, self._scanned)
            if end < 0:
                self._scanned = max(0, len(self._buffer) - len(SEPARATOR) + 1)
                self._check_waiting()
                return None
            if end + len(SEPARATOR) > self.limit:
                self._overflow()  # however the stream was cut: this is what a cut read would have seen
            block = bytes(self._buffer[:end]).strip(b"\r\n")
            del self._buffer[: end + len(SEPARATOR)]
            self._scanned = 0
            if block:
                return block.decode("utf-8", "replace")

    def feed(self, data: bytes) -> list[str]:
        """Return the whole messages completed by `data`."""
        self.push(data)
        return list(iter(self.pop, None))

    def _take_greeting(self) -> bool:
        """False while the first bytes may still become the greeting line."""
        if len(self._buffer) < len(GREETING) and GREETING.startswith(bytes(self._buffer)):
            return False
        if self._buffer.startswith(GREETING):
            end = self._buffer.find(b"\r\n")
            if end < 0:
                return False
            if end + 2 > self.limit:
                self._overflow()
            self.greeting = self._buffer[:end].decode("utf-8", "replace")
            del self._buffer[: end + 2]
        self._greeting_pending = False
        return True

    def _check_waiting(self) -> None:
        # Nothing whole yet: what waits must stay under the limit (a peer that never ends a
        # message, or a greeting line, must not grow the buffer without end). What waits is
        # shorter than the message it starts, so a message (with its CRLFCRLF) may be `limit` long.
        if len(self._buffer) >= self.limit:
            self._overflow()

    def _overflow(self) -> None:
        self._buffer.clear()  # the stream lost its framing: nothing after this can be trusted
        self._broken = True
        raise FrameTooLarge(f"an AMI message exceeds {self.limit} bytes")

    @property
    def pending(self) -> int:
        return len(self._buffer)
