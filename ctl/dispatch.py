"""Handing a switch's events to its subscribers: in the PBX's order, from one task.

Both adapters put translated events here as they read them; one task calls the
handlers one event at a time, so a slow handler never stalls the reader and a
failing one never stops the flow (it is logged and the next handler runs).
"""

from __future__ import annotations

import asyncio
import logging

from ctl.events import Event
from ctl.switch import EventHandler

log = logging.getLogger("ctl.dispatch")


class EventDispatch:
    def __init__(self, name: str) -> None:
        self.name = name
        self._handlers: list[EventHandler] = []
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def put(self, event: Event) -> None:
        self._queue.put_nowait(event)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            event = await self._queue.get()
            for handler in list(self._handlers):
                try:
                    result = handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # a failing handler must never stop the event flow
                    log.exception("event handler failed on %s", type(event).__name__)

    async def drain(self) -> None:
        """Wait until every event received so far has been handled (for tests and shutdown)."""
        while not self._queue.empty():
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

    async def stop(self) -> None:
        if self._task is not None:
            await self.drain()
            self._task.cancel()
            self._task = None
