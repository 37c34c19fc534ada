"""``tablebeat api``: serve the REST API with uvicorn."""

from __future__ import annotations

import logging

import typer

from cli.tasks import fail

logger = logging.getLogger("tablebeat.api")

LOOPBACK = "127.0.0.1"


def api(
    host: str | None = typer.Option(
        None, "--host", help="Address to listen on (default 0.0.0.0 with a token, else 127.0.0.1)."
    ),
    port: int = typer.Option(8000, "--port", help="Port to listen on."),
    log_level: str = typer.Option("info", "--log-level", help="uvicorn log level."),
) -> None:
    """Serve the REST API (OpenAPI docs at /docs).

    With TABLEBEAT_API_TOKEN set, every endpoint but /health needs 'Authorization: Bearer <token>';
    without it the API has no authentication and refuses any address but loopback
    (unless TABLEBEAT_ALLOW_OPEN=1).
    """
    import uvicorn

    from api.app import create_app
    from api.exposure import is_loopback, refusal
    from api.settings import ApiSettings
    from conf.profiles import load_profile
    from telemetry import logs

    try:
        json_logs = load_profile()["log_format"] == "json"
        settings = ApiSettings.from_env()
    except ValueError as exc:  # SettingsError included
        raise fail(str(exc), 2) from None
    logging.basicConfig(level=logging.INFO, format="%(levelname)s:     %(message)s")
    if json_logs:
        logs.use_json(logging.getLogger())
    bind = host or ("0.0.0.0" if settings.api_token else LOOPBACK)
    if settings.api_token is None and not settings.allow_open and not is_loopback(bind):
        typer.echo(refusal(f"{bind}:{port}"), err=True)  # one unwrapped line naming the settings
        raise typer.Exit(2)
    logger.info("tablebeat API on http://%s:%d (docs at /docs)", bind, port)
    log_config = logs.uvicorn_log_config() if json_logs else uvicorn.config.LOGGING_CONFIG
    uvicorn.run(create_app(settings), host=bind, port=port, log_level=log_level, log_config=log_config)
