"""/api/v1/calls"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from ctl.api.auth import Caller, caller
from ctl.api.schemas import CallDetail, CallOut
from ctl.services.visibility import call_visible, calls_visible
from ctl.store.engine import Store
from ctl.views import call_card_row, call_row

router = APIRouter(prefix="/calls", tags=["calls"])
Who = Annotated[Caller, Depends(caller)]
CallId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.get("", response_model=list[CallOut], summary="Calls, newest first (an operator sees their own)")
async def list_calls(request: Request, who: Who,
                     state: Annotated[Literal["active"] | None, Query(description="active: not yet ended")] = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 50) -> list[dict[str, Any]]:
    store: Store = request.app.state.store

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return [call_row(c) for c in calls_visible(session, *who.viewer, state == "active", limit)]
    return await asyncio.to_thread(read)


@router.get("/{call_id}", response_model=CallDetail, summary="One call, with its recording")
async def get_call(request: Request, who: Who, call_id: CallId) -> dict[str, Any]:
    store: Store = request.app.state.store

    def read() -> dict[str, Any]:
        with store.transaction() as session:
            return call_card_row(*call_visible(session, *who.viewer, call_id))
    return await asyncio.to_thread(read)
