"""One error body for every failure: ``{"detail": "<field>: <reason>", "field": ...}``."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from service.errors import ServiceError

#: Where a request value came from; not part of the field's name.
_LOCATIONS = ("body", "query", "path", "header")


def install_error_handlers(app: FastAPI) -> None:
    """Map service errors and request-shape errors to JSON bodies naming the field."""
    app.add_exception_handler(ServiceError, _service_error)
    app.add_exception_handler(RequestValidationError, _request_error)


async def _service_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ServiceError)  # registered for ServiceError only
    return JSONResponse(status_code=exc.http_status, content={"detail": str(exc), "field": exc.field})


async def _request_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # registered for it only
    errors = _merge_alternatives([_describe(error) for error in exc.errors()])
    first = errors[0] if errors else {"field": None, "reason": "invalid request"}
    detail = f"{first['field']}: {first['reason']}" if first["field"] else first["reason"]
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
