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

Who is believed. Anything on the host (or the LAN, if bound wider) can open a TCP
connection and send a header block, so a request is served only when
  - the peer address is in [monitor] agi_allow (default: loopback only);
  - the script path starts with the install-time secret ([monitor] agi_secret), which
    only Asterisk's dialplan knows (CTL_AGI = agi://host:port/<secret>);
  - agi_uniqueid names a channel the PBX announced to ctl over AMI, alive now, whose
    name is exactly agi_channel and is a PJSIP leg of a phone (not a trunk).
The caller is that channel's PJSIP endpoint, never a caller id, which a phone can set
to anything. Every read has a deadline (the header block, each command's reply), the
connections served at once are capped, and a failure is one warning line.
panoramisk's Request sends the AGI commands; the header block is read here with a
size and time limit (its own reader spins on a connection closed early).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import logging
from collections.abc import Callable, Iterable
from datetime import UTC, datetime

from panoramisk.fast_agi import Request
from sqlalchemy import select

from ctl.asterisk.actions import DTMF_MODES, spy_options
from ctl.asterisk.translate import endpoint_of
from ctl.config import Settings
from ctl.errors import ConfigError, Conflict, CtlError, Forbidden, NotFound
from ctl.live import LiveChannel, LiveChannels
from ctl.model import MonitorMode
from ctl.services import monitoring, recording
from ctl.store.engine import Store
from ctl.store.models import Call
from ctl.switch import Switch

log = logging.getLogger("ctl.agi")
HEADER_LIMIT = 16 * 1024
HEADER_TIMEOUT = 5.0
REPLY_TIMEOUT = 5.0
# How long the caller's channel may take to be announced over AMI after it reached us.
ANNOUNCE_TIMEOUT = 2.0
SCRIPTS = ("monitor", "mode", "record-pause")

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
    # Lines end at "\n" only: str.splitlines() would also break at U+2028, \x85, \x0b…, and a
    # value the phone sets (its caller id name) could then add a header of its own. The first
    # value of a repeated key is Asterisk's; a later one can only be smuggled in.
    for line in block.decode("utf-8", "replace").split("\n"):
        key, sep, value = line.removesuffix("\r").partition(": ")
        if sep and key not in headers:
            headers[key] = value
    return headers


def peer_allowed(peer: object, allowed: Iterable[str]) -> bool:
    """Whether a socket peer (host, port, …) is inside one of the allowed addresses/networks."""
    if not isinstance(peer, tuple) or not peer:
        return False
    try:
        address = ipaddress.ip_address(str(peer[0]).split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(network, strict=False) for network in allowed)


def script_of(path: str, secret: str) -> str | None:
    """`<secret>/monitor` → monitor; None when the secret is missing or wrong."""
    given, sep, script = path.partition("/")
    if not sep or not secret or not hmac.compare_digest(given.encode(), secret.encode()):
        return None
    return script


class Refused(Exception):
    """A connection ctl will not serve: logged as one line, then closed."""


class FeatureCodeServer:
    def __init__(self, store: Store, settings: Settings, switch: Switch, legs: Legs, live: LiveChannels) -> None:
        self.store = store
        self.switch = switch
        self.settings = settings
        self.node = switch.node
        self.legs = legs  # the live legs of a call, from ctl serve's CallTracker
        self.live = live  # every live channel, as the PBX announced them
        self.trunks = set(settings.asterisk.trunks)
        self._server: asyncio.Server | None = None
        self.active = 0  # connections being served
        self.refused = 0  # connections refused (peer, secret, channel, capacity)

    @property
    def port(self) -> int:
        assert self._server is not None
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self, port: int | None = None) -> None:
        host = self.settings.monitor.agi_host
        port = self.settings.monitor.agi_port if port is None else port
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
        peer = writer.get_extra_info("peername")
        if self.active >= self.settings.monitor.max_connections:
            self._refuse(peer, f"{self.active} connections already served ([monitor] max_connections)")
            writer.close()
            return
        self.active += 1
        try:
            if not peer_allowed(peer, self.settings.monitor.agi_allow):
                raise Refused("peer not in [monitor] agi_allow")
            headers = await read_headers(reader)
            if headers is None:
                raise Refused(f"no complete header block within {HEADER_TIMEOUT:g} s")
            script = script_of(headers.get("agi_network_script", ""), self.settings.monitor.agi_secret)
            if script is None:
                raise Refused("wrong or missing secret in the AGI path")
            if script not in SCRIPTS:
                raise Refused(f"unknown script {script[:40]!r}")
            request = Request(app=None, headers=headers, reader=reader, writer=writer)
            if script == "monitor":
                await self._monitor(request)
            elif script == "mode":
                await self._mode(request)
            else:
                await self._record_pause(request)
        except Refused as refusal:
            self._refuse(peer, str(refusal))
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError) as error:
            log.warning("FastAGI connection dropped: %s", type(error).__name__,
                        extra={"fields": {"peer": _peer_text(peer)}})
        except Exception as error:  # a bug here must not take serve down, nor spill a traceback per call
            log.error("FastAGI request failed: %s: %s", type(error).__name__, error,
                      extra={"fields": {"peer": _peer_text(peer)}})
        finally:
            self.active -= 1
            writer.close()

    def _refuse(self, peer: object, why: str) -> None:
        self.refused += 1
        log.warning("FastAGI connection refused: %s", why, extra={"fields": {"peer": _peer_text(peer)}})

    async def _set(self, request: Request, name: str, value: str) -> None:
        await asyncio.wait_for(request.send_command(f"SET VARIABLE {name} {_quoted(value)}"), REPLY_TIMEOUT)

    async def _caller(self, headers: dict[str, str]) -> LiveChannel:
        """The calling phone's channel, as the PBX announced it — never as the request claims."""
        channel_id, name = headers.get("agi_uniqueid", ""), headers.get("agi_channel", "")
        channel = await self.live.wait_for(channel_id, ANNOUNCE_TIMEOUT) if channel_id else None
        if channel is None or channel.name != name:
            raise Refused(f"channel {name[:80]!r} ({channel_id[:64]!r}) is not a live channel of this PBX")
        endpoint = endpoint_of(channel.name)
        if not channel.name.startswith("PJSIP/") or endpoint is None or endpoint != channel.endpoint:
            raise Forbidden(f"channel {channel.name!r} is not a phone's PJSIP leg")
        if endpoint in self.trunks:
            raise Forbidden("a client's line cannot use feature codes")
        return channel

    async def _monitor(self, request: Request) -> None:
        headers = request.headers
        mode_text, operator_ext = headers.get("agi_arg_1", ""), headers.get("agi_arg_2", "")
        supervisor_ext = None
        try:
            caller = await self._caller(headers)
            supervisor_ext = caller.endpoint
            assert supervisor_ext is not None
            mode = monitoring.parse_mode(mode_text)
            approved = await asyncio.to_thread(self._approve, supervisor_ext, operator_ext, mode)
            target = monitoring.target_channel(approved, self.legs(approved.call_pbx_id))
            session_id = await asyncio.to_thread(monitoring.open_session, self.store, self.node, approved,
                                                 caller.channel_id, False, "feature_code")
        except CtlError as error:
            log.warning("monitor refused", extra={"fields": {"by": supervisor_ext, "operator": operator_ext[:32],
                                                             "mode": mode_text[:16], "reason": error.kind,
                                                             "detail": str(error), "source": "feature_code"}})
            # Commas would split the dialplan's Log() arguments.
            await self._set(request, "CTL_REFUSAL", f"{error.kind}: {error}".replace(",", ";"))
            return
        try:
            await self._set(request, "CTL_SPY_OPTIONS", spy_options(mode))
            await self._set(request, "CTL_SESSION", str(session_id))
            await self._set(request, "CTL_SPY_TARGET", target)  # last: its presence is the yes
        except BaseException:
            # The dialplan never heard the yes: the session must not hold the call.
            await asyncio.to_thread(monitoring.abandon_session, self.store, session_id, "feature_code_failed")
            raise

    def _approve(self, supervisor_ext: str, operator_ext: str, mode: MonitorMode) -> monitoring.Approved:
        with self.store.transaction() as session:
            return monitoring.approve(session, self.settings.monitor, supervisor_ext, operator_ext, mode)

    async def _mode(self, request: Request) -> None:
        mode = DTMF_MODES.get(request.headers.get("agi_arg_1", ""))
        if mode is None:
            return
        try:
            caller = await self._caller(request.headers)
            options = await asyncio.to_thread(self._switch_mode, caller.channel_id, mode)
        except CtlError as error:
            log.warning("mode change refused: %s", error,
                        extra={"fields": {"channel": request.headers.get("agi_channel", "")[:80]}})
            return
        if options is not None:
            await self._set(request, "CTL_SPY_OPTIONS", options)

    def _switch_mode(self, spy_channel_id: str, mode: MonitorMode) -> str | None:
        """Record the change and return the new ChanSpy options, or None to keep the mode."""
        with self.store.transaction() as session:
            changed = monitoring.accept_mode_change(session, self.settings.monitor, self.node, spy_channel_id, mode)
        return spy_options(mode) if changed else None

    async def _record_pause(self, request: Request) -> None:
        headers = request.headers
        caller: LiveChannel | None = None
        call_pbx_id = None
        try:
            caller = await self._caller(headers)
            # The dialplan names the call (its linkedid, which bridging may have changed since
            # the leg was created); the caller's own leg must be one of that call's live legs.
            call_pbx_id = headers.get("agi_arg_1", "") or caller.call_id
            if not any(name == caller.name for name, _ in self.legs(call_pbx_id)):
                raise Forbidden(f"{caller.endpoint} is not on call {call_pbx_id[:64]}")
            call_id, channel_id, muted = await asyncio.to_thread(self._pause_plan, call_pbx_id)
            await self.switch.record_mute(channel_id, muted)
            state = await asyncio.to_thread(self._paused, call_id, muted)
        except CtlError as error:
            log.warning("recording pause refused", extra={"fields": {"by": caller and caller.endpoint,
                                                                     "call": call_pbx_id,
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


def _peer_text(peer: object) -> str:
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)
