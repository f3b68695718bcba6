"""/api/v1/tasks and /api/v1/blacklist (reads)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request

from ctl.api.auth import Caller, caller
from ctl.api.schemas import BlacklistedOut, TaskOut
from ctl.services.operators import blacklist_list
from ctl.services.visibility import check_team, tasks_visible
from ctl.store.engine import Store
from ctl.views import task_row

router = APIRouter(tags=["tasks"])
Who = Annotated[Caller, Depends(caller)]
TaskState = Literal["open", "pending", "placing", "done", "overdue", "cancelled"]


@router.get("/tasks", response_model=list[TaskOut], summary="Callbacks by due time (an operator: theirs)")
async def list_tasks(request: Request, who: Who, state: TaskState | None = None,
                     limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> list[dict[str, Any]]:
    store: Store = request.app.state.store

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return [task_row(t) for t in tasks_visible(session, *who.viewer, state, limit)]
    return await asyncio.to_thread(read)


@router.get("/blacklist", response_model=list[BlacklistedOut], summary="Numbers no originate path dials (the team)")
async def blacklist(request: Request, who: Who) -> list[dict[str, Any]]:
    store: Store = request.app.state.store
    check_team(who.viewer[0], "read the blacklist")

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return [{"number": r.number, "reason": r.reason, "added_at": r.added_at} for r in blacklist_list(session)]
    return await asyncio.to_thread(read)
