"""Keeping the PBX's queues in step with people's statuses (`ctl serve`).

Only an available person takes queue calls: any other status pauses their phone in
every queue it is a member of, with the status's reason (lunch, forced logout…) or
its name (talking, wrap_up, offline…) as the pause reason the PBX shows.

The store is the truth and any process may change a status (the CLI, another
controller), so this compares the whole operators table with what it last told the
PBX, every tick, and sends only the differences; after every (re)connect it tells
the PBX everything again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select

from ctl import events as ev
from ctl.errors import SwitchError, ValidationError
from ctl.store.engine import Store
from ctl.store.models import Operator
from ctl.switch import Switch

log = logging.getLogger("ctl.queues")


@dataclass(frozen=True)
class QueueState:
    paused: bool
    reason: str | None


def desired_state(status: str, reason: str | None) -> QueueState:
    if status == "available":
        return QueueState(False, None)
    return QueueState(True, reason or status)


class QueueSync:
    def __init__(self, store: Store, switch: Switch, handles: Callable[[str], bool] | None = None) -> None:
        self.store = store
        self.switch = switch
        # Which dial strings are phones of this PBX (with two PBXs, each syncs its own).
        self.handles = handles or (lambda dial: True)
        self._told: dict[str, QueueState] = {}  # interface → what the PBX was last told
        self._lock = asyncio.Lock()

    async def handle(self, event: ev.Event) -> None:
        if isinstance(event, ev.SwitchConnected):
            self._told.clear()
            await self.tick()
        elif isinstance(event, ev.SwitchDisconnected):
            self._told.clear()

    def _wanted(self) -> dict[str, tuple[str, QueueState]]:
        with self.store.transaction() as session:
            rows = session.execute(select(Operator.extension, Operator.dial_string, Operator.status,
                                          Operator.status_reason)).all()
        return {dial: (extension, desired_state(status, reason)) for extension, dial, status, reason in rows
                if self.handles(dial)}

    async def tick(self) -> None:
        if not self.switch.connected:
            return
        async with self._lock:
            wanted = await asyncio.to_thread(self._wanted)
            for interface, (extension, state) in wanted.items():
                if self._told.get(interface) == state:
                    continue
                try:
                    member = await self.switch.queue_pause(interface, state.paused, state.reason)
                except ValidationError as error:  # a dial string that is no device (e.g. Local/…)
                    log.debug("not a queue interface: %s", error)
                    self._told[interface] = state
                    continue
                except SwitchError as error:
                    log.warning("queue pause not applied, will retry: %s", error,
                                extra={"fields": {"operator": extension}})
                    return
                self._told[interface] = state
                if member:
                    log.info("queue member %s", "paused" if state.paused else "unpaused",
                             extra={"fields": {"operator": extension, "interface": interface,
                                               "reason": state.reason}})
