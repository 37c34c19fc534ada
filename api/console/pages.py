"""The console's routes: pages, the fragments htmx polls, and the forms that change jobs.

Every route is left out of the OpenAPI schema (the API documents ``/tasks``). Reads use
:mod:`service.console_queries`; every change goes through :class:`service.tasks.TaskService`.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.datastructures import FormData

from api.auth import client_of
from api.console import forms, pictures, security
from api.console.formatting import (
    absolute,
    duration,
    in_flight,
    iso,
    lateness,
    relative,
)
from api.console.sessions import LoginLimiter
from api.tasks import get_service
from models import TaskStatus
from service import console_queries as queries
from service.errors import (
    BrokerUnreachable,
    RunNotFound,
    ServiceError,
    TaskNotFound,
    ValidationFailed,
)
from service.paging import check_page_number
from service.schedules import schedule_words, upcoming_fires
from service.tasks import TaskService
from service.views import TaskView

logger = logging.getLogger("tablebeat.api")

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
#: Files served under /static/console/; nothing else on disk is reachable.
STATIC_FILES = {path.name: path for path in STATIC_DIR.iterdir() if path.is_file()}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".svg": "image/svg+xml"}

NEXT_FIRES_SHOWN = 10
RUNS_PER_PAGE = 20
TIMELINE_JOBS_PER_PAGE = 20
#: How often pages poll their live fragments (the promise is: changes show within 2 s).
POLL_SECONDS = 1

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Jinja2Templates(directory=str(HERE / "templates"))
templates.env.filters.update(absolute=absolute, iso=iso, duration=duration, in_flight=in_flight)
templates.env.globals.update(
    relative=relative,
    lateness=lateness,
    urlencode=urlencode,
    poll_seconds=POLL_SECONDS,
    job_statuses=[s.value for s in TaskStatus],
    triggers=forms.TRIGGERS,
    page_sizes=queries.PAGE_SIZES,
)

Service = Annotated[TaskService, Depends(get_service)]

router = APIRouter(include_in_schema=False)


# --- plumbing -----------------------------------------------------------------------------


def signed_in(request: Request) -> None:
    """Send a visitor without a session to the login form (htmx requests: ``HX-Redirect``)."""
    if security.is_signed_in(request):
        return
    target = "/login?" + urlencode({"next": _local_path(str(request.url.path) + _query_of(request))})
    if request.headers.get("hx-request"):
        raise HTTPException(status_code=401, detail="sign in again", headers={"HX-Redirect": target})
    raise HTTPException(status_code=303, detail="sign in first", headers={"Location": target})


SignedIn = Depends(signed_in)


@dataclass(frozen=True, slots=True)
class Posted:
    """A submitted form, and why it must be refused (a CSRF failure), if it must."""

    form: FormData
    problem: str | None


async def posted_form(request: Request) -> Posted:
    form = await request.form()
    field = form.get(security.CSRF_FIELD)
    return Posted(form, security.csrf_problem(request, field if isinstance(field, str) else None))


PostedForm = Annotated[Posted, Depends(posted_form)]


def render(request: Request, name: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """A page or fragment, with the CSRF token its forms need and the security headers."""
    now = datetime.now(UTC)
    full = {
        "request": request,
        "now": now,
        "csrf_token": security.csrf_token(request),
        "show_sign_out": security.auth_required(request) and security.is_signed_in(request),
        **context,
    }
    response = templates.TemplateResponse(request, name, full, status_code=status_code)
    _finish(request, response)
    return response


def _finish(request: Request, response: Response) -> None:
    response.headers.update(SECURITY_HEADERS)
    security.attach_csrf_cookie(request, response)


def forbidden(request: Request, reason: str) -> HTMLResponse:
    return render(request, "message.html", {"title": "Form refused", "message": reason}, status_code=403)


def not_found(request: Request, exc: TaskNotFound) -> HTMLResponse:
    return render(request, "message.html", {"title": "No such job", "message": str(exc)}, status_code=404)


#: Titles of the error page where the HTTP phrase ("Unprocessable Entity") says little.
_ERROR_TITLES = {422: "Bad request", 503: "Service unavailable"}


def error_page(request: Request, status_code: int, detail: str) -> Response | None:
    """The console's failures (a bad page number, an id that is not a number) as an HTML page.

    Installed as the app's error page (:func:`api.errors.install_error_handlers`); returns
    None for requests that did not reach a console route, which keep the API's JSON body,
    except a browser's request for an address nothing serves (it asks for HTML first).
    """
    route = request.scope.get("route")
    if route is None:
        if not request.headers.get("accept", "").startswith("text/html"):
            return None
    elif getattr(route, "endpoint", None) not in _CONSOLE_ENDPOINTS:
        return None
    try:
        title = _ERROR_TITLES.get(status_code) or HTTPStatus(status_code).phrase
    except ValueError:
        title = "Error"
    return render(request, "message.html", {"title": title, "message": detail}, status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def _query_of(request: Request) -> str:
    return f"?{request.url.query}" if request.url.query else ""


def _local_path(target: str | None, default: str = "/") -> str:
    """``target`` if it is a path on this site (never ``//host`` or ``https://...``), else ``default``."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return default
    return target


# --- sign-in ------------------------------------------------------------------------------


@router.get("/login")
def login_page(request: Request, next: str = "/") -> Response:
    if not security.auth_required(request):
        return see_other(_local_path(next))
    return render(request, "login.html", {"next": _local_path(next), "error": None})


@router.post("/login")
def login(request: Request, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    target = _local_path(str(posted.form.get("next", "/")))
    if not security.auth_required(request):
        return see_other(target)
    client = client_of(request)
    limiter: LoginLimiter = request.app.state.login_limiter
    wait = limiter.retry_after(client)
    if wait is not None:
        # Checked before the token: past the limit even a right guess is not looked at.
        logger.warning("console sign-in from %s refused: %d failures in the last minute", client, limiter.limit)
        error = f"token: too many failed sign-ins from {client}; try again in {wait} s"
        refused = render(request, "login.html", {"next": target, "error": error}, status_code=429)
        refused.headers["Retry-After"] = str(wait)
        return refused
    if not security.token_matches(request, str(posted.form.get("token", ""))):
        failures = limiter.failed(client)
        logger.warning("console sign-in failed from %s (%d of %d a minute)", client, failures, limiter.limit)
        error = "token: is not the API token (TABLEBEAT_API_TOKEN)"
        return render(request, "login.html", {"next": target, "error": error}, status_code=401)
    limiter.succeeded(client)
    logger.info("console sign-in from %s", client)
    response = see_other(target)
    response.set_cookie(
        security.SESSION_COOKIE,
        security.new_session(request),
        max_age=request.app.state.settings.session_seconds,
        **security.cookie_options(),
    )
    return response


@router.post("/logout")
def logout(request: Request, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    if security.end_session(request):
        logger.info("console sign-out from %s", client_of(request))
    response = see_other("/login")
    response.delete_cookie(security.SESSION_COOKIE, **security.cookie_options())
    return response


# --- the jobs page ------------------------------------------------------------------------


def _jobs_context(request: Request, service: TaskService) -> dict[str, Any]:
    flt = queries.JobFilter.from_query(request.query_params)
    with service.engine.connect() as conn:
        page = queries.jobs_page(conn, flt)
    default_tz = service.settings.default_timezone
    words = {row.id: schedule_words(row, default_tz) for row in page.rows}
    return {"flt": flt, "page": page, "words": words, "here": "/?" + urlencode(flt.query())}


@router.get("/", dependencies=[SignedIn])
def jobs(request: Request, service: Service, notice: str | None = None) -> Response:
    context = _jobs_context(request, service)
    context["chart"] = _chart(service)
    context["notice"] = notice
    return render(request, "jobs.html", context)


@router.get("/fragments/jobs", dependencies=[SignedIn])
def jobs_fragment(request: Request, service: Service) -> Response:
    return render(request, "_jobs_table.html", _jobs_context(request, service))


def _chart(service: TaskService) -> pictures.Chart:
    with service.engine.connect() as conn:
        return pictures.system_chart(conn, datetime.now(UTC))


@router.get("/fragments/chart", dependencies=[SignedIn])
def chart_fragment(request: Request, service: Service) -> Response:
    return render(request, "_chart.html", {"chart": _chart(service)})


# --- the timeline page --------------------------------------------------------------------


def _timeline_context(request: Request, service: TaskService) -> dict[str, Any]:
    flt = queries.JobFilter.from_query(request.query_params)
    flt = queries.JobFilter(flt.status, flt.text, flt.sort, flt.page, TIMELINE_JOBS_PER_PAGE)
    with service.engine.connect() as conn:
        page = queries.jobs_page(conn, flt)
        lines = pictures.timelines(conn, page.rows, datetime.now(UTC), service.settings.default_timezone)
    return {"flt": flt, "page": page, "timelines": lines}


@router.get("/timeline", dependencies=[SignedIn])
def timeline(request: Request, service: Service) -> Response:
    context = _timeline_context(request, service)
    context["chart"] = _chart(service)
    return render(request, "timeline.html", context)


@router.get("/fragments/timeline", dependencies=[SignedIn])
def timeline_fragment(request: Request, service: Service) -> Response:
    return render(request, "_timelines.html", _timeline_context(request, service))


# --- creating a job -----------------------------------------------------------------------


@router.get("/jobs/new", dependencies=[SignedIn])
def new_job_page(request: Request, service: Service) -> Response:
    return render(request, "job_new.html", _form_context(service, dict(forms.EMPTY_FORM), None))


@router.post("/jobs/new", dependencies=[SignedIn])
def create_job(request: Request, service: Service, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    try:
        created = service.create_task(forms.fields_from_form(posted.form))
    except ServiceError as exc:
        context = _form_context(service, forms.form_echo(posted.form), exc)
        return render(request, "job_new.html", context, status_code=exc.http_status)
    return see_other(f"/jobs/{created.id}?notice=created")


def _form_context(service: TaskService, values: dict[str, str], error: ServiceError | None) -> dict[str, Any]:
    errors: dict[str, str] = {}
    general = None
    if error is not None:
        place = forms.error_placement(error.field)
        if place is None:
            general = str(error)
        else:
            errors[place] = str(error)
    return {"values": values, "errors": errors, "form_error": general, "registered": sorted(service.registered)}


# --- one job ------------------------------------------------------------------------------


@router.get("/jobs/{task_id}", dependencies=[SignedIn])
def job_page(
    request: Request, task_id: int, service: Service, notice: str | None = None, runs_page: int = 1
) -> Response:
    try:
        task = service.get_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    return _job_response(request, service, task, forms.form_from_task(task), None, notice, runs_page)


@router.post("/jobs/{task_id}", dependencies=[SignedIn])
def save_job(request: Request, task_id: int, service: Service, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    try:
        service.update_task(task_id, forms.fields_from_form(posted.form))
    except TaskNotFound as exc:
        return not_found(request, exc)
    except ServiceError as exc:
        task = service.get_task(task_id)
        return _job_response(request, service, task, forms.form_echo(posted.form), exc, None, 1, exc.http_status)
    return see_other(f"/jobs/{task_id}?notice=saved")


@router.get("/runs/{run_id}", dependencies=[SignedIn])
def run_page(request: Request, run_id: int, service: Service) -> Response:
    """One run: trace ID, timings, result, traceback and a link to its task (failure alerts link here)."""
    try:
        run, task = service.get_run(run_id)
    except RunNotFound as exc:
        return render(request, "message.html", {"title": "No such run", "message": str(exc)}, status_code=404)
    return render(request, "run.html", {"run": run, "task": task})


def _job_response(
    request: Request,
    service: TaskService,
    task: TaskView,
    values: dict[str, str],
    error: ServiceError | None,
    notice: str | None,
    runs_page: int,
    status_code: int = 200,
) -> HTMLResponse:
    context = {
        **_form_context(service, values, error),
        **_job_live_context(service, task),
        **_runs_context(request, service, task.id, runs_page),
        "notice": notice,
        "notice_run": request.query_params.get("run"),
        "notice_trace": request.query_params.get("trace"),
    }
    return render(request, "job.html", context, status_code=status_code)


def _job_live_context(service: TaskService, task: TaskView) -> dict[str, Any]:
    now = datetime.now(UTC)
    with service.engine.connect() as conn:
        last = queries.last_runs(conn, [task.id]).get(task.id)
        line = pictures.timelines(conn, [task], now, service.settings.default_timezone)[0]
    return {
        "task": task,
        "words": schedule_words(task, service.settings.default_timezone),
        "last_run": last,
        "fires": _next_fires(service, task, now),
        "timeline": line,
    }


def _next_fires(service: TaskService, task: TaskView, now: datetime) -> list[datetime]:
    return upcoming_fires(task, service.settings.default_timezone, now, NEXT_FIRES_SHOWN)


def _runs_context(request: Request, service: TaskService, task_id: int, runs_page: int) -> dict[str, Any]:
    runs_page = max(1, runs_page)
    check_page_number("runs_page", runs_page, RUNS_PER_PAGE)
    runs = service.list_runs(task_id, limit=RUNS_PER_PAGE, offset=(runs_page - 1) * RUNS_PER_PAGE)
    pages = max(1, -(-runs.total // RUNS_PER_PAGE))
    inner = templates.env.get_template("_job_runs_inner.html").render(
        runs=runs, runs_page=runs_page, runs_pages=pages, task_id=task_id, lateness=lateness
    )
    version = hashlib.sha256(inner.encode()).hexdigest()[:16]
    return {"runs_html": Markup(inner), "runs_version": version, "runs_page": runs_page, "task_id": task_id}


@router.get("/jobs/{task_id}/fragments/live", dependencies=[SignedIn])
def job_live_fragment(request: Request, task_id: int, service: Service) -> Response:
    try:
        task = service.get_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    return render(request, "_job_live.html", _job_live_context(service, task))


@router.get("/jobs/{task_id}/fragments/runs", dependencies=[SignedIn])
def job_runs_fragment(request: Request, task_id: int, service: Service, runs_page: int = 1, v: str = "") -> Response:
    """The run history; ``204 No Content`` (htmx keeps the page as it is) when unchanged since ``v``."""
    try:
        context = _runs_context(request, service, task_id, runs_page)
    except TaskNotFound as exc:
        return not_found(request, exc)
    if v and v == context["runs_version"]:
        return Response(status_code=204, headers=SECURITY_HEADERS)
    return render(request, "_job_runs.html", context)


# --- actions ------------------------------------------------------------------------------


def _back(posted: Posted, task_id: int, notice: str, **extra: str) -> RedirectResponse:
    default = f"/jobs/{task_id}"
    target = _local_path(str(posted.form.get("next") or ""), default)
    separator = "&" if "?" in target else "?"
    return see_other(f"{target}{separator}{urlencode({'notice': notice, **extra})}")


@router.post("/jobs/{task_id}/pause", dependencies=[SignedIn])
def pause_job(request: Request, task_id: int, service: Service, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    try:
        service.pause_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    return _back(posted, task_id, "paused")


@router.post("/jobs/{task_id}/resume", dependencies=[SignedIn])
def resume_job(request: Request, task_id: int, service: Service, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    try:
        service.resume_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    return _back(posted, task_id, "resumed")


@router.post("/jobs/{task_id}/run", dependencies=[SignedIn])
def run_job(request: Request, task_id: int, service: Service, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    try:
        started = service.run_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    except (ValidationFailed, BrokerUnreachable) as exc:
        task = service.get_task(task_id)
        context_error = ServiceError(f"run now: {exc}")
        return _job_response(
            request, service, task, forms.form_from_task(task), context_error, None, 1, exc.http_status
        )
    return _back(posted, task_id, "run", run=str(started.run_id), trace=started.trace_id)


@router.get("/jobs/{task_id}/delete", dependencies=[SignedIn])
def confirm_delete(request: Request, task_id: int, service: Service) -> Response:
    try:
        task = service.get_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    return render(request, "confirm_delete.html", {"task": task})


@router.post("/jobs/{task_id}/delete", dependencies=[SignedIn])
def delete_job(request: Request, task_id: int, service: Service, posted: PostedForm) -> Response:
    if posted.problem:
        return forbidden(request, posted.problem)
    if posted.form.get("confirm") != "yes":
        return see_other(f"/jobs/{task_id}/delete")
    try:
        deleted = service.delete_task(task_id)
    except TaskNotFound as exc:
        return not_found(request, exc)
    return see_other("/?" + urlencode({"notice": f"deleted {deleted.task_key}"}))


# --- static assets ------------------------------------------------------------------------


@router.get("/static/console/{name}")
def static_file(name: str) -> Response:
    path = STATIC_FILES.get(name)
    if path is None:
        raise HTTPException(status_code=404, detail=f"no console asset named {name!r}")
    return FileResponse(
        path,
        media_type=_MEDIA_TYPES.get(path.suffix, "application/octet-stream"),
        headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff"},
    )


#: The console's route functions: include_router copies routes, but keeps their endpoints.
_CONSOLE_ENDPOINTS = frozenset(getattr(route, "endpoint", None) for route in router.routes) - {None}
