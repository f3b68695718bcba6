"""Settings: a TOML file, every key overridable by a CTL_<SECTION>_<KEY> environment variable.

The file is `--config PATH`, else `$CTL_CONFIG`, else `./ctl.toml` when it exists;
with none, the embedded defaults below apply. Unknown sections or keys and values
of the wrong type are errors (one line naming the key), never silently ignored.
"""

from __future__ import annotations

import ipaddress
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from ctl.errors import ConfigError, ValidationError
from ctl.validation import check_dial_pattern, check_header_value, check_node_name

# The recording directory as the PBX sees it: the dialplan that starts a recording accepts
# only such paths, so that nothing in a path can add MixMonitor arguments.
_PBX_RECORDING_ROOT = re.compile(r"/[A-Za-z0-9_./-]*")


@dataclass(frozen=True)
class DatabaseSettings:
    url: str = "sqlite:///ctl.db"


@dataclass(frozen=True)
class AsteriskSettings:
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "ctl"
    secret: str = ""
    # Name of this PBX in the store: several nodes may share one store.
    node: str = "asterisk"
    connect_timeout: float = 5.0
    action_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    # Endpoints that lead to clients (carriers, SBCs) rather than to people.
    trunks: tuple[str, ...] = ("clients",)


@dataclass(frozen=True)
class FreeswitchSettings:
    """A FreeSWITCH node reached over its event socket (inbound ESL)."""

    # Empty: no FreeSWITCH node (an Asterisk-only deployment).
    host: str = ""
    port: int = 8021
    password: str = ""  # never the default ClueCon in production: see freeswitch_conf/
    node: str = "freeswitch"
    connect_timeout: float = 5.0
    action_timeout: float = 5.0
    reconnect_min: float = 0.5
    reconnect_max: float = 30.0
    # What leads to clients rather than to people: gateways ctl dials out through
    # (sofia/gateway/<name>/…) and SIP profiles the carrier's calls come in on
    # (sofia/<profile>/…; freeswitch_conf/'s is ctl-clients).
    trunks: tuple[str, ...] = ("clients", "ctl-clients")
    # How this node reaches a client number ([calls] client_dial is Asterisk's).
    client_dial: str = "sofia/gateway/clients/{number}"
    # Where `ctl serve` listens for the feature-code dialplan's `socket` application
    # (outbound ESL): dialplan/freeswitch/ctl.xml connects here.
    outbound_host: str = "127.0.0.1"
    outbound_port: int = 8084
    # The dialplan sets ctl_token to this before `socket`: a connection without it is
    # refused (freeswitch_conf/ renders it from CTL_FREESWITCH_OUTBOUND_SECRET).
    outbound_secret: str = ""
    # Peers allowed to connect to the outbound socket (the FreeSWITCH host).
    outbound_allow: tuple[str, ...] = ("127.0.0.1", "::1")


@dataclass(frozen=True)
class CallSettings:
    # How a client number is reached through Asterisk; {number} is the validated number.
    client_dial: str = "PJSIP/{number}@clients"
    # Default dial string of a new operator; {extension} is the extension.
    operator_dial: str = "PJSIP/{extension}"
    # Seconds the operator's phone, then the client's, may ring on a click-to-call.
    ring_timeout: int = 30
    # Context the operator's answered leg runs to dial the client.
    bridge_context: str = "ctl-click-to-call"


@dataclass(frozen=True)
class MonitorSettings:
    """Who may listen, whisper or barge, per role; where feature codes reach ctl serve."""

    owner: tuple[str, ...] = ("listen", "whisper", "barge")
    admin: tuple[str, ...] = ("listen", "whisper", "barge")
    supervisor: tuple[str, ...] = ("listen", "whisper")
    operator: tuple[str, ...] = ()
    # The FastAGI server of `ctl serve`, asked by the feature-code dialplan.
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # The secret path segment of CTL_AGI (agi://host:port/<secret>/monitor), set at
    # install: a FastAGI request without it is refused.
    agi_secret: str = ""
    # Peers allowed to connect to the FastAGI server (the Asterisk host).
    agi_allow: tuple[str, ...] = ("127.0.0.1", "::1")
    # Feature-code connections served at once; more are refused (closed at once).
    max_connections: int = 64
    # A spy or recording ctl did not start: hang it up (default) or only log it.
    foreign_spy: str = "hangup"
    # Dialplan context that runs ChanSpy for a session (dialplan/asterisk/ctl-monitor.conf).
    spy_context: str = "ctl-monitor-spy"
    # Seconds the supervisor's phone may ring for a session started from the CLI.
    ring_timeout: int = 30

    def allowed(self, role: str, mode: str) -> bool:
        return mode in getattr(self, role, ())


@dataclass(frozen=True)
class RecordingSettings:
    """Where call recordings go and which calls are recorded.

    The PBX writes the files; ctl reads them (size, completeness, export, purge).
    `directory` is the path as ctl sees it, `pbx_directory` as the PBX sees it
    (they differ when the PBX runs in a container or chroot; empty = the same).
    """

    directory: str = "/var/spool/asterisk/recordings"
    pbx_directory: str = ""
    # Policy of calls without a project, and of new projects: always, on-demand, never.
    policy: str = "always"
    # Stereo WAV: the client on the left channel, the operator on the right.
    stereo: bool = False
    # Refuse to start a recording when the directory has less free space than this.
    min_free_mb: int = 50
    # Seconds to wait for the PBX to close a file after the call ends.
    finalize_timeout: float = 10.0

    @property
    def pbx_root(self) -> str:
        return self.pbx_directory or self.directory


RECORDING_POLICIES = ("always", "on-demand", "never")
FOREIGN_SPY_ACTIONS = ("hangup", "log")


@dataclass(frozen=True)
class OperatorSettings:
    # Reasons an operator may give for a break or do-not-disturb (`--reason`).
    pause_reasons: tuple[str, ...] = ("lunch", "training", "technical", "meeting", "personal")
    # Longest wrap-up after a project call (seconds) before the operator is made available
    # again without a saved result; a project's own --wrapup-seconds overrides it.
    wrapup_seconds: int = 120


@dataclass(frozen=True)
class TaskSettings:
    # Minutes before a manual callback's time that its reminder is raised.
    remind_minutes: int = 5
    # An automatic callback is tried this many times (the client not answering, nobody
    # available) before it is overdue, this many seconds apart.
    attempts: int = 3
    retry_seconds: int = 300


@dataclass(frozen=True)
class ApiSettings:
    """The HTTP API of `ctl serve`: TCP for applications (a bearer token per request) and a
    Unix socket for the local admin (its file mode is the check)."""

    enabled: bool = True
    host: str = "127.0.0.1"
    port: int = 8088
    # Relative paths are taken from the working directory, where the default store lives too.
    socket: str = "ctl.sock"
    # The Unix socket's group (its mode is 0660); empty: the group of the user running serve.
    socket_group: str = ""
    # Days the live event stream's events are kept (a client reconnecting may ask for older ones).
    events_retention_days: int = 7


@dataclass(frozen=True)
class WebhookSettings:
    # Tries of one delivery before it is given up (listed by `ctl webhook deliveries --failed`).
    max_attempts: int = 8
    # Seconds a receiver has to answer; then the first retry after backoff_seconds, doubling
    # up to backoff_max_seconds.
    timeout_seconds: float = 5.0
    backoff_seconds: float = 1.0
    backoff_max_seconds: float = 300.0


@dataclass(frozen=True)
class LogSettings:
    level: str = "info"
    format: str = "json"


@dataclass(frozen=True)
class Settings:
    database: DatabaseSettings = field(default_factory=DatabaseSettings)
    asterisk: AsteriskSettings = field(default_factory=AsteriskSettings)
    freeswitch: FreeswitchSettings = field(default_factory=FreeswitchSettings)
    calls: CallSettings = field(default_factory=CallSettings)
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    recording: RecordingSettings = field(default_factory=RecordingSettings)
    operators: OperatorSettings = field(default_factory=OperatorSettings)
    tasks: TaskSettings = field(default_factory=TaskSettings)
    api: ApiSettings = field(default_factory=ApiSettings)
    webhooks: WebhookSettings = field(default_factory=WebhookSettings)
    log: LogSettings = field(default_factory=LogSettings)
    source: str = "defaults"


SECTIONS: dict[str, type[Any]] = {
    "database": DatabaseSettings,
    "asterisk": AsteriskSettings,
    "freeswitch": FreeswitchSettings,
    "calls": CallSettings,
    "monitor": MonitorSettings,
    "recording": RecordingSettings,
    "operators": OperatorSettings,
    "tasks": TaskSettings,
    "api": ApiSettings,
    "webhooks": WebhookSettings,
    "log": LogSettings,
}


_BOOLEANS = {"true": True, "yes": True, "1": True, "on": True, "false": False, "no": False, "0": False, "off": False}


def _coerce(where: str, kind: Any, value: Any, from_env: bool) -> Any:
    kind_name = kind if isinstance(kind, str) else getattr(kind, "__name__", str(kind))
    try:
        if kind_name in ("int", "float"):
            if isinstance(value, bool) or not isinstance(value, (int, float, str)):
                raise ValueError
            number = float(value) if kind_name == "float" else int(value)
            if number < 0:
                raise ValueError
            return number
        if kind_name == "bool":
            if isinstance(value, bool):
                return value
            if from_env and isinstance(value, str) and value.lower() in _BOOLEANS:
                return _BOOLEANS[value.lower()]
            raise ValueError
        if kind_name == "str":
            if not isinstance(value, str):
                raise ValueError
            return value
        if kind_name.startswith("tuple"):
            items = value.split(",") if from_env and isinstance(value, str) else value
            if not isinstance(items, (list, tuple)) or not all(isinstance(i, str) for i in items):
                raise ValueError
            return tuple(i.strip() for i in items if i.strip())
    except ValueError:
        raise ConfigError(f"{where}: expected {kind_name.replace('tuple[str, ...]', 'a list of strings')}, "
                          f"got {value!r}") from None
    raise ConfigError(f"{where}: unsupported setting type {kind_name}")  # pragma: no cover


def _apply(section_name: str, current: Any, values: Mapping[str, Any], origin: str, from_env: bool) -> Any:
    known = {f.name: f for f in fields(current)}
    changes: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{origin}: unknown key [{section_name}] {key}")
        where = f"{origin}: [{section_name}] {key}"
        changes[key] = _coerce(where, known[key].type, value, from_env)
    return replace(current, **changes)


def config_path(explicit: str | os.PathLike[str] | None, environ: Mapping[str, str]) -> Path | None:
    if explicit:
        return Path(explicit)
    if environ.get("CTL_CONFIG"):
        return Path(environ["CTL_CONFIG"])
    default = Path("ctl.toml")
    return default if default.exists() else None


def load_settings(path: str | os.PathLike[str] | None = None, environ: Mapping[str, str] | None = None) -> Settings:
    environ = os.environ if environ is None else environ
    chosen = config_path(path, environ)
    sections: dict[str, Any] = {name: kind() for name, kind in SECTIONS.items()}
    source = "defaults"
    if chosen is not None:
        try:
            data = tomllib.loads(chosen.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"config file {chosen} does not exist") from None
        except (OSError, UnicodeDecodeError) as error:
            raise ConfigError(f"cannot read config file {chosen}: {error}") from None
        except tomllib.TOMLDecodeError as error:
            raise ConfigError(f"config file {chosen} is not valid TOML: {error}") from None
        for name, values in data.items():
            if name not in SECTIONS or not isinstance(values, dict):
                raise ConfigError(f"{chosen}: unknown section [{name}]")
            sections[name] = _apply(name, sections[name], values, str(chosen), from_env=False)
        source = str(chosen)
    for variable, value in environ.items():
        if not variable.startswith("CTL_") or variable == "CTL_CONFIG":
            continue
        rest = variable[4:].lower()
        section_name, _, key = rest.partition("_")
        if section_name not in SECTIONS:
            continue  # CTL_* variables of other tools (e.g. CTL_SANDBOX_CACHE) are not ours
        sections[section_name] = _apply(section_name, sections[section_name], {key: value}, variable, from_env=True)
    settings = Settings(**sections, source=source)
    _validate(settings)
    return settings


def _validate(settings: Settings) -> None:
    try:
        _check_values(settings)
    except ValidationError as error:
        raise ConfigError(f"{settings.source}: {error}") from None


def _check_values(settings: Settings) -> None:
    check_dial_pattern(settings.calls.client_dial, "{number}", "[calls] client_dial")
    check_dial_pattern(settings.freeswitch.client_dial, "{number}", "[freeswitch] client_dial")
    check_dial_pattern(settings.calls.operator_dial, "{extension}", "[calls] operator_dial")
    check_node_name(settings.asterisk.node, "[asterisk] node")
    for key in ("host", "username", "secret"):
        check_header_value(getattr(settings.asterisk, key), f"[asterisk] {key}")
    check_header_value(settings.calls.bridge_context, "[calls] bridge_context")
    freeswitch = settings.freeswitch
    check_node_name(freeswitch.node, "[freeswitch] node")
    for key in ("host", "password"):
        value = getattr(freeswitch, key)
        check_header_value(value, f"[freeswitch] {key}")
        if " " in value:
            raise ConfigError(f"[freeswitch] {key}: spaces are not allowed")
    for key in ("port", "outbound_port"):
        if not 1 <= getattr(freeswitch, key) <= 65535:
            raise ConfigError(f"[freeswitch] {key}: expected 1-65535, got {getattr(freeswitch, key)}")
    check_header_value(freeswitch.outbound_host, "[freeswitch] outbound_host")
    if freeswitch.host and not freeswitch.password:
        raise ConfigError("[freeswitch] password: required when [freeswitch] host is set (CTL_FREESWITCH_PASSWORD)")
    if settings.asterisk.node == freeswitch.node and freeswitch.host:
        raise ConfigError(f"[freeswitch] node: {freeswitch.node!r} is also the Asterisk node's name")
    if settings.log.level.lower() not in ("debug", "info", "warning", "error"):
        raise ConfigError(f"[log] level: expected debug, info, warning or error, got {settings.log.level!r}")
    if settings.log.format not in ("json", "text"):
        raise ConfigError(f"[log] format: expected json or text, got {settings.log.format!r}")
    if not 1 <= settings.asterisk.port <= 65535:
        raise ConfigError(f"[asterisk] port: expected 1-65535, got {settings.asterisk.port}")
    for role in ("owner", "admin", "supervisor", "operator"):
        unknown = set(getattr(settings.monitor, role)) - {"listen", "whisper", "barge"}
        if unknown:
            raise ConfigError(f"[monitor] {role}: unknown mode {sorted(unknown)[0]!r} (listen, whisper, barge)")
    check_header_value(settings.monitor.spy_context, "[monitor] spy_context")
    if settings.monitor.foreign_spy not in FOREIGN_SPY_ACTIONS:
        raise ConfigError(f"[monitor] foreign_spy: expected hangup or log, got {settings.monitor.foreign_spy!r}")
    if settings.monitor.max_connections < 1:
        raise ConfigError("[monitor] max_connections: expected at least 1")
    for where, addresses in (("[monitor] agi_allow", settings.monitor.agi_allow),
                             ("[freeswitch] outbound_allow", freeswitch.outbound_allow)):
        for address in addresses:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ConfigError(f"{where}: {address!r} is not an IP address or network") from None
    if not 1 <= settings.monitor.agi_port <= 65535:
        raise ConfigError(f"[monitor] agi_port: expected 1-65535, got {settings.monitor.agi_port}")
    api = settings.api
    if not 1 <= api.port <= 65535:
        raise ConfigError(f"[api] port: expected 1-65535, got {api.port}")
    try:
        ipaddress.ip_address(api.host)
    except ValueError:
        raise ConfigError(f"[api] host: expected an IP address to listen on, got {api.host!r}") from None
    hooks = settings.webhooks
    if not 1 <= hooks.max_attempts <= 100 or not 0.1 <= hooks.timeout_seconds <= 120 \
            or not 0.01 <= hooks.backoff_seconds <= hooks.backoff_max_seconds <= 86400:
        raise ConfigError("[webhooks]: max_attempts 1-100, timeout_seconds 0.1-120, "
                          "backoff_seconds <= backoff_max_seconds <= 86400")
    if not 1 <= api.events_retention_days <= 3650:
        raise ConfigError(f"[api] events_retention_days: expected 1-3650, got {api.events_retention_days}")
    if not api.socket or any(ch in api.socket for ch in "\x00\r\n") or len(api.socket.encode()) > 100:
        raise ConfigError("[api] socket: expected a path of at most 100 bytes")
    recording = settings.recording
    if recording.policy not in RECORDING_POLICIES:
        raise ConfigError(f"[recording] policy: expected always, on-demand or never, got {recording.policy!r}")
    for key in ("directory", "pbx_directory"):
        value = getattr(recording, key)
        check_header_value(value, f"[recording] {key}")
        if value and not value.startswith("/"):
            raise ConfigError(f"[recording] {key}: expected an absolute path, got {value!r}")
        if any(ch in value for ch in ",|\"'$()"):
            raise ConfigError(f"[recording] {key}: characters , | \" ' $ ( ) are not allowed in a recording path")
    pbx_root = recording.pbx_directory or recording.directory
    if pbx_root and not _PBX_RECORDING_ROOT.fullmatch(pbx_root):
        raise ConfigError(f"[recording] {'pbx_directory' if recording.pbx_directory else 'directory'}: "
                          f"{pbx_root!r}: the PBX is given recording paths of letters, digits, _ . / - only")
    if not recording.directory:
        raise ConfigError("[recording] directory: must not be empty")
    if settings.tasks.attempts < 1:
        raise ConfigError("[tasks] attempts: expected at least 1")
    if settings.calls.ring_timeout < 1:
        raise ConfigError("[calls] ring_timeout: expected at least 1 second")
