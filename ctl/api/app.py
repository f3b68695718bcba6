"""The FastAPI application: routers under /api/v1, problem+json errors, the OpenAPI document."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctl import __version__
from ctl.api import calls, events, monitor, operators, projects, recordings, reports, tasks
from ctl.api.auth import Caller, caller
from ctl.api.problems import PROBLEM_RESPONSES, ctl_error, http_error, invalid_request, unexpected
from ctl.api.schemas import Health, Problem
from ctl.config import Settings
from ctl.errors import CtlError
from ctl.store.engine import Store
from ctl.switch import Switch

PREFIX = "/api/v1"


def create_app(store: Store, settings: Settings, switches: Mapping[str, Switch]) -> FastAPI:
    """`switches`: node → the connected Switch serve holds (the API never opens one)."""
    app = FastAPI(title="ctl", version=__version__, openapi_url=f"{PREFIX}/openapi.json", docs_url=None,
                  redoc_url=None, responses=PROBLEM_RESPONSES)
    app.state.store = store
    app.state.settings = settings
    app.state.switches = dict(switches)
    app.add_exception_handler(CtlError, ctl_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)

    api = APIRouter(prefix=PREFIX)
    api.include_router(operators.router)
    api.include_router(calls.router)
    api.include_router(monitor.router)
    api.include_router(monitor.log_router)
    api.include_router(events.router)
    api.include_router(projects.router)
    api.include_router(recordings.router)
    api.include_router(tasks.router)
    api.include_router(reports.router)

    @api.get("/health", response_model=Health, tags=["serve"], summary="serve's version and PBX links")
    async def health(request: Request, _who: Annotated[Caller, Depends(caller)]) -> Health:
        return Health(version=__version__,
                      nodes={node: switch.connected for node, switch in request.app.state.switches.items()})

    app.include_router(api)
    original = app.openapi

    def openapi() -> dict[str, object]:
        schema = original()
        schema.setdefault("components", {}).setdefault("schemas", {})["Problem"] = Problem.model_json_schema()
        return schema
    app.openapi = openapi  # type: ignore[method-assign]
    return app
