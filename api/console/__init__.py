"""tablebeat's web console, served by ``tablebeat api`` at ``/``.

Server-rendered pages (Jinja2) with htmx polling for live fragments; static assets are
vendored in ``static/``, so nothing is fetched from the internet at run time.
"""

from api.console.pages import error_page, router

__all__ = ["error_page", "router"]
