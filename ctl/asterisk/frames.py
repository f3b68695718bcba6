"""Split an AMI byte stream into messages.

AMI messages are header lines ending in CRLF, closed by an empty line. TCP may
cut anywhere — inside a header, inside the CRLFCRLF, inside a multi-byte UTF-8
character — so the stream is split on bytes first and each whole message is
decoded afterwards (panoramisk decodes every read on its own and drops the
halves of a split character). The greeting line `Asterisk Call Manager/x.y.z`
ends with a single CRLF and is returned separately.
"""

from __future__ import annotations

SEPARATOR = b"\r\n\r\n"
GREETING = b"Asterisk Call Manager/"
# A message larger than this is a broken or hostile peer, not AMI.
MAX_MESSAGE = 4 * 1024 * 1024


class FrameTooLarge(Exception):
    pass


class FrameSplitter:
    def __init__(self) -> None:
        self._buffer = bytearray()
        self.greeting: str | None = None
        self._greeting_pending = True

    def feed(self, data: bytes) -> list[str]:
        """Return the whole messages completed by `data`, as text without the closing blank line."""
        self._buffer += data
        messages: list[str] = []
        if self._greeting_pending:
            if len(self._buffer) < len(GREETING) and GREETING.startswith(bytes(self._buffer)):
                return messages
            if self._buffer.startswith(GREETING):
                end = self._buffer.find(b"\r\n")
                if end < 0:
                    return messages
                self.greeting = self._buffer[:end].decode("utf-8", "replace")
                del self._buffer[: end + 2]
            self._greeting_pending = False
        start = 0
        while True:
            end = self._buffer.find(SEPARATOR, start)
            if end < 0:
                break
            block = bytes(self._buffer[start:end]).strip(b"\r\n")
            if block:
                messages.append(block.decode("utf-8", "replace"))
            start = end + len(SEPARATOR)
        del self._buffer[:start]
        if len(self._buffer) > MAX_MESSAGE:
            raise FrameTooLarge(f"an AMI message exceeds {MAX_MESSAGE} bytes")
        return messages

    @property
    def pending(self) -> int:
        return len(self._buffer)
