"""Checks on every user-supplied value, before it reaches the store or a PBX frame.

Each check returns the normalised value or raises ValidationError with one line
that names the offending field. AMI and ESL frames are line-based: a value with
CR or LF could smuggle a whole extra header or action, so nothing reaches a
frame without `check_header_value` (the AMI adapter checks again at the edge).
"""

from __future__ import annotations

import re
import unicodedata
from datetime import datetime

from ctl.errors import ConfigError, ValidationError

_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_NUMBER_PUNCTUATION = re.compile(r"[\s().-]")
_EXTENSION = re.compile(r"[0-9]{2,10}")
# Technology/resource, e.g. PJSIP/101, PJSIP/79991234567@clients, Local/101@ctl-phones.
# No commas (Dial's argument separator), no '&' (parallel dial), no '$', braces,
# brackets or quotes (dialplan expressions), no spaces or control characters.
_DIAL_STRING = re.compile(r"[A-Za-z][A-Za-z0-9]{0,15}/[A-Za-z0-9_.+@:/=-]{1,200}")
_NODE = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_ROLES = ("owner", "admin", "supervisor", "operator")
# Secrets everyone knows: FreeSWITCH's ClueCon, the CHANGE-ME placeholders ctl ships,
# FreePBX's AMI amp111 and the usual words. Compared case-insensitively.
KNOWN_DEFAULT_SECRETS = frozenset({"cluecon", "change-me", "changeme", "amp111", "secret", "password", "admin",
                                   "asterisk", "freeswitch", "1234", "12345678"})
_PATH_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,128}")


_SMALL_NUMBER = re.compile(r"[0-9]{1,18}")


def small_number(text: str | None, max_digits: int = 18) -> int | None:
    """A non-negative number from a PBX header: ASCII digits only, at most `max_digits`
    (str.isdigit() also accepts '²' and other digits int() refuses, and 5,000 digits)."""
    if text is None or len(text) > max_digits or not _SMALL_NUMBER.fullmatch(text):
        return None
    return int(text)


def check_header_value(value: str, field: str, max_length: int = 1024) -> str:
    """A value safe inside one AMI/ESL header line."""
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError(f"{field}: control characters (CR, LF, NUL) are not allowed")
    if len(value) > max_length:
        raise ValidationError(f"{field}: longer than {max_length} characters")
    return value


def check_secret(value: str, field: str, hint: str) -> str:
    """A credential ctl uses or accepts: present, not a default anybody could guess."""
    if not value.strip():
        raise ValidationError(f"{field}: must be set ({hint})")
    if value.strip().lower() in KNOWN_DEFAULT_SECRETS:
        raise ValidationError(f"{field}: {value!r} is a well-known default; set a secret of your own ({hint})")
    if len(value) < 8:
        raise ValidationError(f"{field}: shorter than 8 characters ({hint})")
    return value


def check_login_secret(value: str, field: str, hint: str) -> None:
    """The secret ctl logs in to a PBX with: refused before any I/O when empty or well known."""
    try:
        check_secret(value, field, hint)
    except ValidationError as error:
        raise ConfigError(str(error)) from None


def check_path_token(value: str, field: str, hint: str) -> str:
    """A secret that travels in a URL path (agi://host:port/<token>/…): URL-safe and long enough."""
    check_secret(value, field, hint)
    if not _PATH_TOKEN.fullmatch(value):
        raise ValidationError(f"{field}: expected 16-128 letters, digits, '_' or '-' ({hint})")
    return value


def normalise_number(value: str, field: str = "number") -> str:
    """A client phone number: digits with an optional leading '+', punctuation dropped."""
    compact = _NUMBER_PUNCTUATION.sub("", value)
    if not _NUMBER.fullmatch(compact):
        raise ValidationError(f"{field}: {value!r} is not a phone number (3–20 digits, optional leading +)")
    return compact


def inbound_number(value: str | None) -> str | None:
    """A caller id from the trunk, as the store keeps it and ctl may later dial it: the
    normalised number, or None (anonymous, a name, too long, anything not a number).
    Never raises: whatever the carrier sends, the call is still followed."""
    if value is None or len(value) > 64:  # not value[:64]: its first 64 characters may spell another number
        return None
    compact = _NUMBER_PUNCTUATION.sub("", value.strip())
    return compact if _NUMBER.fullmatch(compact) else None


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


# A person's phone as ctl follows it: the PBX must name the leg by the extension (an Asterisk
# PJSIP endpoint, a FreeSWITCH directory user), or ctl can neither tell whose call it is nor
# spy on it. Other technologies (Local/…, loopback/…, IAX2/…) would be accepted and then
# fail at the first monitor request with a wrong reason.
_PERSON_DIAL = re.compile(r"PJSIP/(?P<a>[0-9]{2,10})|user/(?P<u>[0-9]{2,10})(@[A-Za-z0-9_.:-]{1,100})?"
                          r"|sofia/[A-Za-z0-9_.-]{1,64}/(?P<s>[0-9]{2,10})(@[A-Za-z0-9_.:-]{1,100})?")


def check_person_dial_string(value: str, extension: str, field: str = "dial string") -> str:
    """A person's dial string: reaches the phone ctl will recognise as this extension."""
    check_dial_string(value, field)
    match = _PERSON_DIAL.fullmatch(value)
    if match is None:
        raise ValidationError(
            f"{field}: {value!r} cannot be followed or monitored: a person's phone is PJSIP/<ext> on Asterisk, "
            f"user/<ext>[@domain] or sofia/<profile>/<ext>[@host] on FreeSWITCH")
    dialed = match.group("a") or match.group("u") or match.group("s")
    if dialed != extension:
        raise ValidationError(f"{field}: {value!r} reaches phone {dialed}, not extension {extension}: "
                              "ctl knows whose call it is by the phone's own extension")
    return value


def check_dial_pattern(pattern: str, placeholder: str, field: str) -> str:
    """A dial-string pattern such as PJSIP/{number}@clients: one placeholder, valid once filled."""
    if pattern.count(placeholder) != 1 or pattern.count("{") != 1 or pattern.count("}") != 1:
        raise ValidationError(f"{field}: {pattern!r} must contain {placeholder} exactly once and no other braces")
    # Filled with the longest value a placeholder holds (a normalised number: '+' and 20 digits), so that
    # every number and extension makes a valid dial string: the placeholder in the resource, not too long.
    if not _DIAL_STRING.fullmatch(pattern.replace(placeholder, "+" + "0" * 20)):
        raise ValidationError(f"{field}: {pattern!r} is not a dial string of the form TECH/resource once {placeholder} "
                              "is filled with up to 20 digits and a '+' (the placeholder after the '/'; letters, "
                              "digits and _ . + @ : / = - only; no commas, '&', '$' or spaces)")
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
        # Zl, Zp: U+2028 and U+2029 are line breaks (str.splitlines, editors, JavaScript): one line, one name.
        if unicodedata.category(ch) in ("Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp") and ch != "\u200d":
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


def parse_since(text: str, field: str = "--since") -> datetime:
    """An ISO date or time; without an offset, in the machine's time zone."""
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{field}: {text!r} is not an ISO date or time (e.g. 2026-11-01T09:00)") from None
    return parsed if parsed.tzinfo else parsed.astimezone()
