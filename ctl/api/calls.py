"""/api/v1/calls"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request, status

from ctl.api.auth import Caller, caller
from ctl.api.pbx import switch_of_node
from ctl.api.schemas import (
    CallDetail,
    CallHungUp,
    CallOut,
    CallPlaced,
    CallRequest,
    CommentRequest,
    RecordingChanged,
    RecordingStarted,
    ResultRequest,
    ResultSaved,
    ReviewRequest,
)
from ctl.config import Settings
from ctl.errors import ValidationError
from ctl.pbx import node_of_request
from ctl.services.calls import (
    dial_client_of,
    dial_operator_of,
    hang_up_call,
    place_bridge_call,
    save_result,
    set_comment,
    set_review,
)
from ctl.services.recording import set_recording_paused, start_recording, stop_recording
from ctl.services.visibility import (
    call_visible,
    calls_visible,
    check_controls_recording,
    check_places_call,
    check_team,
    check_works_on_call,
)
from ctl.store.engine import Store
from ctl.switch import Switch
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


def _switch_for_call(request: Request, people: list[str] | None = None, call_id: int | None = None) -> Switch:
    settings: Settings = request.app.state.settings
    node = node_of_request(request.app.state.store, settings, people or [], call_id)
    return switch_of_node(request, node)


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CallPlaced,
             summary="Click-to-call: ring the operator, then dial the client and bridge them")
async def place(request: Request, who: Who, body: CallRequest) -> dict[str, Any]:
    store: Store = request.app.state.store
    check_places_call(*who.viewer, body.operator)
    switch = await asyncio.to_thread(_switch_for_call, request, [body.operator])
    placed = await place_bridge_call(store, switch, request.app.state.settings, body.operator, body.to, body.project)
    return {"id": placed.id, "pbx_call_id": placed.pbx_call_id, "operator": placed.operator,
            "client": placed.number, "state": "created"}


async def _recording_switch(request: Request, who: Caller, call_id: int, pause_only: bool) -> Switch:
    store: Store = request.app.state.store

    def check() -> Switch:
        with store.transaction() as session:
            check_controls_recording(session, *who.viewer, call_id, pause_only)
        return _switch_for_call(request, call_id=call_id)
    return await asyncio.to_thread(check)


@router.post("/{call_id}/recording", response_model=RecordingStarted, summary="Record the call now")
async def record(request: Request, who: Who, call_id: CallId) -> dict[str, Any]:
    switch = await _recording_switch(request, who, call_id, pause_only=False)
    result = await start_recording(request.app.state.store, switch, request.app.state.settings, call_id,
                                   source=who.source)
    return {"call": call_id, "state": result.state, "already": result.already, "path": result.path,
            "since": result.since}


@router.delete("/{call_id}/recording", response_model=RecordingChanged,
               summary="Stop recording and close the file (the call goes on)")
async def stop_record(request: Request, who: Who, call_id: CallId) -> dict[str, Any]:
    switch = await _recording_switch(request, who, call_id, pause_only=False)
    result = await stop_recording(request.app.state.store, switch, request.app.state.settings, call_id)
    return {"call": call_id, "state": result.state, "changed": result.changed}


@router.post("/{call_id}/recording/{action}", response_model=RecordingChanged,
             summary="Pause (silence in the file) or resume the recording")
async def pause_record(request: Request, who: Who, call_id: CallId,
                       action: Annotated[Literal["pause", "resume"], Path()]) -> dict[str, Any]:
    switch = await _recording_switch(request, who, call_id, pause_only=True)
    result = await set_recording_paused(request.app.state.store, switch, call_id, action == "pause",
                                        source=who.source)
    return {"call": call_id, "state": result.state, "changed": result.changed}


@router.post("/{call_id}/result", response_model=ResultSaved,
             summary="Save the call's result (a code of its project), ending the operator's wrap-up")
async def save(request: Request, who: Who, call_id: CallId, body: ResultRequest) -> dict[str, Any]:
    store: Store = request.app.state.store

    def write() -> dict[str, Any]:
        with store.transaction() as session:
            check_works_on_call(session, *who.viewer, call_id)
            saved = save_result(session, call_id, body.code, body.comment)
            return {"call": saved.call_id, "code": saved.code, "label": saved.label, "successful": saved.successful,
                    "operator": saved.operator, "operator_status": saved.operator_status}
    return await asyncio.to_thread(write)


@router.put("/{call_id}/comment", response_model=CommentRequest, summary="Set or clear the call's comment")
async def comment(request: Request, who: Who, call_id: CallId, body: CommentRequest) -> dict[str, Any]:
    store: Store = request.app.state.store

    def write() -> None:
        with store.transaction() as session:
            check_works_on_call(session, *who.viewer, call_id)
            set_comment(session, call_id, body.comment or None)
    await asyncio.to_thread(write)
    return {"comment": body.comment or None}


@router.put("/{call_id}/review", response_model=ReviewRequest, summary="Flag the call for review, or clear the flag")
async def review(request: Request, who: Who, call_id: CallId, body: ReviewRequest) -> dict[str, Any]:
    store: Store = request.app.state.store
    check_team(who.viewer[0], "flag calls for review")

    def write() -> None:
        with store.transaction() as session:
            set_review(session, call_id, body.review)
    await asyncio.to_thread(write)
    return {"review": body.review}


@router.post("/{call_id}/hangup", response_model=CallHungUp, summary="End the call: every leg is hung up")
async def hang_up(request: Request, who: Who, call_id: CallId) -> dict[str, Any]:
    store: Store = request.app.state.store

    def check() -> Switch:
        with store.transaction() as session:
            check_works_on_call(session, *who.viewer, call_id)
        return _switch_for_call(request, call_id=call_id)
    switch = await asyncio.to_thread(check)
    return {"id": call_id, "legs": await hang_up_call(store, switch, call_id)}


@router.post("/{call_id}/dial/{whom}", status_code=status.HTTP_201_CREATED, response_model=CallPlaced,
             summary="After a session: call the call's client, or its operator (a debrief); your phone rings first")
async def dial(request: Request, who: Who, call_id: CallId, whom: Annotated[Literal["client", "operator"], Path()],
               by: Annotated[str | None, Query(pattern=r"^[0-9]{2,10}$", description="local socket only")] = None
               ) -> dict[str, Any]:
    store: Store = request.app.state.store
    caller_ext = who.acting(by)
    if caller_ext is None:
        raise ValidationError("by: who calls is required on the local socket")
    check_team(who.viewer[0], "call a call's client or operator back")
    switch = await asyncio.to_thread(_switch_for_call, request, [caller_ext])
    use_case = dial_client_of if whom == "client" else dial_operator_of
    placed = await use_case(store, switch, request.app.state.settings, call_id, caller_ext)
    return {"id": placed.id, "pbx_call_id": placed.pbx_call_id, "operator": placed.operator,
            "client": placed.number, "state": "created"}
