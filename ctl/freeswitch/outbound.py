"""Feature codes on FreeSWITCH: the dialplan hands the supervisor's call to `ctl serve`.

dialplan/freeswitch/ctl-monitor.xml answers *222/*223/*224<ext> by setting
`ctl_monitor_mode` and `ctl_monitor_operator` and running `socket <host>:<port> async full`:
FreeSWITCH connects here (outbound ESL), ctl says `connect` and receives the channel's
data, checks the same rules as everywhere else (roles, the operator in a call, one
monitor per call) and only then tells the channel to eavesdrop on the operator's exact
leg. Anything unexpected — a refusal, a missing variable, the store down, a crash
here — hangs the supervisor's call up: the code fails closed.

Who is believed: a connection is served only from an address in [freeswitch]
outbound_allow (loopback by default), carrying the dialplan's `ctl_token` (the
install-time [freeswitch] outbound_secret), for a channel the inbound event socket
announced to ctl — alive now, with exactly that name, a sofia leg of a phone. The
caller is that leg's directory user (`variable_user_name`, which must agree with the
leg ctl follows), never a caller id, which a phone can set to anything. Connections
served at once are capped ([monitor] max_connections); a failure is one warning line.
During the session the supervisor's digits 4/5/6 (listen/whisper/barge) are bound with
bind_digit_action (eavesdrop's own DTMF handling is off) and applied only if the role
allows the mode.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable
from urllib.parse import unquote

from ctl.asterisk.actions import DTMF_MODES
from ctl.asterisk.agi import ANNOUNCE_TIMEOUT, peer_allowed
from ctl.config import Settings
from ctl.errors import ConfigError, CtlError, Forbidden
from ctl.freeswitch import commands
from ctl.freeswitch.frames import FrameError, Message, MessageReader, encode_command, parse_plain_event
from ctl.freeswitch.switch import FreeswitchSwitch
from ctl.live import LiveChannel, LiveChannels
from ctl.model import MonitorMode
from ctl.services import monitoring
from ctl.store.engine import Store
from ctl.validation import check_extension

log = logging.getLogger("ctl.freeswitch.outbound")
CONNECT_TIMEOUT = 5.0
DIGIT_VARIABLE = "ctl_monitor_digit"
Legs = Callable[[str], list[tuple[str, str | None]]]


class OutboundSession:
    """One supervisor's call, as the socket application hands it over."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.messages = MessageReader()
        self.pending: list[Message] = []

    async def next_message(self, timeout: float | None = None) -> Message | None:
        while not self.pending:
            try:
                data = await asyncio.wait_for(self.reader.read(65536), timeout)
            except TimeoutError:
                return None
            if not data:
                return None
            self.pending.extend(self.messages.feed(data))
        return self.pending.pop(0)

    async def command(self, command: str, headers: dict[str, str] | None = None) -> Message | None:
        """Send a command and return its reply, keeping events that arrive first for later."""
        self.writer.write(encode_command(command, headers))
        await self.writer.drain()
        held: list[Message] = []
        while True:
            message = await self.next_message(CONNECT_TIMEOUT)
            if message is None:
                self.pending[:0] = held
                return None
            if message.content_type == "command/reply":
                self.pending[:0] = held
                return message
            held.append(message)

    async def execute(self, application: str, argument: str = "") -> None:
        headers = {"call-command": "execute", "execute-app-name": application}
        if argument:
            headers["execute-app-arg"] = argument
        await self.command("sendmsg", headers)

    async def hangup(self, cause: str = "CALL_REJECTED") -> None:
        await self.command("sendmsg", {"call-command": "hangup", "hangup-cause": cause})


class Refused(Exception):
    """A connection ctl will not serve: one warning line, then the call is hung up."""


class OutboundFeatureCodes:
    def __init__(self, store: Store, settings: Settings, switch: FreeswitchSwitch, legs: Legs,
                 live: LiveChannels) -> None:
        self.store = store
        self.settings = settings
        self.switch = switch
        self.node = switch.node
        self.legs = legs  # the live legs of a call, from ctl serve's CallTracker
        self.live = live  # every live channel, as the inbound event socket announced them
        self.trunks = set(settings.freeswitch.trunks)
        self._server: asyncio.Server | None = None
        self.active = 0
        self.refused = 0

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, port: int | None = None) -> None:
        host = self.settings.freeswitch.outbound_host
        chosen = self.settings.freeswitch.outbound_port if port is None else port
        try:
            self._server = await asyncio.start_server(self._handle, host, chosen)
        except OSError as error:
            raise ConfigError(f"[freeswitch] cannot listen for feature codes on {host}:{chosen}: "
                              f"{(error.strerror or str(error)).lower()}") from None
        log.info("feature codes: outbound ESL listening", extra={"fields": {"host": host, "port": self.port}})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        if self.active >= self.settings.monitor.max_connections:
            self._refused(peer, f"{self.active} connections already served ([monitor] max_connections)")
            writer.close()
            return
        self.active += 1
        call = OutboundSession(reader, writer)
        try:
            if not peer_allowed(peer, self.settings.freeswitch.outbound_allow):
                raise Refused("peer not in [freeswitch] outbound_allow")
            reply = await call.command("connect")
            if reply is None:
                raise Refused(f"no channel data within {CONNECT_TIMEOUT:g} s")
            # The reply to connect is the channel's data, values URL-encoded like an event's.
            channel = {key: unquote(value) for key, value in reply.headers.items()}
            token = channel.get("variable_ctl_token", "")
            secret = self.settings.freeswitch.outbound_secret
            if not secret or not hmac.compare_digest(token.encode(), secret.encode()):
                raise Refused("wrong or missing ctl_token")
            await self._monitor(call, channel)
        except Refused as refusal:
            self._refused(peer, str(refusal))
            await self._refuse_quietly(call)
        except (FrameError, ConnectionError, CtlError, TimeoutError) as error:
            log.warning("feature code failed: %s", error or type(error).__name__)
            await self._refuse_quietly(call)
        except Exception as error:  # a bug here must not spill a traceback per call
            log.error("feature code failed: %s: %s", type(error).__name__, error)
            await self._refuse_quietly(call)
        finally:
            self.active -= 1
            writer.close()

    def _refused(self, peer: object, why: str) -> None:
        self.refused += 1
        log.warning("outbound ESL connection refused: %s", why, extra={"fields": {"peer": str(peer)}})

    async def _caller(self, channel: dict[str, str]) -> LiveChannel:
        """The supervisor's leg as the inbound event socket announced it, never as the connection claims."""
        uuid, name = channel.get("Unique-ID", ""), channel.get("Channel-Name", "")
        commands.uuid(uuid, "supervisor's channel")
        live = await self.live.wait_for(uuid, ANNOUNCE_TIMEOUT)
        if live is None or live.name != name:
            raise Refused(f"channel {name[:80]!r} ({uuid}) is not a live channel of this PBX")
        user = channel.get("variable_user_name")
        if not live.name.startswith("sofia/") or not user or live.endpoint != user:
            raise Forbidden(f"channel {live.name!r} is not an authenticated phone's leg")
        if user in self.trunks:
            raise Forbidden("a client's line cannot use feature codes")
        return live

    @staticmethod
    async def _refuse_quietly(call: OutboundSession) -> None:
        """Hang up without waiting for a reply: the stream may be what went wrong."""
        try:
            call.writer.write(encode_command("sendmsg", {"call-command": "hangup", "hangup-cause": "CALL_REJECTED"}))
            await call.writer.drain()
        except Exception:  # the line is gone already
            log.debug("could not hang up the refused call")

    async def _monitor(self, call: OutboundSession, channel: dict[str, str]) -> None:
        mode_text = channel.get("variable_ctl_monitor_mode", "")
        operator_ext = channel.get("variable_ctl_monitor_operator", "")
        supervisor_ext: str | None = None
        try:
            caller = await self._caller(channel)
            spy_uuid = caller.channel_id
            supervisor_ext = check_extension(caller.endpoint or "")
            mode = monitoring.parse_mode(mode_text)
            approved = await asyncio.to_thread(self._approve, supervisor_ext, operator_ext, mode)
            target = self.switch.channel_uuid(monitoring.target_channel(approved,
                                                                        self.legs(approved.call_pbx_id)))
            await asyncio.to_thread(monitoring.open_session, self.store, self.node, approved, spy_uuid, False,
                                    "feature_code")
        except CtlError as error:
            log.warning("monitor refused", extra={"fields": {"by": supervisor_ext, "operator": operator_ext[:32],
                                                             "mode": mode_text[:16], "reason": error.kind,
                                                             "detail": str(error), "source": "feature_code"}})
            await call.hangup()
            return
        await call.command("myevents")
        await call.command("event plain DTMF")
        for name, value in commands.spy_variables(mode):
            await call.execute("set", f"{name}={value}")
        # eavesdrop's own digits are off, and FreeSWITCH fires DTMF events only for digits an
        # application takes from the queue: bind 4/5/6 so each runs `set ctl_monitor_digit=N`
        # inline, whose CHANNEL_EXECUTE event tells ctl.
        for digit in DTMF_MODES:
            await call.execute("bind_digit_action", f"ctl,{digit},exec[i]:set,{DIGIT_VARIABLE}={digit}")
        await call.execute("answer")
        await call.execute("eavesdrop", target)
        await self._follow_digits(call, spy_uuid)

    def _approve(self, supervisor_ext: str, operator_ext: str, mode: MonitorMode) -> monitoring.Approved:
        with self.store.transaction() as session:
            return monitoring.approve(session, self.settings.monitor, supervisor_ext, operator_ext, mode)

    async def _follow_digits(self, call: OutboundSession, spy_uuid: str) -> None:
        """Until the supervisor hangs up: 4/5/6 change the mode if the role allows it."""
        while True:
            message = await call.next_message()
            if message is None or message.content_type == "text/disconnect-notice":
                return
            if message.content_type != "text/event-plain":
                continue
            event = parse_plain_event(message.body)
            if event.name == "CHANNEL_HANGUP_COMPLETE":
                return
            if event.name == "CHANNEL_EXECUTE_COMPLETE" and event.headers.get("Application") == "eavesdrop":
                return  # the operator's call ended: closing the socket lets the dialplan hang up
            mode = self._digit_mode(event.name, event.headers)
            if mode is None:
                continue
            changed = await asyncio.to_thread(self._change_mode, spy_uuid, mode)
            if changed:
                await self.switch.set_spy_mode(spy_uuid, mode)

    @staticmethod
    def _digit_mode(name: str, headers: dict[str, str]) -> MonitorMode | None:
        """A digit the supervisor pressed: the bound `set` running, or a DTMF event."""
        if name == "CHANNEL_EXECUTE" and headers.get("Application") == "set":
            variable, _, digit = headers.get("Application-Data", "").partition("=")
            return DTMF_MODES.get(digit) if variable == DIGIT_VARIABLE else None
        if name == "DTMF":
            return DTMF_MODES.get(headers.get("DTMF-Digit", ""))
        return None

    def _change_mode(self, spy_uuid: str, mode: MonitorMode) -> bool:
        with self.store.transaction() as session:
            return monitoring.accept_mode_change(session, self.settings.monitor, self.node, spy_uuid, mode)
