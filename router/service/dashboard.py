"""The cost dashboard at ``/dashboard``: a static page (HTML, JS, CSS under ``dashboard/``)
that is a pure client of the JSON API (``/v1/usage`` and its friends), so Grafana or a script
sees the same figures.

Its charts are drawn by plotly.js, served from the installed ``plotly`` Python package (no
CDN: the page works without internet). ``POST /dashboard/session`` tells the page whether a
key signs in, answering 200 either way (a wrong key is an answer, not a failed request, so
the browser's console stays clean); the key travels in the ``Authorization`` header only.
"""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse

from router.service.deps import caller
from router.service.errors import APIError

router = APIRouter(include_in_schema=False)

STATIC = Path(__file__).with_name("dashboard")
FILES = {"app.js": "text/javascript", "style.css": "text/css"}
PLOTLY = "plotly.min.js"
# plotly.js injects its own <style> rules and sets inline styles: 'unsafe-inline' for styles
# only; scripts and data come from this origin alone.
CSP = ("default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src 'self' data:; connect-src 'self'; font-src 'self' data:; base-uri 'none'; "
       "form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


@functools.cache
def plotly_js() -> Path:
    """plotly.min.js inside the installed plotly package (found without importing it)."""
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("the plotly package is not installed: run `make install`")
    return Path(next(iter(spec.submodule_search_locations))) / "package_data" / PLOTLY


@router.get("/dashboard")
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type="text/html", headers=HEADERS)


@router.get("/dashboard/")
async def page_slash() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=308)


@router.get("/dashboard/static/{name}")
async def static(name: str) -> FileResponse:
    if name == PLOTLY:
        return FileResponse(plotly_js(), media_type="text/javascript",
                            headers={**HEADERS, "Cache-Control": "public, max-age=86400"})
    if name not in FILES:
        raise APIError(404, f"no dashboard file {name!r}", type_="not_found_error",
                       code="not_found")
    return FileResponse(STATIC / name, media_type=FILES[name], headers=HEADERS)


@router.post("/dashboard/session")
async def session(request: Request) -> dict[str, Any]:
    """Whether the ``Authorization: Bearer`` key signs in, and as whom (a team, or the admin
    key: every team); how often the page refreshes."""
    refresh_s = request.app.state.settings.usage.dashboard_refresh_s
    try:
        who = await caller(request)
    except APIError as exc:
        if exc.status != 401:
            raise
        return {"signed_in": False, "message": exc.message, "refresh_s": refresh_s}
    return {"signed_in": True, "admin": who.team is None, "team": who.team,
            "key_id": who.key_id, "refresh_s": refresh_s}
