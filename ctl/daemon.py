"""`ctl serve`: the composition root — settings → store → switch → services — and its life cycle."""

from __future__ import annotations

import asyncio
import logging
import signal
from datetime import UTC, datetime

from ctl.asterisk import AsteriskSwitch
from ctl.asterisk.agi import FeatureCodeServer
from ctl.config import Settings
from ctl.errors import SwitchUnreachable
from ctl.services.calls import CallTracker
from ctl.services.monitoring import MonitorTracker
from ctl.services.operators import StatusTracker
from ctl.services.queues import QueueSync
from ctl.services.recording import RecordingTracker
from ctl.services.tasks import TaskScheduler
from ctl.store.engine import Store, safe_url

log = logging.getLogger("ctl.serve")


async def serve(settings: Settings) -> None:
    store = Store(settings.database.url)
    switch = AsteriskSwitch(settings.asterisk, spy_context=settings.monitor.spy_context)
    tracker = CallTracker(store, switch, settings)
    monitors = MonitorTracker(store, switch, tracker.legs)
    recordings = RecordingTracker(store, switch, settings, tracker.leg_ids, tracker.state_of,
                                  tracker.bridge_of)
    # In this order for every event: a session's end reason and the recording
    # policy read the call's state.
    switch.subscribe(tracker.handle)
    switch.subscribe(monitors.handle)
    switch.subscribe(recordings.handle)
    statuses = StatusTracker(store, switch, settings.asterisk.trunks, settings.operators)
    queues = QueueSync(store, switch)
    tasks = TaskScheduler(store, switch, settings)
    switch.subscribe(statuses.handle)
    switch.subscribe(queues.handle)
    feature_codes = FeatureCodeServer(store, settings, switch, tracker.legs)
    await feature_codes.start()
    log.info("ctl serve starting", extra={"fields": {"store": safe_url(settings.database.url),
                                                     "asterisk": f"{settings.asterisk.host}:{settings.asterisk.port}",
                                                     "node": switch.node, "config": settings.source}})
    try:
        # A wrong secret will not fix itself: fail now. An Asterisk that is down
        # may come up: run() keeps trying with back-off.
        await switch.connect()
    except SwitchUnreachable as error:
        log.warning("%s; will keep trying", error)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    runner = loop.create_task(switch.run(), name="ctl-asterisk")
    stopper = loop.create_task(stop.wait())
    ticker = loop.create_task(_every_second(statuses, queues, tasks), name="ctl-ticker")
    try:
        done, _ = await asyncio.wait({runner, stopper, ticker}, return_when=asyncio.FIRST_COMPLETED)
        for finished in (runner, ticker):
            if finished in done:
                finished.result()  # re-raise what killed it
    finally:
        log.info("ctl serve stopping")
        await feature_codes.close()
        await switch.close()
        await recordings.wait_idle()
        for pending in (runner, stopper, ticker):
            pending.cancel()
        await asyncio.gather(runner, stopper, ticker, return_exceptions=True)
        store.dispose()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("ctl serve stopped")


async def _every_second(statuses: StatusTracker, queues: QueueSync, tasks: TaskScheduler) -> None:
    """Time-driven work: wrap-ups past their maximum, queue pauses set by other processes,
    task reminders and automatic callbacks."""
    while True:
        await asyncio.sleep(1.0)
        try:
            now = datetime.now(UTC)
            await asyncio.to_thread(statuses.tick, now)
            await queues.tick()
            await tasks.tick(now)
        except Exception:  # a store hiccup must not stop serve: next second tries again
            log.exception("periodic work failed")
