"""Feature codes on FreeSWITCH: the dialplan hands the supervisor's call to `ctl serve`.

dialplan/freeswitch/ctl-monitor.xml answers *222/*223/*224<ext> by setting
`ctl_monitor_mode` and `ctl_monitor_operator` and running `socket <host>:<port> async full`:
FreeSWITCH connects here (outbound ESL), ctl says `connect` and receives the channel's
data, checks the same rules as everywhere else (roles, the operator in a call, one
monitor per call) and only then tells the channel to eavesdrop on the operator's exact
leg. Anything unexpected — a refusal, a missing variable, the store down, a crash
here — hangs the supervisor's call up: the code fails closed.

The caller is the directory user FreeSWITCH authenticated (`variable_user_name`), never
a caller id, which a phone can set to anything. During the session the supervisor's
digits 4/5/6 (listen/whisper/barge) are bound with bind_digit_action (eavesdrop's own
DTMF handling is off) and applied only if the role allows the mode.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from urllib.parse import unquote

from ctl.asterisk.actions import DTMF_MODES
from ctl.config import Settings
from ctl.errors import ConfigError, CtlError, Forbidden
from ctl.freeswitch import commands
from ctl.freeswitch.frames import FrameError, Message, MessageReader, encode_command, parse_plain_event
from ctl.freeswitch.switch import FreeswitchSwitch
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


class OutboundFeatureCodes:
    def __init__(self, store: Store, settings: Settings, switch: FreeswitchSwitch, legs: Legs) -> None:
        self.store = store
        self.settings = settings
        self.switch = switch
        self.node = switch.node
        self.legs = legs  # the live legs of a call, from ctl serve's CallTracker
        self._server: asyncio.Server | None = None

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
        call = OutboundSession(reader, writer)
        try:
            reply = await call.command("connect")
            if reply is None:
                log.warning("feature code: FreeSWITCH sent no channel data")
                return
            # The reply to connect is the channel's data, values URL-encoded like an event's.
            channel = {key: unquote(value) for key, value in reply.headers.items()}
            await self._monitor(call, channel)
        except (FrameError, ConnectionError, CtlError) as error:
            log.warning("feature code failed: %s", error)
            await self._refuse_quietly(call)
        except Exception:
            log.exception("feature code failed")
            await self._refuse_quietly(call)
        finally:
            writer.close()

    @staticmethod
    async def _refuse_quietly(call: OutboundSession) -> None:
        """Hang up without waiting for a reply: the stream may be what went wrong."""
        try:
            call.writer.write(encode_command("sendmsg", {"call-command": "hangup", "hangup-cause": "CALL_REJECTED"}))
            await call.writer.drain()
        except Exception:  # the line is gone already
            log.debug("could not hang up the refused call")

    async def _monitor(self, call: OutboundSession, channel: dict[str, str]) -> None:
        spy_uuid = channel.get("Unique-ID", "")
        mode_text = channel.get("variable_ctl_monitor_mode", "")
        operator_ext = channel.get("variable_ctl_monitor_operator", "")
        supervisor_ext: str | None = None
        try:
            commands.uuid(spy_uuid, "supervisor's channel")
            user = channel.get("variable_user_name")
            if not user:
                raise Forbidden(f"channel {channel.get('Channel-Name')!r} is not an authenticated phone")
            supervisor_ext = check_extension(user)
            mode = monitoring.parse_mode(mode_text)
            approved = await asyncio.to_thread(self._approve, supervisor_ext, operator_ext, mode)
            target = self.switch.channel_uuid(monitoring.target_channel(approved,
                                                                        self.legs(approved.call_pbx_id)))
            await asyncio.to_thread(monitoring.open_session, self.store, self.node, approved, spy_uuid, False,
                                    "feature_code")
        except CtlError as error:
            log.warning("monitor refused", extra={"fields": {"by": supervisor_ext, "operator": operator_ext,
                                                             "mode": mode_text, "reason": error.kind,
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
            return monitoring.change_mode_from_phone(session, self.settings.monitor, self.node, spy_uuid, mode)
