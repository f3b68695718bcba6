"""FreeswitchSwitch: the Switch protocol over FreeSWITCH's event socket.

One EslBridge (greenswitch on its own thread) per connection; run() makes a new one
after every loss, with exponential back-off. Events are translated in FreeSWITCH's
order and handed to subscribers from one task, so a slow or failing handler never
stalls the reader. Originates go out as `bgapi` with a Job-UUID chosen here: the
BACKGROUND_JOB that answers an originate which failed (the phone is not registered,
no route…) becomes OriginateFailed for the channel uuid ctl chose.
"""

from __future__ import annotations

import asyncio
import logging
import uuid as uuidlib
from datetime import UTC, datetime

from ctl import events as ev
from ctl.config import FreeswitchSettings
from ctl.dispatch import EventDispatch
from ctl.errors import ActionFailed, AuthenticationFailed, SwitchError, SwitchUnreachable
from ctl.freeswitch import commands
from ctl.freeswitch.bridge import EslBridge, Reply
from ctl.freeswitch.frames import EventData
from ctl.freeswitch.translate import CAUSES, MissingHeader, Translator, bridged_pairs, channels_from_json, event_time
from ctl.model import ChannelInfo, HangupCause, MonitorMode, OriginateRequest, RecordingOptions, SpyRequest
from ctl.reconnect import keep_connected
from ctl.switch import EventHandler
from ctl.validation import check_login_secret

log = logging.getLogger("ctl.freeswitch")
EVENTS = ("CHANNEL_CREATE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER CHANNEL_BRIDGE CHANNEL_UNBRIDGE "
          "CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE DTMF RECORD_START RECORD_STOP "
          "BACKGROUND_JOB CUSTOM sofia::register sofia::unregister sofia::expire sofia::sip_user_state")
HEARTBEAT_INTERVAL = 10.0
_Q850_NAMES = {cause: name for name, cause in CAUSES.items()}


def _now() -> datetime:
    return datetime.now(UTC)


class FreeswitchSwitch:
    def __init__(self, settings: FreeswitchSettings) -> None:
        self.settings = settings
        self.node = settings.node
        self._bridge: EslBridge | None = None
        self._translator = Translator(self.node, frozenset(settings.trunks))
        self._events = EventDispatch("ctl-esl-dispatch")
        self._closing = False
        self._jobs: dict[str, str] = {}  # Job-UUID → the channel uuid an originate asked for
        self._names: dict[str, str] = {}  # channel name → uuid (spy targets are named by channel)
        self._recordings: dict[str, str] = {}  # channel uuid → the file uuid_record writes

    # -- subscription and dispatch ---------------------------------------------------
    def subscribe(self, handler: EventHandler) -> None:
        self._events.subscribe(handler)

    def unsubscribe(self, handler: EventHandler) -> None:
        self._events.unsubscribe(handler)

    def _on_event(self, event: EventData) -> None:
        headers = event.headers
        if event.name == "BACKGROUND_JOB":
            self._job_done(headers, event.body or "")
            return
        if event.name == "CHANNEL_CREATE" and headers.get("Channel-Name") and headers.get("Unique-ID"):
            self._names[headers["Channel-Name"]] = headers["Unique-ID"]
        try:
            translated = self._translator.translate(headers)
        except MissingHeader as error:
            log.warning("dropped ESL event: %s", error)
            return
        if event.name == "CHANNEL_HANGUP_COMPLETE":
            channel = headers.get("Unique-ID", "")
            self._recordings.pop(channel, None)
            for name in [n for n, u in self._names.items() if u == channel]:
                del self._names[name]
        for item in translated:
            self._events.put(item)

    def _job_done(self, headers: dict[str, str], body: str) -> None:
        channel = self._jobs.pop(headers.get("Job-UUID", ""), None)
        if channel is None or not body.startswith("-ERR"):
            return
        reason = body.removeprefix("-ERR").strip() or "failed"
        cause = CAUSES.get(reason, HangupCause.FAILED)
        log.warning("originate failed", extra={"fields": {"channel": channel, "reason": reason}})
        self._events.put(ev.OriginateFailed(node=self.node, at=event_time(headers), channel_id=channel,
                                                  reason=reason.lower(), cause=cause))

    async def drain(self) -> None:
        """Wait until every event received so far has been handled (for tests and shutdown)."""
        await self._events.drain()

    # -- connection --------------------------------------------------------------------
    @property
    def connected(self) -> bool:
        return self._bridge is not None and self._bridge.connected

    async def connect(self) -> None:
        if not self.settings.host:
            raise SwitchUnreachable("no FreeSWITCH configured ([freeswitch] host / CTL_FREESWITCH_HOST)")
        check_login_secret(self.settings.password, "[freeswitch] password", "CTL_FREESWITCH_PASSWORD")
        self._events.start()
        bridge = EslBridge(self.settings.host, self.settings.port, self.settings.password, self._on_event,
                           connect_timeout=self.settings.connect_timeout,
                           command_timeout=self.settings.action_timeout, name=self.node)
        try:
            await bridge.connect()
        except AuthenticationFailed:
            raise AuthenticationFailed(f"FreeSWITCH at {self.settings.host}:{self.settings.port} refused the "
                                       "event socket password") from None
        self._bridge = bridge
        self._events.attach(bridge)  # a full event queue holds FreeSWITCH's events back in its socket
        try:
            await self._expect_ok(await bridge.send(f"event plain {EVENTS}"), "subscribe to events")
        except SwitchError:
            await bridge.close()
            raise
        self._translator.forget()
        log.info("connected to FreeSWITCH", extra={"fields": {"host": self.settings.host,
                                                               "port": self.settings.port}})
        self._events.put(ev.SwitchConnected(node=self.node, at=_now()))

    @property
    def closing(self) -> bool:
        return self._closing

    async def run(self) -> None:
        """Stay connected until close(); reconnect with exponential back-off and jitter."""
        self._closing = False
        await keep_connected(self, self.settings.reconnect_min, self.settings.reconnect_max, "FreeSWITCH")

    async def hold(self) -> str:
        bridge = self._bridge
        assert bridge is not None and bridge.lost is not None
        heartbeat = asyncio.get_running_loop().create_task(self._keepalive(bridge))
        try:
            return str(await bridge.lost)
        finally:
            heartbeat.cancel()

    async def lost(self, reason: str) -> None:
        self._events.put(ev.SwitchDisconnected(node=self.node, at=_now(), reason="connection lost"))
        if self._bridge is not None:
            await self._bridge.close()

    async def _keepalive(self, bridge: EslBridge) -> None:
        """A half-open TCP link shows only as unanswered commands: close it so run() reconnects."""
        while bridge.connected:
            await asyncio.sleep(HEARTBEAT_INTERVAL)
            try:
                await bridge.api("status")
            except SwitchError:
                await bridge.close()
                return

    async def close(self) -> None:
        self._closing = True
        if self._bridge is not None:
            await self._bridge.close()
        await self._events.stop()

    # -- sending -----------------------------------------------------------------------
    async def _send(self, command: str, headers: dict[str, str] | None = None) -> Reply:
        bridge = self._bridge
        if bridge is None or not bridge.connected:
            raise SwitchUnreachable(f"not connected to FreeSWITCH at {self.settings.host}:{self.settings.port}")
        return await bridge.send(command, headers)

    @staticmethod
    async def _expect_ok(reply: Reply, what: str) -> Reply:
        if not reply.ok:
            raise ActionFailed(f"FreeSWITCH refused to {what}: {reply.text.removeprefix('-ERR').strip()}")
        return reply

    async def _api_ok(self, command: str, what: str) -> Reply:
        return await self._expect_ok(await self._send(command), what)

    async def _background(self, command: str, channel_uuid: str, what: str) -> None:
        job = str(uuidlib.uuid4())
        self._jobs[job] = channel_uuid
        try:
            await self._expect_ok(await self._send(f"bgapi {command}", {"Job-UUID": job}), what)
        except SwitchError:
            self._jobs.pop(job, None)
            raise

    def channel_uuid(self, channel: str) -> str:
        """The uuid of a live channel, named as ctl's services name it (or already a uuid)."""
        return self._target_uuid(channel)

    def _target_uuid(self, channel: str) -> str:
        """A channel named by ctl's services (its name) or already by its uuid."""
        found = self._names.get(channel)
        if found is not None:
            return found
        if "/" not in channel:
            return channel
        raise ActionFailed(f"no live channel named {channel}")

    # -- operations --------------------------------------------------------------------
    async def originate(self, request: OriginateRequest) -> str:
        await self._background(commands.originate(request), request.channel_id, f"originate {request.channel}")
        return request.channel_id

    async def hangup(self, channel_id: str, cause: int = 16) -> None:
        name = _Q850_NAMES.get(HangupCause.from_q850(cause), "NORMAL_CLEARING")
        await self._api_ok(commands.hangup(channel_id, name), f"hang up {channel_id}")

    async def bridge(self, channel_id: str, other_channel_id: str) -> None:
        await self._api_ok(commands.bridge(channel_id, other_channel_id), "bridge the two channels")

    async def channels(self) -> list[ChannelInfo]:
        reply = await self._send("api show channels as json")
        # `show channels` has no bridge partner; `show calls` pairs each A-leg with its B-leg.
        calls = await self._send("api show calls as json")
        snapshot = channels_from_json(reply.text, self._translator.trunks, bridged_pairs(calls.text))
        for channel in snapshot:
            self._translator.learn(channel)
            self._names[channel.name] = channel.channel_id
        return snapshot

    async def device_available(self, dial_string: str) -> bool | None:
        technology, _, resource = dial_string.partition("/")
        if technology != "user" or not resource or "/" in resource:
            return None
        reply = await self._send(commands.sofia_contact(resource.partition("@")[0]))
        return not reply.text.startswith("error/")

    async def spy(self, request: SpyRequest) -> str:
        target = self._target_uuid(request.target_channel)
        await self._background(commands.spy(request, target), request.spy_channel_id,
                               f"ring the supervisor {request.supervisor_dial}")
        return request.spy_channel_id

    async def set_spy_mode(self, spy_channel_id: str, mode: MonitorMode) -> None:
        command, headers = commands.spy_mode_event(spy_channel_id, mode)
        await self._expect_ok(await self._send(command, headers), f"switch the session to {mode.value}")
        self._events.put(ev.SpyModeChanged(node=self.node, at=_now(), spy_channel_id=spy_channel_id,
                                                 mode=mode))

    async def spy_attach(self, spy_channel_id: str, target_channel: str, mode: MonitorMode) -> None:
        """A waiting spy leg of a following session eavesdrops on the operator's next leg."""
        target = self._target_uuid(target_channel)
        spy = commands.uuid(spy_channel_id)
        for name, value in commands.spy_variables(mode):
            await self._api_ok(f"api uuid_setvar {spy} {name} {value}", "prepare the spy leg")
        await self._api_ok(f"api uuid_transfer {spy} eavesdrop:{commands.uuid(target)} inline",
                           "attach the spy leg")

    async def record_start(self, channel_id: str, options: RecordingOptions) -> None:
        for command in commands.record_variables(channel_id, options):
            await self._api_ok(command, "prepare the recording")
        await self._api_ok(commands.remember_record_path(channel_id, options.path), "note the recording's path")
        await self._api_ok(commands.record(channel_id, "start", options.path), f"record {channel_id}")
        self._recordings[channel_id] = options.path

    async def _recording_path(self, channel_id: str) -> str:
        """The file ctl records `channel_id` to: known here if this process started it, else
        read back from the channel (the CLI pausing what ctl serve started)."""
        path = self._recordings.get(channel_id)
        if path is not None:
            return path
        reply = await self._send(commands.recalled_record_path(channel_id))
        found = reply.text.strip()  # the value itself; "_undef_" or "-ERR No such channel!" otherwise
        if not found.startswith("/"):
            raise ActionFailed(f"no recording of ctl's on channel {channel_id}: {found}")
        return found

    async def record_stop(self, channel_id: str) -> None:
        await self._api_ok(commands.record(channel_id, "stop", await self._recording_path(channel_id)),
                           f"stop recording {channel_id}")

    async def record_mute(self, channel_id: str, muted: bool) -> None:
        action = "mask" if muted else "unmask"
        await self._api_ok(commands.record(channel_id, action, await self._recording_path(channel_id)),
                           f"{action} the recording of {channel_id}")
        self._events.put(ev.RecordingMuted(node=self.node, at=_now(),
                                                 call_id=self._translator.call_of({"Unique-ID": channel_id}),
                                                 channel_id=channel_id, muted=muted))

    async def queue_pause(self, interface: str, paused: bool, reason: str | None = None) -> bool:
        """mod_callcenter agents are named like the extension; a FreeSWITCH without
        mod_callcenter, or an operator who is no agent, is in no queue (False)."""
        agent = interface.rpartition("/")[2]
        reply = await self._send(commands.callcenter_agent_status(agent, paused))
        if reply.ok:
            return True
        # "-ERR Agent not found!" is what FreeSWITCH 1.10.12's mod_callcenter answers (seen on a
        # real one); "invalid agent" and "command not found" are older texts / no mod_callcenter.
        text = reply.text.lower()
        if "agent not found" in text or "invalid agent" in text or "command not found" in text:
            return False
        raise ActionFailed(f"FreeSWITCH refused to set agent {agent}'s status: {reply.text}")
