"""ESL command lines, pure: no I/O. Every value passes a check first.

ESL is line-based like AMI: a CR or LF in a value would end the command and start
another (encode_command refuses them at the last step as well). An originate's
channel variables go inside `{…}` separated by commas, so a value may hold neither
a comma nor a brace nor a quote; values with spaces are single-quoted.
"""

from __future__ import annotations

import re

from ctl.errors import ValidationError
from ctl.freeswitch.translate import EAVESDROP_DIGITS
from ctl.model import MonitorMode, OriginateRequest, RecordingOptions, SpyRequest

# FreeSWITCH keeps a channel's uuid in 36 characters and silently cuts a longer origination_uuid.
_UUID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,35}")
_VARIABLE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_DIAL = re.compile(r"[A-Za-z][A-Za-z0-9_]*/[A-Za-z0-9_.+@:/=;-]{1,200}")
_WORD = re.compile(r"[A-Za-z0-9_.+*#:@-]{1,128}")
_CAUSE = re.compile(r"[A-Z_]{3,40}")


def uuid(value: str, field: str = "channel uuid") -> str:
    if not _UUID.fullmatch(value):
        raise ValidationError(f"{field}: {value!r} is not a channel uuid")
    return value


def _word(value: str, field: str) -> str:
    if not _WORD.fullmatch(value):
        raise ValidationError(f"{field}: {value!r} is not allowed here")
    return value


def _value(value: str, field: str) -> str:
    # `$` would be expanded by FreeSWITCH when the variable is read: ${…} names a variable
    # or runs an API command (${system …}), so no value may carry one.
    if any(ch in value for ch in ",{}[]'\"\\\r\n\x00^$"):
        raise ValidationError(f"{field}: {value!r} may not contain , {{ }} [ ] $ quotes, backslash, ^ or "
                              "control characters")
    return f"'{value}'" if " " in value else value


def channel_variables(pairs: list[tuple[str, str]]) -> str:
    for name, _ in pairs:
        if not _VARIABLE.fullmatch(name):
            raise ValidationError(f"channel variable: {name!r} is not a variable name")
    return "{" + ",".join(f"{name}={_value(value, name)}" for name, value in pairs) + "}"


def dial(value: str) -> str:
    if not _DIAL.fullmatch(value):
        raise ValidationError(f"dial string: {value!r} is not a FreeSWITCH dial string (e.g. user/101)")
    return value


def _caller_id(request_caller_id: str | None) -> list[tuple[str, str]]:
    """`"Name" <number>` (the services' form) → origination_caller_id_name / _number."""
    if not request_caller_id:
        return []
    match = re.fullmatch(r'\s*"?([^"<]*)"?\s*<([^>]*)>\s*', request_caller_id)
    name, number = (match.group(1).strip(), match.group(2).strip()) if match else ("", request_caller_id.strip())
    pairs = [("origination_caller_id_number", number)]
    if name:
        pairs.append(("origination_caller_id_name", name))
    return pairs


def originate(request: OriginateRequest) -> str:
    """`originate {vars}<dial> <exten> XML <context>` or `… &app(data)`; sent as bgapi, so
    FreeSWITCH answers at once and reports the outcome in a BACKGROUND_JOB event."""
    pairs = [("origination_uuid", uuid(request.channel_id)),
             ("originate_timeout", str(max(1, int(request.timeout)))),
             *_caller_id(request.caller_id),
             # ctl's variables keep their Asterisk names lower-cased: ${ctl_client_dial}…
             *((name.lower(), value) for name, value in request.variables)]
    target = dial(request.channel)
    if request.application:
        data = _value(request.data or "", "application data")
        return f"originate {channel_variables(pairs)}{target} &{_word(request.application, 'application')}({data})"
    context = _word(request.context or "default", "context")
    return f"originate {channel_variables(pairs)}{target} {_word(request.exten, 'extension')} XML {context}"


def spy_variables(mode: MonitorMode) -> list[tuple[str, str]]:
    """Verified with audio on FreeSWITCH 1.10.12, eavesdropping on the operator's leg:
    whisper_bleg alone = only the operator hears the supervisor; both = barge.
    (whisper_aleg alone would let only the client hear them: never used.)"""
    pairs = [("eavesdrop_enable_dtmf", "false")]  # modes change only through ctl, checked against the role
    if mode in (MonitorMode.WHISPER, MonitorMode.BARGE):
        pairs.append(("eavesdrop_whisper_bleg", "true"))
    if mode is MonitorMode.BARGE:
        pairs.append(("eavesdrop_whisper_aleg", "true"))
    return pairs


def spy(request: SpyRequest, target_uuid: str) -> str:
    pairs = [("origination_uuid", uuid(request.spy_channel_id, "spy channel uuid")),
             ("originate_timeout", str(max(1, int(request.timeout)))),
             *_caller_id(request.caller_id),
             ("ctl_monitor_session", str(int(request.session_id))),
             *spy_variables(request.mode)]
    return (f"originate {channel_variables(pairs)}{dial(request.supervisor_dial)} "
            f"&eavesdrop({uuid(target_uuid, 'target channel uuid')})")


def spy_mode_event(spy_uuid: str, mode: MonitorMode) -> tuple[str, dict[str, str]]:
    """eavesdrop reads `eavesdrop-command` from events queued to its channel, DTMF on or off."""
    return "sendevent CUSTOM", {"Event-Subclass": "esl::eavesdrop", "unique-id": uuid(spy_uuid),
                                "eavesdrop-command": EAVESDROP_DIGITS[mode]}


def hangup(channel_uuid: str, cause_name: str = "NORMAL_CLEARING") -> str:
    if not _CAUSE.fullmatch(cause_name):
        raise ValidationError(f"hangup cause: {cause_name!r}")
    return f"api uuid_kill {uuid(channel_uuid)} {cause_name}"


def bridge(a_uuid: str, b_uuid: str) -> str:
    return f"api uuid_bridge {uuid(a_uuid)} {uuid(b_uuid)}"


def _path(path: str) -> str:
    if not path.startswith("/") or any(ch in path for ch in " \r\n\x00'\"{}$,;|"):
        raise ValidationError(f"recording path: {path!r} must be absolute, without spaces or special characters")
    return path


def record_variables(channel_uuid: str, options: RecordingOptions) -> list[str]:
    """uuid_setvar commands before uuid_record: stereo (left = what the party says, right =
    what it hears), one direction only, appending to an existing file."""
    channel = uuid(channel_uuid)
    commands = [f"api uuid_setvar {channel} RECORD_STEREO {'true' if options.stereo else 'false'}",
                f"api uuid_setvar {channel} RECORD_APPEND {'true' if options.append else 'false'}"]
    read_only = "true" if options.direction == "rx" else "false"
    write_only = "true" if options.direction == "tx" else "false"
    commands += [f"api uuid_setvar {channel} RECORD_READ_ONLY {read_only}",
                 f"api uuid_setvar {channel} RECORD_WRITE_ONLY {write_only}"]
    return commands


# The channel remembers the file ctl records it to, so that any ctl process (the CLI's
# `record pause` as well as the serve that started a policy recording) can pause or stop it:
# uuid_record's mask/unmask/stop need the path.
RECORD_PATH_VARIABLE = "ctl_record_path"


def remember_record_path(channel_uuid: str, path: str) -> str:
    return f"api uuid_setvar {uuid(channel_uuid)} {RECORD_PATH_VARIABLE} {_path(path)}"


def recalled_record_path(channel_uuid: str) -> str:
    return f"api uuid_getvar {uuid(channel_uuid)} {RECORD_PATH_VARIABLE}"


def record(channel_uuid: str, action: str, path: str) -> str:
    if action not in ("start", "stop", "mask", "unmask"):
        raise ValidationError(f"uuid_record: unknown action {action!r}")
    return f"api uuid_record {uuid(channel_uuid)} {action} {_path(path)}"


def sofia_contact(extension: str) -> str:
    return f"api sofia_contact {_word(extension, 'extension')}"


def callcenter_agent_status(agent: str, paused: bool) -> str:
    """mod_callcenter: a paused operator is On Break in every queue (tier) they are in."""
    return f"api callcenter_config agent set status {_word(agent, 'agent')} '{'On Break' if paused else 'Available'}'"
