"""Checks on every user-supplied value, before it reaches the store or a PBX frame.

Each check returns the normalised value or raises ValidationError with one line
that names the offending field. AMI and ESL frames are line-based: a value with
CR or LF could smuggle a whole extra header or action, so nothing reaches a
frame without `check_header_value` (the AMI adapter checks again at the edge).
"""

from __future__ import annotations

import re
import unicodedata

from ctl.errors import ValidationError

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_NUMBER_PUNCTUATION = re.compile(r"[\s().-]")
_EXTENSION = re.compile(r"[0-9]{2,10}")
# Technology/resource, e.g. PJSIP/101, PJSIP/79991234567@clients, Local/101@ctl-phones.
# No commas (Dial's argument separator), no '&' (parallel dial), no '$', braces,
# brackets or quotes (dialplan expressions), no spaces or control characters.
_DIAL_STRING = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.+@:/=-]{1,200}")
_NODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ROLES = ("owner", "admin", "supervisor", "operator")


def check_header_value(value: str, field: str, max_length: int = 1024) -> str:
    """A value safe inside one AMI/ESL header line."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError(f"{field}: control characters (CR, LF, NUL) are not allowed")
    if len(value) > max_length:
        raise ValidationError(f"{field}: longer than {max_length} characters")
    return value


def normalise_number(value: str, field: str = "number") -> str:
    """A client phone number: digits with an optional leading '+', punctuation dropped."""
    compact = _NUMBER_PUNCTUATION.sub("", value)
    if not _NUMBER.fullmatch(compact):
        raise ValidationError(f"{field}: {value!r} is not a phone number (3–20 digits, optional leading +)")
    return compact


def check_extension(value: str, field: str = "extension") -> str:
    if not _EXTENSION.fullmatch(value):
        raise ValidationError(f"{field}: {value!r} is not an extension (2–10 digits)")
    return value


def check_dial_string(value: str, field: str = "dial string") -> str:
    if not _DIAL_STRING.fullmatch(value):
        raise ValidationError(
            f"{field}: {value!r} is not a dial string of the form TECH/resource "
            "(letters, digits and _ . + @ : / = - only; no commas, '&', '$' or spaces)"
        )
    return value


def check_dial_pattern(pattern: str, placeholder: str, field: str) -> str:
    """A dial-string pattern such as PJSIP/{number}@clients: one placeholder, valid once filled."""
    if pattern.count(placeholder) != 1 or pattern.count("{") != 1 or pattern.count("}") != 1:
        raise ValidationError(f"{field}: {pattern!r} must contain {placeholder} exactly once and no other braces")
    check_dial_string(pattern.replace(placeholder, "0123"), field)
    return pattern


def check_role(value: str) -> str:
    role = value.strip().lower()
    if role not in _ROLES:
        raise ValidationError(f"role: {value!r} is not one of {', '.join(_ROLES)}")
    return role


def check_text(value: str, field: str, max_length: int, allow_newlines: bool = False, required: bool = True) -> str:
    """Free text (names, comments, scripts): printable, bounded, no control characters."""
    text = value.strip()
    if required and not text:
        raise ValidationError(f"{field}: must not be empty")
    if len(text) > max_length:
        raise ValidationError(f"{field}: longer than {max_length} characters")
    for ch in text:
        if ch in "\n\t" and allow_newlines:
            continue
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn") and ch != "\u200d":
            raise ValidationError(f"{field}: contains a control character (U+{ord(ch):04X})")
    return text


def check_node_name(value: str, field: str = "node") -> str:
    if not _NODE.fullmatch(value):
        raise ValidationError(f"{field}: {value!r} must be lower-case letters, digits, '_', '.', '-' (max 64)")
    return value


def check_result_code(value: str, field: str = "result code") -> str:
    code = value.strip()
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}", code):
        raise ValidationError(f"{field}: {value!r} must be letters, digits, '_', '.', '-' (max 64)")
    return code
