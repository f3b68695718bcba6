"""`ctl serve`: the composition root — settings → store → switch → services — and its life cycle."""

from __future__ import annotations

import asyncio
import logging
import signal

from ctl.asterisk import AsteriskSwitch
from ctl.asterisk.agi import FeatureCodeServer
from ctl.config import Settings
from ctl.errors import SwitchUnreachable
from ctl.services.calls import CallTracker
from ctl.services.monitoring import MonitorTracker
from ctl.services.operators import StatusTracker
from ctl.services.recording import RecordingTracker
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
    switch.subscribe(StatusTracker(store, settings.asterisk.trunks).handle)
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
    try:
        done, _ = await asyncio.wait({runner, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if runner in done:
            runner.result()  # re-raise what killed it
    finally:
        log.info("ctl serve stopping")
        await feature_codes.close()
        await switch.close()
        await recordings.wait_idle()
        for task in (runner, stopper):
            task.cancel()
        await asyncio.gather(runner, stopper, return_exceptions=True)
        store.dispose()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        log.info("ctl serve stopped")
