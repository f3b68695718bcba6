"""`ctl serve`: the composition root — settings → store → switch → services — and its life cycle."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from ctl import events as ev
from ctl.api.app import create_app
from ctl.api.server import ApiServer
from ctl.asterisk.agi import FeatureCodeServer
from ctl.config import Settings
from ctl.errors import ConfigError, SwitchUnreachable
from ctl.freeswitch.outbound import OutboundFeatureCodes
from ctl.freeswitch.switch import FreeswitchSwitch
from ctl.live import LiveChannels
from ctl.pbx import check_feature_code_secret, configured_nodes, handled_by, make_switch, trunks_of
from ctl.services.calls import CallTracker
from ctl.services.events import pbx_link, purge_events
from ctl.services.monitoring import MonitorTracker
from ctl.services.operators import StatusTracker
from ctl.services.queues import QueueSync
from ctl.services.recording import RecordingTracker
from ctl.services.tasks import TaskScheduler
from ctl.services.webhooks import WebhookSender
from ctl.store.engine import Store, safe_url
from ctl.switch import Switch

log = logging.getLogger("ctl.serve")


@dataclass
class _Stack:
    """Everything that follows one PBX: its adapter, the trackers it feeds, its feature codes."""

    switch: Switch
    tracker: CallTracker
    monitors: MonitorTracker
    recordings: RecordingTracker
    statuses: StatusTracker
    queues: QueueSync
    feature_codes: FeatureCodeServer | OutboundFeatureCodes


def _stack(store: Store, settings: Settings, switch: Switch) -> _Stack:
    live = LiveChannels(switch)
    tracker = CallTracker(store, switch, settings)

    def names(channel_id: str) -> str | None:
        channel = live.get(channel_id)
        return None if channel is None else channel.name

    monitors = MonitorTracker(store, switch, tracker.legs, settings.monitor, names)
    recordings = RecordingTracker(store, switch, settings, tracker.leg_ids, tracker.state_of, tracker.bridge_of,
                                  names)
    # In this order for every event: a session's end reason and the recording
    # policy read the call's state.
    switch.subscribe(live.handle)  # first: the feature-code servers believe only what it holds
    switch.subscribe(tracker.handle)
    switch.subscribe(monitors.handle)
    switch.subscribe(recordings.handle)
    statuses = StatusTracker(store, switch, trunks_of(settings, switch.node), settings.operators)
    queues = QueueSync(store, switch, handled_by(settings, switch.node))
    switch.subscribe(statuses.handle)
    switch.subscribe(queues.handle)
    switch.subscribe(_link_events(store, switch.node))
    feature_codes: FeatureCodeServer | OutboundFeatureCodes
    if isinstance(switch, FreeswitchSwitch):
        feature_codes = OutboundFeatureCodes(store, settings, switch, tracker.legs, live)
    else:
        feature_codes = FeatureCodeServer(store, settings, switch, tracker.legs, live)
    return _Stack(switch, tracker, monitors, recordings, statuses, queues, feature_codes)


def _link_events(store: Store, node: str) -> Callable[[ev.Event], Awaitable[None]]:
    """pbx.connected / pbx.disconnected on the event stream."""
    async def handle(event: ev.Event) -> None:
        if isinstance(event, ev.SwitchConnected):
            await asyncio.to_thread(pbx_link, store, node, True)
        elif isinstance(event, ev.SwitchDisconnected):
            await asyncio.to_thread(pbx_link, store, node, False, event.reason)
    return handle


WILDCARD_HOSTS = ("", "0.0.0.0", "::", "[::]", "*")


def _warn_wildcard_binds(settings: Settings) -> None:
    """Servers bind to loopback by default; a wider bind is allowed but said out loud."""
    binds = [("[monitor] agi_host", settings.monitor.agi_host)]
    if settings.freeswitch.host:
        binds.append(("[freeswitch] outbound_host", settings.freeswitch.outbound_host))
    if settings.api.enabled:
        binds.append(("[api] host", settings.api.host))
    for where, host in binds:
        if host in WILDCARD_HOSTS:
            log.warning("%s = %r listens on every interface: anything that reaches it must also pass the "
                        "peer allowlist and the secret; prefer loopback or one address", where, host)


async def serve(settings: Settings) -> None:
    for node in configured_nodes(settings):
        check_feature_code_secret(settings, node)
    _warn_wildcard_binds(settings)
    store = Store(settings.database.url)
    stacks = [_stack(store, settings, make_switch(settings, node)) for node in configured_nodes(settings)]
    if not stacks:
        raise ConfigError("no PBX configured: set [asterisk] host or [freeswitch] host")
    first = stacks[0]
    tasks = TaskScheduler(store, first.switch, settings, [s.switch for s in stacks[1:]])
    started: list[_Stack] = []
    api = _api_server(settings, store, stacks)
    try:
        for stack in stacks:
            await stack.feature_codes.start()
            started.append(stack)
        if api is not None:
            await api.start()
    except BaseException:
        for stack in started:
            await stack.feature_codes.close()
        raise
    log.info("ctl serve starting", extra={"fields": {
        "store": safe_url(settings.database.url), "node": first.switch.node, "config": settings.source,
        "asterisk": f"{settings.asterisk.host}:{settings.asterisk.port}" if settings.asterisk.host else None,
        "freeswitch": f"{settings.freeswitch.host}:{settings.freeswitch.port}" if settings.freeswitch.host
        else None}})
    try:
        for stack in stacks:
            try:
                # A wrong secret will not fix itself: fail now. A PBX that is down may
                # come up: run() keeps trying with back-off.
                await stack.switch.connect()
            except SwitchUnreachable as error:
                log.warning("%s; will keep trying", error)
    except BaseException:  # the API socket and the feature-code servers must not outlive this
        if api is not None:
            await api.stop()
        for stack in started:
            await stack.feature_codes.close()
            await stack.switch.close()
        store.dispose()
        raise

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runners = [loop.create_task(stack.switch.run(), name=f"ctl-{stack.switch.node}") for stack in stacks]
    stopper = loop.create_task(stop.wait())
    ticker = loop.create_task(_every_second(stacks, tasks, store, settings), name="ctl-ticker")
    webhooks = WebhookSender(store, settings.webhooks)
    sender = loop.create_task(webhooks.run(), name="ctl-webhooks")
    try:
        done, _ = await asyncio.wait({*runners, stopper, ticker}, return_when=asyncio.FIRST_COMPLETED)
        for finished in (*runners, ticker):
            if finished in done:
                finished.result()  # re-raise what killed it
    finally:
        log.info("ctl serve stopping")
        if api is not None:
            await api.stop()
        for stack in stacks:
            await stack.feature_codes.close()
            await stack.switch.close()
            await stack.recordings.wait_idle()
        for pending in (*runners, stopper, ticker, sender):
            pending.cancel()
        await asyncio.gather(*runners, stopper, ticker, sender, return_exceptions=True)
        await webhooks.close()
        store.dispose()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("ctl serve stopped")


def _api_server(settings: Settings, store: Store, stacks: list[_Stack]) -> ApiServer | None:
    if not settings.api.enabled:
        return None
    return ApiServer(settings.api, create_app(store, settings, {stack.switch.node: stack.switch for stack in stacks}))


async def _every_second(stacks: list[_Stack], tasks: TaskScheduler, store: Store, settings: Settings) -> None:
    """Time-driven work: wrap-ups past their maximum, queue pauses set by other processes,
    task reminders and automatic callbacks; once an hour, events past their retention."""
    seconds = 0
    while True:
        await asyncio.sleep(1.0)
        seconds += 1
        try:
            now = datetime.now(UTC)
            if seconds % 3600 == 1:
                await asyncio.to_thread(_purge_events, store, now, settings.api.events_retention_days)
            for stack in stacks:
                await asyncio.to_thread(stack.statuses.tick, now)
                await asyncio.to_thread(stack.monitors.tick, now)
                await stack.queues.tick()
            await tasks.tick(now)
        except Exception:  # a store hiccup must not stop serve: next second tries again
            log.exception("periodic work failed")


def _purge_events(store: Store, now: datetime, days: int) -> None:
    with store.transaction() as session:
        purged = purge_events(session, now, days)
    if purged:
        log.info("events past their retention purged", extra={"fields": {"events": purged, "days": days}})
