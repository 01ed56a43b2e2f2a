"""The events page: a few static files shipped inside the package.

``GET /events`` serves ``static/index.html``; its script and style come from
``/static``. No build step and nothing from a CDN: the page works on a machine
without Internet access. The page never carries a token in its own URL.
"""

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

PAGE_PATH = "/events"
STATIC_PATH = "/static"
STATIC_DIR = Path(__file__).resolve().parent / "static"

# The page loads nothing from elsewhere; a stricter policy than the default
# keeps it that way.
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; connect-src 'self' ws: wss:; "
        "img-src 'self' data:; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-cache",
}


def install_page(app: FastAPI) -> None:
    """Add ``GET /events`` and the static files to ``app``."""

    @app.get(PAGE_PATH, include_in_schema=False)
    async def events_page() -> FileResponse:
        return FileResponse(
            STATIC_DIR / "index.html",
            media_type="text/html",
            headers=SECURITY_HEADERS,
        )

    app.mount(STATIC_PATH, StaticFiles(directory=STATIC_DIR), name="static")
