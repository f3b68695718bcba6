"""/api/v1/monitor/sessions: listen, whisper, barge — one monitor per call, the CLI's rules."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request, status
from fastapi.encoders import jsonable_encoder

from ctl.api.auth import Caller, caller
from ctl.api.pbx import switch_of_node
from ctl.api.schemas import ModeChange, MonitorRequest, MonitorSessionOut, MonitorStarted, SessionStopped
from ctl.config import Settings
from ctl.errors import ValidationError
from ctl.pbx import node_of_request
from ctl.services.monitoring import change_monitor_mode, monitor_log, parse_mode, start_monitoring, stop_monitoring
from ctl.services.visibility import check_controls_session, check_team, monitor_sessions_visible
from ctl.store.engine import Store
from ctl.switch import Switch
from ctl.views import monitor_log_rows, session_row

router = APIRouter(prefix="/monitor/sessions", tags=["monitor"])
log_router = APIRouter(prefix="/monitor", tags=["monitor"])
Who = Annotated[Caller, Depends(caller)]
SessionId = Annotated[int, Path(ge=1, le=2**31 - 1)]


@router.post("", status_code=status.HTTP_201_CREATED, response_model=MonitorStarted,
             summary="Ring the supervisor; on answer, listen, whisper or barge on the operator's call")
async def start(request: Request, who: Who, body: MonitorRequest) -> dict[str, Any]:
    supervisor = who.acting(body.by)
    if supervisor is None:
        raise ValidationError("by: the supervisor is required on the local socket")
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings
    node = await asyncio.to_thread(node_of_request, store, settings, [body.operator, supervisor])
    session_id = await start_monitoring(store, switch_of_node(request, node), settings, parse_mode(body.mode),
                                        body.operator, supervisor, body.follow, source=who.source)
    return {"session": session_id, "mode": body.mode, "operator": body.operator, "by": supervisor,
            "follow": body.follow}


@router.get("", response_model=list[MonitorSessionOut], summary="Monitor sessions, newest first")
async def list_sessions(request: Request, who: Who, active: bool = False,
                        limit: Annotated[int, Query(ge=1, le=10_000)] = 50) -> list[dict[str, Any]]:
    store: Store = request.app.state.store

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return [session_row(r) for r in monitor_sessions_visible(session, who.viewer[0], active, limit)]
    return await asyncio.to_thread(read)


async def _controlled(request: Request, who: Who, session_id: int) -> tuple[Store, Switch]:
    store: Store = request.app.state.store
    settings: Settings = request.app.state.settings

    def check() -> str | None:
        with store.transaction() as session:
            check_controls_session(session, *who.viewer, session_id)
        return node_of_request(store, settings, session_id=session_id)
    return store, switch_of_node(request, await asyncio.to_thread(check))


@router.patch("/{session_id}", response_model=ModeChange, summary="Switch a live session's mode")
async def change_mode(request: Request, who: Who, session_id: SessionId, body: ModeChange) -> dict[str, Any]:
    store, switch = await _controlled(request, who, session_id)
    await change_monitor_mode(store, switch, request.app.state.settings, session_id, parse_mode(body.mode),
                              source=who.source)
    return {"mode": body.mode}


@router.delete("/{session_id}", response_model=SessionStopped, summary="End a session: the supervisor's leg hangs up")
async def stop(request: Request, who: Who, session_id: SessionId) -> dict[str, Any]:
    store, switch = await _controlled(request, who, session_id)
    stopped = await stop_monitoring(store, switch, session_id, None)
    return {"session": stopped, "end_reason": "stopped"}


@log_router.get("/log", summary="Every session with its mode changes, and every spy or recording ctl did not start "
                             "(unauthorised_monitor), oldest first (the team)")
async def log(request: Request, who: Who, operator: Annotated[str | None, Query(max_length=16)] = None,
              by: Annotated[str | None, Query(max_length=16)] = None,
              since: Annotated[str | None, Query(max_length=40, description="ISO date or time")] = None
              ) -> list[dict[str, Any]]:
    store: Store = request.app.state.store
    check_team(who.viewer[0], "read the monitoring log")

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return monitor_log_rows(*monitor_log(session, operator, by, since))
    return jsonable_encoder(await asyncio.to_thread(read))  # type: ignore[no-any-return]
