from __future__ import annotations

import pytest

from ctl.asterisk.frames import FrameSplitter, FrameTooLarge

STREAM = ("Asterisk Call Manager/11.0.0\r\n"
          "Response: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n"
          "Event: Newchannel\r\nChannel: PJSIP/101-00000001\r\nCallerIDName: Анна Петрова\r\n\r\n").encode()


def test_whole_stream_in_one_read() -> None:
    splitter = FrameSplitter()
    messages = splitter.feed(STREAM)
    assert splitter.greeting == "Asterisk Call Manager/11.0.0"
    assert len(messages) == 2
    assert "Анна Петрова" in messages[1]
    assert splitter.pending == 0


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 13])
def test_any_split_gives_the_same_messages_including_utf8_cut_in_half(size: int) -> None:
    splitter = FrameSplitter()
    messages: list[str] = []
    for start in range(0, len(STREAM), size):
        messages += splitter.feed(STREAM[start:start + size])
    assert messages == FrameSplitter().feed(STREAM)
    assert splitter.greeting == "Asterisk Call Manager/11.0.0"


def test_a_cut_inside_the_separator_waits_for_the_rest() -> None:
    splitter = FrameSplitter()
    head = b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\n\r"
    assert splitter.feed(head) == []
    assert splitter.feed(b"\n") == ["Event: A"]


def test_oversized_message_is_refused() -> None:
    splitter = FrameSplitter()
    splitter.feed(b"Asterisk Call Manager/11.0.0\r\n")
    with pytest.raises(FrameTooLarge):
        splitter.feed(b"Event: X\r\nBig: " + b"x" * (5 * 1024 * 1024))
