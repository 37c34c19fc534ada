"""One error body for every failure: ``{"detail": "<field>: <reason>", "field": ...}``.

Routes that serve HTML (the console) register an error page with :func:`install_error_handlers`;
their failures are rendered by it, so a browser never lands on a JSON body.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from service.errors import ServiceError

#: Where a request value came from; not part of the field's name.
_LOCATIONS = ("body", "query", "path", "header")


#: Renders a failed request as a page (status, detail), or returns None to leave it to JSON.
ErrorPage = Callable[[Request, int, str], Response | None]


def install_error_handlers(app: FastAPI, error_page: ErrorPage | None = None) -> None:
    """Map service errors and request-shape errors to JSON bodies naming the field.

    ``error_page`` answers first for the requests it claims (it returns None for the others).
    """
    app.state.error_page = error_page
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)


def _as_page(request: Request, status: int, detail: str) -> Response | None:
    error_page: ErrorPage | None = getattr(request.app.state, "error_page", None)
    return error_page(request, status, detail) if error_page else None


async def _http_error(request: Request, exc: Exception) -> Response:
    """FastAPI's own answer, except a browser asking for an address no route serves gets a page."""
    assert isinstance(exc, StarletteHTTPException)  # registered for it only
    if exc.status_code == 404 and request.scope.get("route") is None:
        page = _as_page(request, 404, f"nothing is served at {request.url.path}")
        if page is not None:
            return page
    return await http_exception_handler(request, exc)


async def _service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, ServiceError)  # registered for ServiceError only
    page = _as_page(request, exc.http_status, str(exc))
    if page is not None:
        return page
    return JSONResponse(status_code=exc.http_status, content={"detail": str(exc), "field": exc.field})


async def _request_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # registered for it only
    errors = _merge_alternatives([_describe(error) for error in exc.errors()])
    first = errors[0] if errors else {"field": None, "reason": "invalid request"}
    detail = f"{first['field']}: {first['reason']}" if first["field"] else first["reason"]
    page = _as_page(request, 422, str(detail))
    if page is not None:
        return page
    return JSONResponse(status_code=422, content={"detail": detail, "field": first["field"], "errors": errors})


def _describe(error: dict[str, Any]) -> dict[str, Any]:
    loc = [str(part) for part in error.get("loc", ())]
    if loc and loc[0] in _LOCATIONS:
        loc = loc[1:]
    # A union type (str | list) reports each alternative under e.g. "args.list[any]": keep the field.
    loc = [part for part in loc if not part.startswith(("list[", "dict[", "str", "int", "bool", "function-"))]
    field = ".".join(loc) or ("body" if error.get("loc", ("",))[0] == "body" else None)
    reason = str(error.get("msg", "invalid"))
    if error.get("type") == "extra_forbidden":
        reason = "is not a task field"
    elif error.get("type") == "json_invalid":
        # loc is ("body", <character position>): the field is the body itself.
        where = f" at character {field}" if field else ""
        field = "body"
        reason = f"is not valid JSON{where}: {error.get('ctx', {}).get('error', reason)}"
    return {"field": field, "reason": reason}


def _merge_alternatives(errors: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per field: a union type fails once per alternative ("a string" or "a list")."""
    merged: dict[Any, dict[str, Any]] = {}
    for error in errors:
        seen = merged.get(error["field"])
        if seen is None:
            merged[error["field"]] = dict(error)
        elif error["reason"] not in seen["reason"]:
            seen["reason"] = f"{seen['reason']}, or {error['reason'][0].lower()}{error['reason'][1:]}"
    return list(merged.values())
