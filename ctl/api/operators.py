"""/api/v1/operators"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from ctl.api.auth import Caller, caller
from ctl.api.schemas import OperatorOut
from ctl.services.visibility import operator_visible, operators_visible
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
