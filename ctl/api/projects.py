"""/api/v1/projects"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from ctl.api.auth import Caller, caller
from ctl.api.schemas import ProjectDetail, ProjectOut
from ctl.services.visibility import project_visible, projects_visible
from ctl.store.engine import Store
from ctl.views import project_row

router = APIRouter(prefix="/projects", tags=["projects"])
Who = Annotated[Caller, Depends(caller)]


@router.get("", response_model=list[ProjectOut], summary="Projects (an operator: their own)")
async def list_projects(request: Request, who: Who) -> list[dict[str, Any]]:
    store: Store = request.app.state.store

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return [project_row(p) for p in projects_visible(session, *who.viewer)]
    return await asyncio.to_thread(read)


@router.get("/{name}", response_model=ProjectDetail, summary="One project: script, result codes, members")
async def get_project(request: Request, who: Who, name: Annotated[str, Path(max_length=100)]) -> dict[str, Any]:
    store: Store = request.app.state.store

    def read() -> dict[str, Any]:
        with store.transaction() as session:
            return project_row(project_visible(session, *who.viewer, name), full=True)
    return await asyncio.to_thread(read)
