"""Issue 10, item 6: Swagger UI (``/docs``) and ReDoc (``/redoc``) work with no network.

Headless Debian Chromium (Playwright) against ``uvicorn api.app:app``; every request that is
not for the server is recorded and aborted, so a page that needed a CDN would stay blank.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import httpx
import pytest

from api.docs import CONTENT_SECURITY_POLICY
from tests.api.conftest import TOKEN
from tests.browser import CHROMIUM, CHROMIUM_ARGS, require_chromium
from tests.processes import REPO, api_server

pytestmark = [pytest.mark.integration, pytest.mark.mariadb]


@pytest.fixture(scope="module")
def server(db_url: str, broker_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require_chromium()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TABLEBEAT_")}
    env.update(TABLEBEAT_DATABASE_URL=db_url, TABLEBEAT_BROKER_URL=broker_url, TABLEBEAT_API_TOKEN=TOKEN)
    env["PYTHONPATH"] = str(REPO)
    with api_server(env, tmp_path_factory.mktemp("docs") / "api.log") as base:
        yield base


@pytest.fixture
def offline_page(server: str) -> Iterator[tuple[object, list[str], list[str]]]:
    """A tab whose requests off the server are aborted; yields it, those URLs and console errors."""
    from playwright.sync_api import sync_playwright

    outside: list[str] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            context = browser.new_context(base_url=server)

            def route(request_route: object) -> None:
                url = request_route.request.url  # type: ignore[attr-defined]
                if url.startswith(server + "/") or url.startswith(("data:", "blob:")):
                    request_route.continue_()  # type: ignore[attr-defined]
                else:
                    outside.append(url)
                    request_route.abort()  # type: ignore[attr-defined]

            context.route("**/*", route)
            tab = context.new_page()
            tab.set_default_timeout(20_000)
            tab.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab, outside, errors
        finally:
            browser.close()


def test_swagger_ui_renders_offline(offline_page) -> None:
    tab, outside, errors = offline_page
    response = tab.goto("/docs")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    tab.wait_for_selector(".opblock-summary-path[data-path='/tasks/{ref}/run']")
    assert tab.locator(".opblock").count() >= 10  # every /tasks operation, and /health
    assert tab.locator(".info .title").inner_text().startswith("tablebeat")
    assert outside == [] and errors == []


def test_redoc_renders_offline(offline_page) -> None:
    tab, outside, errors = offline_page
    tab.goto("/redoc")
    tab.wait_for_selector("h1:has-text('tablebeat')")
    tab.wait_for_selector("text=Dispatch a run now; returns the run's id and trace ID.")
    assert outside == []
    # ReDoc's sidebar links a logo on its CDN; the page's policy stops it before any request
    # (ReDoc then shows no logo), and that refusal is the only error.
    assert all("cdn.redoc.ly" in e and "Content Security Policy" in e for e in errors), errors


def test_only_the_listed_assets_are_served(server: str) -> None:
    assert httpx.get(f"{server}/static/docs/swagger-ui-bundle.js", timeout=5).status_code == 200
    for name in ("README.md", "swagger-ui.LICENSE", "..%2f..%2fdocs.py", "nope.js"):
        assert httpx.get(f"{server}/static/docs/{name}", timeout=5).status_code == 404
    for page in ("/docs", "/redoc"):
        html = httpx.get(f"{server}{page}", timeout=5).text
        assert "http://" not in html and "https://" not in html
