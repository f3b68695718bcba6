"""The API's bodies. Field names are the CLI's --json names: one vocabulary."""

from __future__ import annotations

from datetime import datetime

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
