from __future__ import annotations

import pytest

from ctl.errors import ValidationError
from ctl.validation import (
    check_dial_string,
    check_extension,
    check_header_value,
    check_text,
    normalise_number,
)


@pytest.mark.parametrize(("given", "expected"), [
    ("+7 (999) 123-45-67", "+79991234567"),
    ("79991234567", "79991234567"),
    ("8.800.555.35.35", "88005553535"),
    ("112", "112"),
])
def test_numbers_are_normalised(given: str, expected: str) -> None:
    assert normalise_number(given) == expected


@pytest.mark.parametrize("bad", ["", "12", "7999abc", "+", "++7999", "7999\r\nAction: Hangup", "1" * 21,
                                 "7999,30", "${EXTEN}", "７９９９１２３"])
def test_bad_numbers_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        normalise_number(bad)


@pytest.mark.parametrize("bad", ["1", "1x1", "10a", "", "12345678901", "101\n"])
def test_bad_extensions_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        check_extension(bad)


@pytest.mark.parametrize("good", ["PJSIP/101", "PJSIP/79991234567@clients", "Local/101@ctl-phones", "SIP/x_y.z"])
def test_dial_strings(good: str) -> None:
    assert check_dial_string(good) == good


@pytest.mark.parametrize("bad", ["PJSIP/101&PJSIP/102", "PJSIP/101,30", "PJSIP/${X}", "PJSIP/1 01", "101",
                                 "PJSIP/101\r\nAction: Originate", "/101"])
def test_dangerous_dial_strings_are_refused(bad: str) -> None:
    with pytest.raises(ValidationError):
        check_dial_string(bad)


@pytest.mark.parametrize("bad", ["a\rb", "a\nb", "a\x00b"])
def test_header_values_refuse_line_breaks(bad: str) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        check_header_value(bad, "field")


def test_text_allows_unicode_names_but_not_control_characters() -> None:
    assert check_text("  Анна Петрова ", "name", 200) == "Анна Петрова"
    with pytest.raises(ValidationError, match="control character"):
        check_text("Anna\x1b[31m", "name", 200)
    with pytest.raises(ValidationError, match="must not be empty"):
        check_text("   ", "name", 200)
    assert check_text("line one\nline two", "script", 100, allow_newlines=True) == "line one\nline two"
