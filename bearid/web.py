"""What the two web apps (review, serve) share: JSON errors, their pages and static files.

Both apps are built one way: module-level handlers that find their state in
`request.app.state`, a `create_app` that fills it, and these helpers. The pages
are package files (bearid/templates, bearid/static), not Python strings.
"""

from __future__ import annotations

import html
from importlib import resources

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles


def error(status: int, message: str) -> JSONResponse:
    """Every refusal and failure of both apps: `{"error": <one line>, "status": <code>}`."""
    return JSONResponse({"error": message, "status": status}, status_code=status)


def page(name: str, **values: str) -> HTMLResponse:
    """bearid/templates/<name>.html with each `{{key}}` replaced by its HTML-escaped value."""
    text = resources.files("bearid").joinpath("templates", f"{name}.html").read_text(encoding="utf-8")
    for key, value in values.items():
        text = text.replace("{{" + key + "}}", html.escape(value))
    return HTMLResponse(text)


def static() -> Mount:
    """The pages' CSS and JavaScript, from the installed package."""
    return Mount("/static", StaticFiles(packages=[("bearid", "static")]), name="static")


async def http_error(request: Request, exc: Exception) -> JSONResponse:
    """Starlette's own 404 / 405 / 400 as JSON too."""
    assert isinstance(exc, HTTPException)
    return error(exc.status_code, str(exc.detail))


async def server_error(request: Request, exc: Exception) -> JSONResponse:
    return error(500, f"internal error: {type(exc).__name__}")


EXCEPTION_HANDLERS = {HTTPException: http_error, Exception: server_error}
