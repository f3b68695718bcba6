"""FastAGI server of `ctl serve`: the feature-code dialplan asks here before any spy starts.

Routes (dialplan/asterisk/ctl-monitor.conf):
    monitor,<mode>,<ext>  may the calling phone monitor operator <ext> in <mode>?
                          yes: sets CTL_SPY_TARGET (the exact channel), CTL_SPY_OPTIONS,
                          CTL_SESSION; no: sets CTL_REFUSAL and the dialplan refuses.
    mode,<digit>          a digit pressed during a session: 4 listen, 5 whisper, 6 barge,
                          allowed only if the supervisor's role allows the new mode.
    record-pause,<linkedid>  an operator's in-call code (dialplan/asterisk/ctl-recording.conf):
                          pause the call's recording, or resume it; sets CTL_RECORD_STATE
                          to paused or recording, or CTL_REFUSAL.

The caller is identified by the PJSIP endpoint of its channel (agi_channel), never
by caller id, which a phone can set to anything. panoramisk's Request sends the
AGI commands; the header block is read here with a size and time limit (its own
reader spins on a connection closed early).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from panoramisk.fast_agi import Request
from sqlalchemy import select

from ctl.asterisk.actions import DTMF_MODES, spy_options
from ctl.asterisk.translate import endpoint_of
from ctl.config import Settings
from ctl.errors import ConfigError, Conflict, CtlError, Forbidden, NotFound
from ctl.model import MonitorMode
from ctl.services import monitoring, recording
from ctl.store.engine import Store
from ctl.store.models import Call
from ctl.switch import Switch

log = logging.getLogger("ctl.agi")
HEADER_LIMIT = 16 * 1024
HEADER_TIMEOUT = 5.0

Legs = Callable[[str], list[tuple[str, str | None]]]


def _quoted(value: str) -> str:
    """An AGI argument in double quotes: no quotes, backslashes or control characters inside."""
    return '"' + "".join(ch if ch.isprintable() and ch not in '"\\' else " " for ch in value) + '"'


async def read_headers(reader: asyncio.StreamReader) -> dict[str, str] | None:
    try:
        block = await asyncio.wait_for(reader.readuntil(b"\n\n"), HEADER_TIMEOUT)
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ConnectionError):
        return None
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").splitlines():
        key, sep, value = line.partition(": ")
        if sep:
            headers[key] = value
    return headers


class FeatureCodeServer:
    def __init__(self, store: Store, settings: Settings, switch: Switch, legs: Legs) -> None:
        self.store = store
        self.switch = switch
        self.settings = settings
        self.node = switch.node
        self.legs = legs  # the live legs of a call, from ctl serve's CallTracker
        self._server: asyncio.Server | None = None

    async def start(self) -> None:
        host, port = self.settings.monitor.agi_host, self.settings.monitor.agi_port
        try:
            self._server = await asyncio.start_server(self._handle, host, port, limit=HEADER_LIMIT)
        except OSError as error:
            raise ConfigError(f"[monitor] cannot listen for feature codes on {host}:{port}: "
                              f"{(error.strerror or str(error)).lower()}") from None
        log.info("feature codes: FastAGI listening", extra={"fields": {"host": host, "port": port}})

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            headers = await read_headers(reader)
            if headers is None:
                return
            request = Request(app=None, headers=headers, reader=reader, writer=writer)
            script = headers.get("agi_network_script", "")
            if script == "monitor":
                await self._monitor(request)
            elif script == "mode":
                await self._mode(request)
            elif script == "record-pause":
                await self._record_pause(request)
            else:
                log.warning("FastAGI request for unknown script %r", script)
        except Exception:
            log.exception("FastAGI request failed")
        finally:
            writer.close()

    async def _set(self, request: Request, name: str, value: str) -> None:
        await request.send_command(f"SET VARIABLE {name} {_quoted(value)}")

    def _caller(self, headers: dict[str, str]) -> str:
        extension = endpoint_of(headers.get("agi_channel", ""))
        if extension is None:
            raise Forbidden(f"channel {headers.get('agi_channel')!r} is not a known phone")
        return extension

    async def _monitor(self, request: Request) -> None:
        headers = request.headers
        mode_text, operator_ext = headers.get("agi_arg_1", ""), headers.get("agi_arg_2", "")
        supervisor_ext = None
        try:
            supervisor_ext = self._caller(headers)
            mode = monitoring.parse_mode(mode_text)
            approved = await asyncio.to_thread(self._approve, supervisor_ext, operator_ext, mode)
            target = monitoring.target_channel(approved, self.legs(approved.call_pbx_id))
            session_id = await asyncio.to_thread(monitoring.open_session, self.store, self.node, approved,
                                                 headers.get("agi_uniqueid", ""), False, "feature_code")
        except CtlError as error:
            log.warning("monitor refused", extra={"fields": {"by": supervisor_ext, "operator": operator_ext,
                                                             "mode": mode_text, "reason": error.kind,
                                                             "detail": str(error), "source": "feature_code"}})
            # Commas would split the dialplan's Log() arguments.
            await self._set(request, "CTL_REFUSAL", f"{error.kind}: {error}".replace(",", ";"))
            return
        await self._set(request, "CTL_SPY_OPTIONS", spy_options(mode))
        await self._set(request, "CTL_SESSION", str(session_id))
        await self._set(request, "CTL_SPY_TARGET", target)  # last: its presence is the yes

    def _approve(self, supervisor_ext: str, operator_ext: str, mode: MonitorMode) -> monitoring.Approved:
        with self.store.transaction() as session:
            return monitoring.approve(session, self.settings.monitor, supervisor_ext, operator_ext, mode)

    async def _mode(self, request: Request) -> None:
        digit = request.headers.get("agi_arg_1", "")
        mode = DTMF_MODES.get(digit)
        if mode is None:
            return
        options = await asyncio.to_thread(self._switch_mode, request.headers.get("agi_uniqueid", ""), mode)
        if options is not None:
            await self._set(request, "CTL_SPY_OPTIONS", options)

    def _switch_mode(self, spy_channel_id: str, mode: MonitorMode) -> str | None:
        """Record the change and return the new ChanSpy options, or None to keep the mode."""
        with self.store.transaction() as session:
            changed = monitoring.change_mode_from_phone(session, self.settings.monitor, self.node, spy_channel_id,
                                                        mode)
        return spy_options(mode) if changed else None

    async def _record_pause(self, request: Request) -> None:
        headers = request.headers
        call_pbx_id = headers.get("agi_arg_1", "")
        extension = None
        try:
            extension = self._caller(headers)
            if extension in self.settings.asterisk.trunks:
                raise Forbidden("a client's phone cannot pause the recording")
            if not any(endpoint == extension for _, endpoint in self.legs(call_pbx_id)):
                raise Forbidden(f"{extension} is not on call {call_pbx_id}")
            call_id, channel_id, muted = await asyncio.to_thread(self._pause_plan, call_pbx_id)
            await self.switch.record_mute(channel_id, muted)
            state = await asyncio.to_thread(self._paused, call_id, muted)
        except CtlError as error:
            log.warning("recording pause refused", extra={"fields": {"by": extension, "call": call_pbx_id,
                                                                     "reason": error.kind, "detail": str(error)}})
            await self._set(request, "CTL_REFUSAL", f"{error.kind}: {error}".replace(",", ";"))
            return
        await self._set(request, "CTL_RECORD_STATE", state)

    def _pause_plan(self, call_pbx_id: str) -> tuple[int, str, bool]:
        """The call, the recorded leg, and whether to mute (recording) or unmute (paused)."""
        with self.store.transaction() as session:
            call = session.scalar(select(Call).where(Call.node == self.node, Call.pbx_call_id == call_pbx_id))
            if call is None:
                raise NotFound(f"no call {call_pbx_id}")
            row = recording.recording_of(session, call.id)
            if row.state not in ("recording", "paused"):
                raise Conflict(f"call {call.id}'s recording is {row.state}")
            return call.id, row.channel_id, row.state == "recording"

    def _paused(self, call_id: int, muted: bool) -> str:
        with self.store.transaction() as session:
            row = recording.recording_of(session, call_id)
            recording.mark_paused(session, row, muted, datetime.now(UTC), "feature_code")
            session.refresh(row)
            return row.state
