"""/api/v1/recordings, and a call's recording file (HTTP Range, so a player can seek)."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import FileResponse

from ctl.api.auth import Caller, caller
from ctl.api.schemas import RecordingOut
from ctl.services.recording import exportable
from ctl.services.visibility import check_team, check_works_on_call
from ctl.store import queries
from ctl.store.engine import Store
from ctl.views import recording_row

router = APIRouter(tags=["recordings"])
Who = Annotated[Caller, Depends(caller)]


@router.get("/recordings", response_model=list[RecordingOut], summary="Recordings, newest first (the team)")
async def list_recordings(request: Request, who: Who, active: bool = False,
                          limit: Annotated[int, Query(ge=1, le=10_000)] = 50) -> list[dict[str, Any]]:
    store: Store = request.app.state.store
    check_team(who.viewer[0], "list recordings")

    def read() -> list[dict[str, Any]]:
        with store.transaction() as session:
            return [recording_row(r) for r in queries.recordings(session, active, limit)]
    return await asyncio.to_thread(read)


@router.get("/calls/{call_id}/recording.wav", response_class=FileResponse,
            responses={200: {"content": {"audio/wav": {}}, "description": "the WAV file"},
                       206: {"content": {"audio/wav": {}}, "description": "a byte range of it"}},
            summary="The call's recording, once complete (the team, or the call's operator)")
async def download(request: Request, who: Who, call_id: Annotated[int, Path(ge=1, le=2**31 - 1)]) -> FileResponse:
    store: Store = request.app.state.store

    def check() -> str:
        with store.transaction() as session:
            check_works_on_call(session, *who.viewer, call_id)
        path, _size = exportable(store, call_id)
        return str(path)
    path = await asyncio.to_thread(check)
    return FileResponse(path, media_type="audio/wav", filename=f"call-{call_id}.wav")
