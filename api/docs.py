"""``/docs`` (Swagger UI) and ``/redoc`` served from files inside the package.

FastAPI's defaults load both viewers (and a favicon) from public CDNs: the docs are blank
offline, and a third-party script runs on the page where an operator types the API token.
Here every script, style and image comes from ``api/static/docs/`` (see its README for
versions and licences), and the pages' Content-Security-Policy forbids anything else.
"""

from __future__ import annotations

from html import escape
from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse, HTMLResponse

STATIC_DIR = Path(__file__).resolve().parent / "static" / "docs"
PREFIX = "/static/docs"
#: The only files served: the viewers, our start-up script and the favicon.
FILES = {
    name: STATIC_DIR / name
    for name in (
        "swagger-ui-bundle.js",
        "swagger-ui.css",
        "swagger-init.js",
        "redoc.standalone.js",
        "favicon-32x32.png",
    )
}
_MEDIA_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}

CONTENT_SECURITY_POLICY = (
    # Both viewers set inline styles; ReDoc runs its search index in a worker made from a blob.
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'"
)
_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


def docs_router(openapi_url: str, title: str) -> APIRouter:
    """The two pages and their assets, for an app built with ``docs_url=None, redoc_url=None``."""
    router = APIRouter(include_in_schema=False)
    spec = escape(openapi_url, quote=True)
    head = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<link rel="icon" type="image/png" href="{PREFIX}/favicon-32x32.png">'
    )
    swagger = (
        f'{head}<link rel="stylesheet" href="{PREFIX}/swagger-ui.css"></head><body>'
        f'<div id="swagger-ui" data-openapi-url="{spec}"></div>'
        f'<script src="{PREFIX}/swagger-ui-bundle.js"></script><script src="{PREFIX}/swagger-init.js"></script>'
        "</body></html>"
    )
    redoc = (
        f"{head}<style>body{{margin:0;padding:0}}</style></head><body>"
        f'<redoc spec-url="{spec}"></redoc><script src="{PREFIX}/redoc.standalone.js"></script></body></html>'
    )

    @router.get("/docs")
    def swagger_ui() -> HTMLResponse:
        return HTMLResponse(swagger, headers=_HEADERS)

    @router.get("/redoc")
    def redoc_page() -> HTMLResponse:
        return HTMLResponse(redoc, headers=_HEADERS)

    @router.get(PREFIX + "/{name}")
    def asset(name: str) -> FileResponse:
        path = FILES.get(name)
        if path is None:
            raise HTTPException(status_code=404, detail=f"no docs asset named {name!r}")
        return FileResponse(
            path,
            media_type=_MEDIA_TYPES[path.suffix],
            headers={"Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff"},
        )

    return router
