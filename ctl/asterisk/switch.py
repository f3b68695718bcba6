"""AsteriskSwitch: the Switch protocol over AMI, with panoramisk.

panoramisk gives the action/reply matching (an Action is a Future keyed by
ActionID) and event dispatch. Three of its behaviours are replaced here:
- reading: bytes are split into messages before decoding (ctl.asterisk.frames);
- connection life: ctl owns connect/login/reconnect (exponential back-off), and
  actions pending when the link drops fail at once instead of being re-sent after
  a reconnect (a re-sent Originate would place a second call);
- waiting: every action has a timeout (panoramisk can wait forever, issue #54).

Events are translated in order and handed to subscribers from one task, so a
slow or failing handler never stalls or kills the reader. Each message is read on
its own guard: a malformed one (a duplicated Event header made panoramisk raise
inside data_received and drop the link) is counted, logged on one line and skipped.
The event queue is bounded (ctl.dispatch): when it fills, the socket is not read
until the handlers catch up, and the messages already read wait in the splitter.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from panoramisk import Manager
from panoramisk.actions import Action as PanoramiskAction
from panoramisk.ami_protocol import AMIProtocol
from panoramisk.message import Message

from ctl import events as ev
from ctl.asterisk import actions
from ctl.asterisk.frames import FrameSplitter, FrameTooLarge
from ctl.asterisk.translate import MissingHeader, channel_info, translate
from ctl.config import AsteriskSettings
from ctl.dispatch import DispatchStats, EventDispatch
from ctl.errors import ActionFailed, ActionTimeout, AuthenticationFailed, SwitchError, SwitchUnreachable
from ctl.model import ChannelInfo, MonitorMode, OriginateRequest, RecordingOptions, SpyRequest
from ctl.reconnect import keep_connected
from ctl.switch import EventHandler
from ctl.validation import check_login_secret

log = logging.getLogger("ctl.asterisk")
PING_INTERVAL = 10.0


def _now() -> datetime:
    return datetime.now(UTC)


class MalformedMessage(Exception):
    pass


# Headers panoramisk reads as one string: given twice it makes a list of them and fails on it.
SINGLE_HEADERS = ("Event", "Response", "ActionID", "CommandID")


def parse_message(block: str) -> Message | None:
    """One AMI message (text from FrameSplitter) as panoramisk's Message; None for one that is
    neither an event nor a response (panoramisk ignores those too)."""
    message = Message.from_line(block)
    if message is None:
        return None
    for key in SINGLE_HEADERS:
        value = message.get(key)
        if isinstance(value, list):
            raise MalformedMessage(f"{key} header given {len(value)} times")
    return message


def _excerpt(block: str) -> str:
    return repr(block.partition("\r\n")[0][:80])


class _Protocol(AMIProtocol):  # type: ignore[misc]
    """panoramisk's protocol, reading whole messages split on bytes, each on its own guard.

    Messages are handled one at a time; when the event queue asks to wait (pause_reading),
    the rest stay in the splitter and the socket is not read until resume_reading."""

    def __init__(self, manager: Any = None, events: EventDispatch | None = None) -> None:
        super().__init__()
        self._manager = manager
        self.events = events

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        if self._manager is not None:  # before the first byte: an event may come with the greeting
            self.factory = self._manager
            self.log = self._manager.log
        self.encoding = "utf-8"
        self.version: str | None = None
        self.splitter = FrameSplitter()
        self.paused = False
        self.lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.events is not None:
            self.events.attach(self)

    def data_received(self, data: bytes) -> None:
        self.splitter.push(data)
        self._read()

    def _read(self) -> None:
        """Handle the whole messages read so far, until there are none or the event queue is full."""
        while not self.paused:
            try:
                block = self.splitter.pop()
            except FrameTooLarge as error:
                log.error("closing AMI connection: %s", error)
                self.transport.close()
                return
            if self.splitter.greeting and not self.version:
                self.version = self.splitter.greeting.partition("/")[2]
            if block is None:
                return
            self._handle(block)

    def _handle(self, block: str) -> None:
        try:
            message = parse_message(block)
            if message is not None:
                self.handle_message(message)
        except Exception as error:  # one bad message must not take the connection (and the rest) down
            if self.events is not None:
                self.events.stats.malformed += 1
            reason = str(error) if isinstance(error, MalformedMessage) else f"{type(error).__name__}: {error}"
            log.warning("skipped a malformed AMI message: %s; it began %s", " ".join(reason.split()),
                        _excerpt(block))

    def pause_reading(self) -> None:
        self.paused = True
        self.transport.pause_reading()  # a no-op on a closing transport

    def resume_reading(self) -> None:
        self.paused = False
        self._read()
        if self.paused:
            return
        if self.closed:
            self._set_lost()  # the link dropped while messages waited here: they are all handled now
        else:
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail_pending(SwitchUnreachable("connection to Asterisk lost"))
        self.closed = True
        if not self.paused:  # else resume_reading reports it, after the messages read before the loss
            self._set_lost()

    def _set_lost(self) -> None:
        if not self.lost.done():
            self.lost.set_result(None)

    def close(self) -> None:
        self._fail_pending(SwitchUnreachable("connection to Asterisk closed"))
        if not self.closed:
            self.closed = True
            self.transport.close()

    def _fail_pending(self, error: SwitchError) -> None:
        for action in list(self.responses.values()):
            if not action.future.done():
                action.future.set_exception(error)
        self.responses.clear()


class _Manager(Manager):  # type: ignore[misc]
    """panoramisk's Manager minus its own connect/reconnect/ping, which AsteriskSwitch owns."""

    def connection_lost(self, exc: Any) -> None:  # called on a Shutdown event by AMIProtocol
        if self.protocol is not None:
            self.protocol.close()


class AsteriskSwitch:
    def __init__(self, settings: AsteriskSettings, spy_context: str = "ctl-monitor-spy") -> None:
        self.settings = settings
        self.spy_context = spy_context
        self.node = settings.node
        self._manager = _Manager(host=settings.host, port=settings.port, encoding="utf-8",
                                 log=logging.getLogger("ctl.asterisk.panoramisk"))
        self._manager.register_event("*", self._on_message)
        self._protocol: _Protocol | None = None
        self._events = EventDispatch("ctl-ami-dispatch")
        self._names: dict[str, str] = {}  # Uniqueid → channel name, for actions that need names
        # Uniqueid → futures of record_start calls waiting for that channel's MixMonitorStart.
        self._recording_waiters: dict[str, list[asyncio.Future[None]]] = {}
        self._recordings_root: str | None = None  # the dialplan's CTL_RECORDINGS, read once per connection
        self._closing = False

    # -- subscription and dispatch ---------------------------------------------------
    def subscribe(self, handler: EventHandler) -> None:
        self._events.subscribe(handler)

    def unsubscribe(self, handler: EventHandler) -> None:
        self._events.unsubscribe(handler)

    def _on_message(self, manager: Any, message: Mapping[str, object]) -> None:
        name = message.get("Event")
        uniqueid = message.get("Uniqueid")
        if name == "Newchannel" and isinstance(uniqueid, str):
            self._names[uniqueid] = str(message.get("Channel"))
        elif name == "Rename" and isinstance(uniqueid, str):
            self._names[uniqueid] = str(message.get("Newname"))
        elif name == "MixMonitorStart" and isinstance(uniqueid, str):
            # Resolved here, as the message is read, not from the dispatch queue: the handler
            # waiting in record_start may be the one the queue is waiting for.
            for waiter in self._recording_waiters.pop(uniqueid, []):
                if not waiter.done():
                    waiter.set_result(None)
        try:
            translated = translate(message, self.node, _now())
        except MissingHeader as error:
            log.warning("dropped AMI event: %s", error)
            return
        if name == "Hangup" and isinstance(uniqueid, str):
            self._names.pop(uniqueid, None)
        for event in translated:
            self._events.put(event)

    async def drain(self) -> None:
        """Wait until every event received so far has been handled (for tests and shutdown)."""
        await self._events.drain()

    @property
    def stats(self) -> DispatchStats:
        """Events delayed by back-pressure, dropped, and AMI messages skipped as malformed."""
        return self._events.stats

    # -- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._protocol is not None and not self._protocol.closed

    async def connect(self) -> None:
        check_login_secret(self.settings.secret, "[asterisk] secret",
                           "CTL_ASTERISK_SECRET; install-conf wrote it to the secrets file as ami=…")
        self._events.start()
        host, port = self.settings.host, self.settings.port
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Protocol(self._manager, self._events), host, port),
                self.settings.connect_timeout)
        except TimeoutError:
            raise SwitchUnreachable(f"cannot reach Asterisk AMI at {host}:{port}: "
                                    f"no answer within {self.settings.connect_timeout:g} s") from None
        except OSError as error:
            reason = os.strerror(error.errno) if error.errno else str(error)
            raise SwitchUnreachable(f"cannot reach Asterisk AMI at {host}:{port}: {reason.lower()}") from None
        self._manager.loop = loop
        self._manager.protocol = protocol
        self._protocol = protocol
        try:
            reply = await self._send(actions.login(self.settings.username, self.settings.secret),
                                     timeout=self.settings.connect_timeout)
        except ActionTimeout:
            protocol.close()
            raise SwitchUnreachable(f"{host}:{port} did not answer the AMI login within "
                                    f"{self.settings.connect_timeout:g} s (is it an Asterisk manager port?)") from None
        except ActionFailed as error:
            protocol.close()
            raise AuthenticationFailed(f"Asterisk at {host}:{port} refused the AMI login of user "
                                       f"{self.settings.username!r}: {error.args[0]}") from None
        log.info("connected to Asterisk AMI", extra={"fields": {"host": host, "port": port,
                                                                 "version": protocol.version,
                                                                 "message": str(reply.get("Message"))}})
        self._recordings_root = None
        self._events.put(ev.SwitchConnected(node=self.node, at=_now()))

    @property
    def closing(self) -> bool:
        return self._closing

    async def run(self) -> None:
        """Stay connected until close(); reconnect with exponential back-off and jitter."""
        self._closing = False
        await keep_connected(self, self.settings.reconnect_min, self.settings.reconnect_max, "AMI")

    async def hold(self) -> str:
        assert self._protocol is not None
        pinger = asyncio.get_running_loop().create_task(self._keepalive())
        try:
            await self._protocol.lost
        finally:
            pinger.cancel()
        return "connection lost"

    async def lost(self, reason: str) -> None:
        self._events.put(ev.SwitchDisconnected(node=self.node, at=_now(), reason=reason))

    async def _keepalive(self) -> None:
        """A half-open TCP link shows only as unanswered pings: close it so run() reconnects."""
        while self.connected:
            await asyncio.sleep(PING_INTERVAL)
            episodes = self._events.stats.delayed
            try:
                await self._send(actions.ping())
            except SwitchError as error:
                held = self._events.paused or self._events.stats.delayed != episodes
                if isinstance(error, ActionTimeout) and held:
                    continue  # not read rather than not answered: the reply waits behind unread events
                if self._protocol is not None:
                    self._protocol.close()
                    if not self._protocol.lost.done():
                        self._protocol.lost.set_result(None)
                return

    async def close(self) -> None:
        self._closing = True
        if self._protocol is not None:
            self._protocol.close()
            if not self._protocol.lost.done():
                self._protocol.lost.set_result(None)
        await self._events.stop()

    # -- sending -----------------------------------------------------------------------
    async def _send(self, fields: actions.Action, timeout: float | None = None,
                    as_list: bool | None = False) -> Any:
        if not self.connected:
            raise SwitchUnreachable(f"not connected to Asterisk at {self.settings.host}:{self.settings.port}")
        assert self._protocol is not None
        action = PanoramiskAction(fields, as_list=as_list)
        future = self._protocol.send(action, as_list=as_list)
        wait = self.settings.action_timeout if timeout is None else timeout
        try:
            reply = await asyncio.wait_for(asyncio.shield(future), wait)
        except TimeoutError:
            self._protocol.responses.pop(action.id, None)
            raise ActionTimeout(f"Asterisk did not answer {fields['Action']} within {wait:g} s") from None
        first = reply[0] if isinstance(reply, list) else reply
        if first.get("Response") in ("Error", "Failure", "Fail"):
            raise ActionFailed(str(first.get("Message") or "error"))
        return reply

    def _name(self, channel_id: str) -> str:
        try:
            return self._names[channel_id]
        except KeyError:
            raise ActionFailed(f"no live channel with id {channel_id}") from None

    # -- operations --------------------------------------------------------------------
    async def originate(self, request: OriginateRequest) -> str:
        try:
            await self._send(actions.originate(request))
        except ActionFailed as error:
            raise ActionFailed(f"Asterisk refused to originate {request.channel}: {error.args[0]}") from None
        return request.channel_id

    async def hangup(self, channel_id: str, cause: int = 16) -> None:
        await self._send(actions.hangup(self._name(channel_id), cause))

    async def bridge(self, channel_id: str, other_channel_id: str) -> None:
        await self._send(actions.bridge(self._name(channel_id), self._name(other_channel_id)))

    async def channels(self) -> list[ChannelInfo]:
        reply = await self._send(actions.core_show_channels(), as_list=None)
        messages = reply if isinstance(reply, list) else [reply]
        snapshot = []
        for message in messages:
            if message.get("Event") == "CoreShowChannel":
                try:
                    info = channel_info(message)
                except MissingHeader as error:
                    log.warning("skipped a channel in the snapshot: %s", error)
                    continue
                snapshot.append(info)
                self._names[info.channel_id] = info.name
        return snapshot

    async def device_available(self, dial_string: str) -> bool | None:
        technology, _, resource = dial_string.partition("/")
        if technology.upper() != "PJSIP" or not resource or "@" in resource or "/" in resource:
            return None
        reply = await self._send(actions.device_state(f"PJSIP/{resource}"))
        state = str(reply.get("Value") or "")
        if not state:
            return None
        return state not in ("UNAVAILABLE", "INVALID")

    async def spy(self, request: SpyRequest) -> str:
        await self._send(actions.spy(request, self.spy_context))
        return request.spy_channel_id

    async def set_spy_mode(self, spy_channel_id: str, mode: MonitorMode) -> None:
        """New options on the spy leg, then send it back into the spy context: ChanSpy
        restarts on the same channel in the new mode and the supervisor's call stays up."""
        name = self._name(spy_channel_id)
        # A recording order running on the spy leg (the supervisor's track) must finish first:
        # the Redirect would end its Gosub before MixMonitor starts.
        pending = [waiter for waiter in self._recording_waiters.get(spy_channel_id, []) if not waiter.done()]
        if pending:
            await asyncio.wait(pending, timeout=self.settings.action_timeout)
        await self._send(actions.set_variable(name, "CTL_SPY_OPTIONS", actions.spy_options(mode)))
        await self._send(actions.redirect(name, self.spy_context))

    async def spy_attach(self, spy_channel_id: str, target_channel: str, mode: MonitorMode) -> None:
        """Point a live spy leg (a following session, waiting) at a new exact channel."""
        name = self._name(spy_channel_id)
        await self._send(actions.set_variable(name, "CTL_SPY_TARGET", target_channel))
        await self.set_spy_mode(spy_channel_id, mode)

    async def record_start(self, channel_id: str, options: RecordingOptions) -> None:
        """Order the recording on the leg (two channel variables), then make the leg "press"
        the trigger digit: its feature code (or, on a spy leg, ChanSpy's exit digit) runs the
        dialplan that checks the order and runs MixMonitor. AMI's MixMonitor action would need
        the `system` right, which also runs shell commands. Returns once MixMonitor started."""
        name = self._name(channel_id)
        order = actions.recording_order(options)
        await self._check_recordings_directory(options.path)
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._recording_waiters.setdefault(channel_id, []).append(waiter)
        try:
            for variable, value in order:
                await self._send(actions.set_variable(name, variable, value))
            await self._send(actions.receive_digit(name, actions.RECORD_TRIGGER_DIGIT))
            await asyncio.wait_for(waiter, self.settings.action_timeout)
        except TimeoutError:
            await self._cancel_order(name)
            raise ActionFailed(f"the recording did not start on {name} within {self.settings.action_timeout:g} s "
                               "(is the leg in a call, with ctl's dialplan and features.conf?)") from None
        except SwitchError:
            await self._cancel_order(name)
            raise
        finally:
            waiters = self._recording_waiters.get(channel_id, [])
            if waiter in waiters:
                waiters.remove(waiter)
            if not waiters:
                self._recording_waiters.pop(channel_id, None)

    async def _check_recordings_directory(self, path: str) -> None:
        """The dialplan records only below its CTL_RECORDINGS: say so plainly, rather than
        wait for a recording it refuses to start."""
        if self._recordings_root is None:
            reply = await self._send(actions.global_variable("CTL_RECORDINGS"))
            self._recordings_root = str(reply.get("Value") or "").rstrip("/")
        root = self._recordings_root
        if root and not path.startswith(root + "/"):
            raise ActionFailed(f"Asterisk's dialplan records only below {root} (CTL_RECORDINGS in "
                               f"extensions.conf), not {path}: make [recording] pbx_directory the same")

    async def _cancel_order(self, name: str) -> None:
        """An order that did not run must not run later, when the party presses the digit."""
        try:
            await self._send(actions.set_variable(name, "CTL_REC_FILE", ""))
        except SwitchError:
            pass  # the leg is gone, or so is the link: no order is left to run

    async def record_stop(self, channel_id: str) -> None:
        await self._send(actions.stop_mix_monitor(self._name(channel_id)))

    async def record_mute(self, channel_id: str, muted: bool) -> None:
        await self._send(actions.mix_monitor_mute(self._name(channel_id), muted))

    async def queue_pause(self, interface: str, paused: bool, reason: str | None = None) -> bool:
        try:
            await self._send(actions.queue_pause(interface, paused, reason))
        except ActionFailed as error:
            if "not found" in str(error).lower():  # "Interface not found": a member of no queue
                return False
            raise
        return True
