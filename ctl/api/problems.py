"""ctl's errors as RFC 9457 problem details: the same kinds the CLI maps to exit codes."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ctl import errors

PROBLEM_JSON = "application/problem+json"

# Most specific first: the first class an error is an instance of gives its status.
_STATUS: list[tuple[type[errors.CtlError], int]] = [
    (errors.Unauthenticated, 401),
    (errors.NotFound, 404),
    (errors.Forbidden, 403),
    (errors.Conflict, 409),
    (errors.NoActiveCall, 409),
    (errors.DomainError, 409),
    (errors.ValidationError, 422),
    (errors.ConfigError, 500),
    (errors.StoreError, 503),
    (errors.StorageError, 507),
    (errors.SwitchUnreachable, 503),
    (errors.ActionTimeout, 504),
    (errors.SwitchError, 502),
]
_TITLES = {400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 405: "Method Not Allowed",
           409: "Conflict", 422: "Unprocessable Content", 500: "Internal Server Error", 502: "Bad Gateway",
           503: "Service Unavailable", 504: "Gateway Timeout", 507: "Insufficient Storage"}


def status_of(error: errors.CtlError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def problem(status: int, kind: str, detail: str, **extra: Any) -> JSONResponse:
    body = {"type": f"urn:ctl:problem:{kind}", "title": _TITLES.get(status, "Error"), "status": status,
            "kind": kind, "detail": detail, **extra}
    headers = {"WWW-Authenticate": 'Bearer realm="ctl"'} if status == 401 else None
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


async def ctl_error(_request: Request, error: Exception) -> JSONResponse:
    assert isinstance(error, errors.CtlError)
    return problem(status_of(error), error.kind, str(error))


async def invalid_request(_request: Request, error: Exception) -> JSONResponse:
    """FastAPI's validation errors, as one problem naming each field."""
    assert isinstance(error, RequestValidationError)
    fields = []
    for item in error.errors():
        location = ".".join(str(part) for part in item.get("loc", ()) if part not in ("body", "query", "path"))
        fields.append({"field": location or "body", "message": str(item.get("msg", "invalid"))})
    detail = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "invalid request"
    return problem(422, "invalid", detail, errors=fields)


_HTTP_KINDS = {400: "invalid", 404: "not_found", 405: "method_not_allowed"}


async def http_error(_request: Request, error: Exception) -> JSONResponse:
    """Starlette's own refusals (a body that is not JSON, an unknown path or method) as problems too."""
    assert isinstance(error, StarletteHTTPException)
    detail = error.detail if isinstance(error.detail, str) else "request refused"
    response = problem(error.status_code, _HTTP_KINDS.get(error.status_code, "error"), detail)
    for name, value in (error.headers or {}).items():
        response.headers[name] = value
    return response


async def unexpected(_request: Request, error: Exception) -> JSONResponse:
    """A bug, not a refusal: logged with its traceback, answered as a problem without details."""
    logging.getLogger("ctl.api").error("request failed", exc_info=error)
    return problem(500, "error", "internal error (logged by ctl serve)")


PROBLEM_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"description": title, "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}}}
    for status, title in _TITLES.items() if status in (400, 401, 403, 404, 409, 422, 502, 503, 504)
}
