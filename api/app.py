"""The FastAPI application: ``create_app(settings)``, and ``app`` for ``uvicorn api.app:app``.

More routers (the web console) are added with ``create_app(..., routers=[...])`` or
``app.include_router(...)``; they reach the service through :func:`api.tasks.get_service`
and protect themselves with :func:`api.auth.require_token`.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST

from api import compat_scheduler, compat_task_manage, console, tasks
from api.auth import has_credentials, require_token
from api.console.sessions import LoginLimiter, SessionStore
from api.docs import docs_router
from api.errors import install_error_handlers
from api.guard import RequestGuard
from api.schemas import HealthOut, ReachabilityOut
from api.settings import ALLOW_OPEN_ENV, TOKEN_ENV, ApiSettings
from conf.profiles import SettingsError, load_profile
from service import metrics
from service.tasks import TaskService
from telemetry import logs

logger = logging.getLogger("tablebeat.api")

NO_TOKEN_WARNING = f"{TOKEN_ENV} is not set: the API has no authentication, so it serves on loopback (127.0.0.1) only"
OPEN_WARNING = f"{TOKEN_ENV} is not set and {ALLOW_OPEN_ENV}=1: the API serves without authentication on every address"


def create_app(
    settings: ApiSettings | None = None,
    *,
    service: TaskService | None = None,
    routers: Iterable[APIRouter] = (),
) -> FastAPI:
    """Build the API around one :class:`TaskService` (made from ``settings`` unless given)."""
    settings = settings or ApiSettings.from_env()
    service = service or TaskService(settings.service)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        logs.configure_server(_log_format())  # here: after the server has set up its logging
        if settings.api_token is None:
            logger.warning(OPEN_WARNING if settings.allow_open else NO_TOKEN_WARNING)
        yield
        service.close()

    app = FastAPI(
        title="tablebeat",
        summary="Manage the scheduled jobs of the task table: create, list, edit, pause, run now, read runs.",
        version="0.1.0",
        lifespan=lifespan,
        docs_url=None,  # served from vendored files by api.docs, never from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    app.state.sessions = SessionStore(service.engine, settings.session_seconds)
    app.state.login_limiter = LoginLimiter(service.engine, settings.login_failures_per_minute)
    app.add_middleware(RequestGuard, settings=settings)
    install_error_handlers(app, error_page=console.error_page)
    app.add_api_route(
        "/health",
        _health,
        methods=["GET"],
        response_model=HealthOut,
        tags=["health"],
        responses={503: {"model": HealthOut, "description": "database or broker unreachable"}},
    )
    app.add_api_route(
        "/metrics",
        _metrics,
        methods=["GET"],
        tags=["health"],
        dependencies=[Depends(require_token)],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text format"}},
    )
    app.include_router(docs_router(app.openapi_url or "/openapi.json", app.title))
    app.include_router(tasks.router)
    # The earlier systems' APIs at their own paths (003, 004), over the same service.
    app.include_router(compat_task_manage.router)
    app.include_router(compat_scheduler.router)
    app.include_router(console.router)  # the web console at /
    for router in routers:
        app.include_router(router)
    return app


def _health(request: Request) -> JSONResponse:
    """``ok`` or ``degraded`` for anyone; which service failed, and how, only with credentials."""
    report = request.app.state.service.health()
    status = "ok" if report.ok else "degraded"
    code = 200 if report.ok else 503
    if not has_credentials(request):
        return JSONResponse(status_code=code, content={"status": status})
    body = HealthOut(
        status=status,
        database=ReachabilityOut(ok=report.database_error is None, error=report.database_error),
        broker=ReachabilityOut(ok=report.broker_error is None, error=report.broker_error),
    )
    return JSONResponse(status_code=code, content=body.model_dump())


def _metrics(request: Request) -> Response:
    """System-wide gauges for Prometheus, read from SQL now (tasks by status, runs in flight, oldest pending)."""
    service = request.app.state.service
    page = metrics.render(service.engine, service.settings.worker_dead_seconds)
    return Response(content=page, media_type=CONTENT_TYPE_LATEST)


def _log_format() -> str:
    """``TABLEBEAT_LOG_FORMAT`` as the profile resolves it (``text`` when the settings are unreadable)."""
    try:
        return str(load_profile()["log_format"])
    except SettingsError:
        return "text"


_default_app: FastAPI | None = None


def __getattr__(name: str) -> Any:
    # ``app`` is built on first access (``uvicorn api.app:app``), so importing this module
    # for ``create_app`` reads no environment and opens nothing.
    global _default_app
    if name == "app":
        if _default_app is None:
            _default_app = create_app()
        return _default_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
