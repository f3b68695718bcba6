"""AMI actions as plain dicts. Pure: no I/O. Every value passes `_safe`.

AMI is line-based, so a CR or LF inside a value would end the header and start
a new one (or a whole new action). The builders refuse such values here, at the
last step before the wire, whatever the layers above already checked.
"""

from __future__ import annotations

import re

from ctl.errors import ValidationError
from ctl.model import MonitorMode, OriginateRequest, RecordingOptions, SpyRequest

Action = dict[str, str | list[str]]

_CHANNEL_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]*/[A-Za-z0-9_.+@:/=;-]{1,200}")
_VARIABLE_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
# ChanSpy options per mode (dialplan/asterisk/ctl-monitor.conf adds X for digits):
# q = no beep or name announcement (attach in ~100 ms), w = whisper (only the
# operator hears the supervisor), B = barge (operator and client hear them).
SPY_MODE_OPTIONS = {MonitorMode.LISTEN: "q", MonitorMode.WHISPER: "qw", MonitorMode.BARGE: "qB"}
# Digits a supervisor presses during a session (ChanSpy's own convention).
DTMF_MODES = {"4": MonitorMode.LISTEN, "5": MonitorMode.WHISPER, "6": MonitorMode.BARGE}


def spy_options(mode: MonitorMode) -> str:
    """E: leave ChanSpy when the spied call ends; S: when there is nothing to spy on. The
    dialplan then hangs up, or for a following session waits for ctl to bring the next call."""
    return SPY_MODE_OPTIONS[mode] + "ES"


def _safe(value: str, field: str) -> str:
    if any(ch in value for ch in "\r\n\x00"):
        raise ValidationError(f"{field}: control characters (CR, LF, NUL) are not allowed in an AMI value")
    return value


def _channel(name: str) -> str:
    if not _CHANNEL_NAME.fullmatch(name):
        raise ValidationError(f"channel: {name!r} is not a channel name")
    return name


def login(username: str, secret: str) -> Action:
    return {"Action": "Login", "Username": _safe(username, "username"), "Secret": _safe(secret, "secret"),
            "Events": "on"}


def ping() -> Action:
    return {"Action": "Ping"}


def originate(request: OriginateRequest) -> Action:
    action: Action = {
        "Action": "Originate",
        "Channel": _safe(request.channel, "channel"),
        "ChannelId": _safe(request.channel_id, "channel id"),
        "Timeout": str(int(request.timeout * 1000)),
        "Async": "true",
    }
    if request.application is not None:
        action["Application"] = _safe(request.application, "application")
        action["Data"] = _safe(request.data or "", "data")
    else:
        action["Context"] = _safe(request.context or "", "context")
        action["Exten"] = _safe(request.exten, "exten")
        action["Priority"] = str(request.priority)
    if request.caller_id is not None:
        action["CallerID"] = _safe(request.caller_id, "caller id")
    variables: list[str] = []
    for name, value in request.variables:
        if not _VARIABLE_NAME.fullmatch(name):
            raise ValidationError(f"variable name {name!r} is not valid")
        variables.append(f"{name}={_safe(value, name)}")
    if variables:
        action["Variable"] = variables
    return action


def hangup(channel_name: str, cause: int) -> Action:
    return {"Action": "Hangup", "Channel": _channel(channel_name), "Cause": str(int(cause))}


def bridge(channel_name: str, other_channel_name: str) -> Action:
    return {"Action": "Bridge", "Channel1": _channel(channel_name), "Channel2": _channel(other_channel_name),
            "Tone": "no"}


def core_show_channels() -> Action:
    return {"Action": "CoreShowChannels"}


def device_state(device: str) -> Action:
    return {"Action": "Getvar", "Variable": f"DEVICE_STATE({_safe(device, 'device')})"}


def global_variable(name: str) -> Action:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValidationError(f"variable name {name!r} is not valid")
    return {"Action": "Getvar", "Variable": name}


def spy(request: SpyRequest, context: str) -> Action:
    """Ring the supervisor; on answer, `context` runs ChanSpy on the exact target channel."""
    return originate(OriginateRequest(
        channel=request.supervisor_dial,
        channel_id=request.spy_channel_id,
        context=context,
        caller_id=request.caller_id,
        timeout=request.timeout,
        variables=(("CTL_SPY_TARGET", _channel(request.target_channel)),
                   ("CTL_SPY_OPTIONS", spy_options(request.mode)),
                   ("CTL_FOLLOW", "1" if request.follow else "0"),
                   ("CTL_SESSION", str(int(request.session_id)))),
    ))


def set_variable(channel_name: str, name: str, value: str) -> Action:
    if not _VARIABLE_NAME.fullmatch(name):
        raise ValidationError(f"variable name {name!r} is not valid")
    return {"Action": "Setvar", "Channel": _channel(channel_name), "Variable": name, "Value": _safe(value, name)}


def redirect(channel_name: str, context: str, exten: str = "s", priority: int = 1) -> Action:
    return {"Action": "Redirect", "Channel": _channel(channel_name), "Context": _safe(context, "context"),
            "Exten": _safe(exten, "exten"), "Priority": str(priority)}


# The "digit" ctl makes a leg press to start a recording on it (features.conf: ctlrecord, and
# exten R of the spy's digit context): the dialplan then runs MixMonitor, because AMI's own
# MixMonitor action needs the `system` right, which also runs shell commands. No phone can
# send R: SIP phones' DTMF (RTP events, SIP INFO) carries only 0-9 * # A-D and flash.
RECORD_TRIGGER_DIGIT = "R"
PHONE_DTMF = "0123456789*#ABCD"
# What the dialplan accepts in a recording order: a plain absolute path, and the letters it maps
# to MixMonitor options. Anything else it refuses (dialplan/asterisk/ctl-recording.conf).
_RECORDING_PATH = re.compile(r"/[A-Za-z0-9_./-]{1,250}")


def recording_order(options: RecordingOptions) -> tuple[tuple[str, str], tuple[str, str]]:
    """The two channel variables that order a recording: CTL_REC_FILE (an absolute path) and
    CTL_REC_HOW (m: both directions mixed, r: what the party says, t: what it hears; then D for
    two interleaved channels, a to append)."""
    path = options.path
    if not _RECORDING_PATH.fullmatch(path) or "/../" in path + "/" or "/./" in path + "/":
        raise ValidationError(f"path: {path!r} is not a plain absolute path the dialplan accepts "
                              "(letters, digits, _ . / - only)")
    direction = {"both": "m", "rx": "r", "tx": "t"}.get(options.direction)
    if direction is None:
        raise ValidationError(f"direction: expected both, rx or tx, got {options.direction!r}")
    how = direction + ("D" if options.stereo else "") + ("a" if options.append else "")
    return ("CTL_REC_FILE", path), ("CTL_REC_HOW", how)


def receive_digit(channel_name: str, digit: str, duration_ms: int = 100) -> Action:
    """As if the channel's party pressed `digit`: the bridge's feature codes (or ChanSpy's exit
    digits) see it; nothing is sent to the phone. R is ctl's own (RECORD_TRIGGER_DIGIT)."""
    if len(digit) != 1 or digit not in PHONE_DTMF + RECORD_TRIGGER_DIGIT:
        raise ValidationError(f"digit: {digit!r} is not one DTMF digit")
    return {"Action": "PlayDTMF", "Channel": _channel(channel_name), "Digit": digit,
            "Duration": str(duration_ms), "Receive": "yes"}


def stop_mix_monitor(channel_name: str) -> Action:
    return {"Action": "StopMixMonitor", "Channel": _channel(channel_name)}


def mix_monitor_mute(channel_name: str, muted: bool) -> Action:
    return {"Action": "MixMonitorMute", "Channel": _channel(channel_name), "Direction": "both",
            "State": "1" if muted else "0"}


def queue_pause(interface: str, paused: bool, reason: str | None) -> Action:
    """No Queue header: Asterisk applies it to the interface in every queue."""
    action: Action = {"Action": "QueuePause", "Interface": _channel(interface), "Paused": "true" if paused else "false"}
    if paused and reason:
        action["Reason"] = _safe(reason, "reason")
    return action
