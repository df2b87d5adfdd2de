"""The FastAPI application: OpenAI-compatible chat completions over the two tiers.

Models are loaded once, in the lifespan, and handed to routes through ``app.state``.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from agents.base import Backend
from router.service import errors, routes
from router.settings import Settings


def create_app(settings: Settings, *, local: Backend | None = None,
               cloud: Backend | None = None, with_retrieval: bool = True) -> FastAPI:
    """Build the app. Backends given here are used as they are (and not closed by the app)."""

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from router.backends import build_cloud, build_local

        owned: list[Backend] = []
        if local is None:
            owned.append(build_local(settings))
        if cloud is None:
            owned.append(build_cloud(settings))
        from router.graph.graph import build_graph
        from router.runtime import build_context

        app.state.tiers = {
            "local": local or owned[0],
            "cloud": cloud or owned[-1],
        }
        app.state.router_context = build_context(
            settings, app.state.tiers["local"], app.state.tiers["cloud"],
            with_retrieval=with_retrieval)
        app.state.graph = build_graph()
        try:
            yield
        finally:
            retrieval = app.state.router_context.retrieval
            if retrieval is not None:
                retrieval.close()
            for backend in owned:
                backend.close()

    app = FastAPI(title="SmallCode Router", lifespan=lifespan)
    app.state.settings = settings
    errors.install(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next):  # type: ignore[no-untyped-def]
        size = request.headers.get("content-length")
        if size and size.isdigit() and int(size) > settings.server.max_body_bytes:
            return errors.error_response(
                413, f"request body is over {settings.server.max_body_bytes} bytes",
                "invalid_request_error")
        return await call_next(request)

    app.include_router(routes.router)

    @app.get("/healthz")
    async def healthz() -> JSONResponse:
        return JSONResponse({"status": "ok"})

    return app
