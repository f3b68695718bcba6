"""/api/v1/events: the live event stream (Server-Sent Events) from the outbox.

Each event carries its id; a client that reconnects with `Last-Event-ID` gets every event
after it, even across a restart of serve (they are rows in the store). A new client starts at
the end, or at `?after=ID`. An operator's token sees only events about them.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from ctl.api.auth import Caller, caller
from ctl.errors import Unauthenticated, ValidationError
from ctl.services import events as outbox
from ctl.services.events import Event
from ctl.store.engine import Store

router = APIRouter(tags=["events"])
Who = Annotated[Caller, Depends(caller)]
POLL_SECONDS = 0.1
KEEPALIVE_SECONDS = 15.0
# Longer than any of ctl's transactions: a row after a gap older than this means the gap is a
# rollback (PostgreSQL's sequences do not give ids back) or a purge.
HOLE_WAIT = timedelta(seconds=10)


def _start(store: Store, last_event_id: str | None, after: int | None) -> int:
    if last_event_id is not None:
        if not last_event_id.isdigit() or len(last_event_id) > 18:
            raise ValidationError(f"Last-Event-ID: expected an event id, got {last_event_id[:40]!r}")
        return int(last_event_id)
    if after is not None:
        return after
    with store.transaction() as session:
        return outbox.last_event_id(session)


def _format(event: Event) -> str:
    return f"id: {event.id}\nevent: {event.kind}\ndata: {json.dumps(event.as_json(), ensure_ascii=False)}\n\n"


@router.get("/events", summary="Live events (text/event-stream); reconnect with Last-Event-ID",
            response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}, "description": "the stream"}})
async def stream(request: Request, who: Who,
                 last_event_id: Annotated[str | None, Header(alias="Last-Event-ID")] = None,
                 after: Annotated[int | None, Query(ge=0, le=2**62)] = None) -> StreamingResponse:
    store: Store = request.app.state.store
    start = await asyncio.to_thread(_start, store, last_event_id, after)
    role, extension = who.viewer

    def read(last: int) -> tuple[int, list[Event]]:
        with store.transaction() as session:
            safe = outbox.safe_point(last, outbox.committed_ids(session, last), datetime.now(UTC), HOLE_WAIT)
            if safe == last:
                return last, []
            return safe, [e for e in outbox.events_after(session, last, role, extension, limit=500) if e.id <= safe]

    async def still_allowed() -> bool:
        if who.local:
            return True
        try:
            again = await caller(request)
        except Unauthenticated:
            return False
        return again.viewer == who.viewer  # a changed role: reconnect under the new one

    async def events() -> AsyncIterator[str]:
        last = start
        yield "retry: 2000\n: ctl events\n\n"
        quiet = 0.0
        while not await request.is_disconnected():
            last, batch = await asyncio.to_thread(read, last)
            for event in batch:
                yield _format(event)
            if batch:
                quiet = 0.0
                continue
            await asyncio.sleep(POLL_SECONDS)
            quiet += POLL_SECONDS
            if quiet >= KEEPALIVE_SECONDS:
                quiet = 0.0
                if not await still_allowed():
                    return  # a token revoked or expired meanwhile: the stream ends
                yield ": keepalive\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
