"""/api/v1/reports/{name}: the CLI's reports (team only), as JSON or CSV."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import Response

from ctl.api.auth import Caller, caller
from ctl.errors import ValidationError
from ctl.report_output import render
from ctl.services.reports import build, make_period, resolve_filters
from ctl.services.visibility import check_team
from ctl.store.engine import Store

router = APIRouter(prefix="/reports", tags=["reports"])
Who = Annotated[Caller, Depends(caller)]
Day = Annotated[str | None, Query(max_length=10, description="YYYY-MM-DD, today or yesterday")]


@router.get("/{name}", response_class=Response,
            responses={200: {"content": {"application/json": {}, "text/csv": {}}, "description": "the report"}},
            summary="occupancy, calls, results or monitoring, per day in a time zone (the team)")
async def report(request: Request, who: Who, name: Annotated[Literal["occupancy", "calls", "results", "monitoring"],
                                                              Path()],
                 first: Annotated[str | None, Query(alias="from", max_length=10)] = None, to: Day = None,
                 project: Annotated[str | None, Query(max_length=100)] = None,
                 operator: Annotated[str | None, Query(max_length=16)] = None,
                 tz: Annotated[str | None, Query(max_length=64)] = None,
                 format: Literal["json", "csv"] = "json", clients: bool = False) -> Response:
    check_team(who.viewer[0], "read reports")
    if clients and name != "results":
        raise ValidationError("clients applies to the results report only")
    store: Store = request.app.state.store

    def read() -> str:
        now = datetime.now(UTC)
        period = make_period(first, to, tz, now)
        with store.transaction() as session:
            built = build(session, name, period, resolve_filters(session, project, operator), now, clients=clients)
        return render(built, format)
    body = await asyncio.to_thread(read)
    media = "text/csv; charset=utf-8" if format == "csv" else "application/json"
    return Response(body, media_type=media)
