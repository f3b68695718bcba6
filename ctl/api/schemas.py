"""The API's bodies. Field names are the CLI's --json names: one vocabulary."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Problem(BaseModel):
    """RFC 9457 problem details; `kind` is the CLI's error kind."""

    type: str
    title: str
    status: int
    kind: str
    detail: str


class OperatorOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    extension: str
    name: str
    role: str
    dial_string: str
    status: str
    status_reason: str | None = None
    status_changed_at: datetime | None = None


class Health(BaseModel):
    version: str
    nodes: dict[str, bool] = Field(description="each PBX node and whether serve is connected to it")


class CallOut(BaseModel):
    id: int
    state: str
    direction: str
    operator: str | None
    client: str | None
    project: str | None
    created_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    cause: str | None


class CallDetail(CallOut):
    node: str
    pbx_call_id: str
    bridged_at: datetime | None
    cause_code: int | None
    duration_s: float | None
    result: str | None
    comment: str | None
    review: bool
    recording: str | None = Field(description="the recording's path, if the call has one")
    recording_state: str | None = None
    recording_complete: bool | None = None
    recording_duration_s: float | None = None
    recording_pauses: int | None = None


class MonitorSessionOut(BaseModel):
    id: int
    call: int | None
    operator: str | None
    supervisor: str | None
    mode: str
    follow: bool
    started_at: datetime
    attached_at: datetime | None
    ended_at: datetime | None
    end_reason: str | None


class MonitorRequest(BaseModel):
    """Start listening, whispering or barging: the supervisor's phone rings first."""

    model_config = ConfigDict(extra="forbid")

    # Extensions are checked by the use case, which says "no operator with extension …" as the CLI does.
    operator: str = Field(min_length=1, max_length=16, description="the operator whose call to join")
    mode: Literal["listen", "whisper", "barge"]
    follow: bool = Field(False, description="stay on and join the operator's next call")
    by: str | None = Field(None, min_length=1, max_length=16,
                           description="the supervisor (local socket only; a token acts as its owner)")


class MonitorStarted(BaseModel):
    session: int
    mode: str
    operator: str
    by: str
    follow: bool


class ModeChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    mode: Literal["listen", "whisper", "barge"]


class SessionStopped(BaseModel):
    session: int
    end_reason: str


class StatusChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: Literal["available", "break", "dnd"]
    reason: str | None = Field(None, max_length=200, description="a pause reason ([operators] pause_reasons)")
    by: str | None = Field(None, pattern=r"^[0-9]{2,10}$", description="who sets it (local socket only)")


class StatusOut(BaseModel):
    extension: str
    status: str
    reason: str | None
    since: datetime
    changed: bool


class CallRequest(BaseModel):
    """Click-to-call: ring the operator; on answer, dial the client and bridge them."""

    model_config = ConfigDict(extra="forbid")

    operator: str = Field(pattern=r"^[0-9]{2,10}$")
    to: str = Field(min_length=1, max_length=40, description="the client's number")
    project: str | None = Field(None, max_length=100)


class CallPlaced(BaseModel):
    id: int
    pbx_call_id: str
    operator: str
    client: str
    state: str


class RecordingStarted(BaseModel):
    call: int
    state: str
    already: bool
    path: str
    since: datetime | None


class RecordingChanged(BaseModel):
    call: int
    state: str
    changed: bool


class ProjectOut(BaseModel):
    name: str
    members: list[str]
    result_codes: list[str]
    recording: str
    stereo: bool | None
    record_supervisor: bool
    queue: str | None
    wrapup_seconds: int | None


class ResultCodeOut(BaseModel):
    code: str
    label: str
    successful: bool


class ProjectDetail(BaseModel):
    name: str
    members: list[str]
    result_codes: list[ResultCodeOut]
    recording: str
    stereo: bool | None
    record_supervisor: bool
    queue: str | None
    wrapup_seconds: int | None
    script: str
    created_at: datetime


class ResultRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)
    comment: str | None = Field(None, max_length=4000)


class ResultSaved(BaseModel):
    call: int
    code: str
    label: str
    successful: bool
    operator: str | None
    operator_status: str | None


class CommentRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    comment: str | None = Field(max_length=4000, description="null clears it")


class ReviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    review: bool


class RecordingPauseOut(BaseModel):
    paused_at: datetime
    resumed_at: datetime | None
    source: str


class RecordingOut(BaseModel):
    call: int
    state: str
    path: str
    stereo: bool
    source: str
    started_at: datetime | None
    stopped_at: datetime | None
    stop_reason: str | None
    size_bytes: int | None
    duration_s: float | None
    complete: bool
    problem: str | None
    purged_at: datetime | None
    pauses: list[RecordingPauseOut]


class CallHungUp(BaseModel):
    id: int
    legs: int


class TaskOut(BaseModel):
    id: int
    number: str
    due_at: datetime
    auto: bool
    state: str
    project: str | None
    assignee: str | None
    source_call: int | None
    call: int | None
    placed_to: str | None
    attempts: int
    reminded_at: datetime | None
    note: str | None
    outcome: str | None


class BlacklistedOut(BaseModel):
    number: str
    reason: str | None
    added_at: datetime
