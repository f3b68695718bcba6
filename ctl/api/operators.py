"""/api/v1/operators"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from ctl.api.auth import Caller, caller
from ctl.api.schemas import OperatorOut, StatusChange, StatusOut
from ctl.config import Settings
from ctl.services.operators import set_status_by_hand
from ctl.services.visibility import check_sees, operator_visible, operators_visible
from ctl.store.engine import Store

router = APIRouter(prefix="/operators", tags=["operators"])
Who = Annotated[Caller, Depends(caller)]
Extension = Annotated[str, Path(pattern=r"^[0-9]{2,10}$", description="the person's extension")]


@router.get("", response_model=list[OperatorOut], summary="Operators, supervisors, admins and owners")
async def list_operators(request: Request, who: Who) -> list[OperatorOut]:
    store: Store = request.app.state.store

    def read() -> list[OperatorOut]:
        with store.transaction() as session:
            return [OperatorOut.model_validate(o) for o in operators_visible(session, *who.viewer)]
    return await asyncio.to_thread(read)


@router.get("/{extension}", response_model=OperatorOut, summary="One person")
async def get_operator(request: Request, who: Who, extension: Extension) -> OperatorOut:
    store: Store = request.app.state.store

    def read() -> OperatorOut:
        with store.transaction() as session:
            return OperatorOut.model_validate(operator_visible(session, *who.viewer, extension))
    return await asyncio.to_thread(read)


@router.put("/{extension}/status", response_model=StatusOut,
            summary="Set a status by hand: available, break or dnd (others' only for supervisors and admins)")
async def set_status(request: Request, who: Who, extension: Extension, body: StatusChange) -> dict[str, Any]:
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    by = who.acting(body.by)

    def write() -> dict[str, Any]:
        with store.transaction() as session:
            check_sees(*who.viewer, extension)
            person, changed = set_status_by_hand(session, settings.operators, extension, body.status, body.reason,
                                                 by, source=who.source)
            return {"extension": person.extension, "status": person.status, "reason": person.status_reason,
                    "since": person.status_changed_at, "changed": changed}
    return await asyncio.to_thread(write)
