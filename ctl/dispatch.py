"""Handing a switch's events to its subscribers: in the PBX's order, from one task.

Both adapters put translated events here as they read them; one task calls the
handlers one event at a time, so a slow handler never stalls the reader and a
failing one never stops the flow (it is logged and the next handler runs).

The queue is bounded (a burst of 20,000 events once held reconciliation up for
30 s and doubled memory). A reader that can wait attaches itself (`attach`):
when the queue reaches PAUSE_AT it is told to stop reading — the PBX's events
wait in the socket, not here — and to go on once the handlers have worked the
queue down to RESUME_AT. Nothing is dropped then: the AMI connection pauses its
transport; the FreeSWITCH bridge holds greenswitch's event processor on its own thread
(and greenswitch's bounded queue stops its reader). An event put into a full queue by
a producer that cannot wait is dropped and counted. Each episode is one log line.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass
from typing import Protocol

from ctl.events import Event
from ctl.switch import EventHandler

log = logging.getLogger("ctl.dispatch")

# Events waiting for the handlers, at most: at the 1.5 ms an event of that burst, 15 s of work.
MAX_QUEUE = 10_000
# Room kept above the pause mark for the events of the message being read when the reader
# is paused, and for the connect/disconnect notices the adapters add themselves.
HEADROOM = 100
PAUSE_AT = MAX_QUEUE - HEADROOM
# Reading resumes when the queue is down to this: the socket is not flipped on and off per event.
RESUME_AT = MAX_QUEUE // 2


class Reader(Protocol):
    """A source of events that can stop reading for a while (the AMI connection)."""

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...


@dataclass
class DispatchStats:
    delayed: int = 0  # back-pressure episodes: the queue filled and the reader waited
    dropped: int = 0  # events refused by a full queue (from a producer that cannot wait)
    malformed: int = 0  # messages from the PBX skipped as unreadable (counted by the adapter)


class EventDispatch:
    def __init__(self, name: str, limit: int = MAX_QUEUE, pause_at: int | None = None,
                 resume_at: int | None = None) -> None:
        self.name = name
        self.limit = limit
        self.pause_at = min(limit, PAUSE_AT if pause_at is None else pause_at)
        self.resume_at = min(self.pause_at, RESUME_AT if resume_at is None else resume_at)
        self.stats = DispatchStats()
        self.paused = False  # the reader is told to wait
        self._handlers: list[EventHandler] = []
        self._queue: deque[Event] = deque()
        self._ready = asyncio.Event()
        self._reader: Reader | None = None
        self._paused_since = 0.0
        self._dropping = False
        self._task: asyncio.Task[None] | None = None

    def subscribe(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def unsubscribe(self, handler: EventHandler) -> None:
        if handler in self._handlers:
            self._handlers.remove(handler)

    def attach(self, reader: Reader | None) -> None:
        """The reader to pause while the queue is full (one connection at a time)."""
        self._reader = reader
        if reader is not None and self.paused:
            reader.pause_reading()

    def __len__(self) -> int:
        return len(self._queue)

    def put(self, event: Event) -> bool:
        """Queue an event; False when the queue is full and the event was dropped."""
        if len(self._queue) >= self.limit:
            self.stats.dropped += 1
            if not self._dropping:
                self._dropping = True
                log.warning("event queue full (%d): dropping events until it drains to %d",
                            self.limit, self.resume_at, extra={"fields": {"dispatch": self.name}})
            return False
        self._queue.append(event)
        self._ready.set()
        if len(self._queue) >= self.pause_at and not self.paused and self._reader is not None:
            self._pause()
        return True

    def _pause(self) -> None:
        assert self._reader is not None
        self.paused = True
        self._paused_since = time.monotonic()
        self.stats.delayed += 1
        log.warning("event queue at %d: reading paused until the handlers work it down to %d",
                    len(self._queue), self.resume_at, extra={"fields": {"dispatch": self.name}})
        self._reader.pause_reading()

    def _resume(self) -> None:
        self._dropping = False
        if not self.paused:
            return
        self.paused = False
        log.info("event queue down to %d: reading resumed after %.1f s", len(self._queue),
                 time.monotonic() - self._paused_since, extra={"fields": {"dispatch": self.name}})
        if self._reader is not None:
            try:
                self._reader.resume_reading()  # may put the messages it held back at once
            except Exception as error:  # the dispatch task must outlive a broken reader
                log.error("resuming the reader failed: %s: %s", type(error).__name__, error)

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def _run(self) -> None:
        while True:
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            event = self._queue.popleft()
            if len(self._queue) <= self.resume_at and (self.paused or self._dropping):
                self._resume()
            for handler in list(self._handlers):
                try:
                    result = handler(event)
                    if asyncio.iscoroutine(result):
                        await result
                except Exception:  # a failing handler must never stop the event flow
                    log.exception("event handler failed on %s", type(event).__name__)
            await asyncio.sleep(0)  # synchronous handlers: let the reader and actions' replies in

    async def drain(self) -> None:
        """Wait until every event received so far has been handled (for tests and shutdown)."""
        while self._queue or self.paused:
            await asyncio.sleep(0.005)
        await asyncio.sleep(0)

    async def stop(self) -> None:
        if self._task is not None:
            await self.drain()
            self._task.cancel()
            self._task = None
